"""The dashboard in a real browser: Playwright driving the system Chromium.

Skipped with a reason when Playwright or Chromium is missing, except under CI
(``$CI`` set), where they must run. Screenshots go to ``docs/dashboard/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

pytest.importorskip("starlette")

from tests.cli_helpers import invoke  # noqa: E402
from tests.test_dashboard import EVIL, Served, make_store, poison  # noqa: E402

#: Where the screenshots go: ``$NASLAB_SCREENSHOT_DIR`` (``docs/dashboard`` makes the
#: README's pictures), else a folder of the test session's own.
SHOTS_ENV = "NASLAB_SCREENSHOT_DIR"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests, but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[dev]')")
    executable = os.environ.get("NASLAB_TEST_CHROMIUM") or shutil.which("chromium")
    if not executable:
        _missing("no Chromium found (set NASLAB_TEST_CHROMIUM or put chromium on PATH)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    pg = context.new_page()
    pg.errors = []  # uncaught script errors and dialogs (alert) seen on the page
    pg.on("pageerror", lambda exc: pg.errors.append(f"error: {exc}"))
    pg.on("dialog", lambda d: (pg.errors.append(f"dialog: {d.message}"), d.dismiss()))
    yield pg
    context.close()


@pytest.fixture(scope="module")
def store_url(tmp_path_factory):
    """Three studies (single- and multi-objective table searches, small DARTS networks
    really trained on digits, with learning curves) and a stored predictor."""
    import torch

    import naslab

    url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'store.db'}"
    make_store(url, multi=True, budget=60)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        naslab.Study("darts-digits", space="darts", task="digits", budget=2, epochs=3,
                     space_options={"channels": 4, "cells": 3}, storage=url).run(progress=False)
    finally:
        torch.set_num_threads(threads)
    invoke("predictor", "fit", "--space", "nasbench_graph", "--task", "cora", "--model", "rf",
           "--storage", url)
    return url


@pytest.fixture(scope="module")
def served(store_url):
    s = Served(store_url)
    yield s
    s.close()


def _figures(pg) -> int:
    """How many Plotly figures the page drew (once a study page fetched its own)."""
    if pg.locator("body[data-figures-url]").count():
        pg.wait_for_selector("body[data-figures-drawn]", timeout=30_000)
    pg.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    return pg.locator(".js-plotly-plot").count()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get(SHOTS_ENV) or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _shot(pg, folder: Path, name: str) -> None:
    path = folder / name
    pg.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a rendered page, not an empty image


def test_studies_and_study_pages(served, page, shots):
    page.goto(served.base + "/")
    rows = page.locator("#studies-table tbody tr")
    assert rows.count() == 3
    assert "60 / 60" in page.locator("tr[data-study=multi]").inner_text()
    _shot(page, shots, "studies.png")
    page.click("text=multi")
    assert _figures(page) >= 5  # two anytime curves, Pareto front, costs, curves
    assert page.locator("#trials-table tbody tr").count() == 50
    assert "page 1 of 2" in page.inner_text(".pager")
    assert page.locator("#hypervolume").inner_text().strip()
    _shot(page, shots, "study.png")
    # sorting and paging go through the server
    page.click("#trials-table thead >> text=val_accuracy")
    assert "sort=objective" in page.url and "dir=desc" in page.url
    first = float(page.locator("#trials-table tbody tr").first.locator("td").nth(2).inner_text())
    values = [float(v) for v in page.locator("#trials-table tbody tr td:nth-child(3)")
              .all_inner_texts() if v]
    assert first == max(values)
    page.click("a[rel=next]")
    assert "page=2" in page.url and page.locator("#trials-table tbody tr").count() == 10
    page.fill("#curves-input", "1,2")  # learning curves of chosen trials
    page.click("form.curves button")
    assert "curves=1%2C2" in page.url
    _figures(page)
    assert page.locator("#fig-curves .legendtext").all_text_contents() == ["trial 1", "trial 2"]
    page.click(".filters >> text=failed")
    assert "state=failed" in page.url and "no trials in state failed" in page.inner_text(
        "#trials-table")
    assert not page.errors


def test_trial_page_draws_the_architecture(served, page, shots):
    page.goto(served.base + "/trial?study=darts-digits&number=1")
    assert _figures(page) >= 2  # the graph and a learning curve
    labels = page.locator("#fig-graph .textpoint").all_text_contents()
    assert "concat" in labels and "input" in labels and "output" in labels
    cells = page.locator("#fig-graph .annotation-text").all_text_contents()
    assert "normal cell" in cells and "reduce cell" in cells
    assert page.locator("#epochs tbody tr").count() >= 3  # val_accuracy, ... per epoch
    _shot(page, shots, "trial.png")
    page.goto(served.base + "/trial?study=multi&number=3")
    _figures(page)
    labels = page.locator("#fig-graph .textpoint").all_text_contents()
    assert {"input", "output"} <= set(labels)
    assert not page.errors


def test_predictors_page(served, page, shots):
    page.goto(served.base + "/predictors?study=multi")
    assert _figures(page) >= 1
    tau = float(page.locator(".kendall").first.inner_text())
    assert -1 <= tau <= 1
    assert page.locator("#predictors-table tbody tr").count() == 1
    _shot(page, shots, "predictors.png")
    assert not page.errors


def test_unknown_pages_are_404(served, page):
    response = page.goto(served.base + "/study?name=nope")
    assert response.status == 404 and "no study named 'nope'" in page.inner_text("main")


def test_stored_script_never_runs(tmp_path, page):
    path = tmp_path / "store.db"
    make_store(f"sqlite:///{path}", budget=8)
    poison(path)
    s = Served(f"sqlite:///{path}")
    try:
        page.goto(s.base + "/")
        assert EVIL in page.inner_text("#studies-table")  # shown literally
        page.goto(s.base + "/study?name=" + quote(EVIL))
        _figures(page)
        assert page.locator("h1 .name").inner_text() == EVIL
        assert EVIL + "</script><b>x" in page.locator("pre.error").first.inner_text()
        assert page.locator("#trials-table b").count() == 0  # no injected element
        page.goto(s.base + f"/trial?study={quote(EVIL)}&number=1")
        assert page.locator("#trial-error").inner_text() == EVIL + "</script><b>x"
        assert EVIL in page.inner_text("#decisions")
        page.goto(s.base + f"/trial?study={quote(EVIL)}&number=2")
        _figures(page)
        labels = page.locator("#fig-graph .textpoint").all_text_contents()
        assert any("alert(1)" in label for label in labels)
        page.wait_for_timeout(500)
        assert not page.errors, page.errors
        assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 1
    finally:
        s.close()


ROOT = Path(__file__).resolve().parents[1]
#: The live search: trials of about a second each (made-up learning curves).
LIVE_BUDGET = 15


def _search(url: str, study: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "naslab.cli", "search", "--space", "nasbench_graph", "--task",
         "tests.curve_evaluator:CurveEvaluator", "--task-opt", "epoch_seconds=0.4",
         "--epochs", "2", "--budget", str(LIVE_BUDGET), "--study", study, "--storage", url,
         "--in-process"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env, cwd=ROOT)


def _wait(pg, expression: str, timeout: float) -> None:
    """Wait until the JavaScript ``expression`` is true on the page (polled from here:
    Playwright's wait_for_function evaluates strings, which the page's CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not pg.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        pg.wait_for_timeout(250)


def _done(pg, selector: str) -> int:
    return int(pg.locator(selector).inner_text().split("/")[0].replace(",", ""))


def test_live_update_without_reload(tmp_path, browser, page):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    make_store(url, budget=3)
    s = Served(url)
    proc = None
    try:
        page.goto(s.base + "/")
        page.evaluate("window.__not_reloaded = true")
        proc = _search(url, "live")  # started after the page was opened
        page.locator("tr[data-study=live]").wait_for(timeout=30_000)
        first = _done(page, "tr[data-study=live] .done")
        # the study page, opened while the search runs, follows it too
        study = browser.new_page()
        study.goto(s.base + "/study?name=live")
        study.evaluate("window.__not_reloaded = true")
        at_load = _done(study, "#done")
        assert first < LIVE_BUDGET and at_load < LIVE_BUDGET, "the search ended too soon"
        done = f"'{LIVE_BUDGET} / {LIVE_BUDGET}'"
        _wait(page, "document.querySelector('tr[data-study=live] .done')"
              f".textContent.includes({done})", 120)
        _wait(study, f"document.getElementById('done').textContent.includes({done})", 30)
        _wait(study, "document.querySelectorAll('#trials-table tbody tr').length"
              f" === {LIVE_BUDGET}", 30)
        study.wait_for_selector("#fig-anytime_trials .main-svg", timeout=30_000)
        _wait(study, "document.querySelectorAll('#fig-anytime_trials .point').length"
              f" >= {LIVE_BUDGET}", 30)  # every trial's point, drawn without a reload
        for pg in (page, study):
            assert pg.evaluate("window.__not_reloaded") is True
        assert not page.errors
        study.close()
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        s.close()


def test_report_opens_without_a_server(tmp_path, page, store_url):
    out = tmp_path / "report.html"
    invoke("report", "--study", "multi", "--out", str(out), "--storage", store_url)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri())
    assert _figures(page) >= 4
    assert page.locator("#trials-table tbody tr").count() == 60
    assert re.search(r"\d", page.inner_text("#hypervolume"))
    assert [r for r in requests if not r.startswith(("file:", "data:"))] == []
    assert not page.errors

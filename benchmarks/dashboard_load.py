"""The dashboard's study page on a study of 10,000 trials: first paint in Chromium and
the server's memory.

A real table search builds the study (NAS-Bench-Graph's cora table, random search,
``Study(batch_trials=500)`` in this process); ``naslab dashboard`` then serves the
store in a subprocess on 127.0.0.1, and Chromium (Playwright, the system's
Chromium or ``$NASLAB_TEST_CHROMIUM``) loads the study page 5 times, each in a
fresh browser context (nothing cached). Printed, as medians of the 5 loads:

- first contentful paint (``performance.getEntriesByType('paint')``);
- when every figure is drawn (Plotly's ``.js-plotly-plot`` divs rendered), since the
  navigation started;
- the HTML of the study page, its figures (``/api/figures``, fetched once the page
  shows) and the live-update request (``/api/live``, what an open page fetches every
  2 s), timed from this process over HTTP;

and the server's resident memory (VmRSS) after the loads. The trials table is
paginated on the server (50 rows a page); scatters draw at most 2,000 points.

Usage: ``python benchmarks/dashboard_load.py [--trials N] [--quick] [--json PATH]``
(``--quick``: 2,000 trials). Linux only (the memory is read from ``/proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

LOADS = 5
STUDY = "load"


def build_store(url: str, trials: int) -> float:
    """The study of ``trials`` table trials; returns the seconds it took."""
    import naslab

    start = time.perf_counter()
    naslab.Study(STUDY, space="nasbench_graph", task="cora", budget=trials, searcher="random",
                 batch_trials=500, storage=url).run()
    return time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait_listening(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"naslab dashboard exited: {proc.communicate()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit("naslab dashboard did not start")


def _http_ms(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        size = len(r.read())
    return (time.perf_counter() - start) * 1000, size


def browser_loads(base: str) -> tuple[list[float], list[float]]:
    """First contentful paint and figures-drawn times (ms) of ``LOADS`` loads."""
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("NASLAB_TEST_CHROMIUM") or shutil.which("chromium")
    if not executable:
        raise SystemExit("no Chromium: set NASLAB_TEST_CHROMIUM or put chromium on PATH")
    fcp, drawn = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        for _ in range(LOADS):
            context = browser.new_context(viewport={"width": 1300, "height": 900})
            page = context.new_page()
            page.goto(f"{base}/study?name={STUDY}")
            page.wait_for_selector("#fig-costs .main-svg", timeout=60_000)
            page.wait_for_selector("#fig-anytime_trials .main-svg", timeout=60_000)
            fcp.append(page.evaluate(
                "performance.getEntriesByType('paint')"
                ".filter(e => e.name === 'first-contentful-paint')[0].startTime"))
            drawn.append(page.evaluate("performance.now()"))
            context.close()
        browser.close()
    return fcp, drawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10_000, help="trials in the study")
    parser.add_argument("--quick", action="store_true", help="2,000 trials")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    trials = 2000 if args.quick else args.trials
    folder = Path(tempfile.mkdtemp(prefix="naslab-dashboard-load-"))
    url = f"sqlite:///{folder / 'store.db'}"
    build_s = build_store(url, trials)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "naslab.cli", "dashboard", "--storage", url, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_listening(port, server)
        rss_start = _rss_mb(server.pid)
        fcp, drawn = browser_loads(base)
        page = [_http_ms(f"{base}/study?name={STUDY}") for _ in range(LOADS)]
        live = [_http_ms(f"{base}/api/live?name={STUDY}") for _ in range(LOADS)]
        figs = [_http_ms(f"{base}/api/figures?name={STUDY}") for _ in range(LOADS)]
        rss = _rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(folder, ignore_errors=True)
    figures = [
        ("trials in the study", trials, "trials"),
        ("study built (table search, batch_trials=500)", round(build_s, 1), "s"),
        ("first contentful paint, median of 5", round(statistics.median(fcp)), "ms"),
        ("every figure drawn, median of 5", round(statistics.median(drawn)), "ms"),
        ("study page HTML over HTTP, median of 5", round(statistics.median(m for m, _ in page)),
         "ms"),
        ("study page size", round(page[0][1] / 1024), "KiB"),
        ("live update (/api/live), median of 5", round(statistics.median(m for m, _ in live)),
         "ms"),
        ("figures (/api/figures), median of 5", round(statistics.median(m for m, _ in figs)),
         "ms"),
        ("figures size", round(figs[0][1] / 1024), "KiB"),
        ("server RSS at start", round(rss_start), "MiB"),
        ("server RSS after the loads", round(rss), "MiB"),
    ]
    print(f"dashboard study page, {trials:,} trials, {os.cpu_count()} CPUs "
          f"(FCP target: under 1000 ms)")
    for name, value, unit in figures:
        print(f"  {name:<48} {value:>10,} {unit}")
    print("  FCP of each load (ms): " + ", ".join(f"{v:.0f}" for v in fcp))
    if args.json:
        args.json.write_text(json.dumps([
            {"name": name, "value": value, "unit": unit,
             "conditions": {"trials": trials, "space": "nasbench_graph", "task": "cora",
                            "loads": LOADS, "per_page": 50, "cpus": os.cpu_count()}}
            for name, value, unit in figures], indent=2))


if __name__ == "__main__":
    main()

"""The dashboard without a browser: the read-only store, the pages over real HTTP
(uvicorn on a free port of 127.0.0.1), parameter whitelists, escaping, 404s, GET
only, the ``naslab dashboard`` and ``naslab report`` commands."""

from __future__ import annotations

import json
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from naslab.core.errors import ConfigError, StorageError  # noqa: E402
from naslab.db.store import Store  # noqa: E402
from tests.cli_helpers import content_hash, one_line_error, run_main  # noqa: E402

EVIL = "<script>alert(1)</script>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """The dashboard app served by uvicorn in a thread on 127.0.0.1."""

    def __init__(self, url: str) -> None:
        import uvicorn

        from naslab.dashboard import create_app

        self.app = create_app(url)
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{self.port}"

    def get(self, path: str, method: str = "GET", host: str | None = None
            ) -> tuple[int, str]:
        request = urllib.request.Request(self.base + path, method=method)
        if host:
            request.add_header("Host", host)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


def make_store(url: str, *, multi: bool = False, budget: int = 30) -> None:
    """A table search (and a multi-objective one) stored at ``url``."""
    import naslab

    naslab.Study("single", space="nasbench_graph", task="cora", budget=budget,
                 searcher="random", storage=url).run()
    if multi:
        naslab.Study("multi", space="nasbench_graph", task="cora", budget=budget,
                     searcher="nsga2", objectives="val_accuracy:max,latency_ms:min",
                     storage=url).run()


def poison(path: Path) -> None:
    """Stored strings an attacker could have written into the file directly."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE naslab_trials SET state = 'failed', objective_value = NULL, "
                     "error = ?, worker = ?, decisions = ? WHERE number = 1",
                     (EVIL + "</script><b>x", EVIL, json.dumps({"op1": EVIL})))
        conn.execute("UPDATE naslab_architectures SET graph = ? WHERE id = (SELECT "
                     "t.architecture_id FROM naslab_trials t JOIN naslab_studies s ON "
                     "s.id = t.study_id WHERE s.name = 'single' AND t.number = 2)",
                     (json.dumps({"nodes": [{"id": "a", "op": EVIL},
                                            {"id": "b", "op": "</script><script>x()"}],
                                  "edges": [["a", "b"]]}),))
        conn.execute("UPDATE naslab_studies SET name = ? WHERE name = 'single'", (EVIL,))
    conn.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    path = tmp_path_factory.mktemp("dash") / "store.db"
    make_store(f"sqlite:///{path}", multi=True)
    poison(path)
    before = content_hash(path)
    s = Served(f"sqlite:///{path}")
    yield s
    s.close()
    assert content_hash(path) == before, "the dashboard changed the store"


# ------------------------------------------------------------------ read-only store


def test_read_only_store_refuses_writes(db_url):
    make_store(db_url, budget=5)
    with Store(db_url, read_only=True) as store:
        assert store.read_only and len(store.trials.list("single")) == 5
        with pytest.raises(StorageError, match="read-only"):
            store.fronts.set("single", [], ["val_accuracy:max"])
        # even a statement on the store's own engine cannot write
        with store.database.engine.connect() as conn, pytest.raises(Exception) as info:
            conn.exec_driver_sql("DELETE FROM naslab_trials")
            conn.commit()
        assert "read" in str(info.value).lower()
    with Store(db_url) as store:
        assert store.trials.count("single") == 5


def test_read_only_store_refuses_missing_file_and_old_schema(tmp_path):
    missing = tmp_path / "none.db"
    with pytest.raises(ConfigError, match="no SQLite database"):
        Store(f"sqlite:///{missing}", read_only=True)
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(StorageError, match="no naslab store"):
        Store(f"sqlite:///{empty}", read_only=True)
    old = tmp_path / "old.db"
    Store(f"sqlite:///{old}").close()
    conn = sqlite3.connect(old)
    with conn:
        conn.execute("UPDATE naslab_alembic_version SET version_num = '0001'")
    conn.close()
    before = content_hash(old)
    with pytest.raises(StorageError, match="naslab db upgrade"):
        Store(f"sqlite:///{old}", read_only=True)
    assert content_hash(old) == before


# ------------------------------------------------------------------ pages over HTTP


def test_pages_over_each_backend(db_url):
    make_store(db_url, multi=True, budget=8)
    s = Served(db_url)
    try:
        for path in ("/", "/study?name=multi&sort=latency&dir=desc", "/api/figures?name=multi",
                     "/api/live?name=multi", "/trial?study=multi&number=3",
                     "/predictors?study=multi", "/fragment/studies"):
            status, body = s.get(path)
            assert status == 200, (path, body[-300:])
        assert "hypervolume" in json.loads(s.get("/api/figures?name=multi")[1])["extra"]
        assert s.get("/study?name=nope")[0] == 404
    finally:
        s.close()
    with Store(db_url) as store:  # nothing was written
        assert store.trials.count("multi") == 8 and store.predictors.list() == []


def test_pages_render(served):
    status, body = served.get("/")
    assert status == 200 and "multi" in body and 'id="studies-table"' in body
    status, body = served.get("/study?name=multi")
    assert status == 200 and 'id="trials-table"' in body and 'id="fig-pareto"' in body
    assert 'src="/static/plotly.min.js"' in body and "cdn" not in body.lower()
    status, body = served.get("/api/figures?name=multi")
    got = json.loads(body)
    assert {"anytime_trials", "anytime_time", "pareto", "costs"} <= set(got["figures"])
    assert "hypervolume" in got["extra"]
    status, body = served.get("/trial?study=multi&number=0")
    assert status == 200 and "decisions" in body
    graph = json.loads(re.search(r'id="figures-data">(.*?)</script>', body, re.S).group(1))
    assert any("text" in t for t in graph["graph"]["data"])
    status, js = served.get("/static/plotly.min.js")
    assert status == 200 and len(js) > 1_000_000
    status, body = served.get("/predictors?study=multi")
    assert status == 200 and "Stored versions" in body


def test_pagination_sort_and_filter_happen_on_the_server(served):
    status, body = served.get("/study?name=multi&per_page=25&sort=objective&dir=desc")
    assert status == 200
    rows = re.findall(r'<tr class="state-(\w+)">', body)
    assert len(rows) == 25 and "page 1 of 2" in body
    values = [float(v) for v in re.findall(
        r'<tr class="state-complete">\s*<td class="num"><a[^>]*>\d+</a></td>\s*<td>complete'
        r'</td>\s*<td class="num">([0-9.]+)</td>', body)]
    assert values == sorted(values, reverse=True) and len(values) == 25
    status, body = served.get("/study?name=multi&per_page=25&page=2")
    assert status == 200 and len(re.findall(r'<tr class="state-', body)) == 5
    status, body = served.get("/study?name=multi&state=failed")
    assert status == 200 and re.findall(r'<tr class="state-(\w+)">', body) == ["failed"]
    status, body = served.get("/study?name=multi&state=interrupted")
    assert status == 200 and "no trials in state interrupted" in body


@pytest.mark.parametrize("query", [
    "sort=objective_value", "sort=number;DROP TABLE naslab_trials", "sort=", "dir=up",
    "state=done", "state=complete'--", "page=0", "page=-1", "page=1e9", "page=abc",
    "per_page=7", "per_page=100000", "curves=1,x", "curves=" + ",".join(["1"] * 21)])
def test_bad_query_parameters_are_refused(served, query):
    if query == "sort=":  # empty means the default
        assert served.get("/study?name=multi&" + query)[0] == 200
        return
    from urllib.parse import quote

    status, body = served.get("/study?name=multi&" + quote(query, safe="=&"))
    assert status == 400, body
    assert "Traceback" not in body and "<h1>400 Bad request</h1>" in body


@pytest.mark.parametrize("path", [
    "/study?name=nope", "/study?name=nope%3Cscript%3E", "/trial?study=multi&number=999",
    "/trial?study=nope&number=0", "/predictors?study=nope", "/nothing", "/static/app.py",
    "/static/..%2F..%2Fpyproject.toml", "/api/live?name=nope"])
def test_unknown_things_are_404_pages(served, path):
    status, body = served.get(path)
    assert status == 404 and "Traceback" not in body and "404" in body
    assert "<script>alert" not in body


def test_only_get_and_only_local_host_names(served):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert served.get("/", method=method)[0] == 405
    assert served.get("/", host="attacker.example")[0] == 400
    assert served.get("/", host="localhost")[0] == 200


def test_stored_strings_are_escaped(served):
    from urllib.parse import quote

    status, body = served.get("/")
    assert status == 200 and EVIL not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    status, body = served.get("/study?name=" + quote(EVIL))
    assert status == 200 and EVIL not in body and "&lt;script&gt;" in body
    assert "</script><b>" not in body
    status, body = served.get("/api/figures?name=" + quote(EVIL))
    assert status == 200 and "<" not in body and ">" not in body  # escaped JSON
    status, body = served.get("/api/live?name=" + quote(EVIL))
    assert status == 200 and "<script>" not in json.loads(body)["table"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in json.loads(body)["table"]
    status, body = served.get(f"/trial?study={quote(EVIL)}&number=2")
    assert status == 200 and "</script><script>x()" not in body and EVIL not in body
    assert "\\u003c\\u002fscript\\u003e\\u003cscript\\u003ex()" in body  # the op label


# ------------------------------------------------------------------ commands


def test_report_is_one_static_file(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    make_store(url, multi=True, budget=12)
    out = tmp_path / "report.html"
    code, _, err = run_main(monkeypatch, capsys, "report", "--study", "multi", "--out",
                            str(out), "--storage", url)
    assert code == 0, err
    html = out.read_text()
    page = re.sub(r"<script>.*?</script>", "", html, flags=re.S)  # the inlined scripts
    assert "/static/" not in page and not re.search(r'(src|href)\s*=\s*"(?!data:)', page)
    assert "data-live-url" not in page
    assert html.count("</script>") == 3 and "Plotly" in html and "hypervolume" in html
    code, _, err = run_main(monkeypatch, capsys, "report", "--study", "multi", "--out",
                            str(out), "--storage", url)
    assert code == 2 and "--force" in one_line_error(err)
    code, _, err = run_main(monkeypatch, capsys, "report", "--study", "multi", "--out",
                            str(out), "--storage", url, "--force")
    assert code == 0, err
    link = tmp_path / "link.html"
    link.symlink_to(tmp_path / "elsewhere.html")
    code, _, err = run_main(monkeypatch, capsys, "report", "--study", "multi", "--out",
                            str(link), "--storage", url, "--force")
    assert code == 2 and "link" in one_line_error(err)
    assert not (tmp_path / "elsewhere.html").exists()
    code, _, err = run_main(monkeypatch, capsys, "report", "--study", "nope", "--out",
                            str(tmp_path / "r2.html"), "--storage", url)
    assert code == 2 and "no study named 'nope'" in one_line_error(err)
    assert not (tmp_path / "r2.html").exists()
    code, _, err = run_main(monkeypatch, capsys, "report", "--study", "multi", "--out",
                            str(tmp_path / "r3.html"), "--storage",
                            f"sqlite:///{tmp_path / 'missing.db'}")
    assert code == 2 and "no SQLite database" in one_line_error(err)
    assert not (tmp_path / "missing.db").exists()


def test_report_escapes_script_end_tags(tmp_path):
    from naslab.dashboard import render_report

    path = tmp_path / "store.db"
    make_store(f"sqlite:///{path}", budget=6)
    poison(path)
    html = render_report(f"sqlite:///{path}", EVIL)
    assert EVIL not in html and "</script><b>" not in html
    assert html.count("</script>") == 3


def _dashboard(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "naslab.cli", "dashboard", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.terminate()
    try:
        return proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def _wait_for(port: int, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {host}:{port}")


def test_dashboard_command_binds_loopback_and_warns_otherwise(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    make_store(url, budget=3)
    port = free_port()
    proc = _dashboard("--storage", url, "--port", str(port))
    try:
        _wait_for(port)
        if shutil.which("ss"):
            listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"],
                                       capture_output=True, text=True).stdout.split()
            assert listening[3] == f"127.0.0.1:{port}", listening
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=20) as r:
            assert r.status == 200
    finally:
        out, err = _stop(proc)
    assert "warning" not in err and "read-only" in out
    port = free_port()
    proc = _dashboard("--storage", url, "--port", str(port), "--host", "0.0.0.0")
    try:
        _wait_for(port)
    finally:
        out, err = _stop(proc)
    assert "warning: serving on 0.0.0.0" in err and "can read the store" in " ".join(err.split())


@pytest.mark.parametrize("args, message", [
    (("--host", "example.com"), "--host must be an IP address"),
    (("--host", "127.0.0.1;rm"), "--host must be an IP address"),
    (("--port", "70000"), "--port must be from 0 to 65535"),
])
def test_dashboard_command_refuses_bad_options(tmp_path, monkeypatch, capsys, args, message):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    Store(url).close()
    code, _, err = run_main(monkeypatch, capsys, "dashboard", "--storage", url, *args)
    assert code == 2 and message in one_line_error(err)


def test_dashboard_command_refuses_a_missing_store(tmp_path, monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "dashboard", "--storage",
                            f"sqlite:///{tmp_path / 'nothing.db'}", "--port", "0")
    assert code == 2 and "no SQLite database" in one_line_error(err)
    assert not (tmp_path / "nothing.db").exists()


def test_import_naslab_needs_no_dashboard_packages(tmp_path):
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('starlette', 'uvicorn', 'jinja2', 'plotly'):\n"
            "            raise ImportError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import naslab, naslab.cli, naslab.dashboard\n"
            "try:\n"
            "    naslab.dashboard.create_app('sqlite://')\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, exc)\n"
            "sys.argv = ['naslab', sys.argv[1], '--study', 'x', '--out', sys.argv[2]]\n"
            "if sys.argv[1] == 'dashboard':\n"
            "    sys.argv[2:] = ['--port', '0']\n"
            "naslab.cli.main()\n")
    for command in ("dashboard", "report"):
        result = subprocess.run([sys.executable, "-c", code, command, str(tmp_path / "r.html")],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert "ConfigError" in result.stdout
        assert "pip install 'naslab[dashboard]'" in result.stdout
        assert one_line_error(result.stderr).endswith("pip install 'naslab[dashboard]'")
        assert not (tmp_path / "r.html").exists()


# ------------------------------------------------------------------ parts


def test_architecture_layout_layers_and_cells():
    import numpy as np

    from naslab.dashboard.graph_figure import architecture_figure, cell_positions
    from naslab.search_spaces.architecture import graph_from_json, graph_to_json
    from naslab.search_spaces.registry import get_space

    arch = get_space("darts").sample(np.random.default_rng(0))
    graph = graph_from_json(graph_to_json(arch.graph))
    pos, frames = cell_positions(graph)
    assert [name for name, _, _ in frames] == ["normal", "reduce"]
    xs = {cell: [pos[n][0] for n, a in graph.nodes(data=True) if a.get("cell") == cell]
          for cell in ("normal", "reduce")}
    assert max(xs["normal"]) < min(xs["reduce"])  # side by side, each a cell
    for u, w in graph.edges:  # every edge points right: layers by topological generation
        assert pos[u][0] < pos[w][0]
    fig = architecture_figure(graph_to_json(arch.graph))
    nodes = next(t for t in fig["data"] if t.get("name") == "nodes")
    assert "concat" in list(nodes["text"]) and len(nodes["text"]) == graph.number_of_nodes()


def test_embedded_json_cannot_end_its_element():
    from naslab.dashboard.params import embeddable_json

    text = embeddable_json({"a": "</script><script>alert(1)</script>", "b": "x\u2028y&'"})
    assert not re.search(r"[<>&'\u2028\u2029]", text)
    assert json.loads(text) == {"a": "</script><script>alert(1)</script>", "b": "x\u2028y&'"}


def test_best_so_far_and_loopback_names():
    from naslab.cli_dashboard import is_loopback
    from naslab.dashboard.figures import best_so_far

    assert best_so_far([(0, 0.5), (1, 0.4), (2, 0.7), (3, 0.6)], maximize=True) == [
        (0, 0.5), (2, 0.7), (3, 0.7)]
    assert best_so_far([(0, 0.5), (1, 0.4)], maximize=False) == [(0, 0.5), (1, 0.4)]
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.2", "::", "example.com"]))

"""Ray at the edges (issue 14): a local search listens on 127.0.0.1 only, with Ray's
token authentication left on; wrong cluster addresses and missing Ray extras are
one-line errors (exit code 2), never a traceback or an endless retry."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from naslab import ConfigError
from naslab.workers.ray_executor import RayExecutor

ROOT = Path(__file__).resolve().parents[1]


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _tree(root: psutil.Process, marker: str) -> list[psutil.Process]:
    """``root``, its descendants, and every process whose command line names
    ``marker`` (Ray's own processes, should one be re-parented)."""
    procs = {root.pid: root}
    try:
        procs.update({p.pid: p for p in root.children(recursive=True)})
    except psutil.NoSuchProcess:
        pass
    for p in psutil.process_iter(["cmdline"]):
        if marker in " ".join(p.info["cmdline"] or []):
            procs[p.pid] = p
            try:
                procs.update({c.pid: c for c in p.children(recursive=True)})
            except psutil.NoSuchProcess:
                pass
    return list(procs.values())


def _listening(procs: list[psutil.Process]) -> set[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket (IPv4 and IPv6)."""
    out = set()
    for p in procs:
        try:
            name = p.name()
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    out.add((name, c.laddr.ip, c.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
         prelude: str = "") -> subprocess.CompletedProcess:
    """``naslab ARGS`` in a fresh interpreter (``prelude`` runs first: it can hide a
    package, as if it were not installed)."""
    code = (f"{prelude}\nimport sys\nsys.argv = ['naslab', *sys.argv[1:]]\n"
            "from naslab.cli import main\nmain()\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env or _env())


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update({"RAY_AUTH_MODE": "disabled", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def _one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    err = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, result.stdout, err)
    assert "Traceback" not in err + result.stdout, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.slow  # a real search with Ray workers and the dashboard (~25 s)
def test_a_local_search_listens_on_loopback_only_with_token_auth_on(tmp_path):
    """The whole process tree of `naslab search` (driver, GCS, raylet, workers, agents,
    dashboard) listens on 127.0.0.1 only; Ray's token authentication is on (a token
    was made in the user's ~/.ray), as naslab leaves RAY_AUTH_MODE alone."""
    home = tmp_path / "home"
    home.mkdir()
    ray_tmp = tempfile.mkdtemp(prefix="rl", dir="/tmp")  # short: Ray's socket paths
    env = _env(HOME=str(home), RAY_TMPDIR=ray_tmp)
    env.pop("RAY_AUTH_MODE")
    proc = subprocess.Popen(
        [sys.executable, "-m", "naslab.cli", "search", "--space", "chain", "--epochs", "2",
         "--budget", "3", "--workers", "2", "--dashboard", "--study", "loop",
         "--storage", f"sqlite:///{tmp_path / 'l.db'}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: set[tuple[str, str, int]] = set()
    try:
        root = psutil.Process(proc.pid)
        deadline = time.monotonic() + 150
        while proc.poll() is None and time.monotonic() < deadline:
            seen |= _listening(_tree(root, ray_tmp))
            time.sleep(0.3)
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    names = {name for name, _, _ in seen}
    assert {"gcs_server", "raylet"} <= names, seen  # the scan saw Ray's servers
    assert any("ray::_Worker" in n or "ray::IDLE" in n for n in names) or len(seen) >= 8, seen
    assert any(port == 8265 or "dashboard" in n.lower() for n, _, port in seen), seen
    open_ = sorted(s for s in seen if not _loopback(s[1]))
    assert not open_, f"listening beyond loopback: {open_}"
    assert (home / ".ray" / "auth_token").is_file()  # Ray's token auth was on


def test_auto_without_a_cluster_is_a_one_line_error(tmp_path):
    result = _cli("search", "--space", "chain", "--budget", "2", "--epochs", "1",
                  "--ray-address", "auto", "--storage", f"sqlite:///{tmp_path / 'a.db'}",
                  env=_env(RAY_TMPDIR=tempfile.mkdtemp(prefix="ra", dir="/tmp")))
    line = _one_line_error(result, "ray start --head")
    # none at all, or (another test's) Ray that listens on 127.0.0.1 only, which Ray's
    # discovery then addresses by the machine's external address
    assert "no running Ray cluster" in line or "no Ray cluster answers at" in line, line


def test_an_address_where_nothing_listens_fails_fast(tmp_path):
    started = time.monotonic()
    for address in ("127.0.0.1:1", "ray://127.0.0.1:1"):
        result = _cli("search", "--space", "chain", "--budget", "2", "--epochs", "1",
                      "--ray-address", address, "--storage", f"sqlite:///{tmp_path / 'b.db'}")
        _one_line_error(result, f"no Ray cluster answers at {address}")
    assert time.monotonic() - started < 60  # Ray itself retries for many minutes


def test_an_address_that_never_answers_times_out(monkeypatch):
    """A host that drops the connection attempt: the connect timeout ends the wait."""
    import socket

    from naslab.workers import ray_connect

    def silent(address, timeout):
        time.sleep(min(timeout, 0.2))
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", silent)
    with pytest.raises(ConfigError, match=r"10\.255\.255\.1:6379 \(no answer within 0\.2 s\)"):
        ray_connect.join_cluster("10.255.255.1:6379", connect_timeout=0.2)


MALFORMED = ["nowhere", "host:0", "host:99999", "ray://", "ray://h", "a b:1", "http://h:1",
             ":6379", "[::1:6379", "h:-1", "h:1:2"]


def test_malformed_addresses_are_refused_before_the_study_is_created(tmp_path):
    from naslab import Store

    for address in MALFORMED:
        with pytest.raises(ConfigError, match="ray address"):
            RayExecutor(address=address)
    url = f"sqlite:///{tmp_path / 'm.db'}"
    for address in ("nowhere", "host:99999"):
        result = _cli("search", "--space", "chain", "--budget", "2", "--ray-address", address,
                      "--storage", url)
        _one_line_error(result, "ray address")
    if (tmp_path / "m.db").exists():
        with Store(url) as store:
            assert store.studies.summaries() == []


def test_ray_address_from_the_environment_is_checked_too(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "nowhere")
    with pytest.raises(ConfigError, match="ray address 'nowhere'"):
        RayExecutor(workers=1)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert RayExecutor(workers=1).address == "127.0.0.1:6379"  # joins it, as Ray would


def test_missing_ray_extras_are_refused_with_the_install_hint(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    no_client = _cli("search", "--space", "chain", "--ray-address", "ray://127.0.0.1:10001",
                     "--storage", url, prelude="import sys; sys.modules['grpc'] = None")
    _one_line_error(no_client, "ray[client]", 'pip install "naslab[cluster]"')
    no_dashboard = _cli("search", "--space", "chain", "--dashboard", "--storage", url,
                        prelude="import sys; sys.modules['aiohttp_cors'] = None")
    _one_line_error(no_dashboard, "ray[default]", 'pip install "naslab[cluster]"')
    assert not (tmp_path / "x.db").exists()  # refused before the store was opened


def test_dashboard_conflicts_are_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    _one_line_error(_cli("search", "--dashboard", "--in-process", "--storage", url),
                    "--in-process")
    _one_line_error(_cli("search", "--dashboard", "--ray-address", "auto", "--storage", url),
                    "a cluster has its own")
    with pytest.raises(ConfigError, match="a cluster has its own"):
        RayExecutor(address="auto", dashboard=True)


def test_the_cluster_extra_is_declared():
    tomllib = pytest.importorskip("tomllib")

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert any(s.startswith("ray[default,client]") for s in extras["cluster"])
    assert any(s.startswith("ray[default,client]") for s in extras["dev"])

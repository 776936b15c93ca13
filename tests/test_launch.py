"""Custom spaces and tasks from the CLI (``--space file.py:Class``, ``--task
module:function``, ``--task-opt``), a study resumed with ``--study NAME`` alone after a
SIGKILL, the checks on code references read back from the store, and ``naslab spaces``."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from naslab.core.errors import ConfigError
from naslab.core.references import load_reference, reference_of
from tests.cli_helpers import one_line_error, run_main, table_rows

SPACE_FILE = Path(__file__).with_name("custom_space.py")

TASK_MODULE = '''
from naslab.workers.task import get_task


def make(split_seed: int = 0):
    """digits with another split."""
    return get_task("digits", split_seed=split_seed)


def not_a_task():
    return 42
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder holding a user's space file and task module, as the current folder."""
    (tmp_path / "myspace.py").write_text(SPACE_FILE.read_text())
    (tmp_path / "mytasks.py").write_text(TASK_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _search(*extra: str, storage: str) -> list[str]:
    return [sys.executable, "-m", "naslab.cli", "search", "--storage", storage,
            "--in-process", *extra]


def _complete(db: Path, study: str) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT count(*) FROM naslab_trials t JOIN naslab_studies s ON s.id = t.study_id "
            "WHERE s.name = ? AND t.state = 'complete'", (study,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def test_a_custom_space_run_from_the_cli_killed_and_resumed_with_the_study_name_alone(project):
    db = project / "s.db"
    url = f"sqlite:///{db}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), *sys.path])}
    first = subprocess.Popen(
        _search("--space", "myspace.py:TinyMLPSpace", "--task", "mytasks:make", "--task-opt",
                "split_seed=1", "--train-opt", "batch_size=64", "--epochs", "2",
                "--budget", "20", "--study", "mine", storage=url),
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while _complete(db, "mine") < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, first.stdout.read().decode()
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = _complete(db, "mine")
    assert 2 <= done_before < 20

    elsewhere = project / "elsewhere"
    elsewhere.mkdir()
    # from another folder: the file reference was stored as an absolute path, the task
    # module is found through PYTHONPATH
    resumed = subprocess.run(_search("--study", "mine", storage=url), cwd=elsewhere, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "myspace.py:TinyMLPSpace (stored with the study)" in resumed.stderr
    assert "task mytasks:make (stored with the study)" in resumed.stderr
    assert _complete(db, "mine") == 20
    assert "study has 20 complete" in resumed.stdout

    conn = sqlite3.connect(db)
    key, task_key = conn.execute(
        "SELECT space_key, task_key FROM naslab_studies WHERE name='mine'").fetchone()
    archs = conn.execute("SELECT count(DISTINCT architecture_id) FROM naslab_trials "
                         "WHERE state = 'complete'").fetchone()
    conn.close()
    assert key.startswith("tiny_mlp-fp") and task_key.startswith("train-")
    assert archs[0] == 20  # nothing trained twice


@pytest.fixture(autouse=True)
def registry_restored():
    """``db import --space`` registers the class for the process: undo it."""
    from naslab.search_spaces.registry import SPACES

    before = set(SPACES)
    yield
    for name in set(SPACES) - before:
        SPACES.unregister(name)


@pytest.fixture
def stored(project, monkeypatch, capsys):
    """A study made from the CLI with a custom space and task (3 trials)."""
    url = f"sqlite:///{project / 's.db'}"
    code, out, err = run_main(monkeypatch, capsys, "search", "--space", "myspace.py:TinyMLPSpace",
                              "--task", "mytasks:make", "--task-opt", "split_seed=1",
                              "--epochs", "1", "--budget", "2", "--study", "mine",
                              "--storage", url, "--in-process")
    assert code == 0, err
    return url


def test_resume_alone_in_process_uses_the_stored_settings(stored, monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "search", "--study", "mine", "--budget", "3",
                              "--storage", stored, "--in-process")
    assert code == 0, err
    assert "space TinyMLPSpace()" in out and "1 epochs" in out
    assert "study has 3 complete" in out


def _error_after_notes(err: str) -> str:
    """The one ``error:`` line, after the notes that say which stored code is used."""
    notes = [line for line in err.splitlines() if line.endswith("(stored with the study)")]
    return one_line_error("\n".join(line for line in err.splitlines() if line not in notes))


def test_a_contradicting_flag_is_the_usual_conflict(stored, monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "search", "--study", "mine", "--space", "nb201",
                            "--storage", stored, "--in-process")
    assert code == 2
    assert "already exists with different settings" in _error_after_notes(err)
    code, _, err = run_main(monkeypatch, capsys, "search", "--study", "mine", "--task-opt",
                            "split_seed=2", "--storage", stored, "--in-process")
    assert code == 2 and "task_key" in _error_after_notes(err)


def test_an_edited_space_file_is_not_loaded_from_the_store(stored, project, monkeypatch,
                                                            capsys):
    path = project / "myspace.py"
    path.write_text(path.read_text() + "\n# edited\n")
    code, _, err = run_main(monkeypatch, capsys, "search", "--study", "mine", "--budget", "3",
                            "--storage", stored, "--in-process")
    assert code == 2
    assert "has changed since the study was made" in one_line_error(err)
    # given again on the command line, it is the user's choice (and is recorded)
    code, out, err = run_main(monkeypatch, capsys, "search", "--study", "mine", "--budget", "3",
                              "--space", "myspace.py:TinyMLPSpace", "--storage", stored,
                              "--in-process")
    assert code == 0, err
    code, out, err = run_main(monkeypatch, capsys, "search", "--study", "mine", "--budget", "3",
                              "--storage", stored, "--in-process")
    assert code == 0, err


def _set_launch(url: str, **changes: object) -> None:
    import json

    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    (config,) = conn.execute("SELECT config FROM naslab_studies WHERE name='mine'").fetchone()
    config = json.loads(config)
    config["launch"].update(changes)
    conn.execute("UPDATE naslab_studies SET config=? WHERE name='mine'", (json.dumps(config),))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("ref, options", [
    ("os:system", {"command": "touch pwned"}),
    ("subprocess:run", {"args": ["touch", "pwned"]}),
    ("shutil:rmtree", {"path": "."}),
])
def test_a_database_cannot_make_a_resume_call_library_functions(stored, project, monkeypatch,
                                                                 capsys, ref, options):
    """Whoever writes the database names the code: stored references must name a task
    class or a function of the user's own code, never a library function."""
    from naslab.core.references import source_digest as digest

    _set_launch(stored, task=ref, task_options=options, task_sha256=digest(ref))
    code, _, err = run_main(monkeypatch, capsys, "search", "--study", "mine", "--budget", "3",
                            "--storage", stored, "--in-process")
    assert code == 2
    assert "not a task class or a function of your own code" in one_line_error(err)
    assert not (project / "pwned").exists() and (project / "myspace.py").exists()


@pytest.mark.parametrize("ref, message", [
    ("nothere.py:X", "does not exist"),
    ("/dev/null:X", "must be a Python file"),
    ("nosuchmodule_xyz:X", "cannot be imported"),
    ("myspace.py:Nope", "has no 'Nope'"),
    ("myspace.py:__class__", "has no"),
    ("myspace.py:1bad", "is not 'path/to/file.py:Name'"),
    ("myspace.py:", "is not 'path/to/file.py:Name'"),
    ("../../../etc/passwd:X", "must be a Python file"),
    ("mytasks:make", "not a SearchSpace class"),
    ("mytasks:not_a_task", "not a SearchSpace class"),
    ("os:abort", "not a SearchSpace class"),  # refused before it is called
    ("naslab.search_spaces.nb201:OPS", "not a SearchSpace class"),
])
def test_bad_space_references_are_refused_in_one_line(project, monkeypatch, capsys, ref,
                                                      message):
    url = f"sqlite:///{project / 'x.db'}"
    code, _, err = run_main(monkeypatch, capsys, "search", "--space", ref, "--storage", url,
                            "--in-process", "--budget", "1")
    assert code == 2
    assert message in one_line_error(err)
    conn = sqlite3.connect(project / "x.db")
    tables = conn.execute("SELECT name FROM sqlite_master WHERE name='naslab_studies'"
                          ).fetchall()
    assert not tables or not conn.execute("SELECT * FROM naslab_studies").fetchall()
    conn.close()


def test_a_space_file_that_raises_on_import_is_a_clear_error(project, monkeypatch, capsys):
    (project / "broken.py").write_text("raise RuntimeError('oops at import')\n")
    code, _, err = run_main(monkeypatch, capsys, "search", "--space", "broken.py:X",
                            "--storage", f"sqlite:///{project / 'x.db'}", "--in-process")
    assert code == 2
    assert "failed to load: RuntimeError: oops at import" in one_line_error(err)


def test_space_options_reach_the_constructor_and_unknown_ones_are_listed(project, monkeypatch,
                                                                        capsys):
    (project / "wide.py").write_text(
        "from naslab.search_spaces.chain import ChainSpace\n"
        "class Wide(ChainSpace):\n"
        "    name = 'wide'\n"
        "    def __init__(self, depth: int = 2):\n"
        "        super().__init__(max_depth=depth)\n")
    url = f"sqlite:///{project / 'w.db'}"
    code, _, err = run_main(monkeypatch, capsys, "search", "--space", "wide.py:Wide",
                            "--space-opt", "colour=red", "--storage", url, "--in-process")
    message = one_line_error(err)
    assert code == 2 and "'colour'" in message and "it accepts: depth" in message
    code, out, err = run_main(monkeypatch, capsys, "search", "--space", "wide.py:Wide",
                              "--space-opt", "depth=1", "--budget", "1", "--epochs", "1",
                              "--storage", url, "--in-process")
    assert code == 0, err


@pytest.mark.parametrize("ref, message", [
    ("os:abort", "a task reference names a naslab Task"),  # refused, not called
    ("naslab.workers.task:TASKS", "a task reference names a naslab Task"),
    ("mytasks:not_a_task", "gave a int, not a naslab Task"),
])
def test_bad_task_references_are_refused_in_one_line(project, monkeypatch, capsys, ref,
                                                     message):
    code, _, err = run_main(monkeypatch, capsys, "search", "--task", ref, "--storage",
                            f"sqlite:///{project / 'x.db'}", "--in-process", "--budget", "1")
    assert code == 2
    assert message in one_line_error(err)


def test_task_options_reach_a_built_in_task(project, monkeypatch, capsys):
    """``--task cifar10`` can now be given its root (here a folder without the data:
    the error names the folder instead of a missing argument)."""
    url = f"sqlite:///{project / 't.db'}"
    code, _, err = run_main(monkeypatch, capsys, "search", "--task", "cifar10", "--task-opt",
                            f"root={project / 'nodata'}", "--storage", url, "--in-process")
    assert code == 2
    assert "nodata" in one_line_error(err)
    code, _, err = run_main(monkeypatch, capsys, "search", "--task", "digits", "--task-opt",
                            "colour=red", "--storage", url, "--in-process")
    assert code == 2 and "colour" in one_line_error(err)


def test_references_load_and_name_classes_again(project):
    cls = load_reference("space", "myspace.py:TinyMLPSpace")
    ref = reference_of(cls())
    assert ref == f"{project / 'myspace.py'}:TinyMLPSpace"
    assert load_reference("space", ref) is cls  # loaded once per file
    assert reference_of(load_reference("task", "mytasks:make")) is not None
    with pytest.raises(ConfigError, match="NUL"):
        load_reference("space", "a\x00b.py:X")
    with pytest.raises(ConfigError, match="at most"):
        load_reference("space", "a" * 5000 + ".py:X")


def test_a_file_space_pickles_by_value_for_workers(project):
    """Ray workers cannot import a file by a made-up module name: the class travels
    by value (cloudpickle), and the copy builds the same architectures."""
    import numpy as np

    cloudpickle = pytest.importorskip("ray.cloudpickle")
    from naslab.core.references import file_modules

    space = load_reference("space", "myspace.py:TinyMLPSpace")()
    for module in file_modules():
        cloudpickle.register_pickle_by_value(module)
    blob = cloudpickle.dumps(space)
    code = ("import sys, pickle, numpy as np; s = pickle.loads(sys.stdin.buffer.read()); "
            "print(s.sample(np.random.default_rng(3)).hash)")
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True,
                         cwd="/", timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().strip() == space.sample(np.random.default_rng(3)).hash


def test_naslab_spaces_lists_size_parameters_and_tasks(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "400")
    code, out, err = run_main(monkeypatch, capsys, "spaces")
    assert code == 0, err
    rows = {row[0]: row for row in table_rows(out)}
    assert {"nb201", "nb101", "darts", "mbv3", "hybrid", "chain", "gnn",
            "nasbench_graph"} <= set(rows)
    assert rows["nb201"][1] == "15,625" and "equivalence='graph'" in rows["nb201"][2]
    assert rows["nb101"][1] == "423,624"
    assert rows["chain"][1] == "88,560"
    assert "sbm" in rows["gnn"][4] and "digits" not in rows["gnn"][4]
    assert "sbm" not in rows["nb201"][4] and "digits" in rows["nb201"][4]
    assert "cora" in rows["nasbench_graph"][4]
    assert "file.py:Class" in out


def test_a_custom_space_study_moves_between_stores_with_db_import_space(stored, project,
                                                                        monkeypatch, capsys):
    out_file = project / "mine.jsonl"
    code, _, err = run_main(monkeypatch, capsys, "db", "export", str(out_file), "--study",
                            "mine", "--storage", stored)
    assert code == 0, err
    other = f"sqlite:///{project / 'other.db'}"
    code, _, err = run_main(monkeypatch, capsys, "db", "import", str(out_file), "--storage",
                            other)
    assert code == 2 and "--space file.py:Class" in one_line_error(err)
    code, _, err = run_main(monkeypatch, capsys, "db", "import", str(out_file), "--space",
                            "mytasks:make", "--storage", other)
    assert code == 2 and "is not a SearchSpace class" in one_line_error(err)
    code, out, err = run_main(monkeypatch, capsys, "db", "import", str(out_file), "--space",
                              "myspace.py:TinyMLPSpace", "--storage", other)
    assert code == 0, err
    # imported with its launch record: it resumes from the new store by name alone
    code, out, err = run_main(monkeypatch, capsys, "search", "--study", "mine", "--budget", "3",
                              "--storage", other, "--in-process")
    assert code == 0, err
    assert "study has 3 complete" in out


def test_db_import_space_refuses_to_shadow_a_built_in_space(project, monkeypatch, capsys):
    (project / "fake201.py").write_text(
        "from naslab.search_spaces.chain import ChainSpace\n"
        "class Fake(ChainSpace):\n"
        "    name = 'nb201'\n")
    (project / "empty.jsonl").write_text("")
    code, _, err = run_main(monkeypatch, capsys, "db", "import", str(project / "empty.jsonl"),
                            "--space", "fake201.py:Fake", "--storage",
                            f"sqlite:///{project / 'x.db'}")
    assert code == 2 and "already a space" in one_line_error(err)


DEEP = '''
from naslab.search_spaces.chain import ChainSpace


class Deep(ChainSpace):
    name = "deep"

    def __init__(self, depth: int = 6):
        super().__init__(max_depth=depth, widths=(16, 32))
'''


def test_db_import_rebuilds_a_space_with_its_constructor_options(project, monkeypatch,
                                                                 capsys):
    """A space whose config() is not its constructor's options (the README's Deep)
    imports with the options its launch recorded; options edited in the file give
    another key and are refused."""
    import gzip
    import json

    (project / "deep.py").write_text(DEEP)
    url = f"sqlite:///{project / 'd.db'}"
    code, _, err = run_main(monkeypatch, capsys, "search", "--space", "deep.py:Deep",
                            "--space-opt", "depth=3", "--budget", "1", "--epochs", "1",
                            "--study", "deep", "--storage", url, "--in-process")
    assert code == 0, err
    dump = project / "deep.jsonl.gz"
    code, _, err = run_main(monkeypatch, capsys, "db", "export", str(dump), "--study", "deep",
                            "--storage", url)
    assert code == 0, err
    other = f"sqlite:///{project / 'o.db'}"
    code, _, err = run_main(monkeypatch, capsys, "db", "import", str(dump), "--space",
                            "deep.py:Deep", "--storage", other)
    assert code == 0, err

    lines = [json.loads(line) for line in gzip.open(dump, "rt")]
    (study,) = [line for line in lines if line["type"] == "study"]
    config = json.loads(study["config"])
    assert config["launch"]["space_options"] == {"depth": 3}
    config["launch"]["space_options"] = {"depth": 4}
    study["config"] = json.dumps(config)
    edited = project / "edited.jsonl"
    edited.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    code, _, err = run_main(monkeypatch, capsys, "db", "import", str(edited), "--space",
                            "deep.py:Deep", "--rename", "deep=deep2", "--storage", other)
    assert code == 2 and "space_key" in one_line_error(err)

"""Paths under attack (issue 14, items 3 and 4, and the file-writing tracebacks), for
real: unsafe study names (CLI, Python API) and a store that already holds one; exports
pointing outside their folder, bit-flipped and non-finite weights; devices, FIFOs,
links, folders and existing files as destinations; a full disk (a tiny tmpfs as root,
an injected OSError always); a read-only database for ``db version``."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from safetensors.torch import load_file, save_file

import naslab
from naslab import cli
from naslab.core.errors import ConfigError, NaslabError, StorageError
from naslab.core.paths import (
    atomic_file,
    atomic_folder,
    check_name,
    checked_destination,
    is_safe_name,
    safe_file_name,
)
from naslab.db.records import StudySpec
from naslab.db.store import Store
from naslab.db.transfer import export_studies
from naslab.export import export_best, load_exported
from naslab.study import default_study_name
from tests.cli_helpers import invoke, one_line_error, run_main

REPO = Path(__file__).resolve().parents[1]
TRAINED = "chain-digits-evolution-s0"
BAD_NAMES = ["../../../evil", "a/b", "/etc/passwd", "..", ".", ".hidden", "-rf", "a\x00b",
             "a\nb", "tab\there", "a\\b", "x" * 201, "", " ", "naïve", "a b"]
EVIL = "../../../evil"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setattr(cli, "console", Console(width=250))
    monkeypatch.setattr(cli, "err_console", Console(stderr=True, width=250))


@pytest.fixture(scope="module")
def trained_db(tmp_path_factory) -> Path:
    """A store with one trained chain study (2 trials, weights kept)."""
    db = tmp_path_factory.mktemp("trained") / "t.db"
    invoke("search", "--space", "chain", "--epochs", "1", "--budget", "2", "--in-process",
           "--storage", f"sqlite:///{db}")
    return db


@pytest.fixture
def store_url(trained_db, tmp_path) -> str:
    """A private copy of the trained store."""
    copy = tmp_path / "store.db"
    shutil.copyfile(trained_db, copy)
    return f"sqlite:///{copy}"


def legacy_rename(url: str, old: str, new: str) -> None:
    """Rename a study behind naslab's back: a store made before names were checked."""
    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
        conn.execute("UPDATE naslab_studies SET name = ? WHERE name = ?", (new, old))
        conn.commit()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(monkeypatch, capsys, *args: str) -> str:
    """Run a command that must be refused: its one-line error (exit code 2)."""
    code, _, err = run_main(monkeypatch, capsys, *args)
    assert code == 2, err
    return one_line_error(err)


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` mounted at ``path`` (skips unless the tests may mount one)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def read_only(mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)


def fill(folder: Path, leave: int) -> None:
    """Fill the file system of ``folder`` but for about ``leave`` bytes."""
    filler = folder / "filler"
    with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as fh:
        while True:
            fh.write(b"\0" * 4096)
    os.truncate(filler, max(0, filler.stat().st_size - leave))


# --------------------------------------------------------------------------- item 3: names


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_study_spec_refuses_unsafe_names(name):
    with pytest.raises(ConfigError, match="is not accepted; use 1-200 characters"):
        StudySpec(name=name, space="chain", space_key="k", task_key="t", searcher="random",
                  objective="val_accuracy", budget=1, fidelity=1, seed=0)
    assert not is_safe_name(name)


@pytest.mark.parametrize("name", [EVIL, "a/b", ".x", "-rf", "a\x01b", "x" * 300])
def test_cli_search_refuses_unsafe_study_names(name, tmp_path, monkeypatch, capsys):
    db = tmp_path / "n.db"
    message = refused(monkeypatch, capsys, "search", "--space", "chain", "--budget", "1",
                      "--epochs", "1", "--in-process", "--study", name,
                      "--storage", f"sqlite:///{db}")
    assert message.startswith("study name ") and "is not accepted" in message
    assert "\x00" not in message and "\x01" not in message
    if db.exists():  # nothing stored under that name
        with Store(f"sqlite:///{db}") as store:
            assert store.studies.summaries() == []


def test_python_study_refuses_unsafe_names(tmp_path):
    with pytest.raises(ConfigError, match="study name '../../../evil' is not accepted"):
        naslab.Study(EVIL, space="chain", budget=1, epochs=1,
                     storage=f"sqlite:///{tmp_path / 'p.db'}")


def test_safe_names_and_default_names_pass():
    for name in ["chain-digits-evolution-s0", "bench-cora-guided-evolution[predictor=rf]-s19",
                 "mo-cora-nsga2[population_size=4]-s1", "a.b_c-d=1,2", "x" * 200, "_x", "[x]"]:
        assert check_name("study name", name) == name
    for space, task, searcher in [("nb201", "digits", "evolution"), ("chain", "digits", "random"),
                                  ("nasbench_graph", "arxiv", "optuna-tpe")]:
        assert is_safe_name(default_study_name(space, task, searcher, -3))
    # a custom space or task whose name has other characters: mapped, not refused
    assert default_study_name("my space", "../task", "random", 0) == "my_space-.._task-random-s0"
    assert default_study_name(".hidden", "t", "r", 1) == "hidden-t-r-s1"


def test_safe_file_names_of_legacy_names():
    for name in [n for n in BAD_NAMES if n]:
        file_name = safe_file_name(name)
        assert is_safe_name(file_name) and "/" not in file_name and file_name not in (".", "..")
    names = ["a/b", "a_b", "a\\b", "a b"]
    assert len({safe_file_name(n) for n in names}) == len(names)


def test_db_import_rename_refuses_unsafe_names(tmp_path, monkeypatch, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("")
    message = refused(monkeypatch, capsys, "db", "import", str(src), "--rename",
                      f"demo={EVIL}", "--storage", f"sqlite:///{tmp_path / 'i.db'}")
    assert message.startswith("--rename: the new study name '../../../evil' is not accepted")
    assert not (tmp_path / "i.db").exists()


def test_bench_refuses_a_prefix_that_makes_unsafe_names(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    message = refused(monkeypatch, capsys, "bench", "--searchers", "random", "--datasets",
                      "cora", "--seeds", "1", "--queries", "5", "--prefix", "../../x",
                      "--storage", f"sqlite:///{tmp_path / 'b.db'}")
    assert "--prefix" in message and "'../../x" in message
    assert time.monotonic() - start < 10 and not (tmp_path / "b.db").exists()


# --------------------------------------------------------------------------- item 3: export


def test_export_of_a_legacy_traversal_name_stays_inside(store_url, tmp_path, monkeypatch):
    legacy_rename(store_url, TRAINED, EVIL)
    work = tmp_path / "a" / "b" / "c" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    before = set(tmp_path.rglob("*"))
    printed = invoke("export", "--study", EVIL, "--storage", store_url)
    folder = Path("naslab-exports") / safe_file_name(EVIL)
    assert printed.strip().startswith(f"exported to {folder}: architecture.json, trial.json")
    new = set(tmp_path.rglob("*")) - before
    assert new and all(p.is_relative_to(work / "naslab-exports") for p in new), sorted(new)
    assert not list(tmp_path.rglob("evil"))
    assert json.loads((folder / "trial.json").read_text())["study"] == EVIL
    load_exported(folder)

    with Store(store_url) as store:  # the Python API maps the name the same way
        assert export_best(store, EVIL, force=True) == folder
        legacy_rename(store_url, EVIL, "/tmp/absolute")
        assert export_best(store, "/tmp/absolute").parent == Path("naslab-exports")
    assert not Path("/tmp/absolute").exists()


@pytest.fixture
def exported(store_url, tmp_path) -> Path:
    folder = tmp_path / "exp"
    invoke("export", "--study", TRAINED, "--out", str(folder), "--storage", store_url)
    return folder


def rewrite_meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / "trial.json").read_text())
    meta.update(changes)
    (folder / "trial.json").write_text(json.dumps(meta))


def test_export_records_the_weights_sha256_and_loads(exported):
    meta = json.loads((exported / "trial.json").read_text())
    assert meta["weights"] == "weights.safetensors"
    assert meta["weights_sha256"] == digest(exported / "weights.safetensors")
    _, _, module = load_exported(exported)
    assert not module.training


def test_load_exported_refuses_weights_paths_outside_the_folder(exported, tmp_path):
    outside = tmp_path / "outside.safetensors"
    shutil.copyfile(exported / "weights.safetensors", outside)
    for path, reason in [(str(outside), "must be a file name relative to"),
                         ("../outside.safetensors", "leads outside"),
                         ("sub/../../outside.safetensors", "leads outside"),
                         ("~/outside.safetensors", "must be a file name relative to"),
                         ("/etc/passwd", "must be a file name relative to"),
                         ("missing.safetensors", "is not a file in"),
                         (".", "is not a file in"), (42, "must be a file name")]:
        rewrite_meta(exported, weights=path)
        with pytest.raises(ConfigError, match=reason):
            load_exported(exported)
    # a link inside the folder that points out
    (exported / "weights.safetensors").unlink()
    (exported / "weights.safetensors").symlink_to(outside)
    rewrite_meta(exported, weights="weights.safetensors")
    with pytest.raises(ConfigError, match="leads outside"):
        load_exported(exported)


def test_load_exported_refuses_json_files_linked_from_outside(exported, tmp_path):
    (tmp_path / "elsewhere.json").write_text((exported / "trial.json").read_text())
    (exported / "trial.json").unlink()
    (exported / "trial.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(ConfigError, match="trial.json 'trial.json' leads outside"):
        load_exported(exported)


def test_load_exported_refuses_bit_flipped_weights(exported):
    weights = exported / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # one bit of one parameter
    weights.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="was changed or corrupted: its SHA-256 is"):
        load_exported(exported)
    rewrite_meta(exported, weights_sha256="not-a-hash")
    with pytest.raises(ConfigError, match="is not a SHA-256"):
        load_exported(exported)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_load_exported_refuses_non_finite_weights(exported, bad):
    path = exported / "weights.safetensors"
    tensors = load_file(str(path))
    key = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[key].view(-1)[0] = bad
    save_file(tensors, str(path))
    rewrite_meta(exported, weights_sha256=digest(path))  # a consistent, but poisoned, export
    with pytest.raises(NaslabError, match=f"entry '{key}' holds NaN or infinity"):
        load_exported(exported)
    path.write_bytes(b"not safetensors at all")
    rewrite_meta(exported, weights_sha256=digest(path))
    with pytest.raises(ConfigError, match="is not a safetensors file"):
        load_exported(exported)


def test_load_exported_refuses_a_tampered_architecture(exported):
    arch = json.loads((exported / "architecture.json").read_text())
    arch["decisions"] = {**arch["decisions"], "depth": 99}
    arch.pop("hash", None)
    (exported / "architecture.json").write_text(json.dumps(arch))
    with pytest.raises(NaslabError):
        load_exported(exported)
    (exported / "architecture.json").write_text("[1, 2")
    with pytest.raises(ConfigError, match="is not readable JSON"):
        load_exported(exported)


# --------------------------------------------------------------------------- item 4: destinations


def test_db_export_refuses_dev_full(store_url, monkeypatch, capsys):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    message = refused(monkeypatch, capsys, "db", "export", "/dev/full", "--force",
                      "--storage", store_url)
    assert message == ("'/dev/full' is a character device, not a file; give a file name such "
                       "as out.jsonl")
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)
    with Store(store_url) as store, pytest.raises(ConfigError, match="character device"):
        export_studies(store, "/dev/full", force=True)
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)


def test_db_export_refuses_a_fifo_without_blocking(store_url, tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-m", "naslab.cli", "db", "export", str(fifo),
                           "--force", "--storage", store_url],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2, done.stderr
    assert one_line_error(done.stderr).endswith("is a FIFO (named pipe), not a file; give a "
                                                "file name such as out.jsonl")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_db_export_never_follows_or_replaces_a_symlink(store_url, tmp_path, monkeypatch, capsys):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "out.jsonl"
    link.symlink_to(target)
    for force in ([], ["--force"]):
        message = refused(monkeypatch, capsys, "db", "export", str(link), *force,
                          "--storage", store_url)
        assert "is a symbolic link; naslab never writes through or over a link" in message
    assert link.is_symlink() and target.read_text() == "keep me"
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to(tmp_path / "nowhere")
    assert "symbolic link" in refused(monkeypatch, capsys, "db", "export", str(dangling),
                                      "--storage", store_url)
    assert not (tmp_path / "nowhere").exists()


def test_db_export_existing_file_needs_force(store_url, tmp_path, monkeypatch, capsys):
    out = tmp_path / "s.jsonl"
    out.write_text("old")
    message = refused(monkeypatch, capsys, "db", "export", str(out), "--storage", store_url)
    assert message == f"{str(out)!r} exists; pass --force to replace it"
    assert out.read_text() == "old"
    assert "is a folder, not a file" in refused(
        monkeypatch, capsys, "db", "export", str(tmp_path), "--force", "--storage", store_url)
    invoke("db", "export", str(out), "--force", "--storage", store_url)
    assert out.read_text().startswith('{"type"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jsonl", "store.db"]  # no temp files
    with Store(store_url) as store, pytest.raises(ConfigError, match="exists; pass --force"):
        export_studies(store, out)


@pytest.mark.parametrize("kind", ["file", "dev-null", "symlink", "non-empty", "empty"])
def test_export_out_refusals(kind, store_url, tmp_path, monkeypatch, capsys):
    out = tmp_path / "dest"
    if kind == "file":
        out.write_text("a file")
        expected = f"{str(out)!r} is a file, not a folder; give a folder"
    elif kind == "dev-null":
        out = Path("/dev/null")
        expected = "'/dev/null' is a character device, not a folder; give a folder"
    elif kind == "symlink":
        (tmp_path / "real").mkdir()
        out.symlink_to(tmp_path / "real")
        expected = f"{str(out)!r} is a symbolic link; naslab never writes through or over a link"
    elif kind == "empty":
        out.mkdir()
        expected = f"{str(out)!r} exists; pass --force to replace the files naslab writes in it"
    else:
        out.mkdir()
        (out / "mine.txt").write_text("mine")
        expected = (f"{str(out)!r} exists and is not empty; pass --force to replace the files "
                    "naslab writes in it")
    for force in ([], ["--force"]) if kind not in ("non-empty", "empty") else ([],):
        message = refused(monkeypatch, capsys, "export", "--study", TRAINED, "--out", str(out),
                          *force, "--storage", store_url)
        assert message.startswith(expected), message
    if kind == "dev-null":
        assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    if kind == "file":
        assert out.read_text() == "a file"
    if kind == "non-empty":  # --force writes the export beside the user's file
        invoke("export", "--study", TRAINED, "--out", str(out), "--force", "--storage", store_url)
        assert sorted(p.name for p in out.iterdir()) == [
            "architecture.json", "mine.txt", "trial.json", "weights.safetensors"]
        assert (out / "mine.txt").read_text() == "mine"
        load_exported(out)


def test_export_force_never_replaces_special_files_inside(store_url, tmp_path, monkeypatch,
                                                          capsys):
    out = tmp_path / "exp"
    out.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    (out / "trial.json").symlink_to(outside)
    message = refused(monkeypatch, capsys, "export", "--study", TRAINED, "--out", str(out),
                      "--force", "--storage", store_url)
    assert message.endswith("is a symbolic link; naslab replaces only regular files: remove it "
                            "or choose another folder")
    assert outside.read_text() == "keep"
    assert sorted(p.name for p in out.iterdir()) == ["trial.json"]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_unwritable_places_are_refused_up_front(tmp_path):
    with pytest.raises(ConfigError, match="a part of the path is not a folder"):
        checked_destination("/dev/null/x", kind="folder")
    with pytest.raises(ConfigError, match="does not exist; create it first"):
        checked_destination(tmp_path / "no" / "such.jsonl", kind="file")
    with pytest.raises(ConfigError, match="expected a path"):
        checked_destination("a\x00b", kind="file")
    with pytest.raises(ConfigError, match="give a file or folder inside it"):
        checked_destination("/", kind="folder", force=True)
    assert checked_destination(tmp_path / "new" / "deep", kind="folder") == (
        tmp_path.resolve() / "new" / "deep")
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_read_only_mount_is_refused_up_front(tmp_path, monkeypatch, capsys):
    with tmpfs(tmp_path / "ro", "1m") as mount:
        read_only(mount)
        with pytest.raises(ConfigError, match="not writable"):
            checked_destination(mount / "out.jsonl", kind="file")
        start = time.monotonic()
        message = refused(monkeypatch, capsys, "predictor", "eval", "--space", "nasbench_graph",
                          "--task", "proteins", "--source", "table", "--out",
                          str(mount / "plots"))
        assert message == (f"cannot write in {str(mount)!r}: not writable (permissions or a "
                           "read-only file system)")
        assert time.monotonic() - start < 10


@pytest.mark.parametrize("command", ["bench", "predictor-eval"])
def test_bench_and_predictor_eval_check_out_before_any_work(command, tmp_path, monkeypatch,
                                                            capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "result"
    out.write_text("not a folder")
    db = tmp_path / "never.db"
    args = (["bench", "--searchers", "random", "--datasets", "cora", "--seeds", "1",
             "--queries", "5"] if command == "bench" else
            ["predictor", "eval", "--space", "nasbench_graph", "--task", "cora", "--source",
             "table", "--model", "rf"])
    start = time.monotonic()
    message = refused(monkeypatch, capsys, *args, "--out", str(out),
                      "--storage", f"sqlite:///{db}")
    assert message == f"{str(out)!r} is a file, not a folder; give a folder"
    assert time.monotonic() - start < 10 and not db.exists()
    assert out.read_text() == "not a folder"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "regret.md").write_text("old")
    message = refused(monkeypatch, capsys, *args, "--out", str(tmp_path / "full"),
                      "--storage", f"sqlite:///{db}")
    assert "exists and is not empty; pass --force" in message and not db.exists()


# --------------------------------------------------------------------------- full disk


def test_export_on_a_full_disk_leaves_nothing_half_written(store_url, tmp_path, monkeypatch,
                                                           capsys):
    with tmpfs(tmp_path / "small", "256k") as mount:
        old = mount / "exp"
        invoke("export", "--study", TRAINED, "--out", str(old), "--storage", store_url)
        before = {p.name: digest(p) for p in old.iterdir()}
        fill(mount, leave=6000)  # room for architecture.json, not for the weights
        message = refused(monkeypatch, capsys, "export", "--study", TRAINED, "--out",
                          str(mount / "new"), "--storage", store_url)
        assert message == (f"cannot write {str(mount / 'new')!r}: No space left on device; "
                           "nothing was written")
        assert sorted(p.name for p in mount.iterdir()) == ["exp", "filler"]
        message = refused(monkeypatch, capsys, "export", "--study", TRAINED, "--out",
                          str(old), "--force", "--storage", store_url)
        assert "No space left on device" in message
        assert {p.name: digest(p) for p in old.iterdir()} == before
        assert sorted(p.name for p in mount.iterdir()) == ["exp", "filler"]
        message = refused(monkeypatch, capsys, "db", "export", str(mount / "s.jsonl"),
                          "--storage", store_url)
        assert "No space left on device" in message
        assert sorted(p.name for p in mount.iterdir()) == ["exp", "filler"]


def test_export_write_errors_leave_nothing(store_url, tmp_path, monkeypatch, capsys):
    """The same without root: an OSError (ENOSPC) while the weights are written."""
    write_bytes = Path.write_bytes

    def full(self, data):
        if self.name != "weights.safetensors":
            return write_bytes(self, data)
        write_bytes(self, data[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with Store(store_url) as store, pytest.raises(StorageError, match="No space left on device"):
        export_best(store, TRAINED, tmp_path / "exp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.db"]
    message = refused(monkeypatch, capsys, "export", "--study", TRAINED, "--out",
                      str(tmp_path / "exp"), "--storage", store_url)
    assert message == (f"cannot write {str(tmp_path / 'exp')!r}: No space left on device; "
                       "nothing was written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.db"]


def test_atomic_writers_clean_up_on_errors(tmp_path):
    dest = tmp_path / "f.txt"
    dest.write_text("old")
    with pytest.raises(StorageError, match="No space left"), atomic_file(dest, force=True) as tmp:
        tmp.write_text("new, half")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(KeyError), atomic_folder(tmp_path / "d") as tmp:
        (tmp / "x").write_text("x")
        raise KeyError("any error")
    assert dest.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]
    with atomic_file(dest, force=True) as tmp:
        tmp.write_text("new")
    assert dest.read_text() == "new" and stat.S_IMODE(dest.stat().st_mode) & 0o044


# --------------------------------------------------------------------------- db version


def test_db_version_on_a_read_only_mount(trained_db, tmp_path, monkeypatch, capsys):
    with tmpfs(tmp_path / "ro", "4m") as mount:
        shutil.copyfile(trained_db, mount / "t.db")  # a WAL database
        read_only(mount)
        code, out, err = run_main(monkeypatch, capsys, "db", "version",
                                  "--storage", f"sqlite:///{mount / 't.db'}")
        assert code == 0, err
        assert out.startswith("revision ") and "newest" in out
        assert sorted(p.name for p in mount.iterdir()) == ["t.db"]


def test_db_version_writes_nothing_to_a_read_only_file(trained_db, tmp_path, monkeypatch,
                                                       capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "t.db"
    shutil.copyfile(trained_db, db)
    before = digest(db)
    db.chmod(0o444)
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes (the read-only mount "
                        "test covers this case)")
        code, out, err = run_main(monkeypatch, capsys, "db", "version",
                                  "--storage", f"sqlite:///{db}")
        assert code == 0, err
        assert out.startswith("revision ")
        assert sorted(p.name for p in folder.iterdir()) == ["t.db"] and digest(db) == before
    finally:
        folder.chmod(0o755)


def test_db_version_of_a_non_database_is_one_line(tmp_path, monkeypatch, capsys):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not SQLite" * 100)
    message = refused(monkeypatch, capsys, "db", "version", "--storage", f"sqlite:///{junk}")
    assert message.endswith("file is not a database")
    assert junk.read_bytes() == b"this is not SQLite" * 100


def test_results_plot_refuses_devices_links_and_existing_files(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'mo.db'}"
    invoke("search", "--space", "nasbench_graph", "--task", "cora", "--searcher", "random",
           "--budget", "4", "--objectives", "val_accuracy:max,latency_ms:min", "--study", "mo",
           "--storage", url)
    link = tmp_path / "link.png"
    link.symlink_to(tmp_path / "target.png")
    existing = tmp_path / "old.png"
    existing.write_bytes(b"old")
    for target, expected in [("/dev/full", "is a character device, not a file"),
                             (str(link), "is a symbolic link"),
                             (str(existing), "exists; pass --force to replace it"),
                             (str(tmp_path / "no" / "f.png"), "does not exist; create it first")]:
        message = refused(monkeypatch, capsys, "results", "--study", "mo", "--plot", target,
                          "--storage", url)
        assert expected in message, message
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode) and link.is_symlink()
    assert not Path("/dev/full.png").exists()  # no suffix added to an existing path
    assert not (tmp_path / "target.png").exists() and existing.read_bytes() == b"old"
    invoke("results", "--study", "mo", "--plot", str(existing), "--force", "--storage", url)
    assert existing.read_bytes()[:4] == b"\x89PNG"
    assert "cannot write a figure as '.xyz'" in refused(
        monkeypatch, capsys, "results", "--study", "mo", "--plot", str(tmp_path / "f.xyz"),
        "--storage", url)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

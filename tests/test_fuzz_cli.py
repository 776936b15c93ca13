"""Every CLI command driven with bad values: each must be refused as one line on
stderr beginning ``error:``, exit code 2, no traceback, and the store unchanged.

The bad values come from a generated table: for each command, a cheap valid command
line, and for each of its options the values of the option's kind that are wrong
(not a number, a fraction where an integer is meant, beyond 64 bits, NaN, infinite,
out of range, unknown names, unsafe names, special files as destinations, malformed
KEY=VALUE pairs, ...). Run with ``-s`` to see the counts per command.
"""

from __future__ import annotations

import gzip
import os
import re
import resource
import stat
import sys
from pathlib import Path

import pytest

from naslab import cli
from tests.cli_helpers import content_hash

HUGE = str(2**64)
INT_JUNK = ["abc", "1.5", "", "1e3", HUGE, "-" + HUGE, "nan", "0x10"]
FLOAT_JUNK = ["abc", "", "nan", "inf", "-inf", "1e999", "-1"]
NAME_JUNK = ["", "../../evil", "a/b", "x" * 300, "nosuch-name", "\u00e9\u00e9;--"]
STUDY = "fz-cora"  # the stored study the commands read


def _positive(*extra: str) -> list[str]:
    return [*INT_JUNK, "0", "-1", *extra]


# command -> (a valid, cheap command line; {option: bad values}). An option whose
# bad values only make sense in another context has its own base line (a tuple).
SEARCH = ["search", "--space", "nasbench_graph", "--task", "cora", "--budget", "2",
          "--study", "fz-new", "--in-process"]
TRAIN = ["search", "--space", "chain", "--task", "digits", "--budget", "1", "--epochs", "1",
         "--study", "fz-train", "--in-process"]
RAY = ["search", "--space", "chain", "--task", "digits", "--budget", "1", "--epochs", "1",
       "--study", "fz-ray", "--workers", "1"]
GNN = ["search", "--space", "gnn", "--task", "sbm", "--budget", "1", "--epochs", "1",
       "--study", "fz-gnn", "--in-process"]
TABLE: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "search": (SEARCH, {
        "--budget": _positive(),
        "--timeout": FLOAT_JUNK + ["0"],
        "--seed": [*INT_JUNK, "-1"],
        "--space": NAME_JUNK,
        "--task": NAME_JUNK,
        "--searcher": NAME_JUNK,
        "--study": ["", "../../evil", "a/b", "x" * 300, ".hidden", "-dash"],
        "--objectives": ["val_acc:max,params:min", "flops:min,val_accuracy:max",
                         "val_accuracy:up", ":", "val_accuracy:max,bogus:min"],
        "--searcher-opt": ["population_size=3.5", "population_size=-1", "noequals", "=1",
                           "bogus_option=1", "population_size=Infinity",
                           f"population_size={HUGE}"],
        "--space-opt": ["bogus=1", "noequals"],
        "--scheduler": NAME_JUNK,
        "--storage": ["bogus://x", "sqlite:////nonexistent/dir/x.db", "not a url"],
    }),
    "search-train": (TRAIN, {
        "--epochs": _positive(),
        "--space-opt": ["widths=[-8]", "widths=[0]", "kernels=[3,3]", "max_depth=2.7",
                        "max_depth=true", f"max_depth={HUGE}", "widths=\"x\""],
        "--train-opt": ["keep_weights=maybe", "keep_weights=2", "lr=-1", "lr=nan",
                        "lr=abc", "batch_size=0", "batch_size=1.5", "device=cuda",
                        "device=nonsense", "bogus=1", "noequals"],
        "--trial-timeout": FLOAT_JUNK + ["0"],
    }),
    "search-refs": (TRAIN, {
        "--space": ["x.py:Y", "/dev/null:X", "os:abort", "os:system", ":", "a:", "nosuchmod:X",
                    "../../etc/passwd:X", "naslab.search_spaces.nb201:OPS",
                    "naslab.workers.task:get_task", "x" * 5000 + ".py:X"],
        "--task": ["x.py:Y", "os:abort", "nosuchmod:X", "naslab.search_spaces.nb201:OPS",
                   "naslab.workers.task:TASKS"],
        "--task-opt": ["bogus=1", "noequals", "=1", "split_seed=-1", "split_seed=1.5",
                       "split_seed=true", "val_size=2", "val_size=nan"],
    }),
    "search-nb101": ([*TRAIN, "--space", "nb101"], {
        "--space-opt": ["channels=1.5", "channels=true", "channels=4", f"channels={HUGE}",
                        "cells_per_stack=0", "cells_per_stack=nan", "bogus=1"],
    }),
    "search-darts": ([*TRAIN, "--space", "darts"], {
        "--space-opt": ["channels=0", "cells=2", "cells=1.5", f"cells={HUGE}", "bogus=1"],
    }),
    "search-mbv3": ([*TRAIN, "--space", "mbv3"], {
        "--space-opt": ["width_mult=0", "width_mult=nan", "stages=6", "strides=[3]",
                        "strides=\"x\"", "stem_stride=3", "bogus=1"],
    }),
    "search-hybrid": ([*TRAIN, "--space", "hybrid"], {
        "--space-opt": ["blocks=0", "heads=3", "channels=true", "downsamplings=9",
                        f"blocks={HUGE}", "bogus=1"],
    }),
    "search-gnn": (GNN, {
        "--space-opt": ["hidden=0", "dropout=1.5", "dropout=nan", "ops=[]", "ops=\"bogus\"",
                        "bogus=1"],
        "--task-opt": ["bogus=1", "root=/nonexistent", "num_nodes=0", "seed=-1", "homophily=2",
                       f"num_nodes={HUGE}", "train=0.9"],
        "--task": ["digits", "cora", "mytask:x"],
    }),
    "search-nb201": ([*TRAIN, "--space", "nb201"], {
        "--space-opt": ["channels=1.5", "channels=true", "channels=Infinity", "channels=0",
                        "channels=-8", f"channels={HUGE}", "channels=nan", "bogus=1"],
    }),
    "search-asha": ([*TRAIN, "--scheduler", "asha", "--epochs", "3"], {
        "--min-epochs": _positive(),
        "--eta": [*INT_JUNK, "0", "1", "-1"],
    }),
    "search-ray": (RAY, {
        "--workers": _positive(),
        "--cpus-per-trial": FLOAT_JUNK + ["0"],
        "--gpus-per-trial": FLOAT_JUNK,
        "--max-retries": [*INT_JUNK, "-1"],
    }),
    "studies": (["studies"], {"--storage": ["bogus://x", "sqlite:////nonexistent/dir/x.db",
                                            "sqlite:///{fresh}.db"],
                              "--format": ["bogus", "", "CSV", "table,csv"]}),
    "results": (["results", "--study", STUDY], {
        "--study": NAME_JUNK,
        "--top": _positive(),
        "--plot": ["/dev/full", "/nonexistent/dir/front.png", "{existing_dir}"],
        "--trial": [*INT_JUNK, "-1", "999999", str(2**31)],
        "--format": ["bogus", "", "CSV"],
        "--storage": ["sqlite:///{fresh}.db"],
    }),
    "results-trial": (["results", "--study", STUDY, "--trial", "0"],
                      {"--plot": ["{fresh}.png"], "--study": NAME_JUNK}),
    "plot-curves": (["plot", "curves", "--study", STUDY, "--out", "{fresh}.png"], {
        "--study": NAME_JUNK,
        "--trials": ["", ",", "a", "1.5", "-1", "1e400", HUGE, "99999", "1,,2",
                     ",".join(map(str, range(101)))],
        "--top": _positive("101"),
        "--metric": NAME_JUNK,
        "--out": ["/dev/null", "/dev/full", "{existing_file}", "{existing_dir}", "{symlink}",
                  "/nonexistent/dir/c.png", "{fresh}.bogusfmt", "{fresh}."],
    }),
    "plot-anytime": (["plot", "anytime", "--study", STUDY, "--out", "{fresh}.png"], {
        "--study": NAME_JUNK,
        "--out": ["/dev/null", "/dev/full", "{existing_file}", "{existing_dir}", "{symlink}",
                  "/nonexistent/dir/a.png", "{fresh}.bogusfmt", "{fresh}."],
    }),
    "study-delete": (["study", "delete", STUDY], {
        "": NAME_JUNK, "--storage": ["sqlite:///{fresh}.db"]}),
    "study-rename": (["study", "rename", STUDY, "fz-renamed"], {"": NAME_JUNK}),
    "study-rename-new": (["study", "rename", "--yes", STUDY], {
        "": ["", "../../evil", "a/b", "x" * 300, ".hidden", "-dash", "\u00e9\u00e9;--", STUDY]}),
    "sql": (["sql", "SELECT 1"], {
        "--format": ["bogus", ""],
    }),
    "sql-query": (["sql"], {
        "": ["", "DELETE FROM naslab_trials", "DROP TABLE naslab_trials", "SELEC 1",
             "SELECT 1; DELETE FROM naslab_trials", "ATTACH DATABASE '/tmp/x.db' AS x",
             "PRAGMA journal_mode=DELETE", "VACUUM"],
    }),
    "schema": (["schema"], {"--format": ["bogus", ""]}),
    "export": (["export", "--study", STUDY, "--out", "{fresh}"], {
        "--study": NAME_JUNK,
        "--out": ["/dev/null", "/dev/full", "{existing_file}", "{existing_dir}",
                  "{symlink}"],
        "--trial": [*INT_JUNK, "-1", "999999", str(2**31)],
    }),
    "db-export": (["db", "export", "{fresh}.jsonl"], {
        "": ["/dev/full", "/dev/null", "{existing_file}", "{existing_dir}", "{symlink}"],
        "--study": NAME_JUNK,
    }),
    "db-import": (["db", "import", "{export_file}", "--rename", f"{STUDY}=fz-copy"], {
        "": ["/nonexistent.jsonl", "{existing_dir}", "/dev/null", "{garbage_file}",
             "{truncated_gz}"],
        "--rename": ["noequals", f"{STUDY}=../x", f"{STUDY}=", "=x", f"{STUDY}={STUDY}"],
        "--study": NAME_JUNK,
    }),
    "predictor-fit": (["predictor", "fit", "--space", "nasbench_graph", "--task", "cora",
                       "--model", "rf", "--name", "fz-rf"], {
        "--model": NAME_JUNK,
        "--source": ["bogus", ""],
        "--metric": NAME_JUNK,
        "--epochs": _positive(),
        "--features": ["bogus", ",", "synflow,bogus"],
        "--opt": ["members=1e7", "members=-1", "members=1.5", "noequals", "bogus=1",
                  f"members={HUGE}"],
        "--name": ["../evil", "x" * 300, "a/b"],
    }),
    "predictor-eval": (["predictor", "eval", "--space", "nasbench_graph", "--task", "cora",
                        "--source", "table", "--model", "rf", "--sizes", "10",
                        "--splits", "1", "--out", "{fresh}"], {
        "--sizes": ["abc", "0", "-5", "10,abc", "", HUGE],
        "--splits": _positive(),
        "--test-size": _positive(),
        "--seed": [*INT_JUNK, "-1"],
        "--out": ["{existing_file}", "/dev/null", "{existing_file}/x", "{existing_dir}"],
        "--model": NAME_JUNK,
    }),
    "predictor-rank": (["predictor", "rank", "--name", "fz-saved"], {
        "--name": NAME_JUNK,
        "--version": _positive(),
        "--candidates": [*_positive(), "100000000"],
        "--top": _positive(),
        "--seed": [*INT_JUNK, "-1"],
    }),
    "bench": (["bench", "--searchers", "random", "--datasets", "cora", "--seeds", "1",
               "--queries", "2", "--prefix", "fz", "--out", "{fresh}"], {
        "--searchers": ["bogus", "", "random[bogus=1]", "random[", ","],
        "--datasets": ["bogus", "", ","],
        "--seeds": _positive(),
        "--first-seed": [*INT_JUNK, "-1", str(2**31)],
        "--queries": _positive(),
        "--processes": _positive(),
        "--objectives": ["val_acc:max,latency_ms:min", "bogus"],
        "--reference": ["bogus"],
        "--prefix": ["../evil", "a/b"],
        "--out": ["{existing_file}", "/dev/null"],
    }),
}


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory) -> dict[str, str]:
    """A store with a small table study and a saved predictor, and the files that the
    bad values point at."""
    from naslab import Study

    folder = tmp_path_factory.mktemp("fuzz")
    db = folder / "store.db"
    url = f"sqlite:///{db}"
    Study(STUDY, space="nasbench_graph", task="cora", searcher="random",
          budget=20, seed=0, storage=url).run()
    old_argv = sys.argv
    try:
        for args in (["predictor", "fit", "--space", "nasbench_graph", "--task", "cora",
                      "--model", "rf", "--name", "fz-saved", "--storage", url],
                     ["db", "export", str(folder / "good.jsonl"), "--study", STUDY,
                      "--storage", url]):
            sys.argv = ["naslab", *args]
            try:
                cli.main()
            except SystemExit as exc:
                assert not exc.code, args
    finally:
        sys.argv = old_argv
    (folder / "existing.txt").write_text("keep me\n")
    (folder / "existing_dir").mkdir()
    (folder / "garbage.jsonl").write_text('{"kind": "nonsense"}\nnot json\n')
    (folder / "truncated.jsonl.gz").write_bytes(
        gzip.compress((folder / "good.jsonl").read_bytes())[:200])
    os.symlink(folder / "existing.txt", folder / "link.txt")
    return {"url": url, "db": str(db), "folder": str(folder)}


def _fill(arg: str, store: dict[str, str], case: int) -> str:
    folder = Path(store["folder"])
    return (arg.replace("{fresh}", str(folder / f"fresh-{case}"))
            .replace("{existing_file}", str(folder / "existing.txt"))
            .replace("{existing_dir}", str(folder / "existing_dir"))
            .replace("{symlink}", str(folder / "link.txt"))
            .replace("{export_file}", str(folder / "good.jsonl"))
            .replace("{garbage_file}", str(folder / "garbage.jsonl"))
            .replace("{truncated_gz}", str(folder / "truncated.jsonl.gz")))


def _with_option(base: list[str], option: str, value: str) -> list[str]:
    """The base command line with ``option`` set to ``value`` (replacing its valid
    value in the base, if any); option "" replaces or appends the positional."""
    args = list(base)
    if option == "":
        positional = [i for i, a in enumerate(args) if i > 0 and not a.startswith("-")
                      and not args[i - 1].startswith("--")]
        if args[0] in ("db", "predictor", "study", "plot"):
            positional = [i for i in positional if i > 1]
        if positional:
            args[positional[0]] = value
        else:
            args.append(value)
        return args
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    return args


def _run(args: list[str], monkeypatch, capsys) -> tuple[object, str, str]:
    monkeypatch.setattr(sys, "argv", ["naslab", *args])
    try:
        cli.main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:  # noqa: BLE001 - an escaped exception is a finding
        out, err = capsys.readouterr()
        return "raised", out, f"{type(exc).__name__}: {exc}\n{err}"
    out, err = capsys.readouterr()
    return code, out, err


def _names(option: str, value: str) -> list[str]:
    """Words of which a clear refusal names at least one: the option (or its
    singular), the key of a KEY=VALUE pair, a part of the value, or the folder of a
    path."""
    stem = option.lstrip("-")
    if not stem:  # a positional argument: SQL or a file, refused in the database's words
        return []
    words = [stem, stem.replace("-", "_"), stem.replace("-", " "), stem.rstrip("s")]
    words += re.split(r"[,:=\[\]]", value) + [value, repr(value)]
    if "/" in value:
        words.append(str(Path(value.split("///")[-1]).parent))
    return [w.lower() for w in words if len(w) > 1]


def _verdict(code: object, err: str, option: str, value: str) -> str | None:
    """None when the input was refused clearly, else what was wrong."""
    if code == "raised" or "Traceback" in err:
        return f"traceback: {err.strip()[:300]}"
    if code != 2:
        return f"exit code {code!r}: {err.strip()[:300]}"
    lines = [line for line in err.splitlines() if line.strip()]
    if len(lines) != 1 or not lines[0].startswith("error: "):
        return f"not one error line: {err.strip()[:300]!r}"
    names = _names(option, value)
    if names and not any(name in lines[0].lower() for name in names):
        return f"the error does not name {names}: {lines[0][:300]}"
    return None


DEVICES = {"/dev/null": (1, 3), "/dev/full": (1, 7)}


@pytest.fixture(scope="module", autouse=True)
def devices_intact():
    """The bad destinations include /dev/null and /dev/full. A naslab that replaced
    them (what the issue found `db export` doing) would break the machine for every
    later test: fail loudly, and put them back where the test may (as root)."""
    yield
    broken = [path for path in DEVICES if not stat.S_ISCHR(os.lstat(path).st_mode)]
    for path in broken:
        if os.geteuid() == 0:
            os.remove(path)
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(*DEVICES[path]))
            os.chmod(path, 0o666)
    assert not broken, f"naslab replaced {broken} with regular files (restored: as root)"


@pytest.fixture
def memory_cap():
    """At most 12 GiB of address space while bad values run: an input that makes
    naslab allocate without bound fails the test (MemoryError) instead of the
    machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = 12 << 30
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("command", sorted(TABLE))
def test_every_bad_value_is_refused_clearly(command, fuzz_store, monkeypatch, capsys,
                                            tmp_path, memory_cap):
    base, options = TABLE[command]
    monkeypatch.setenv("NASLAB_STORAGE", fuzz_store["url"])
    monkeypatch.chdir(tmp_path)
    before = content_hash(fuzz_store["db"])
    tried, bad = 0, []
    for option, values in options.items():
        for value in values:
            value = _fill(value, fuzz_store, tried)
            args = [_fill(a, fuzz_store, tried) for a in _with_option(base, option, value)]
            tried += 1
            code, _out, err = _run(args, monkeypatch, capsys)
            problem = _verdict(code, err, option, value)
            after = content_hash(fuzz_store["db"])
            if after != before:
                problem = (problem or "") + " [the store changed]"
                before = after
            if os.environ.get("NASLAB_FUZZ_SHOW"):
                with capsys.disabled():
                    print(f"{option}={value!r}: {err.strip()[:200]}")
            if problem:
                bad.append(f"{' '.join(args[:2])} {option}={value!r}: {problem}")
    with capsys.disabled():
        print(f"\nfuzz {command}: {tried} inputs tried, {tried - len(bad)} refused clearly, "
              f"{len(bad)} bad")
    assert not bad, "\n".join(bad)

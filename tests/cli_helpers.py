"""Helpers shared by the CLI tests: run commands, read their errors and tables."""

from __future__ import annotations

import hashlib
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from naslab import cli


def invoke(*args: str) -> str:
    """Run a command that must succeed; returns its stdout."""
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run ``naslab ARGS`` through ``main()``: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["naslab", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    """The message of the single ``error: ...`` line on stderr."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0].removeprefix("error: ")


def table_rows(output: str) -> list[list[str]]:
    """The body rows of the (last) rich table in ``output``, as lists of cells."""
    body = output.split("┡", 1)[1] if "┡" in output else ""
    return [[cell.strip() for cell in line.strip().strip("│").split("│")]
            for line in body.splitlines() if line.startswith("│")]


def content_hash(path: str | Path) -> str:
    """A digest of every row of every table of the SQLite file ``path`` (not of its
    bytes, which a checkpoint may change without changing the content)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    finally:
        conn.close()


def store_with_one_study(path: Path) -> tuple[str, Callable[[], str]]:
    """A SQLite store at ``path`` holding one finished table study (``kept``): its URL,
    and a function giving the digest of its content (to check that a refused command
    changed nothing)."""
    from naslab.study import Study

    with Study("kept", space="nasbench_graph", budget=1, storage=f"sqlite:///{path}",
               searcher="random") as study:
        study.run()
    return f"sqlite:///{path}", lambda: content_hash(path)

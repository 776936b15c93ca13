"""Helpers shared by the CLI tests: run commands, read their errors and tables."""

from __future__ import annotations

import sys

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

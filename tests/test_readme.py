"""The README's Python examples must run as written."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_custom_space_and_predictor_examples_run(tmp_path, monkeypatch, capsys):
    """The custom-space example, then the predictor example that continues it."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has a Python example"
    predictor_example = next(b for b in blocks if "GNNPredictor" in b)
    script = tmp_path / "example.py"
    script.write_text(blocks[0] + "\n" + predictor_example)
    monkeypatch.chdir(tmp_path)  # the examples use the default store ./naslab.db
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "val_accuracy" in out and "width_1" in out
    assert (tmp_path / "naslab.db").exists()
    assert "10 architectures at 5 epochs" in out and "next to train:" in out


def test_readme_multi_objective_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "objectives=" in b)
    script = tmp_path / "mo.py"
    script.write_text(example)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(len(line.split()) == 3 for line in lines)  # number, accuracy, latency


def test_readme_steering_example_runs(tmp_path, monkeypatch, capsys):
    """enqueue, run with a timeout and a stopping callback, then evaluate one more."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "stop_when_good" in b)
    script = tmp_path / "steer.py"
    script.write_text(example)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] in ("stopped", "budget"), lines
    assert lines[-1].split()[1] == "complete", lines

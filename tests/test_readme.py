"""The README's Python example must run as written."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_custom_space_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has a Python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    monkeypatch.chdir(tmp_path)  # the example uses the default store ./naslab.db
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "val_accuracy" in out and "width_1" in out
    assert (tmp_path / "naslab.db").exists()

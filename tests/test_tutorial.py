"""docs/tutorial.md and the README's Python example run as written (every code block, in order)."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_tutorial_runs(tmp_path, monkeypatch, capsys):
    blocks = python_blocks((ROOT / "docs" / "tutorial.md").read_text())
    assert len(blocks) == 6
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    t0 = time.perf_counter()
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/tutorial.md block {i + 1}", "exec"), namespace)
    assert time.perf_counter() - t0 < 120
    assert (tmp_path / "calibration.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "mismatch 0.4:" in out and "rram256" in out


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)
    if len(section) < 2:
        pytest.fail("README.md: no '## Python API' section")
    block = python_blocks(section[1])[0]
    assert len(block.strip().splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md Python example", "exec"), {})
    assert "->" in capsys.readouterr().out

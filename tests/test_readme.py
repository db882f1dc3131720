"""The README's example runs and says what the README says it does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    block = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block is not None
    exec(compile(block.group(1), str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert "mitigating" in out  # plugins print from their own threads, so order varies
    assert any(line.startswith("refused: lead_assigned: ") for line in out)
    assert "[slack] PhaseChanged: Search is down is mitigating" in out


def test_the_quickstart_has_the_demo_and_the_test_command() -> None:
    text = README.read_text(encoding="utf-8")
    quickstart = text.split("## Quickstart", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^\$ (.+)$", quickstart, re.M)
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/incident-flow demo",
        "bash .ci/run",
    ]

"""The ``incident-flow`` command line, the console adapters and the example scripts."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

from incident_flow import HANDBOOK, IncidentFlow, Role, Severity
from incident_flow.cli import main
from incident_flow.console import ConsoleSlack, ConsoleStatusPage
from incident_flow.store import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_demo(db: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Run the demo into ``db``; return the new incident's id and the output."""
    assert main(["demo", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    match = re.search(r"incident-flow show (\S+) --db", out)
    assert match is not None, out
    return match.group(1), out


@pytest.fixture
def demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    db = tmp_path / "demo.db"
    incident_id, _ = run_demo(db, capsys)
    return db, incident_id


def test_demo_runs_a_whole_incident(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "demo.db"
    incident_id, out = run_demo(db, capsys)

    channel = "[slack #inc-2024-05-14-search-is-down]"
    assert f"{channel} bob is the Incident Lead" in out
    for announced in ("#customer-support", "#ce", "#sales", "#general"):
        assert f"[slack {announced}] critical incident with customer impact" in out
    assert "[slack #marketing] @marketing-incident" in out
    assert "@delivery-support @cs @ce release 3.30 is paused" in out
    assert "[status page] Identified: We are aware" in out
    assert "[status page] Investigating:" in out
    assert "[status page] Resolved:" in out
    assert "- lead_assigned:" in out
    assert "(handbook: Incident Lead roles and responsibilities)" in out
    assert "postmortem -> closed (close) closes" in out
    assert f"incident-flow log {incident_id} --db" in out

    with IncidentFlow(store=SQLiteStore(db), entry_points=False) as flow:
        incident = flow.get(incident_id)
        assert incident.phase == "closed"
        assert not incident.paused_releases
        assert [u.phase for u in incident.status_updates] == [
            "identified",
            "investigating",
            "resolved",
        ]
        gaps = [b.at - a.at for a, b in pairwise(incident.status_updates)]
        assert all(gap.total_seconds() <= 30 * 60 for gap in gaps)
        assert all(delivery.status == "delivered" for delivery in flow.deliveries())


def test_demo_adds_to_an_existing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "demo.db"
    first, _ = run_demo(db, capsys)
    second, _ = run_demo(db, capsys)
    assert first != second
    assert main(["list", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [first, second]


def test_show(demo: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, incident_id = demo
    assert main(["show", incident_id, "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{incident_id}  Search is down")
    assert "phase            closed (Closed)" in out
    assert "Incident Lead: bob; Messenger: carol" in out
    assert "[-] close_github_issues" in out
    assert "[ ] schedule_retrospective     open (optional)" in out
    assert "support@sourcegraph.com" in out


def test_show_json(demo: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, incident_id = demo
    assert main(["show", incident_id, "--db", str(db), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["id"] == incident_id
    assert record["phase"] == "closed"
    assert record["roles"]["lead"] == "bob"


def test_log(demo: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, incident_id = demo
    assert main(["log", incident_id, "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["1", "2024-05-14T09:00Z", "alice", "IncidentDeclared"]
    assert "ReleasePaused" in lines[7]
    assert "release=3.30" in lines[7]


def test_log_json(demo: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, incident_id = demo
    assert main(["log", incident_id, "--db", str(db), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [event["version"] for event in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "IncidentDeclared"
    assert events[-1]["type"] == "PhaseChanged"
    assert events[-1]["dest"] == "closed"


def test_list_by_phase(demo: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, incident_id = demo
    assert main(["list", "--db", str(db), "--phase", "closed"]) == 0
    assert capsys.readouterr().out.split()[:3] == [incident_id, "closed", "critical"]
    assert main(["list", "--db", str(db), "--phase", "mitigating"]) == 0
    assert capsys.readouterr().out == ""


def test_diagram_is_the_handbook(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagram"]) == 0
    assert capsys.readouterr().out == HANDBOOK.to_mermaid()


def test_diagram_of_a_team_process(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    assert main(["diagram", "--process", "custom_process:TEAM_PROCESS"]) == 0
    out = capsys.readouterr().out
    assert "mitigating --> monitoring: monitor" in out
    assert "monitoring --> resolved: resolve [lead_assigned]" in out


def test_diagram_of_something_else(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagram", "--process", "json:dumps"]) == 1
    assert capsys.readouterr().err.startswith("error: json:dumps is a function")
    assert main(["diagram", "--process", "no_such_module_here:PROCESS"]) == 1
    assert "cannot import 'no_such_module_here'" in capsys.readouterr().err


def test_unknown_incident(demo: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, _ = demo
    for command in ("show", "log"):
        assert main([command, "inc-nope", "--db", str(db)]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("error: no incident with id 'inc-nope'")


def test_unknown_phase(demo: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, _ = demo
    assert main(["list", "--db", str(db), "--phase", "nope"]) == 1
    assert capsys.readouterr().err.startswith("error: unknown phase 'nope'")


@pytest.mark.parametrize("command", [["show", "inc-1"], ["log", "inc-1"], ["list"]])
def test_a_missing_database_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    db = tmp_path / "missing.db"
    assert main([*command, "--db", str(db)]) == 1
    assert capsys.readouterr().err.startswith("error: no incident database at")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv",
    [[], ["frobnicate"], ["show", "inc-1"], ["diagram", "--process", "no-colon"], ["list", "-x"]],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: incident-flow" in capsys.readouterr().err


def test_slack_announces_only_customer_impact() -> None:
    stream = io.StringIO()
    with IncidentFlow(
        plugins=[ConsoleSlack(stream), ConsoleStatusPage(stream)], entry_points=False
    ) as flow:
        incident = flow.declare(
            "Code intel is slow", severity=Severity.MAJOR, customer_impact=False, by="dave"
        )
        flow.assign(incident.id, Role.LEAD, "dave", by="dave")
        flow.post_status_update(
            incident.id, "We are looking into it.", phase="identified", by="dave"
        )
        assert flow.drain(10)
    lines = stream.getvalue().splitlines()
    channel = "[slack #inc-"
    assert all(line.startswith((channel, "[status page] ")) for line in lines), lines
    assert "[status page] Identified: We are looking into it." in lines
    assert len(lines) == 4


@pytest.mark.parametrize("script", ["handbook_walkthrough.py", "custom_process.py"])
def test_example_runs(script: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout
    assert list(tmp_path.iterdir()) == []

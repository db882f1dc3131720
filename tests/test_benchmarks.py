"""The benchmark suite runs: every case once at a tiny size, through the code of the full run.

No timing is asserted. What is checked: each case returns rows, each row with a target has a
ratio and a verdict, and the peers the cases compare against really do the lifecycle's work
(they reach ``closed`` with the same number of history entries as incident_flow's events, and
refuse what the handbook refuses).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from benchmarks import baselines
from benchmarks.__main__ import main, select, write
from benchmarks.cases import CASES, flow_lifecycle
from benchmarks.harness import Case, Mode, Settings
from incident_flow import FakeClock, IncidentFlow
from incident_flow.store import MemoryStore
from tests.pg import ENV_VAR, require_postgres

SMOKE = Settings.for_mode(Mode.SMOKE)
AT = datetime(2024, 1, 1, tzinfo=UTC)
PEERS = [baselines.transitions_incident, baselines.statemachine_incident]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_each_case_runs_and_reports_a_ratio(case: Case) -> None:
    if case.name == "workers":
        require_postgres()  # skipped without a server, failed in CI
    result = case.run(SMOKE)
    assert result.rows
    for row in result.rows:
        if row.stats is None:
            assert row.ratio_text == "not measured"
            continue
        if row.baseline_stats is not None or row.target != "—":
            assert row.ratio is not None, f"{row.measure} has no ratio"
            assert row.ratio_text != "—"
        if row.target != "—":
            assert row.passed is not None
    assert any(row.ratio is not None for row in result.rows) or case.name == "postgres"


def test_the_cases_are_numbered_as_in_the_issue() -> None:
    assert [case.number for case in CASES] == list(range(1, 10))
    assert select(["1", "fanout"]) == [CASES[0], CASES[5]]
    with pytest.raises(SystemExit):
        select(["no-such-case"])


@pytest.mark.parametrize("declare", PEERS, ids=["transitions", "statemachine"])
def test_the_peers_do_the_whole_lifecycle(declare: baselines.Declare) -> None:
    record = baselines.drive_lifecycle(declare, "inc-1", "Search is down", lambda: AT)
    with IncidentFlow(store=MemoryStore(), entry_points=False, clock=FakeClock()) as flow:
        ours = flow_lifecycle(flow)
    assert record.state == ours.phase == "closed"
    assert record.version == ours.version == len(record.history)
    assert record.closed_at == AT
    assert all(
        state != "open"
        for name, state in record.checklist.items()
        if name != "schedule_retrospective"
    )


@pytest.mark.parametrize("declare", PEERS, ids=["transitions", "statemachine"])
def test_the_peers_refuse_what_the_handbook_refuses(declare: baselines.Declare) -> None:
    record = baselines.drive_to_mitigating(declare, "inc-1", "Search is down", lambda: AT)
    with pytest.raises(Exception):  # noqa: B017, PT011 - each peer has its own refusal
        baselines.trigger(record, "resolve", "bob", AT)  # no status update posted yet
    assert record.state == "mitigating"
    assert record.resolved_at is None


def test_the_command_prints_a_markdown_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--smoke", "--case", "postgres", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| case | measure |" in out
    assert "not measured" in out


def test_write_replaces_the_results_between_the_markers(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text("# P\n\n<!-- results:start -->\nold\n<!-- results:end -->\n\nmore\n")
    write(page, "| new |\n")
    assert (
        page.read_text() == "# P\n\n<!-- results:start -->\n| new |\n<!-- results:end -->\n\nmore\n"
    )
    page.write_text("no markers\n")
    with pytest.raises(SystemExit):
        write(page, "| new |\n")


def test_the_workers_case_skips_without_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "host=127.0.0.1 port=1 user=postgres dbname=test")
    monkeypatch.delenv("CI", raising=False)
    (workers,) = select(["workers"])
    [row] = workers.run(SMOKE).rows
    assert row.stats is None
    assert row.ratio_text == "not measured"
    assert row.note.startswith("skipped: PostgreSQL is not reachable")
    monkeypatch.setenv("CI", "true")  # in CI a missing server is an error, not a skip
    with pytest.raises(RuntimeError, match="not reachable"):
        workers.run(SMOKE)

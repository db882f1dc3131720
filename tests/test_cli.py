"""The ``incident-flow`` command line, the console adapters and the example scripts."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from incident_flow import HANDBOOK, IncidentFlow, Role, Severity
from incident_flow.cli import main
from incident_flow.console import ConsoleSlack, ConsoleStatusPage
from incident_flow.store import DeliveryStatus, SQLiteStore

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
        # The 31 minutes between the first two posts are covered by the reminder at 30.
        gaps = [b.at - a.at for a, b in pairwise(incident.status_updates)]
        assert [round(gap.total_seconds() / 60) for gap in gaps] == [31, 20]
        reminded = [r for r in incident.reminders if r.name == "status_update_due"]
        assert [(r.due_at.strftime("%H:%M"), r.person) for r in reminded] == [("09:44", "carol")]
        assert incident.pages[0].acknowledged_by == "bob"
        assert incident.follow_ups[0].owner == "dave"
        assert incident.item("generate_postmortem_doc").link == f"postmortems/{incident_id}.md"  # type: ignore[union-attr]
        assert all(delivery.status == "delivered" for delivery in flow.deliveries())
    assert "comms:utc_only: 'EST' is a regional time zone" in out
    assert f"{channel} reminder for @carol: 30 minutes since the last status-page post" in out
    assert f"{channel} alice paged delivery team (page-2)" in out


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


def test_show_lists_what_adapters_made_outside(
    demo: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, incident_id = demo
    with IncidentFlow(
        store=SQLiteStore(db), entry_points=False, deliver=False, reminders=False
    ) as flow:
        flow.record_external(
            incident_id,
            system="slack",
            kind="channel",
            external_id="C0123",
            url="https://slack.com/app_redirect?channel=C0123",
            by="slack",
        )
    assert main(["show", incident_id, "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "outside          1" in out
    assert "slack channel C0123 https://slack.com/app_redirect?channel=C0123" in out


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
    assert "ReleasePaused" in lines[9]
    assert "release=3.30" in lines[9]


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
    assert "monitoring --> resolved: resolve [actor_is_lead]" in out


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
            incident.id,
            "We are looking into it. Questions: support@sourcegraph.com.",
            phase="identified",
            by="dave",
        )
        assert flow.drain(10)
    lines = stream.getvalue().splitlines()
    channel = "[slack #inc-"
    assert all(line.startswith((channel, "[status page] ")) for line in lines), lines
    assert (
        "[status page] Identified: We are looking into it. Questions: support@sourcegraph.com."
        in lines
    )
    assert len(lines) == 4


@pytest.mark.parametrize(
    "script", ["handbook_walkthrough.py", "custom_process.py", "licence_policy.py"]
)
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


# -- audit, post-mortem, templates ---------------------------------------------------------------


def test_audit_prints_the_departures_of_the_example_and_exits_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["audit", str(EXAMPLES / "timeline.yaml")]) == 3
    out = capsys.readouterr().out
    assert "Verdict: 8 departures from the process" in out
    assert "[refused] post_status_update" in out
    assert "comms:utc_only" in out
    assert "[reminder] status_update_due" in out


def test_audit_of_a_conforming_timeline_exits_0_and_speaks_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["audit", str(EXAMPLES / "timeline.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["departures"] == []


def test_audit_of_a_malformed_file_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "incident:\n  title: t\n  severity: major\n  customer_impact: false\n"
        "  declared_at: 2024-05-14T09:00:00\n  declared_by: alice\ntimeline: []\n"
    )
    assert main(["audit", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: line 5")
    assert "declared_at" in err


def test_postmortem_prints_markdown_of_the_demo_incident(
    demo: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, incident_id = demo
    assert main(["postmortem", incident_id, "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Post-mortem: Search is down")
    assert "```mermaid\ngantt" in out
    assert "| Time to resolve[^resolve] | 1 h 6 min |" in out


def test_postmortem_writes_the_document_and_completes_its_item(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "incidents.db"
    with IncidentFlow(store=SQLiteStore(db), entry_points=False, reminders=False) as flow:
        incident = flow.declare(
            "Search is down", severity=Severity.MAJOR, customer_impact=False, by="alice"
        )
        flow.assign(incident.id, Role.LEAD, "bob", by="alice")
        flow.acknowledge(incident.id, by="bob")
        flow.start_mitigation(incident.id, by="bob")
        flow.resolve(incident.id, by="bob")
        flow.start_postmortem(incident.id, by="bob")
    document = tmp_path / "postmortem.md"
    argv = ["postmortem", incident.id, "--db", str(db), "-o", str(document)]
    assert main([*argv, "--complete-item"]) == 1
    assert "--complete-item needs --by" in capsys.readouterr().err
    assert main([*argv, "--complete-item", "--by", "bob"]) == 0
    assert document.read_text().startswith("# Post-mortem: Search is down")
    with IncidentFlow(store=SQLiteStore(db), entry_points=False, reminders=False) as flow:
        item = flow.get(incident.id).item("generate_postmortem_doc")
        assert item is not None
        assert (item.state, item.link) == ("done", str(document.resolve()))


def test_template_prints_the_handbook_post(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["template", "identified", "--issue", "code search"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("We are aware there is an issue with code search.")
    assert "support@sourcegraph.com" in out
    assert main(["template", "identified"]) == 1
    assert "issue" in capsys.readouterr().err


def test_review_post_lists_findings_and_fails_on_a_refusal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["review-post", "Back by 5pm EST", "--phase", "investigating"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("refused   utc_only [EST]")
    assert main(["review-post", "We expect a fix by 17:00 UTC.", "--phase", "monitoring"]) == 1
    assert "monitoring" in capsys.readouterr().err
    assert main(["review-post", "We expect a fix by 17:00 UTC."]) == 0
    assert "follows every communication rule" in capsys.readouterr().out


# -- worker and deliveries -------------------------------------------------------------------------


def committed_without_delivery(db: str, *plugins: object) -> str:
    """Declare an incident and triage it in ``db`` with deliveries left in the outbox."""
    from incident_flow.store import open_store

    with IncidentFlow(
        store=open_store(db, schema=SCHEMA.get(db, "public")),
        plugins=plugins,
        entry_points=False,
        deliver=False,
    ) as flow:
        incident = flow.declare(
            "Search is down", severity=Severity.CRITICAL, customer_impact=True, by="alice"
        )
        flow.triage(incident.id, by="alice")
    return incident.id


SCHEMA: dict[str, str] = {}


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "received.txt"
    monkeypatch.setenv("INCIDENT_FLOW_TEST_RECORD", str(path))
    return path


def received(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_worker_once_delivers_what_is_due_and_stops(
    tmp_path: Path, record: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli_plugins import FileRecorder

    db = str(tmp_path / "incidents.db")
    incident_id = committed_without_delivery(db, FileRecorder())

    argv = ["worker", "--db", db, "--plugin", "tests.cli_plugins:FileRecorder", "--once"]
    assert main([*argv, "--no-entry-points"]) == 0

    assert received(record) == [
        f"{incident_id}:1:file-recorder IncidentDeclared",
        f"{incident_id}:2:file-recorder PhaseChanged",
    ]
    err = capsys.readouterr().err
    assert "delivering to file-recorder until nothing is due" in err
    assert "delivered 2, failed 0, dead 0" in err
    assert main([*argv, "--no-entry-points"]) == 0  # nothing left: nothing sent twice
    assert len(received(record)) == 2


def test_worker_once_records_due_reminders_and_delivers_them(
    tmp_path: Path, record: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli_plugins import FileRecorder

    db = str(tmp_path / "incidents.db")
    with IncidentFlow(
        store=SQLiteStore(db), plugins=[FileRecorder()], entry_points=False, deliver=False
    ) as flow:
        an_hour_ago = flow.clock.now() - timedelta(hours=1)
        incident = flow.declare(
            "Search is down",
            severity=Severity.CRITICAL,
            customer_impact=True,
            by="alice",
            at=an_hour_ago,
        )
    argv = ["worker", "--db", db, "--plugin", "tests.cli_plugins:FileRecorder", "--once"]
    assert main([*argv, "--no-entry-points"]) == 0
    assert "recorded 1 reminder(s)" in capsys.readouterr().err
    assert received(record) == [
        f"{incident.id}:1:file-recorder IncidentDeclared",
        f"{incident.id}:2:file-recorder ReminderDue",
    ]
    assert main([*argv, "--no-entry-points", "--no-reminders"]) == 0
    assert main([*argv, "--no-entry-points"]) == 0  # the same reminder is not recorded twice
    assert len(received(record)) == 2


def test_worker_hands_its_plugins_a_flow_over_the_same_store(tmp_path: Path, record: Path) -> None:
    from tests.cli_plugins import ChannelMaker

    db = str(tmp_path / "incidents.db")
    incident_id = committed_without_delivery(db, ChannelMaker())

    argv = ["worker", "--db", db, "--plugin", "tests.cli_plugins:ChannelMaker", "--once"]
    assert main([*argv, "--no-entry-points"]) == 0

    assert received(record) == [f"{incident_id}:1:channel-maker made a channel"]
    with IncidentFlow(
        store=SQLiteStore(db), entry_points=False, deliver=False, reminders=False
    ) as flow:
        ref = flow.get(incident_id).external_ref("chat", "channel")
        assert ref is not None
        assert (ref.external_id, ref.by) == (f"C-{incident_id}", "channel-maker")


def test_worker_without_a_plugin_refuses_to_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "incidents.db")
    committed_without_delivery(db)
    assert main(["worker", "--db", db, "--once", "--no-entry-points"]) == 1
    assert "no plugin to deliver to" in capsys.readouterr().err


def test_worker_warns_of_deliveries_to_plugins_it_does_not_have(
    tmp_path: Path, record: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli_plugins import Refusing

    db = str(tmp_path / "incidents.db")
    committed_without_delivery(db, Refusing())
    argv = ["worker", "--db", db, "--once", "--no-entry-points"]
    assert main([*argv, "--plugin", "tests.cli_plugins:FileRecorder"]) == 0
    assert "2 pending deliveries to refusing, which is not installed here" in (
        capsys.readouterr().err
    )


def test_worker_runs_until_sigterm(tmp_path: Path, record: Path) -> None:
    from tests.cli_plugins import FileRecorder

    db = str(tmp_path / "incidents.db")
    incident_id = committed_without_delivery(db, FileRecorder())
    argv = [sys.executable, "-m", "incident_flow.cli", "worker", "--db", db, "--poll", "0.1"]
    argv += ["--plugin", "tests.cli_plugins:FileRecorder", "--no-entry-points"]
    child = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while len(received(record)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        with IncidentFlow(
            store=SQLiteStore(db), plugins=[FileRecorder()], entry_points=False, deliver=False
        ) as flow:
            flow.assign(incident_id, Role.LEAD, "bob", by="alice")  # committed while it runs
        while len(received(record)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert [line.split()[0] for line in received(record)] == [
        f"{incident_id}:{version}:file-recorder" for version in (1, 2, 3)
    ]
    assert "delivered 3, failed 0, dead 0" in err


def test_deliveries_lists_dead_letters_and_retries_them(
    tmp_path: Path, record: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli_plugins import Refusing

    db = str(tmp_path / "incidents.db")
    incident_id = committed_without_delivery(db, Refusing())
    worker = ["worker", "--db", db, "--once", "--no-entry-points"]
    assert main([*worker, "--plugin", "tests.cli_plugins:Refusing"]) == 0
    capsys.readouterr()

    assert main(["deliveries", "--db", db]) == 0
    out = capsys.readouterr().out.splitlines()
    # v1 is dead; v2 was then delivered... to a plugin that refuses everything: dead too.
    assert out == [
        f"{incident_id}:1:refusing  dead      attempts 1  (plugin not installed here)  "
        "PermanentDeliveryError: HTTP 404: channel_not_found",
        f"{incident_id}:2:refusing  dead      attempts 1  (plugin not installed here)  "
        "PermanentDeliveryError: HTTP 404: channel_not_found",
    ]

    assert main(["deliveries", "--db", db, "--json", "--limit", "1"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    row = json.loads(line)
    assert (row["key"], row["status"], row["plugin_installed"]) == (
        f"{incident_id}:1:refusing",
        "dead",
        False,
    )

    assert main(["deliveries", "--db", db, "--retry", "--incident", incident_id]) == 0
    assert capsys.readouterr().out == "requeued 2 deliveries\n"
    assert main(["deliveries", "--db", db, "--status", "pending"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["deliveries", "--db", db, "--status", "delivered"]) == 0
    assert capsys.readouterr().out == ""


def test_deliveries_of_a_missing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.db"
    assert main(["deliveries", "--db", str(missing)]) == 1
    assert "no incident database at" in capsys.readouterr().err
    assert not missing.exists()


def test_worker_and_deliveries_on_postgresql(
    pg_schema: tuple[str, str], record: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli_plugins import FileRecorder

    conninfo, schema = pg_schema
    SCHEMA[conninfo] = schema
    try:
        incident_id = committed_without_delivery(conninfo, FileRecorder())
    finally:
        del SCHEMA[conninfo]
    options = ["--db", conninfo, "--schema", schema]
    assert main(["deliveries", *options]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    plugin = ["--plugin", "tests.cli_plugins:FileRecorder", "--no-entry-points"]
    assert main(["worker", *options, *plugin, "--once"]) == 0
    assert [line.split()[0] for line in received(record)] == [
        f"{incident_id}:1:file-recorder",
        f"{incident_id}:2:file-recorder",
    ]
    capsys.readouterr()
    assert main(["deliveries", *options]) == 0
    assert capsys.readouterr().out == ""


def test_several_workers_share_one_postgresql_outbox_without_delivering_a_row_twice(
    pg_schema: tuple[str, str], record: Path
) -> None:
    from incident_flow.store.postgres import PostgresStore
    from tests.cli_plugins import FileRecorder

    conninfo, schema = pg_schema
    with IncidentFlow(
        store=PostgresStore(conninfo, schema=schema),
        plugins=[FileRecorder()],
        entry_points=False,
        deliver=False,
    ) as flow:
        for number in range(40):
            incident = flow.declare(
                f"Incident {number}", severity=Severity.MAJOR, customer_impact=False, by="al"
            )
            flow.triage(incident.id, by="al")
    argv = [sys.executable, "-m", "incident_flow.cli", "worker", "--db", conninfo]
    argv += ["--schema", schema, "--plugin", "tests.cli_plugins:FileRecorder"]
    argv += ["--no-entry-points", "--once", "--batch", "8"]
    workers = [
        subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True) for _ in range(3)
    ]
    errors = [worker.communicate(timeout=120)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0], errors

    keys = [line.split()[0] for line in received(record)]
    with PostgresStore(conninfo, schema=schema) as store:
        rows = store.deliveries()
    assert sorted(keys) == sorted(row.key for row in rows)  # each row exactly once
    assert len(keys) == len(set(keys)) == 80
    assert {row.status for row in rows} == {DeliveryStatus.DELIVERED}
    for row in rows:  # versions in order per incident
        if row.version == 2:
            assert keys.index(f"{row.incident_id}:1:file-recorder") < keys.index(row.key)

"""Audit replay: timeline files are read strictly, replayed with their own times, and every
departure from the process is reported."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incident_flow import HANDBOOK, FakeClock, IncidentFlow, PhaseSpec, Transition
from incident_flow import audit as audit_module
from incident_flow import events as ev
from incident_flow.audit import (
    KINDS,
    AuditReport,
    Departure,
    Timeline,
    audit,
    audit_file,
    load_timeline,
    parse_timeline,
)
from incident_flow.errors import InvalidFieldError, TimelineError
from incident_flow.testing.paths import Path as CommandPath
from incident_flow.testing.strategies import command_sequences

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_YAML = ROOT / "examples" / "timeline.yaml"
EXAMPLE_JSON = ROOT / "examples" / "timeline.json"
DOC = ROOT / "docs" / "audit.md"

DAY = datetime(2024, 5, 14, tzinfo=UTC)
GOOD_FIRST_POST = (
    "Identified: We are aware there is an issue with search. We are investigating a "
    "resolution. If you have any questions, email support@sourcegraph.com."
)
GOOD_POST = "Investigating: We are continuing to investigate a resolution."
RESOLVED_POST = (
    "Resolved: We have resolved the issue and will conduct a postmortem. If you would like to "
    "know more, please email support@sourcegraph.com."
)


def t(hh_mm: str, day: int = 14) -> str:
    """``"09:05"`` → ``"2024-05-14T09:05:00Z"``."""
    return f"2024-05-{day:02d}T{hh_mm}:00Z"


def at(hh_mm: str, day: int = 14) -> datetime:
    return datetime.fromisoformat(t(hh_mm, day))


def entry(time: str, by: str, action: str, **arguments: Any) -> dict[str, Any]:
    return {"at": t(time), "by": by, "action": action, **arguments}


def document(
    entries: Sequence[dict[str, Any]],
    *,
    customer_impact: bool = True,
    declared_at: str = "09:00",
    **top: Any,
) -> dict[str, Any]:
    return {
        "incident": {
            "title": "Search is down",
            "severity": "critical",
            "customer_impact": customer_impact,
            "declared_at": t(declared_at),
            "declared_by": "alice",
        },
        "timeline": list(entries),
        **top,
    }


def run(entries: Sequence[dict[str, Any]], **options: Any) -> AuditReport:
    tolerance = options.pop("backdate_tolerance", audit_module.DEFAULT_BACKDATE_TOLERANCE)
    process = options.pop("process", HANDBOOK)
    timeline = parse_timeline(json.dumps(document(entries, **options)), format="json")
    return audit(timeline, process, backdate_tolerance=tolerance)


def kinds(report: AuditReport) -> list[tuple[str, str | None]]:
    return [(departure.kind, departure.name) for departure in report.departures]


# An incident that follows the process: lead, acknowledgement, messenger, posts every 30
# minutes, resolution, post-mortem, close.
CONFORMING = [
    entry("09:01", "alice", "assign", role="lead", person="bob"),
    entry("09:02", "bob", "acknowledge"),
    entry("09:03", "bob", "assign", role="messenger", person="carol"),
    entry("09:05", "carol", "post_status_update", text=GOOD_FIRST_POST, phase="identified"),
    entry("09:06", "bob", "triage"),
    entry("09:07", "bob", "start_mitigation"),
    entry("09:10", "bob", "record_rollback", outcome="rolled back to 5.3", succeeded=True),
    entry("09:30", "carol", "post_status_update", text=GOOD_POST, phase="investigating"),
    entry("09:40", "bob", "resolve"),
    entry("09:45", "carol", "post_status_update", text=RESOLVED_POST, phase="resolved"),
    entry("10:00", "bob", "start_postmortem"),
    *(
        entry("10:05", "bob", "complete_item", item=item)
        for item in (
            "update_status",
            "confirm_messenger_updates",
            "close_github_issues",
            "generate_postmortem_doc",
            "create_followup_issues",
        )
    ),
    entry("10:06", "bob", "waive_item", item="schedule_retrospective", reason="not needed"),
    entry("10:10", "bob", "close"),
]

# Up to mitigation, with lead bob and messenger carol.
MITIGATING = CONFORMING[:7]


# -- a conforming timeline -------------------------------------------------------------------------


def test_a_conforming_timeline_is_ok() -> None:
    report = run(CONFORMING)

    assert report.ok
    assert report.departures == ()
    assert report.incident.phase == "closed"
    assert report.entries == len(CONFORMING)


# -- each kind of departure ------------------------------------------------------------------------


def test_a_refused_step_reports_every_unmet_requirement_with_its_handbook_section() -> None:
    report = run([entry("09:01", "alice", "start_mitigation")])

    refused = report.of_kind("refused")
    assert [d.name for d in refused] == ["lead_assigned", "lead_acknowledged", "messenger_assigned"]
    assert all(d.action == "start_mitigation" and d.entry == 0 for d in refused)
    assert refused[0].handbook_ref == (
        "How to identify folks to serve in incident lead and messenger roles"
    )
    assert "assign an Incident Lead first" in refused[0].message


def test_a_refused_step_leaves_the_incident_as_it_was_and_the_replay_goes_on() -> None:
    report = run(
        [
            entry("09:01", "alice", "assign", role="lead", person="bob"),
            entry("09:02", "bob", "resolve"),  # refused: not mitigating
            entry("09:03", "bob", "triage"),
        ]
    )

    assert kinds(report) == [("refused", "phase")]
    assert report.incident.phase == "triaged"
    assert not any(
        isinstance(event, ev.PhaseChanged) and event.action == "resolve" for event in report.events
    )


def test_a_warning_the_process_records_is_a_departure_of_its_entry() -> None:
    report = run(
        [
            entry("09:01", "alice", "assign", role="lead", person="bob"),
            entry("09:02", "bob", "assign", role="messenger", person="bob"),
        ]
    )

    (warning,) = report.of_kind("warning")
    assert warning.name == "distinct_lead_and_messenger"
    assert warning.entry == 1
    assert warning.at == at("09:02")
    assert warning.handbook_ref.startswith("How to identify folks")


def test_a_resolution_owner_before_any_rollback_is_a_warning() -> None:
    report = run(
        [*MITIGATING[:6], entry("09:08", "bob", "assign", role="resolution_owner", person="dave")]
    )

    assert [d.name for d in report.of_kind("warning")] == ["rollback_before_resolution_owner"]


def test_reminders_are_reported_at_their_own_due_times() -> None:
    report = run(
        [
            entry("09:01", "alice", "assign", role="lead", person="bob"),
            entry("09:02", "bob", "page", target="delivery team"),
            entry("09:35", "dave", "acknowledge_page", page="delivery team"),
            entry("10:45", "bob", "assign", role="messenger", person="carol"),
        ]
    )

    reminders = [(d.name, d.at) for d in report.of_kind("reminder")]
    assert reminders == [
        ("page_unacknowledged", at("09:12")),
        ("page_unacknowledged", at("09:22")),
        ("status_update_due", at("09:30")),
        ("page_unacknowledged", at("09:32")),
        ("status_update_due", at("10:00")),
        ("status_update_due", at("10:30")),
    ]
    recorded = [event for event in report.events if isinstance(event, ev.ReminderDue)]
    assert [event.at for event in recorded] == [event.due_at for event in recorded]
    assert all(event.missed == 0 for event in recorded)


def test_reminders_after_the_last_entry_are_looked_for_up_to_audit_until() -> None:
    entries = [entry("09:01", "alice", "assign", role="lead", person="bob")]

    assert run(entries).of_kind("reminder") == ()
    late = run(entries, audit_until=t("10:10"))
    assert [d.at for d in late.of_kind("reminder")] == [at("09:30"), at("10:00")]


def test_the_release_pause_prompt_is_not_a_departure() -> None:
    report = run([*MITIGATING, entry("09:11", "bob", "pause_release", release="5.4.1")])

    assert report.ok
    assert any(
        isinstance(event, ev.ReminderDue) and event.reminder == "release_paused_status_post"
        for event in report.events
    )


def test_a_recorded_status_post_finding_is_a_departure() -> None:
    text = GOOD_FIRST_POST + " We expect a fix later today."
    report = run([entry("09:05", "bob", "post_status_update", text=text, phase="identified")])

    (finding,) = report.departures
    assert (finding.kind, finding.name) == ("finding", "comms:no_regional_words")
    assert "today" in finding.message
    assert finding.handbook_ref == "Messenger roles and responsibilities"
    assert len(report.incident.status_updates) == 1  # the post went out


def test_a_post_a_refusing_rule_stops_is_refused_per_rule() -> None:
    text = "Identified: search fails since 9am EST."
    report = run([entry("09:05", "bob", "post_status_update", text=text, phase="identified")])

    assert kinds(report) == [
        ("refused", "comms:utc_only"),
        ("refused", "comms:first_post_names_support"),
    ]
    assert report.incident.status_updates == ()


def test_an_entry_before_a_later_one_in_the_file_is_out_of_order_and_replayed_in_time_order() -> (
    None
):
    report = run(
        [
            entry("09:01", "alice", "assign", role="lead", person="bob"),
            entry("09:03", "bob", "triage"),
            entry("09:02", "bob", "acknowledge"),
        ]
    )

    (departure,) = report.departures
    assert (departure.kind, departure.entry, departure.at) == ("out_of_order", 2, at("09:02"))
    assert "timeline[1]" in departure.message
    kinds_in_log = [type(event).__name__ for event in report.events[1:]]
    assert kinds_in_log == ["RoleAssigned", "OwnershipAcknowledged", "PhaseChanged"]


def test_entries_of_one_moment_keep_their_file_order() -> None:
    report = run(
        [
            entry("09:01", "alice", "assign", role="lead", person="bob"),
            entry("09:01", "bob", "acknowledge"),
        ]
    )

    assert report.ok


def test_an_entry_recorded_long_after_it_happened_is_backdated() -> None:
    late = entry("09:01", "alice", "assign", role="lead", person="bob", recorded_at=t("09:30"))
    on_time = entry("09:02", "bob", "acknowledge", recorded_at=t("09:10"))
    report = run([late, on_time])

    (departure,) = report.departures
    assert (departure.kind, departure.entry, departure.name) == ("backdated", 0, "recorded_at")
    assert "29 minutes" in departure.message


def test_the_backdate_tolerance_can_be_changed() -> None:
    entries = [entry("09:02", "bob", "page", target="delivery team", recorded_at=t("09:10"))]

    assert run(entries).ok
    strict = run(entries, backdate_tolerance=timedelta(minutes=5))
    assert [d.kind for d in strict.departures] == ["backdated"]


def test_a_negative_backdate_tolerance_is_refused() -> None:
    timeline = parse_timeline(json.dumps(document([])), format="json")

    with pytest.raises(InvalidFieldError, match="backdate_tolerance"):
        audit(timeline, backdate_tolerance=timedelta(minutes=-1))


def test_an_entry_before_the_declaration_is_reported_and_replayed_at_the_declaration() -> None:
    report = run([entry("08:50", "alice", "page", target="delivery team")], declared_at="09:00")

    (departure,) = report.departures
    assert (departure.kind, departure.at) == ("before_declaration", at("08:50"))
    (page,) = report.incident.pages
    assert page.at == at("09:00")


def test_an_unknown_action_is_reported_with_the_known_ones_and_the_replay_goes_on() -> None:
    report = run(
        [
            entry("09:01", "alice", "asign", role="lead", person="bob"),
            entry("09:02", "alice", "assign", role="lead", person="bob"),
        ]
    )

    (departure,) = report.departures
    assert (departure.kind, departure.name, departure.entry) == ("unknown_action", "asign", 0)
    assert "did you mean 'assign'?" in departure.message
    assert "post_status_update" in departure.message
    assert report.incident.lead == "bob"


def test_an_unknown_role_is_reported_with_the_known_ones_and_the_replay_goes_on() -> None:
    report = run(
        [
            entry("09:01", "alice", "assign", role="commander", person="bob"),
            entry("09:02", "alice", "assign", role="lead", person="bob"),
        ]
    )

    (departure,) = report.departures
    assert (departure.kind, departure.name) == ("unknown_role", "role")
    assert "'commander'" in departure.message
    assert "messenger" in departure.message
    assert report.incident.lead == "bob"


def test_an_unknown_status_phase_is_reported_with_the_known_ones_and_the_replay_goes_on() -> None:
    report = run(
        [
            entry("09:05", "bob", "post_status_update", text=GOOD_FIRST_POST, phase="fixing"),
            entry("09:06", "bob", "post_status_update", text=GOOD_FIRST_POST, phase="identified"),
        ]
    )

    (departure,) = report.departures
    assert (departure.kind, departure.name) == ("unknown_phase", "phase")
    assert "identified, investigating, resolved" in departure.message
    assert len(report.incident.status_updates) == 1


def test_an_unknown_checklist_item_is_reported_with_the_known_ones_and_the_replay_goes_on() -> None:
    unknown = entry("10:05", "bob", "complete_item", item="write_postmortem")
    entries = [*CONFORMING[:11], unknown, *CONFORMING[11:]]
    report = run(entries)

    (departure,) = report.departures
    assert (departure.kind, departure.name, departure.entry) == ("unknown_item", "item", 11)
    assert "generate_postmortem_doc" in departure.message
    assert report.incident.phase == "closed"


def test_an_empty_status_text_is_an_invalid_entry_and_the_replay_goes_on() -> None:
    report = run(
        [
            entry("09:05", "bob", "post_status_update", text="   ", phase="identified"),
            entry("09:06", "bob", "triage"),
        ]
    )

    (departure,) = report.departures
    assert (departure.kind, departure.name, departure.entry) == ("invalid", "text", 0)
    assert "must not be empty" in departure.message
    assert report.incident.phase == "triaged"


def test_a_downgrade_to_minor_is_an_invalid_entry() -> None:
    report = run([entry("09:05", "bob", "change_severity", severity="minor")])

    assert kinds(report) == [("invalid", "severity")]
    assert "support" in report.departures[0].message


def test_acknowledge_page_names_a_page_by_its_id_or_its_target() -> None:
    report = run(
        [
            entry("09:01", "bob", "page", target="delivery team"),
            entry("09:02", "bob", "page", target="support"),
            entry("09:03", "dave", "acknowledge_page", page="page-2"),
            entry("09:04", "erin", "acknowledge_page", page="support"),
        ]
    )

    assert report.ok
    assert [(p.target, p.acknowledged_by) for p in report.incident.pages] == [
        ("delivery team", "dave"),
        ("support", "erin"),
    ]


def test_acknowledging_a_page_that_does_not_exist_is_refused() -> None:
    report = run([entry("09:01", "dave", "acknowledge_page", page="ops")])

    assert kinds(report) == [("refused", "page_open")]


def test_a_teams_own_action_is_replayed_with_its_arguments() -> None:
    process = HANDBOOK.with_phase(
        PhaseSpec("monitoring", "Monitoring", active=True),
        Transition("monitor", "mitigating", "monitoring"),
        Transition("resolve", "monitoring", "resolved", guards=("actor_is_lead",)),
    )
    report = run(
        [*MITIGATING, entry("09:12", "bob", "monitor", reason="waiting for the error rate")],
        process=process,
    )

    assert report.ok
    assert report.incident.phase == "monitoring"
    (action,) = report.incident.team_actions
    assert dict(action.arguments) == {"reason": "waiting for the error rate"}


def test_a_teams_own_action_is_unknown_to_the_handbook() -> None:
    report = run([*MITIGATING, entry("09:12", "bob", "monitor", reason="waiting")])

    assert kinds(report) == [("unknown_action", "monitor")]


# -- reading files: errors name the line and the field ---------------------------------------------

YAML_TEXT = textwrap.dedent(
    """\
    incident:
      title: Search is down
      severity: critical
      customer_impact: true
      declared_at: 2024-05-14T09:00:00Z
      declared_by: alice
    timeline:
      - at: 2024-05-14T09:01:00Z
        by: alice
        action: assign
        role: lead
        person: bob
      - at: 2024-05-14T09:02:00Z
        by: bob
        action: acknowledge
    """
)


def test_yaml_entries_know_their_lines() -> None:
    timeline = parse_timeline(YAML_TEXT, format="yaml")

    assert [e.line for e in timeline.entries] == [8, 13]
    assert timeline.incident.line == 2
    report = audit(
        parse_timeline(YAML_TEXT.replace("bob\n    action: ack", "carol\n    action: ack"))
    )
    assert [(d.kind, d.line) for d in report.departures] == [("refused", 13)]


def test_a_naive_time_in_yaml_names_its_line_and_says_to_add_a_zone() -> None:
    text = YAML_TEXT.replace("2024-05-14T09:02:00Z", "2024-05-14T09:02:00")

    with pytest.raises(TimelineError) as raised:
        parse_timeline(text)

    error = raised.value
    assert (error.line, error.field) == (13, "timeline[1].at")
    assert "add Z or +00:00" in str(error)
    assert str(error).startswith("line 13: timeline[1].at:")


def test_a_naive_declaration_time_is_refused() -> None:
    text = YAML_TEXT.replace("declared_at: 2024-05-14T09:00:00Z", "declared_at: 2024-05-14 09:00")

    with pytest.raises(TimelineError, match=r"line 5: incident\.declared_at: .*add Z or \+00:00"):
        parse_timeline(text)


def test_a_date_without_a_time_is_refused() -> None:
    text = YAML_TEXT.replace("2024-05-14T09:02:00Z", "2024-05-14")

    with pytest.raises(TimelineError, match="is a date; give the time and its zone"):
        parse_timeline(text)


def test_a_time_that_is_not_iso_8601_is_refused() -> None:
    text = YAML_TEXT.replace("2024-05-14T09:02:00Z", "9am EST")

    with pytest.raises(TimelineError, match="not an ISO 8601 time") as raised:
        parse_timeline(text)
    assert raised.value.line == 13


def test_a_yaml_syntax_error_names_its_line() -> None:
    text = YAML_TEXT.replace("    action: acknowledge", "    action: [acknowledge")

    with pytest.raises(TimelineError, match="not valid YAML") as raised:
        parse_timeline(text)
    assert raised.value.line is not None
    assert raised.value.line >= 15


def test_a_missing_field_names_its_entry_and_line() -> None:
    text = YAML_TEXT.replace("    person: bob\n", "")

    with pytest.raises(TimelineError, match=r"timeline\[0\]\.person: is missing") as raised:
        parse_timeline(text)
    assert raised.value.line == 8


def test_an_unknown_field_is_refused_with_the_nearest_name() -> None:
    text = YAML_TEXT.replace("    person: bob", "    persn: bob")

    with pytest.raises(TimelineError, match="did you mean 'person'") as raised:
        parse_timeline(text)
    assert (raised.value.line, raised.value.field) == (12, "timeline[0].persn")


def test_a_key_given_twice_is_refused() -> None:
    text = YAML_TEXT.replace("    role: lead\n", "    role: lead\n    role: messenger\n")

    with pytest.raises(TimelineError, match="'role' appears twice") as raised:
        parse_timeline(text)
    assert raised.value.line == 12


JSON_TEXT = json.dumps(
    document(
        [
            entry("09:01", "alice", "assign", role="lead", person="bob"),
            entry("09:02", "bob", "acknowledge"),
            entry("09:03", "bob", "triage"),
        ]
    ),
    indent=2,
)


def json_line(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_json_entries_know_their_lines() -> None:
    timeline = parse_timeline(JSON_TEXT, format="json")

    assert [e.line for e in timeline.entries] == [
        json_line(JSON_TEXT, '"at": "2024-05-14T09:0' + str(n)) - 1 for n in (1, 2, 3)
    ]


def test_a_json_field_error_names_the_field_and_its_line() -> None:
    text = JSON_TEXT.replace('"2024-05-14T09:02:00Z"', '"2024-05-14T09:02:00"')

    with pytest.raises(TimelineError) as raised:
        parse_timeline(text, format="json")

    assert raised.value.field == "timeline[1].at"
    assert raised.value.line == json_line(text, '"2024-05-14T09:02:00"')
    assert "add Z or +00:00" in str(raised.value)


def test_a_json_syntax_error_names_its_line_and_column() -> None:
    text = JSON_TEXT.replace('"action": "triage"', '"action": "triage",')

    with pytest.raises(TimelineError, match=r"not valid JSON: .*\(column \d+\)") as raised:
        parse_timeline(text, format="json")
    assert raised.value.line == json_line(text, '"action": "triage",') + 1


def test_a_json_key_given_twice_is_refused() -> None:
    text = JSON_TEXT.replace('"action": "triage"', '"action": "triage", "by": "carol"')

    with pytest.raises(TimelineError, match="'by' appears twice") as raised:
        parse_timeline(text, format="json")
    assert raised.value.line == json_line(text, '"by": "carol"')


@pytest.mark.parametrize(
    ("value", "shown"),
    [(42, "int 42"), (["a"], "a list"), ({"a": "b"}, "a mapping"), (None, "is missing")],
)
def test_a_status_text_that_is_not_a_string_is_a_file_error(value: object, shown: str) -> None:
    data = document([entry("09:05", "bob", "post_status_update", text=value, phase="identified")])

    with pytest.raises(TimelineError, match=re.escape(shown)) as raised:
        parse_timeline(json.dumps(data), format="json")
    assert raised.value.field == "timeline[0].text"


def test_an_unquoted_yaml_number_is_refused_with_a_hint_to_quote_it() -> None:
    text = YAML_TEXT + "  - at: 2024-05-14T09:03:00Z\n    by: bob\n    action: pause_release\n"
    text += "    release: 5.4\n"

    with pytest.raises(TimelineError, match=r"must be a string \(quote it\), not float 5.4"):
        parse_timeline(text)


def test_succeeded_must_be_a_flag() -> None:
    data = document([entry("09:05", "bob", "record_rollback", outcome="x", succeeded="yes")])

    with pytest.raises(TimelineError, match="succeeded: must be true, false or null"):
        parse_timeline(json.dumps(data), format="json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"severity": "minor"}, "incident.severity: minor"),
        ({"severity": "sev0"}, "incident.severity: unknown severity"),
        ({"customer_impact": "yes"}, "incident.customer_impact: must be true or false"),
        ({"title": ""}, "incident.title: must not be empty"),
    ],
)
def test_a_malformed_declaration_is_a_file_error(change: dict[str, Any], message: str) -> None:
    data = document([])
    data["incident"].update(change)

    with pytest.raises(TimelineError, match=re.escape(message)):
        parse_timeline(json.dumps(data), format="json")


def test_a_title_the_process_refuses_is_a_file_error() -> None:
    data = document([])
    data["incident"]["title"] = "x" * 201

    with pytest.raises(TimelineError, match=r"incident\.title: title is 201 characters"):
        audit(parse_timeline(json.dumps(data), format="json"))


def test_recorded_at_before_at_is_refused() -> None:
    data = document([entry("09:05", "bob", "triage", recorded_at=t("09:00"))])

    with pytest.raises(TimelineError, match=r"recorded_at: .* is before the entry's at"):
        parse_timeline(json.dumps(data), format="json")


def test_audit_until_before_the_last_entry_is_refused() -> None:
    data = document([entry("09:05", "bob", "triage")], audit_until=t("09:04"))

    with pytest.raises(TimelineError, match=r"audit_until: .* is before the timeline's last"):
        parse_timeline(json.dumps(data), format="json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "the file must be a mapping"),
        ('{"incident": {}}', "incident.title: is missing"),
        ('{"timeline": []}', "incident: is missing"),
        ('{"incident": 3, "timeline": []}', "incident must be a mapping"),
        (json.dumps({**document([]), "timeline": {}}), "timeline: must be a list"),
        (json.dumps({**document([]), "extra": 1}), "extra: unknown field of a timeline file"),
        (json.dumps(document(["assign"])), "timeline[0] must be a mapping"),
    ],
)
def test_a_file_of_the_wrong_shape_is_refused(text: str, message: str) -> None:
    with pytest.raises(TimelineError, match=re.escape(message)):
        parse_timeline(text, format="json")


def test_too_many_entries_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_module, "MAX_ENTRIES", 2)

    with pytest.raises(TimelineError, match="has 3 entries; an audit reads at most 2"):
        parse_timeline(JSON_TEXT, format="json")


def test_too_large_a_text_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_module, "MAX_BYTES", 100)

    with pytest.raises(TimelineError, match="larger than"):
        parse_timeline(JSON_TEXT, format="json")


def test_too_large_a_file_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.json"
    path.write_text(JSON_TEXT, encoding="utf-8")
    monkeypatch.setattr(audit_module, "MAX_BYTES", 100)

    with pytest.raises(TimelineError, match=r"big\.json is \d+ bytes; an audit reads at most 100"):
        load_timeline(path)


def test_a_missing_file_is_a_timeline_error(tmp_path: Path) -> None:
    with pytest.raises(TimelineError, match="cannot read"):
        load_timeline(tmp_path / "nowhere.yaml")


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(YAML_TEXT.replace("alice", "Zoë").encode("latin-1"))

    with pytest.raises(TimelineError, match="not UTF-8"):
        load_timeline(path)


def test_the_format_follows_the_suffix_or_else_the_first_character(tmp_path: Path) -> None:
    for name, text in (("a.txt", JSON_TEXT), ("b.txt", YAML_TEXT), ("c.yml", YAML_TEXT)):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        timeline = load_timeline(path)
        assert timeline.source == str(path)
        assert timeline.entries[0].action == "assign"
    with pytest.raises(InvalidFieldError, match="format must be"):
        parse_timeline(JSON_TEXT, format="xml")


def test_times_with_an_offset_are_kept_as_the_same_instant_in_utc() -> None:
    text = YAML_TEXT.replace("2024-05-14T09:01:00Z", "2024-05-14T11:01:00+02:00")

    timeline = parse_timeline(text)
    assert timeline.entries[0].at == at("09:01")
    assert timeline.entries[0].at.tzinfo == UTC


# -- the report ------------------------------------------------------------------------------------


def test_departures_come_in_time_order() -> None:
    report = audit_file(EXAMPLE_YAML)

    times = [d.at for d in report.departures]
    assert times == sorted(times)


def test_to_text_has_the_header_the_verdict_the_departures_and_a_summary() -> None:
    report = run(
        [
            entry("09:01", "alice", "assign", role="lead", person="bob"),
            entry("09:02", "bob", "assign", role="messenger", person="bob"),
            entry("09:03", "bob", "resolve"),
        ]
    )

    text = report.to_text()
    lines = text.splitlines()
    assert lines[0] == "Audit of <string>"
    assert lines[1] == "Incident inc-replay: Search is down"
    assert "critical, customer impact; declared 2024-05-14 09:00 UTC; now identified" in text
    assert "3 timeline entries replayed" in text
    assert "Verdict: 2 departures from the process" in text
    assert "2024-05-14" in lines
    # The JSON of run() is on one line.
    assert (
        "  09:02 UTC  [warning] assign (timeline[1], line 1): distinct_lead_and_messenger" in lines
    )
    assert "  09:03 UTC  [refused] resolve (timeline[2], line 1): phase" in lines
    assert (
        "             handbook: How to identify folks to serve in incident lead and messenger roles"
        in lines
    )
    assert lines[-1] == "Summary: 1 refused, 1 warning"


def test_to_text_of_a_conforming_incident_says_so() -> None:
    text = run(CONFORMING).to_text()

    assert text.splitlines()[-1] == "Verdict: the incident followed the process (no departures)"
    assert "now closed" in text


def test_to_dict_round_trips_through_json() -> None:
    report = audit_file(EXAMPLE_YAML)

    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert list(data) == [
        "source",
        "ok",
        "entries",
        "events",
        "incident",
        "summary",
        "departures",
    ]
    assert list(data["summary"]) == list(KINDS)
    assert data["incident"]["declared_at"] == "2024-05-14T09:02:00Z"
    first = data["departures"][0]
    assert list(first) == [
        "kind",
        "at",
        "message",
        "line",
        "entry",
        "action",
        "name",
        "handbook_ref",
    ]
    assert first["at"].endswith("Z")


def test_departure_to_dict_writes_times_in_utc_with_z() -> None:
    moment = datetime(2024, 5, 14, 11, 0, tzinfo=UTC).astimezone()
    departure = Departure("reminder", moment, "late", name="status_update_due")

    assert departure.to_dict()["at"] == "2024-05-14T11:00:00Z"


# -- the example files -----------------------------------------------------------------------------

EXAMPLE_DEPARTURES = [
    ("warning", "distinct_lead_and_messenger", at("09:06"), 2),
    ("refused", "comms:utc_only", at("09:10"), 4),
    ("refused", "comms:first_post_names_support", at("09:12"), 6),
    ("reminder", "page_unacknowledged", at("09:18"), None),
    ("out_of_order", None, at("09:22"), 10),
    ("backdated", "recorded_at", at("09:30"), 11),
    ("reminder", "status_update_due", at("09:44"), None),
    ("finding", "comms:no_regional_words", at("10:15"), 17),
]


def test_the_yaml_example_reports_its_departures() -> None:
    report = audit_file(EXAMPLE_YAML)

    assert [(d.kind, d.name, d.at, d.entry) for d in report.departures] == EXAMPLE_DEPARTURES
    assert report.incident.phase == "closed"
    assert report.incident.severity == "major"
    assert not any(item.is_open for item in report.incident.checklist)
    assert len(report.incident.follow_ups) == 2
    example = EXAMPLE_YAML.read_text(encoding="utf-8").splitlines()
    for departure in report.departures:
        if departure.line is not None:
            assert example[departure.line - 1].strip().startswith("- at:")


def test_the_yaml_example_uses_every_kind_of_handbook_step_but_reopen_and_false_positive() -> None:
    timeline = load_timeline(EXAMPLE_YAML)

    used = {e.action for e in timeline.entries}
    assert used == set(HANDBOOK.actions) - {"reopen", "mark_false_positive"}


def test_the_json_example_follows_the_process() -> None:
    report = audit_file(EXAMPLE_JSON)

    assert report.ok, report.to_text()
    assert report.incident.phase == "closed"


def test_the_docs_show_the_yaml_example_and_its_report_as_they_are() -> None:
    doc = DOC.read_text(encoding="utf-8")
    example = re.search(
        r"<!-- example:start -->\n```yaml\n(.*?)```\n<!-- example:end -->", doc, re.S
    )
    report = re.search(r"<!-- report:start -->\n```text\n(.*?)```\n<!-- report:end -->", doc, re.S)

    assert example is not None
    assert report is not None
    text = EXAMPLE_YAML.read_text(encoding="utf-8")
    assert example.group(1) == text
    timeline = parse_timeline(text, source="examples/timeline.yaml")
    assert report.group(1) == audit(timeline).to_text()


def test_the_docs_json_report_is_the_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    block = re.search(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block is not None

    shown = json.loads(block.group(1))
    data = audit_file("examples/timeline.yaml").to_dict()
    assert shown == {**data, "departures": data["departures"][:1]}
    assert len(data["departures"]) == 8


def test_the_docs_python_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert blocks

    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {})


def test_the_docs_error_example_is_the_error_the_example_file_would_raise() -> None:
    text = EXAMPLE_YAML.read_text(encoding="utf-8")
    broken = text.replace("at: 2024-05-14T09:06:00Z", "at: 2024-05-14T09:06:00")

    with pytest.raises(TimelineError) as raised:
        parse_timeline(broken)
    shown = " ".join(DOC.read_text(encoding="utf-8").split())
    assert f"`{raised.value}`" in shown


# -- a property: what the flow allowed, the audit allows -------------------------------------------

# The sequences are drawn by the process's guards alone; a first post drawn from the resolved
# template names no support address, so here that communication rule records instead of
# refusing, and every drawn sequence is one the flow allows.
PROPERTY_PROCESS = HANDBOOK.with_comms(
    HANDBOOK.comms.with_decision("first_post_names_support", "record")
)


def timeline_of(history: Sequence[ev.Event]) -> dict[str, Any]:
    """A timeline file's content for an incident's recorded history."""
    declared = history[0]
    assert isinstance(declared, ev.IncidentDeclared)
    entries: list[dict[str, Any]] = []
    effect: str | None = None  # the action of the event just before, when it had an effect

    def add(event: ev.Event, action: str, **arguments: Any) -> None:
        nonlocal effect
        stamp = event.at.isoformat().replace("+00:00", "Z")
        entries.append({"at": stamp, "by": event.actor, "action": action, **arguments})
        effect = action

    for event in history[1:]:
        match event:
            case ev.RoleAssigned():
                add(event, "assign", role=event.role, person=event.person)
            case ev.OwnershipAcknowledged():
                add(event, "acknowledge")
            case ev.PageSent():
                add(event, "page", target=event.target, message=event.message)
            case ev.PageAcknowledged():
                page = next(
                    p for p in history if isinstance(p, ev.PageSent) and p.page_id == event.page_id
                )
                assert isinstance(page, ev.PageSent)
                add(event, "acknowledge_page", page=page.target)
            case ev.RollbackRecorded():
                add(event, "record_rollback", outcome=event.outcome, succeeded=event.succeeded)
            case ev.ReleasePaused():
                add(event, "pause_release", release=event.release)
            case ev.ReleaseResumed():
                add(event, "resume_release", release=event.release)
            case ev.StatusUpdatePosted():
                add(event, "post_status_update", text=event.text, phase=event.status_phase)
            case ev.SeverityChanged():
                add(event, "change_severity", severity=str(event.severity))
            case ev.FalsePositiveMarked():
                add(event, "mark_false_positive", reason=event.reason)
            case ev.FollowUpAdded():
                add(event, "add_follow_up", title=event.title, owner=event.owner)
            case ev.ChecklistItemCompleted():
                add(event, "complete_item", item=event.item, link=event.link)
            case ev.ChecklistItemWaived():
                add(event, "waive_item", item=event.item, reason=event.reason)
            case ev.ActionTaken():
                add(event, event.action, **event.arguments)
            case ev.PhaseChanged():
                if event.action != effect:
                    add(event, event.action)
                effect = None
            case _:
                pass  # warnings and reminders: what the process records on its own
    return {
        "incident": {
            "id": declared.incident_id,
            "title": declared.title,
            "severity": str(declared.severity),
            "customer_impact": declared.customer_impact,
            "description": declared.description,
            "declared_at": declared.at.isoformat(),
            "declared_by": declared.actor,
        },
        "timeline": entries,
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=command_sequences(PROPERTY_PROCESS, max_steps=20),
    gaps=st.lists(st.integers(min_value=0, max_value=25), min_size=20, max_size=20),
)
def test_what_the_flow_allowed_the_audit_allows(path: CommandPath, gaps: list[int]) -> None:
    clock = FakeClock(datetime(2024, 5, 14, 9, 0, tzinfo=UTC))
    with IncidentFlow(
        process=PROPERTY_PROCESS, clock=clock, entry_points=False, deliver=False, reminders=False
    ) as flow:
        incident = path.declaration.run(flow, "inc-property")
        for step, gap in zip(path.steps, gaps, strict=False):
            clock.advance(minutes=gap)
            incident = step.command.run(flow, incident.id)
        history = flow.history(incident.id)

    timeline = parse_timeline(json.dumps(timeline_of(history)), format="json")
    report = audit(timeline, PROPERTY_PROCESS)

    unexpected = [d for d in report.departures if d.kind not in ("reminder", "warning", "finding")]
    assert unexpected == [], report.to_text()
    assert report.incident.phase == incident.phase
    assert report.incident.roles == incident.roles
    assert len(report.incident.status_updates) == len(incident.status_updates)
    warnings = [(w.name, w.at) for w in incident.warnings]
    assert [(w.name, w.at) for w in report.incident.warnings] == warnings


def test_the_timeline_type_is_checked() -> None:
    with pytest.raises(InvalidFieldError, match="timeline must be a Timeline"):
        audit("examples/timeline.yaml")  # type: ignore[arg-type]
    assert isinstance(load_timeline(EXAMPLE_JSON), Timeline)

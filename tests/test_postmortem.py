"""The post-mortem document: figures read from the log, and the Markdown written from them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incident_flow import (
    HANDBOOK,
    FakeClock,
    IncidentFlow,
    PhaseSpec,
    Process,
    Role,
    Severity,
    Transition,
)
from incident_flow.errors import CorruptEventError, InvalidFieldError
from incident_flow.events import Event, PhaseChanged
from incident_flow.postmortem import (
    PostMortem,
    build_postmortem,
    format_duration,
    render_postmortem,
)
from incident_flow.testing.paths import Path
from incident_flow.testing.strategies import command_sequences
from tests.conftest import START

FIRST_POST = (
    "Identified: We are aware of an issue with search and are investigating. "
    "Questions: support@sourcegraph.com."
)
RESOLVED_POST = "Resolved: We have resolved the issue and will conduct a postmortem."
DOC_LINK = "https://drive.example.com/incidents/search-down"
HEADINGS = [
    "# Post-mortem: Search is down",
    "## Severity and impact",
    "## Roles",
    "## Key times",
    "### Pages",
    "## Timeline (UTC)",
    "## Status posts",
    "## Rollbacks and releases",
    "## Reminders",
    "## Warnings",
    "## Post-mortem checklist",
    "## Follow-ups",
    "## Time in each phase",
]
TASK = re.compile(
    r"^    (?P<name>[^:#;\n]+?) :(?P<milestone>milestone, )?(?P<id>p\d+), "
    r"(?P<start>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d), (?P<end>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)$"
)


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def full_incident(flow: IncidentFlow, clock: FakeClock) -> str:
    """A handbook incident from declaration to close, one step after another.

    Declared 09:00 (major), lead bob 09:02, "I'm on it" 09:04, messenger bob (a warning) then
    carol, page 09:06 answered 09:26 after one escalation, critical 09:10, first post 09:12,
    release paused 09:15, rollback 09:31, resolved 10:13, post-mortem 10:28, closed 10:33.
    """
    incident = flow.declare(
        "Search is down",
        severity=Severity.MAJOR,
        customer_impact=True,
        by="alice",
        description="Every search returns an error.",
    )
    i = incident.id
    clock.set(at(2))
    flow.assign(i, Role.LEAD, "bob", by="alice")
    clock.set(at(4))
    flow.acknowledge(i, by="bob")
    flow.assign(i, Role.MESSENGER, "bob", by="bob")
    clock.set(at(5))
    flow.assign(i, Role.MESSENGER, "carol", by="bob")
    clock.set(at(6))
    flow.page(i, "delivery team", by="bob", message="search is down, please help")
    clock.set(at(7))
    flow.triage(i, by="bob")
    clock.set(at(8))
    flow.start_mitigation(i, by="bob")
    clock.set(at(10))
    flow.change_severity(i, Severity.CRITICAL, by="bob")
    clock.set(at(12))
    flow.post_status_update(i, FIRST_POST, phase="identified", by="carol")
    clock.set(at(15))
    flow.pause_release(i, release="3.30", by="bob")
    clock.set(at(24))
    flow.fire_reminders(i)  # the page escalates (due 09:16)
    clock.set(at(26))
    flow.acknowledge_page(i, by="dave")
    clock.set(at(31))
    flow.record_rollback(i, by="bob", outcome="rolled back to 3.29", succeeded=True)
    clock.set(at(61))
    flow.fire_reminders(i)  # a status update is due (09:42)
    clock.set(at(71))
    flow.post_status_update(i, RESOLVED_POST, phase="resolved", by="carol")
    clock.set(at(73))
    flow.resolve(i, by="bob")
    clock.set(at(78))
    flow.resume_release(i, release="3.30", by="bob")
    clock.set(at(88))
    flow.start_postmortem(i, by="bob")
    flow.add_follow_up(i, "Add an alert on search latency", by="bob", owner="dave")
    for minute, item in enumerate(
        ["update_status", "confirm_messenger_updates", "close_github_issues"], start=89
    ):
        clock.set(at(minute))
        flow.complete_item(i, item, by="bob")
    clock.set(at(92))
    flow.complete_item(i, "generate_postmortem_doc", by="bob", link=DOC_LINK)
    flow.complete_item(i, "create_followup_issues", by="bob")
    flow.waive_item(i, "schedule_retrospective", reason="the cause is well understood", by="bob")
    clock.set(at(93))
    flow.close(i, by="bob")
    return i


def mitigating(flow: IncidentFlow, clock: FakeClock, **declare: object) -> str:
    """Declared at 09:00; lead bob (09:01, "I'm on it" 09:02), messenger carol; mitigating at
    09:03."""
    incident = flow.declare(
        str(declare.get("title", "Search is down")),
        severity=Severity.CRITICAL,
        customer_impact=True,
        by="alice",
    )
    i = incident.id
    clock.set(at(1))
    flow.assign(i, Role.LEAD, "bob", by="alice")
    clock.set(at(2))
    flow.acknowledge(i, by="bob")
    flow.assign(i, Role.MESSENGER, "carol", by="bob")
    clock.set(at(3))
    flow.start_mitigation(i, by="bob")
    return i


def section(markdown: str, heading: str) -> str:
    """The text under ``heading``, up to the next heading of its level or above (the title's
    text ends at the first section)."""
    level = max(len(heading.split(" ", 1)[0]), 2)
    lines = markdown.splitlines()
    start = lines.index(heading) + 1
    end = next(
        (
            index
            for index in range(start, len(lines))
            if re.match(rf"#{{1,{level}}} ", lines[index])
        ),
        len(lines),
    )
    return "\n".join(lines[start:end]).strip()


def mermaid_block(markdown: str) -> list[str]:
    match = re.search(r"^```mermaid\n(.*?)\n```$", markdown, re.DOTALL | re.MULTILINE)
    assert match is not None
    return match.group(1).splitlines()


def tasks(markdown: str) -> list[re.Match[str]]:
    lines = mermaid_block(markdown)
    assert lines[0] == "gantt"
    header = lines[1:5]
    assert header[0] == "    dateFormat YYYY-MM-DDTHH:mm:ss"
    assert header[1].startswith("    axisFormat %")
    assert header[2:] == ["    todayMarker off", "    section Phases"]
    found = []
    for line in lines[5:]:
        match = TASK.match(line)
        assert match is not None, line
        start = datetime.fromisoformat(match["start"])
        end = datetime.fromisoformat(match["end"])
        assert start <= end
        found.append(match)
    assert [m["id"] for m in found] == [f"p{n}" for n in range(1, len(found) + 1)]
    return found


def table_rows(text: str) -> list[list[str]]:
    """The cells of each table row in ``text``, split on pipes that are not escaped."""
    return [
        [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        for line in text.splitlines()
        if line.startswith("|")
    ]


def tables(text: str) -> list[list[list[str]]]:
    """Each table in ``text``, as its rows of cells."""
    blocks = re.findall(r"(?:^\|.*\n?)+", text, re.MULTILINE)
    return [table_rows(block) for block in blocks]


def assert_tables_are_square(markdown: str) -> None:
    """Every row of every table has as many cells as its header: no pipe left unescaped."""
    found = tables(markdown)
    assert found
    for table in found:
        assert len({len(row) for row in table}) == 1, table


@pytest.fixture
def done(flow: IncidentFlow, clock: FakeClock) -> tuple[PostMortem, str]:
    incident_id = full_incident(flow, clock)
    postmortem = build_postmortem(flow.history(incident_id))
    return postmortem, postmortem.to_markdown()


# -- a whole handbook incident -----------------------------------------------------------------


def test_sections_come_in_order(done: tuple[PostMortem, str]) -> None:
    _, markdown = done
    headings = [line for line in markdown.splitlines() if line.startswith("#")]
    assert headings == HEADINGS
    assert "## Other actions" not in markdown  # the handbook's actions only
    assert_tables_are_square(markdown)
    assert markdown.endswith("\n")


def test_render_is_build_then_to_markdown(flow: IncidentFlow, clock: FakeClock) -> None:
    incident_id = full_incident(flow, clock)
    events = flow.history(incident_id)
    assert render_postmortem(events) == build_postmortem(events, HANDBOOK).to_markdown()
    assert render_postmortem(events) == render_postmortem(tuple(events))  # same log, same text


def test_summary(done: tuple[PostMortem, str]) -> None:
    postmortem, markdown = done
    summary = section(markdown, "# Post-mortem: Search is down")
    incident = postmortem.incident
    assert f"Incident {incident.id}: severity **critical**, customer impact **yes**." in summary
    assert "Declared by alice at 2024-03-01 09:00 UTC." in summary
    assert "Resolved at 2024-03-01 10:13 UTC, 1 h 13 min after it was declared." in summary
    assert "Closed at 2024-03-01 10:33 UTC." in summary
    assert "> Every search returns an error." in summary.splitlines()
    assert "last at 2024-03-01 10:33 UTC" in summary
    assert "false positive" not in summary.lower()


def test_severity_and_impact(done: tuple[PostMortem, str]) -> None:
    _, markdown = done
    text = section(markdown, "## Severity and impact")
    assert "Severity: **critical** (declared major)." in text
    assert "- 2024-03-01 09:10 UTC: bob raised the severity from major to critical" in text
    assert "Customer impact: **yes**" in text


def test_roles_every_holder_in_order(done: tuple[PostMortem, str]) -> None:
    postmortem, markdown = done
    rows = table_rows(section(markdown, "## Roles"))
    assert rows[0] == ["Role", "Person", "Assigned at", "By", "Notes"]
    assert rows[2] == [
        "Reporter",
        "alice",
        "2024-03-01 09:00 UTC",
        "alice",
        "declared the incident",
    ]
    assert rows[3] == [
        "Incident Lead",
        "bob",
        "2024-03-01 09:02 UTC",
        "alice",
        "acknowledged ownership at 2024-03-01 09:04 UTC",
    ]
    # The messenger was bob first (against the handbook's advice), then carol.
    assert rows[4] == [
        "Messenger",
        "bob",
        "2024-03-01 09:04 UTC",
        "bob",
        "until 2024-03-01 09:05 UTC",
    ]
    assert rows[5] == ["Messenger", "carol", "2024-03-01 09:05 UTC", "bob", "—"]
    assert rows[6] == ["Resolution owner", "not assigned", "—", "—", "—"]
    assert [h.person for h in postmortem.role_holdings] == ["alice", "bob", "bob", "carol"]


def test_key_times_are_exact(done: tuple[PostMortem, str]) -> None:
    postmortem, markdown = done
    assert postmortem.time_to_acknowledge == timedelta(minutes=4)
    assert postmortem.acknowledged_by == "bob"
    assert postmortem.mitigation_basis == "rollback"
    assert postmortem.time_to_mitigate == timedelta(minutes=31)
    assert postmortem.time_to_resolve == timedelta(minutes=73)
    rows = table_rows(section(markdown, "## Key times"))
    assert rows[2] == [
        "Time to acknowledge[^acknowledge]",
        "4 min",
        "2024-03-01 09:04 UTC: bob acknowledged ownership as Incident Lead",
    ]
    assert rows[3] == [
        "Time to mitigate (first successful rollback)[^mitigate]",
        "31 min",
        "2024-03-01 09:31 UTC: rollback by bob succeeded (rolled back to 3.29)",
    ]
    assert rows[4] == [
        "Time to resolve[^resolve]",
        "1 h 13 min",
        "2024-03-01 10:13 UTC: resolved by bob",
    ]
    footnotes = [line for line in markdown.splitlines() if line.startswith("[^")]
    assert [note.split(":", 1)[0] for note in footnotes] == [
        "[^acknowledge]",
        "[^mitigate]",
        "[^resolve]",
    ]
    assert "first rollback recorded as successful" in footnotes[1]
    assert "or to the resolution when it came first" in footnotes[1]


def test_pages_with_acknowledgement_and_escalations(done: tuple[PostMortem, str]) -> None:
    postmortem, markdown = done
    (timing,) = postmortem.page_timings
    assert timing.time_to_acknowledge == timedelta(minutes=20)
    assert timing.escalations == 1
    rows = table_rows(section(markdown, "### Pages"))
    assert rows[2] == [
        timing.page.id,
        "delivery team",
        "2024-03-01 09:06 UTC",
        "bob",
        "dave at 2024-03-01 09:26 UTC",
        "20 min",
        "1",
    ]


def test_timeline_one_sentence_per_event(done: tuple[PostMortem, str]) -> None:
    postmortem, markdown = done
    text = section(markdown, "## Timeline (UTC)")
    entries = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(entries) == len(postmortem.events)
    assert "All on 2024-03-01." in text
    page_id = postmortem.incident.pages[0].id
    for line in [
        "- 09:00 alice declared the incident (major, customer impact)",
        "- 09:02 alice assigned bob as Incident Lead",
        "- 09:04 bob acknowledged ownership as Incident Lead (“I'm on it”)",
        "- 09:04 bob took the role of Messenger",
        f"- 09:06 bob paged delivery team ({page_id}): “search is down, please help”",
        "- 09:07 bob moved the incident from Identified to Triaged (triage)",
        "- 09:10 bob raised the severity from major to critical",
        "- 09:15 bob paused release 3.30; groups to alert: @delivery-support, @cs, @ce",
        "- 09:15 reminder: release paused status post for 3.30 (messenger carol)",
        f"- 09:24 reminder: page unacknowledged for {page_id} (lead bob)",
        f"- 09:26 dave acknowledged {page_id} (to delivery team)",
        "- 09:31 bob recorded a rollback (succeeded): “rolled back to 3.29”",
        "- 10:01 reminder: status update due (messenger carol)",
        "- 10:13 bob moved the incident from Mitigating to Resolved (resolve); "
        "the incident is resolved",
        "- 10:18 bob resumed release 3.30",
        "- 10:33 bob moved the incident from Post-mortem to Closed (close); the incident is closed",
    ]:
        assert line in entries, line
    warning = next(line for line in entries if "warning:" in line)
    assert warning.startswith("- 09:04 warning: ")
    assert "lead and the messenger should be different people" in warning
    assert any(
        line.startswith("- 09:12 carol posted a status update (Identified): “Identified: We")
        for line in entries
    )


def test_status_posts_as_published(done: tuple[PostMortem, str]) -> None:
    _, markdown = done
    text = section(markdown, "## Status posts")
    assert "**1. 2024-03-01 09:12 UTC**, Identified, by carol:" in text
    assert f"> {FIRST_POST}" in text.splitlines()
    assert "**2. 2024-03-01 10:11 UTC**, Resolved, by carol:" in text
    assert f"> {RESOLVED_POST}" in text.splitlines()
    assert "Findings" not in text


def test_status_post_findings_are_listed(flow: IncidentFlow, clock: FakeClock) -> None:
    i = mitigating(flow, clock)
    clock.set(at(5))
    text = (
        "Investigating: we expect a fix today, 14:30 UTC.\n\n# Next update at 15:00 UTC.\n"
        "Questions: support@sourcegraph.com."
    )
    flow.post_status_update(i, text, phase="investigating", by="carol")
    markdown = render_postmortem(flow.history(i))
    posts = section(markdown, "## Status posts")
    assert "**1. 2024-03-01 09:05 UTC**, Investigating, by carol:" in posts
    assert (
        "> Investigating: we expect a fix today, 14:30 UTC.\n>\n> \\# Next update at 15:00 UTC.\n"
        "> Questions: support@sourcegraph.com."
    ) in posts
    assert "Findings:" in posts
    assert "- no_regional_words: 'today' depends on where the reader is" in posts
    assert "(“today”)" in posts
    timeline = section(markdown, "## Timeline (UTC)")
    assert "(1 finding)" in timeline


def test_rollbacks_and_releases(done: tuple[PostMortem, str]) -> None:
    _, markdown = done
    rows = table_rows(section(markdown, "## Rollbacks and releases"))
    assert rows[0] == ["When", "By", "Outcome", "Succeeded"]
    assert rows[2] == ["2024-03-01 09:31 UTC", "bob", "rolled back to 3.29", "yes"]
    assert rows[3] == ["Release", "Paused at", "By", "Groups alerted", "Resumed at", "By"]
    assert rows[5] == [
        "3.30",
        "2024-03-01 09:15 UTC",
        "bob",
        "@delivery-support, @cs, @ce",
        "2024-03-01 10:18 UTC",
        "bob",
    ]


def test_reminders_recorded(done: tuple[PostMortem, str]) -> None:
    postmortem, markdown = done
    rows = table_rows(section(markdown, "## Reminders"))
    assert rows[0] == ["Reminder", "About", "Due", "Recorded", "For", "Missed"]
    assert rows[2:] == [
        [
            "release paused status post",
            "3.30",
            "2024-03-01 09:15 UTC",
            "2024-03-01 09:15 UTC",
            "messenger carol",
            "0",
        ],
        [
            "page unacknowledged",
            postmortem.incident.pages[0].id,
            "2024-03-01 09:16 UTC",
            "2024-03-01 09:24 UTC",
            "lead bob",
            "0",
        ],
        [
            "status update due",
            "—",
            "2024-03-01 09:42 UTC",
            "2024-03-01 10:01 UTC",
            "messenger carol",
            "0",
        ],
    ]


def test_missed_reminders_are_counted(flow: IncidentFlow, clock: FakeClock) -> None:
    i = mitigating(flow, clock)
    clock.set(at(125))  # four half-hours without a status post
    flow.fire_reminders(i)
    postmortem = build_postmortem(flow.history(i))
    (reminder,) = postmortem.incident.reminders
    assert reminder.missed == 3
    markdown = postmortem.to_markdown()
    assert table_rows(section(markdown, "## Reminders"))[2][-1] == "3"
    assert "reminder: status update due (messenger carol, 3 missed before it)" in markdown


def test_checklist(done: tuple[PostMortem, str]) -> None:
    _, markdown = done
    assert section(markdown, "## Post-mortem checklist").splitlines() == [
        "- [x] Update the incident status and close — bob, 2024-03-01 10:29 UTC",
        "- [x] Confirm the messenger updated every customer channel, internal thread and "
        "social post — bob, 2024-03-01 10:30 UTC",
        "- [x] Update and close the relevant public GitHub issues — bob, 2024-03-01 10:31 UTC",
        "- [x] Generate the post-mortem document and publish it — bob, 2024-03-01 10:32 UTC, "
        f"[{DOC_LINK}](<{DOC_LINK}>)",
        "- [x] Create GitHub issues for follow-up work — bob, 2024-03-01 10:32 UTC",
        "- [~] Schedule a retrospective if you think it would be valuable (optional) — "
        "waived: the cause is well understood (bob, 2024-03-01 10:32 UTC)",
    ]


def test_follow_ups(done: tuple[PostMortem, str]) -> None:
    postmortem, markdown = done
    (follow_up,) = postmortem.incident.follow_ups
    assert section(markdown, "## Follow-ups") == (
        f"- {follow_up.id}: Add an alert on search latency (owner dave; added by bob at "
        "2024-03-01 10:28 UTC)"
    )


def test_time_in_each_phase(done: tuple[PostMortem, str]) -> None:
    postmortem, markdown = done
    found = tasks(markdown)
    assert [(m["name"], m["start"], m["end"]) for m in found] == [
        ("Identified", "2024-03-01T09:00:00", "2024-03-01T09:07:00"),
        ("Triaged", "2024-03-01T09:07:00", "2024-03-01T09:08:00"),
        ("Mitigating", "2024-03-01T09:08:00", "2024-03-01T10:13:00"),
        ("Resolved", "2024-03-01T10:13:00", "2024-03-01T10:28:00"),
        ("Post-mortem", "2024-03-01T10:28:00", "2024-03-01T10:33:00"),
        ("Closed", "2024-03-01T10:33:00", "2024-03-01T10:33:00"),
    ]
    assert found[-1]["milestone"]  # the terminal phase is a point in time
    assert not any(m["milestone"] for m in found[:-1])
    assert "    axisFormat %H:%M" in mermaid_block(markdown)
    assert postmortem.phase_spans[-1].end is None
    rows = table_rows(section(markdown, "## Time in each phase"))
    assert rows[0] == ["Phase", "Time spent", "Entered at"]
    assert rows[2:] == [
        ["Identified", "7 min", "2024-03-01 09:00 UTC"],
        ["Triaged", "1 min", "2024-03-01 09:07 UTC"],
        ["Mitigating", "1 h 5 min", "2024-03-01 09:08 UTC"],
        ["Resolved", "15 min", "2024-03-01 10:13 UTC"],
        ["Post-mortem", "5 min", "2024-03-01 10:28 UTC"],
        ["Closed", "— (final phase)", "2024-03-01 10:33 UTC"],
        ["**Total**", "**1 h 33 min**", "declared → last event"],
    ]


# -- other shapes of incident --------------------------------------------------------------------


def test_reopened_incident_has_two_mitigating_spans(flow: IncidentFlow, clock: FakeClock) -> None:
    i = mitigating(flow, clock)
    clock.set(at(10))
    flow.post_status_update(i, FIRST_POST, phase="identified", by="carol")
    clock.set(at(20))
    flow.resolve(i, by="bob")
    clock.set(at(30))
    flow.reopen(i, by="bob")
    clock.set(at(45))
    flow.record_rollback(i, by="bob", outcome="rolled back again", succeeded=True)
    clock.set(at(50))
    flow.resolve(i, by="bob")
    postmortem = build_postmortem(flow.history(i))
    mitigating_spans = [s for s in postmortem.phase_spans if s.phase == "mitigating"]
    assert [(s.start, s.end) for s in mitigating_spans] == [(at(3), at(20)), (at(30), at(50))]
    assert postmortem.time_in_phase["mitigating"] == timedelta(minutes=37)
    assert postmortem.time_in_phase["resolved"] == timedelta(minutes=10)  # 10 of them closed
    # The first resolution counts, and it came before the rollback: mitigated by then.
    assert postmortem.time_to_resolve == timedelta(minutes=20)
    assert postmortem.mitigation_basis == "resolution"
    assert postmortem.time_to_mitigate == timedelta(minutes=20)
    markdown = postmortem.to_markdown()
    assert [m["name"] for m in tasks(markdown)] == [
        "Identified",
        "Mitigating",
        "Resolved",
        "Mitigating",
        "Resolved",
    ]
    rows = table_rows(section(markdown, "## Time in each phase"))
    assert ["Mitigating", "37 min", "2024-03-01 09:03 UTC, 2024-03-01 09:30 UTC"] in rows
    assert ["Resolved", "10 min (still in it)", "2024-03-01 09:20 UTC, 2024-03-01 09:50 UTC"] in (
        rows
    )
    key = table_rows(section(markdown, "## Key times"))
    assert key[3] == [
        "Time to mitigate (resolution: no successful rollback before it)[^mitigate]",
        "20 min",
        "2024-03-01 09:20 UTC: resolved by bob",
    ]
    assert "- 09:30 bob moved the incident from Resolved to Mitigating (reopen)" in markdown


def test_open_incident_says_not_yet(flow: IncidentFlow, clock: FakeClock) -> None:
    incident = flow.declare(
        "Search is slow", severity=Severity.MAJOR, customer_impact=False, by="alice"
    )
    i = incident.id
    clock.set(at(3))
    flow.assign(i, Role.LEAD, "bob", by="alice")
    clock.set(at(5))
    flow.page(i, "delivery team", by="bob")
    clock.set(at(9))
    flow.pause_release(i, release="3.30", by="bob")
    postmortem = build_postmortem(flow.history(i))
    assert postmortem.time_to_acknowledge is None
    assert postmortem.time_to_mitigate is None
    assert postmortem.mitigation_basis is None
    assert postmortem.time_to_resolve is None
    assert postmortem.phase_spans[-1].end is None
    assert not postmortem.is_over
    markdown = postmortem.to_markdown()
    summary = section(markdown, "# Post-mortem: Search is slow")
    assert "Not yet resolved." in summary
    assert "Not yet closed: the incident is in the Identified phase." in summary
    assert "customer impact **no**" in summary
    assert "No description was given." in summary
    key = table_rows(section(markdown, "## Key times"))
    assert key[2] == ["Time to acknowledge[^acknowledge]", "not yet", "—"]
    assert key[3] == [
        "Time to mitigate (first successful rollback, else resolution)[^mitigate]",
        "not yet",
        "—",
    ]
    assert key[4] == ["Time to resolve[^resolve]", "not yet", "—"]
    assert table_rows(section(markdown, "### Pages"))[2][4:] == ["not yet", "not yet", "0"]
    assert table_rows(section(markdown, "## Roles"))[3][-1] == (
        "has not yet acknowledged ownership"
    )
    assert table_rows(section(markdown, "## Rollbacks and releases"))[2][4:] == ["not yet", "—"]
    assert section(markdown, "## Status posts") == "None."
    assert "No rollback was recorded." in markdown
    reminders = table_rows(section(markdown, "## Reminders"))
    assert reminders[2][0] == "release paused status post"
    assert reminders[2][4] == "messenger, nobody assigned"
    assert section(markdown, "## Follow-ups") == "None recorded."
    assert "## Warnings" not in markdown
    checklist = section(markdown, "## Post-mortem checklist").splitlines()
    assert checklist[0] == "Not yet started: the checklist follows the resolution."
    assert all(line.startswith("- [ ] ") for line in checklist[2:])
    assert checklist[-1].endswith("(optional)")
    assert [m["end"] for m in tasks(markdown)] == ["2024-03-01T09:09:00"]  # the last event
    rows = table_rows(section(markdown, "## Time in each phase"))
    assert rows[2] == ["Identified", "9 min (still in it)", "2024-03-01 09:00 UTC"]


def test_false_positive(flow: IncidentFlow, clock: FakeClock) -> None:
    incident = flow.declare(
        "Search alert fired", severity=Severity.MAJOR, customer_impact=False, by="alice"
    )
    clock.set(at(12))
    flow.mark_false_positive(
        incident.id, reason="the probe hit a staging host | not production", by="alice"
    )
    postmortem = build_postmortem(flow.history(incident.id))
    assert postmortem.incident.false_positive
    assert postmortem.resolved_as_false_positive
    assert postmortem.time_to_resolve == timedelta(minutes=12)
    assert postmortem.time_to_mitigate is None
    assert postmortem.is_over
    markdown = postmortem.to_markdown()
    assert section(markdown, "## Reminders") == "None fell due."
    summary = section(markdown, "# Post-mortem: Search alert fired")
    assert (
        "Marked a **false positive** by alice at 2024-03-01 09:12 UTC, 12 min after it was "
        "declared: the probe hit a staging host \\| not production."
    ) in summary
    key = table_rows(section(markdown, "## Key times"))
    assert key[2] == ["Time to acknowledge[^acknowledge]", "never", "—"]
    assert key[3] == ["Time to mitigate[^mitigate]", "not applicable: a false positive", "—"]
    assert key[4] == [
        "Time to resolve[^resolve]",
        "12 min",
        "2024-03-01 09:12 UTC: marked a false positive by alice",
    ]
    assert "alice marked the incident a false positive: “the probe hit a staging host" in markdown
    assert [(m["name"], bool(m["milestone"])) for m in tasks(markdown)] == [
        ("Identified", False),
        ("False positive", True),
    ]


def test_acknowledgement_counts_the_lead_of_that_moment(
    flow: IncidentFlow, clock: FakeClock
) -> None:
    incident = flow.declare(
        "Search is down", severity=Severity.CRITICAL, customer_impact=False, by="alice"
    )
    i = incident.id
    clock.set(at(1))
    flow.assign(i, Role.LEAD, "bob", by="alice")
    clock.set(at(6))
    flow.assign(i, Role.LEAD, "dave", by="alice")  # bob never said "I'm on it"
    clock.set(at(9))
    flow.acknowledge(i, by="dave")
    clock.set(at(20))
    flow.assign(i, Role.LEAD, "erin", by="dave")
    clock.set(at(22))
    flow.acknowledge(i, by="erin")
    postmortem = build_postmortem(flow.history(i))
    assert postmortem.time_to_acknowledge == timedelta(minutes=9)
    assert postmortem.acknowledged_by == "dave"
    leads = [h for h in postmortem.role_holdings if h.role == Role.LEAD]
    assert [(h.person, h.acknowledged_at, h.until) for h in leads] == [
        ("bob", None, at(6)),
        ("dave", at(9), at(20)),
        ("erin", at(22), None),
    ]
    rows = table_rows(section(postmortem.to_markdown(), "## Roles"))
    assert [row[1] for row in rows[3:6]] == ["bob", "dave", "erin"]
    assert rows[3][4] == "never acknowledged ownership; until 2024-03-01 09:06 UTC"


def test_failed_rollback_does_not_mitigate(flow: IncidentFlow, clock: FakeClock) -> None:
    i = mitigating(flow, clock)
    clock.set(at(10))
    flow.record_rollback(i, by="bob", outcome="the rollback failed", succeeded=False)
    clock.set(at(12))
    flow.record_rollback(i, by="bob", outcome="no idea yet")
    clock.set(at(25))
    flow.record_rollback(i, by="bob", outcome="rolled back to 3.28", succeeded=True)
    postmortem = build_postmortem(flow.history(i))
    assert postmortem.time_to_mitigate == timedelta(minutes=25)
    assert postmortem.mitigation_basis == "rollback"
    rows = table_rows(section(postmortem.to_markdown(), "## Rollbacks and releases"))
    assert [row[3] for row in rows[2:]] == ["no", "unknown", "yes"]


def test_several_days_are_grouped(flow: IncidentFlow, clock: FakeClock) -> None:
    i = mitigating(flow, clock)
    clock.set(at(15 * 60))  # 2024-03-02 00:00
    flow.post_status_update(i, FIRST_POST, phase="identified", by="carol")
    clock.set(at(26 * 60 + 5))
    flow.resolve(i, by="bob")
    postmortem = build_postmortem(flow.history(i))
    assert postmortem.time_to_resolve == timedelta(hours=26, minutes=5)
    markdown = postmortem.to_markdown()
    timeline = section(markdown, "## Timeline (UTC)")
    assert "### 2024-03-01" in timeline
    assert "### 2024-03-02" in timeline
    assert timeline.index("### 2024-03-02") < timeline.index("- 00:00 carol posted")
    assert "All on" not in timeline
    assert "1 d 2 h 5 min" in section(markdown, "## Key times")
    assert "    axisFormat %d %b %H:%M" in mermaid_block(markdown)


def test_team_process_with_its_own_phase_and_action(clock: FakeClock) -> None:
    process = HANDBOOK.with_phase(
        PhaseSpec("monitoring", "Monitoring: watch #graphs", active=True),
        Transition("monitor", "mitigating", "monitoring"),
        Transition("resolve", "monitoring", "resolved", guards=("actor_is_lead",)),
        Transition("note", "monitoring"),
    ).with_roles(lead="Incident Commander")
    with IncidentFlow(process=process, clock=clock, entry_points=False, reminders=False) as flow:
        i = mitigating(flow, clock)
        clock.set(at(10))
        flow.post_status_update(i, FIRST_POST, phase="identified", by="carol")
        clock.set(at(20))
        flow.transition(i, "monitor", by="bob", dashboard="search | latency")
        clock.set(at(30))
        flow.transition(i, "note", by="bob")
        clock.set(at(50))
        flow.resolve(i, by="bob")
        events = flow.history(i)
    postmortem = build_postmortem(events, process)
    assert [span.phase for span in postmortem.phase_spans] == [
        "identified",
        "mitigating",
        "monitoring",
        "resolved",
    ]
    assert postmortem.time_in_phase["monitoring"] == timedelta(minutes=30)
    assert postmortem.time_to_resolve == timedelta(minutes=50)
    markdown = postmortem.to_markdown()
    timeline = section(markdown, "## Timeline (UTC)")
    assert "- 09:20 bob took the action monitor (dashboard=search \\| latency)" in timeline
    assert (
        "- 09:20 bob moved the incident from Mitigating to Monitoring: watch #graphs (monitor)"
        in timeline
    )
    assert "- 09:30 bob took the action note" in timeline
    assert "- 09:01 alice assigned bob as Incident Commander" in timeline
    assert section(markdown, "## Other actions").splitlines() == [
        "- 2024-03-01 09:20 UTC: bob took the action monitor (dashboard=search \\| latency)",
        "- 2024-03-01 09:30 UTC: bob took the action note",
    ]
    # The chart's task names lose what Mermaid would misread; the table keeps the title.
    assert [m["name"] for m in tasks(markdown)] == [
        "Identified",
        "Mitigating",
        "Monitoring watch graphs",
        "Resolved",
    ]
    assert ["Monitoring: watch #graphs", "30 min", "2024-03-01 09:20 UTC"] in table_rows(
        section(markdown, "## Time in each phase")
    )
    assert "active phases (Identified, Mitigating, Triaged" not in markdown
    assert "(Identified, Triaged, Mitigating, Monitoring: watch #graphs)" in markdown
    assert table_rows(section(markdown, "## Roles"))[3][0] == "Incident Commander"


def test_chart_task_names_never_read_as_keywords(clock: FakeClock) -> None:
    process = HANDBOOK.with_phase(
        PhaseSpec("title_review", "Title review", active=True),
        Transition("review", "mitigating", "title_review"),
        Transition("finish", "title_review", "resolved"),
    )
    with IncidentFlow(process=process, clock=clock, entry_points=False, reminders=False) as flow:
        i = mitigating(flow, clock)
        clock.set(at(5))
        flow.transition(i, "review", by="bob")
        events = flow.history(i)
    names = [m["name"] for m in tasks(render_postmortem(events, process))]
    assert names[-1] == "Phase Title review"


def test_user_text_is_escaped(flow: IncidentFlow, clock: FakeClock) -> None:
    incident = flow.declare(
        "# Search | *all* regions",
        severity=Severity.MAJOR,
        customer_impact=False,
        by="alice",
        description="# not a heading\n- not a list\n\n1. not a list either\n<b>raw</b> text",
    )
    i = incident.id
    clock.set(at(2))
    flow.assign(i, Role.LEAD, "bob|ops", by="alice")
    flow.acknowledge(i, by="bob|ops")
    clock.set(at(5))
    flow.record_rollback(i, by="bob|ops", outcome="reverted `a|b` to _v2_", succeeded=True)
    markdown = render_postmortem(flow.history(i))
    assert markdown.startswith("# Post-mortem: # Search \\| \\*all\\* regions\n")
    assert section(markdown, "# Post-mortem: # Search \\| \\*all\\* regions").splitlines()[2:7] == [
        "> \\# not a heading",
        "> \\- not a list",
        ">",
        "> 1\\. not a list either",
        "> \\<b\\>raw\\</b\\> text",
    ]
    rollbacks = section(markdown, "## Rollbacks and releases")
    assert "| bob\\|ops | reverted \\`a\\|b\\` to \\_v2\\_ | yes |" in rollbacks
    assert_tables_are_square(markdown)


# -- bad input -----------------------------------------------------------------------------------


def test_empty_log_is_refused() -> None:
    with pytest.raises(InvalidFieldError, match=r"flow\.history\(incident_id\)") as raised:
        build_postmortem([])
    assert raised.value.field == "events"


def test_log_not_starting_with_a_declaration_is_refused(
    flow: IncidentFlow, clock: FakeClock
) -> None:
    events = flow.history(mitigating(flow, clock))
    with pytest.raises(InvalidFieldError, match="not IncidentDeclared") as raised:
        render_postmortem(events[1:])
    assert raised.value.field == "events"
    assert "flow.history(incident_id)" in str(raised.value)


def test_other_bad_logs_are_refused(flow: IncidentFlow, clock: FakeClock) -> None:
    first = flow.history(mitigating(flow, clock))
    other = flow.declare("Other", severity=Severity.MAJOR, customer_impact=False, by="bob")
    flow.triage(other.id, by="bob")
    second = flow.history(other.id)
    with pytest.raises(InvalidFieldError, match="mixes incidents"):
        build_postmortem([*first, *second[1:]])
    with pytest.raises(InvalidFieldError, match="sequence of events"):
        build_postmortem(first[0].incident_id)  # type: ignore[arg-type]
    with pytest.raises(InvalidFieldError, match="not an event"):
        build_postmortem([first[0], "assign"])  # type: ignore[list-item]
    with pytest.raises(InvalidFieldError) as raised:
        build_postmortem(first, process="handbook")  # type: ignore[arg-type]
    assert raised.value.field == "process"
    with pytest.raises(InvalidFieldError, match="events is empty"):
        PostMortem(build_postmortem(first).incident, ())
    with pytest.raises(CorruptEventError):
        build_postmortem([first[0], *first[2:]])  # a version is missing


# -- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0 s"),
        (timedelta(seconds=40), "40 s"),
        (timedelta(minutes=4, seconds=59), "4 min"),
        (timedelta(hours=1), "1 h"),
        (timedelta(hours=1, minutes=12), "1 h 12 min"),
        (timedelta(days=2, hours=3), "2 d 3 h"),
        (timedelta(days=1, minutes=5), "1 d 5 min"),
        (-timedelta(minutes=3), "-3 min"),
    ],
)
def test_format_duration(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text


# -- any valid sequence of commands ------------------------------------------------------------


# The harness's posts for the resolved phase name no support address; as a first post that
# would be refused. Recording the finding instead lets every sequence run, findings and all.
SEQUENCES = HANDBOOK.with_comms(HANDBOOK.comms.with_decision("first_post_names_support", "record"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=command_sequences(SEQUENCES, max_steps=20),
    gaps=st.lists(st.integers(min_value=0, max_value=45), min_size=20, max_size=20),
)
def test_any_command_sequence_renders(path: Path, gaps: list[int]) -> None:
    clock = FakeClock(START)
    with IncidentFlow(
        process=SEQUENCES, clock=clock, entry_points=False, reminders=False, deliver=False
    ) as flow:
        incident = path.declaration.run(flow)
        for step, gap in zip(path.steps, gaps, strict=False):
            clock.advance(minutes=gap)
            incident = step.command.run(flow, incident.id)
        # Reminders only at the end: recorded earlier, they would shift the versions, and with
        # them the page ids the path's commands name.
        clock.advance(minutes=gaps[-1])
        flow.fire_reminders(incident.id)
        events: list[Event] = flow.history(incident.id)
    postmortem = build_postmortem(events, SEQUENCES)
    markdown = postmortem.to_markdown()
    spans = postmortem.phase_spans
    last = events[-1].at
    assert sum((span.duration(last) for span in spans), timedelta(0)) == last - events[0].at
    assert sum(postmortem.time_in_phase.values(), timedelta(0)) == last - events[0].at
    assert len(spans) == 1 + sum(isinstance(event, PhaseChanged) for event in events)
    assert all(span.end is not None for span in spans[:-1])
    assert spans[-1].end is None
    assert len(tasks(markdown)) == len(spans)
    timeline = section(markdown, "## Timeline (UTC)")
    assert sum(line.startswith("- ") for line in timeline.splitlines()) == len(events)
    assert_tables_are_square(markdown)
    resolved = postmortem.time_to_resolve
    mitigated = postmortem.time_to_mitigate
    if resolved is not None and mitigated is not None:
        assert mitigated <= resolved


def test_a_process_the_events_do_not_know_still_renders(
    flow: IncidentFlow, clock: FakeClock
) -> None:
    i = mitigating(flow, clock)
    other = Process(
        name="tiny",
        phases=[PhaseSpec("open", "Open", active=True), PhaseSpec("done", terminal=True)],
        initial="open",
        transitions=[Transition("finish", "open", "done")],
        roles={"reporter": "Reporter"},
    )
    markdown = render_postmortem(flow.history(i), other)
    assert [m["name"] for m in tasks(markdown)] == ["Identified", "Mitigating"]
    assert "- 09:01 alice assigned bob as Lead" in markdown


def test_what_adapters_made_is_listed_and_kept_out_of_the_timeline(
    flow: IncidentFlow, clock: FakeClock
) -> None:
    incident = flow.declare(
        "Search is down", severity=Severity.MAJOR, customer_impact=False, by="alice"
    )
    clock.set(at(1))
    flow.record_external(
        incident.id,
        system="slack",
        kind="channel",
        external_id="C0123",
        url="https://slack.com/app_redirect?channel=C0123",
        by="slack",
    )
    for n in range(3):
        flow.record_external(
            incident.id,
            system="slack",
            kind="message",
            external_id=f"1700000000.00{n}",
            source=f"k{n}",
            by="slack",
        )
    flow.record_external(
        incident.id, system="opsgenie", kind="alert", external_id="inc-1-page-2", by="opsgenie"
    )
    markdown = render_postmortem(flow.history(incident.id))
    assert section(markdown, "## Outside incident_flow").splitlines() == [
        "- slack channel C0123: [https://slack.com/app_redirect?channel=C0123]"
        "(<https://slack.com/app_redirect?channel=C0123>) (2024-03-01 09:01 UTC)",
        "- opsgenie alert inc-1-page-2 (2024-03-01 09:01 UTC)",
        "- slack: 3 messages posted",
    ]
    assert "ExternalRefRecorded" not in section(markdown, "## Timeline (UTC)")

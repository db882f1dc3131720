"""The wording of the Slack reactions: names, mentions, topics, without Slack."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from incident_flow_slack import messages

from incident_flow.events import IncidentDeclared, ReminderDue
from incident_flow.model import Incident, Severity

DECLARED = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)


def incident(title: str = "Search is down", **changes: Any) -> Incident:
    """An incident as declared, with ``changes``."""
    declared = IncidentDeclared(
        incident_id="inc-1",
        version=1,
        at=DECLARED,
        actor="U0ALICE01",
        title=title,
        description="",
        severity=Severity.MAJOR,
        customer_impact=True,
        phase="identified",
    )
    return attrs.evolve(declared.apply(None), **changes)


@pytest.mark.parametrize(
    ("person", "expected"),
    [
        ("U0123ABCD", "U0123ABCD"),
        ("<@U0123ABCD>", "U0123ABCD"),
        ("<@W0123ABCD|ann>", "W0123ABCD"),
        ("alice", None),
        ("alice@example.com", None),
        ("", None),
    ],
)
def test_user_ids_are_recognised_in_every_form_slack_sends(
    person: str, expected: str | None
) -> None:
    assert messages.user_id(person) == expected


def test_names_are_written_out_and_ids_mentioned() -> None:
    assert messages.mention("U0123ABCD") == "<@U0123ABCD>"
    assert messages.mention("<b>ob") == "&lt;b&gt;ob"
    assert messages.mention(None, nobody="unassigned") == "unassigned"


@pytest.mark.parametrize(
    ("group", "tag"),
    [
        ("@marketing-incident", "@marketing-incident"),
        ("marketing-incident", "@marketing-incident"),
        ("S0MARKET1", "<!subteam^S0MARKET1>"),
        ("<!subteam^S0MARKET1|@mkt>", "<!subteam^S0MARKET1|@mkt>"),
    ],
)
def test_groups_are_tagged(group: str, tag: str) -> None:
    assert messages.group_tag(group) == tag


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("Search is down", "inc-20240514-search-is-down"),
        ("  ¡Búsqueda caída!  ", "inc-20240514-busqueda-caida"),
        ("日本語", "inc-20240514-incident"),
        ("a_b.c", "inc-20240514-a_b-c"),
    ],
)
def test_channel_names_are_readable_slugs(title: str, name: str) -> None:
    assert messages.channel_name("inc", incident(title)) == name


def test_a_long_title_is_cut_but_the_suffix_kept() -> None:
    name = messages.channel_name("inc", incident("word " * 40), suffix="a1b2c3")

    assert len(name) <= messages.MAX_CHANNEL_NAME
    assert name.startswith("inc-20240514-word-word")
    assert name.endswith("-a1b2c3")
    assert "--" not in name


def test_suffixes_come_from_the_incident_id() -> None:
    tail, digest = messages.channel_suffixes("inc-7c41d2e9a0b3")

    assert tail == "e9a0b3"
    assert len(digest) == 8
    assert messages.channel_suffixes("inc-7c41d2e9a0b3") == (tail, digest)


def test_the_topic_fits_slacks_limit() -> None:
    long = incident(roles={"lead": "x" * 300})

    assert len(messages.topic(long)) <= messages.MAX_TOPIC


def test_a_link_names_post_cannot_ping_everyone() -> None:
    text = messages.announcement(incident("@channel search"), "C1", "marketing", "@mkt")

    assert text.startswith("@mkt ")
    assert "@channel" not in text


def test_a_reminder_for_nobody_says_the_role_is_unassigned() -> None:
    due = ReminderDue(
        incident_id="inc-1",
        version=2,
        at=DECLARED,
        actor="incident-flow",
        reminder="status_update_due",
        key="k",
        due_at=DECLARED,
        recipient="lead",
        message="post a status update",
        missed=2,
    )

    text = messages.reminder(due, incident())

    assert "(lead unassigned) (lead): post a status update (2 earlier reminder(s) missed)" in text

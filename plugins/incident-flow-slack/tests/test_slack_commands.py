"""Parsing ``/incident …``: every subcommand, its spellings, and the mistakes people make."""

from __future__ import annotations

import pytest
from incident_flow_slack.commands import (
    COMMAND,
    SUBCOMMANDS,
    Acknowledge,
    Assign,
    ChangeSeverity,
    Declare,
    FalsePositive,
    Help,
    Mitigate,
    Recap,
    Resolve,
    Rollback,
    StatusUpdate,
    Triage,
    UsageError,
    escape,
    help_text,
    parse,
)

from incident_flow.errors import ValidationError


@pytest.mark.parametrize("text", ["", "   ", "help", "HELP", "?"])
def test_nothing_or_help_asks_for_help(text: str) -> None:
    assert parse(text) == Help()


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("ack", Acknowledge()),
        ("acknowledge", Acknowledge()),
        ("triage", Triage()),
        ("Triage", Triage()),
        ("mitigate", Mitigate()),
        ("mitigation", Mitigate()),
        ("resolve", Resolve()),
        ("recap", Recap()),
    ],
)
def test_subcommands_without_arguments(text: str, command: object) -> None:
    assert parse(text) == command


@pytest.mark.parametrize("text", ["ack now", "triage please", "resolve it", "recap all"])
def test_a_subcommand_without_arguments_refuses_some(text: str) -> None:
    with pytest.raises(UsageError, match="takes nothing after it"):
        parse(text)


def test_a_title_declares() -> None:
    assert parse("Search is down on sourcegraph.com") == Declare(
        "Search is down on sourcegraph.com"
    )


def test_declare_spelled_out_is_explicit() -> None:
    assert parse("declare Search is down") == Declare("Search is down", explicit=True)


def test_a_title_is_unescaped() -> None:
    assert parse("Search &amp; code intel &lt;down&gt;") == Declare("Search & code intel <down>")


@pytest.mark.parametrize(
    ("text", "user"),
    [
        ("lead <@U024BE7LH|bob>", "U024BE7LH"),
        ("lead <@U024BE7LH>", "U024BE7LH"),
        ("lead <@W0ENTERPRISE|ann>", "W0ENTERPRISE"),
        ("lead U024BE7LH", "U024BE7LH"),
    ],
)
def test_a_mention_gives_the_user_id(text: str, user: str) -> None:
    assert parse(text) == Assign("lead", user)


def test_me_is_the_person_typing() -> None:
    assert parse("messenger me") == Assign("messenger", None)


@pytest.mark.parametrize(
    ("word", "role"),
    [("lead", "lead"), ("messenger", "messenger"), ("owner", "resolution_owner")],
)
def test_roles(word: str, role: str) -> None:
    assert parse(f"{word} <@U1AB|x>") == Assign(role, "U1AB")


@pytest.mark.parametrize("text", ["lead", "lead @bob", "lead bob", "lead <@U1|a> <@U2|b>"])
def test_assigning_needs_one_mention(text: str) -> None:
    with pytest.raises(UsageError, match="lead @user"):
        parse(text)


def test_rollback_outcome() -> None:
    assert parse("rollback reverted to 3.41.2") == Rollback("reverted to 3.41.2")


@pytest.mark.parametrize(
    ("text", "succeeded"),
    [("rollback succeeded: back on 3.41", True), ("rollback failed x", False)],
)
def test_rollback_verdict(text: str, succeeded: bool) -> None:
    command = parse(text)
    assert isinstance(command, Rollback)
    assert command.succeeded is succeeded


def test_rollback_needs_an_outcome() -> None:
    with pytest.raises(UsageError, match="rollback"):
        parse("rollback")
    with pytest.raises(UsageError, match="after succeeded or failed"):
        parse("rollback failed")


def test_statuspage_phase_and_text() -> None:
    assert parse("statuspage Investigating We are looking into search errors.") == StatusUpdate(
        "investigating", "We are looking into search errors."
    )


@pytest.mark.parametrize("text", ["statuspage", "statuspage investigating", "status identified "])
def test_statuspage_needs_phase_and_text(text: str) -> None:
    with pytest.raises(UsageError, match="statuspage <phase> <text>"):
        parse(text)


def test_false_positive_reason() -> None:
    assert parse("false-positive a load test") == FalsePositive("a load test")
    assert parse("fp a load test") == FalsePositive("a load test")


def test_false_positive_needs_a_reason() -> None:
    with pytest.raises(UsageError, match="false-positive <reason>"):
        parse("false-positive")


def test_severity() -> None:
    assert parse("severity Critical") == ChangeSeverity("critical")
    assert parse("sev minor") == ChangeSeverity("minor")  # the flow says why not


@pytest.mark.parametrize("text", ["severity", "severity very high"])
def test_severity_needs_one_level(text: str) -> None:
    with pytest.raises(UsageError, match="severity"):
        parse(text)


def test_usage_errors_are_validation_errors() -> None:
    """The app answers every ValidationError with its message: usage errors are among them."""
    with pytest.raises(ValidationError):
        parse("lead")


def test_help_lists_every_subcommand() -> None:
    text = help_text()
    for usage, _ in SUBCOMMANDS.values():
        assert f"`{COMMAND} {usage}`" in text


def test_help_names_the_word_it_did_not_know_escaped() -> None:
    assert "`&lt;b&gt;`" in help_text(unknown="<b>")


def test_escape() -> None:
    assert escape("a & <b>") == "a &amp; &lt;b&gt;"

"""Communication rules: the handbook's status-page best practices, checked on every post."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from incident_flow.comms import (
    DECISIONS,
    HANDBOOK_COMMS,
    HANDBOOK_RULES,
    MESSENGER_SECTION,
    TEMPLATES,
    AnnouncementDay,
    CommsPolicy,
    Rule,
    StatusPost,
    Template,
    render_template,
)
from incident_flow.errors import (
    InvalidFieldError,
    InvalidTimestampError,
    ProcessDefinitionError,
    UnknownPhaseError,
)
from incident_flow.model import Finding

STATUS_PHASES = ("identified", "investigating", "resolved")


def review(
    text: str,
    *,
    first: bool = False,
    phase: str = "investigating",
    policy: CommsPolicy = HANDBOOK_COMMS,
) -> tuple[Finding, ...]:
    return policy.review(StatusPost(text, phase, first))


def excerpts(text: str, rule: str, **kwargs: Any) -> list[str]:
    return [finding.excerpt for finding in review(text, **kwargs) if finding.rule == rule]


def shout(post: StatusPost, policy: CommsPolicy) -> Iterator[tuple[str, str]]:
    """An extra rule for the tests: no exclamation marks."""
    if "!" in post.text:
        yield "'!' shouts; end the sentence with a full stop", "!"


NO_SHOUTING = Rule("no_shouting", "No exclamation marks", shout)


# -- the handbook's rules ------------------------------------------------------------------------


def test_handbook_rules_come_in_a_fixed_order_with_their_default_decisions() -> None:
    assert [(rule.name, HANDBOOK_COMMS.decision(rule)) for rule in HANDBOOK_RULES] == [
        ("utc_only", "refuse"),
        ("no_regional_words", "record"),
        ("succinct", "record"),
        ("first_post_names_support", "refuse"),
        ("no_internal_details", "record"),
    ]


def test_every_handbook_rule_has_a_title_and_cites_the_messenger_section() -> None:
    for rule in HANDBOOK_RULES:
        assert rule.title.strip()
        assert "\n" not in rule.title
        assert rule.handbook_ref == MESSENGER_SECTION == "Messenger roles and responsibilities"


def test_a_post_that_follows_every_rule_has_no_findings() -> None:
    text = (
        "We are aware there is an issue with code search since 14:30 UTC. We are "
        "investigating a resolution. If you have any questions, email support@sourcegraph.com."
    )
    assert review(text, first=True, phase="identified") == ()


# -- utc_only ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Search has been degraded since 14:30 UTC.",
        "Search has been degraded since 14:30Z.",
        "Search has been degraded since 2024-05-01T14:30Z.",
        "Search has been degraded since 2024-05-01T14:30:00+00:00.",
        "Search has been degraded since 2pm UTC.",
        "Search has been degraded since 2:30 p.m. UTC.",
        "Search has been degraded since 14:30 (UTC).",
        "Search has been degraded since UTC 14:30.",
        "Search was degraded between 14:30 and 15:10 UTC.",
        "Search was degraded from 14:30 to 15:10 UTC.",
        "Search was degraded from 2pm to 3pm UTC.",
        "Search was degraded 14:30-15:10 UTC.",
        "Search was degraded 14:30\u201315:10 UTC.",
        "Times on this page are UTC+0.",
        "Customers on 3.30 should upgrade to 3.31 before upgrading to v5.2.",
        "We will post an update every 30 minutes; the fix takes 5 to 10 minutes to roll out.",
        "A central database failed; the Eastern region is not affected.",
        "Our CT logs and the ET team are fine; the PT cruiser is parked.",
        "Le service est rétabli et fonctionne normalement.",
        "The BEST way to resolve this is in the latest ESTATE release.",
        "We are investigating elevated error rates on sourcegraph.com.",
    ],
)
def test_utc_only_accepts(text: str) -> None:
    assert excerpts(text, "utc_only") == []


@pytest.mark.parametrize(
    ("text", "excerpt"),
    [
        ("We will update you at 9:00 EST.", "EST"),
        ("The outage began at 14:30 PDT.", "PDT"),
        ("Maintenance starts at 22:00 CET.", "CET"),
        ("We expect a fix by 11:00 AEST.", "AEST"),
        ("The incident began at 14:30 GMT.", "GMT"),
        ("Errors started at 2pm ET.", "ET"),
        ("Errors started at 9 PT.", "PT"),
        ("Errors started at 14:30 Pacific time.", "Pacific time"),
        ("Errors started at 2pm Eastern Standard Time.", "Eastern Standard Time"),
        ("Errors started at 2pm central standard.", "central standard"),
        ("Errors started at 14:30 Central.", "Central"),
        ("Errors started at 09:00 Central European Time.", "Central European Time"),
        ("Errors started at 14:30 local time.", "local time"),
        ("All times below are in your local time.", "local time"),
        ("Errors started at 16:30 UTC+2.", "UTC+2"),
        ("Errors started at 09:30 UTC-05:00.", "UTC-05:00"),
        ("Errors started at 15:30 GMT+1.", "GMT+1"),
        ("Errors started at 16:30 +02:00.", "+02:00"),
        ("Errors started at 09:30-0500.", "-0500"),
        ("Errors started at 2024-05-01T09:30:00-05:00.", "-05:00"),
        ("Errors started at 14:30.", "14:30"),
        ("Errors started at 9:05:10 and stopped later.", "9:05:10"),
        ("Errors started at 2pm.", "2pm"),
        ("Errors started at 2:30 p.m. and stopped soon after.", "2:30 p.m."),
        ("Errors started at 11 AM.", "11 AM"),
    ],
)
def test_utc_only_flags(text: str, excerpt: str) -> None:
    assert excerpts(text, "utc_only") == [excerpt]


def test_utc_only_refuses_the_post_by_default() -> None:
    (finding,) = review("Errors started at 9:00 EST.")
    assert finding == Finding(
        "utc_only",
        "'EST' is a regional time zone; give times in UTC (for example 14:30 UTC)",
        "EST",
        refused=True,
        handbook_ref=MESSENGER_SECTION,
    )


def test_a_time_without_a_zone_is_told_to_add_utc() -> None:
    (finding,) = review("Errors started at 14:30.")
    assert finding.message == "'14:30' has no time zone; add UTC: 14:30 UTC"


def test_an_offset_is_told_to_convert_to_utc() -> None:
    (finding,) = review("Errors started at 16:30 UTC+2.")
    assert finding.message.startswith("'UTC+2' is an offset from UTC; convert the time to UTC")


def test_a_bare_zone_word_counts_only_right_after_a_clock_time() -> None:
    assert excerpts("Errors at 14:30 central, in a central database.", "utc_only") == ["central"]
    assert excerpts("A central database in the pacific region failed.", "utc_only") == []


def test_a_range_without_a_zone_flags_both_times() -> None:
    assert excerpts("Search was degraded 14:30-15:10.", "utc_only") == ["14:30", "15:10"]


def test_utc_only_findings_follow_the_text_order() -> None:
    text = "Errors began at 14:30, peaked at 2pm PDT and stopped at 16:00 local time."
    assert excerpts(text, "utc_only") == ["14:30", "PDT", "local time"]


def test_the_same_words_twice_give_one_finding() -> None:
    text = "Errors began at 9:00 EST and stopped at 10:00 EST."
    assert excerpts(text, "utc_only") == ["EST"]
    assert excerpts("Today we fixed it; today we watch it.", "no_regional_words") == ["Today"]


# -- no_regional_words ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "excerpt"),
    [
        ("We expect a fix this morning.", "this morning"),
        ("We expect a fix this afternoon.", "this afternoon"),
        ("We expect a fix this evening.", "this evening"),
        ("We will post another update tonight.", "tonight"),
        ("Today some searches failed.", "Today"),
        ("We expect a fix tomorrow.", "tomorrow"),
        ("We expect a fix tomorrow morning.", "tomorrow morning"),
        ("The problem started yesterday.", "yesterday"),
        ("We will monitor overnight.", "overnight"),
        ("We will monitor over the weekend.", "over the weekend"),
        ("We will monitor this weekend.", "this weekend"),
        ("Expect a fix by end of day.", "end of day"),
        ("Expect a fix by the end of the day.", "end of the day"),
        ("Expect a fix by EOD.", "EOD"),
        ("Expect a fix by COB.", "COB"),
        ("Expect a fix by close of business.", "close of business"),
        ("Support answers during business hours.", "business hours"),
        ("Expect a fix by lunchtime.", "lunchtime"),
        ("Expect a fix by midnight.", "midnight"),
        ("Expect a fix by noon.", "noon"),
    ],
)
def test_no_regional_words_flags(text: str, excerpt: str) -> None:
    assert excerpts(text, "no_regional_words") == [excerpt]


@pytest.mark.parametrize(
    "text",
    [
        "Expect a fix by noon UTC.",
        "Expect a fix by midnight UTC.",
        "Expect a fix by 12:00 UTC (noon).",
        "Expect a fix by UTC midnight.",
        "We will post an update every day until this is resolved.",
        "The cobalt theme and the eod flag are unaffected.",
        "Users saw errors on 2024-05-01 between 14:30 and 15:10 UTC.",
        "Good afternoon, we are investigating.",
    ],
)
def test_no_regional_words_accepts(text: str) -> None:
    assert excerpts(text, "no_regional_words") == []


def test_no_regional_words_records_and_suggests_a_utc_time() -> None:
    (finding,) = review("We will post another update tonight.")
    assert not finding.refused
    assert finding.message.startswith("'tonight' depends on where the reader is")
    assert "UTC" in finding.message


def test_midnight_and_noon_are_told_their_utc_time() -> None:
    midnight, noon = review("Between midnight and noon errors rose.")
    assert "00:00 UTC" in midnight.message
    assert "12:00 UTC" in noon.message


# -- succinct ------------------------------------------------------------------------------------


def test_a_post_of_max_length_characters_is_succinct() -> None:
    assert excerpts("x" * 500, "succinct") == []


def test_a_longer_post_is_recorded_with_its_length_and_the_limit() -> None:
    (finding,) = [f for f in review("x" * 501) if f.rule == "succinct"]
    assert not finding.refused
    assert "501 characters" in finding.message
    assert "limit of 500" in finding.message


def test_the_policy_sets_the_length_limit() -> None:
    policy = CommsPolicy(max_length=40)
    text = "Search is slow for some users in Europe and Asia."
    assert [f.rule for f in review(text, policy=policy)] == ["succinct"]
    assert review(text[:40], policy=policy) == ()


# -- first_post_names_support --------------------------------------------------------------------


def test_a_first_post_without_the_support_address_is_refused() -> None:
    (finding,) = review("We are aware there is an issue with search.", first=True)
    assert finding.rule == "first_post_names_support"
    assert finding.refused
    assert "email support@sourcegraph.com" in finding.message


def test_the_support_address_may_be_written_in_any_case() -> None:
    text = "We are aware of an issue with search. Questions: Support@Sourcegraph.com."
    assert excerpts(text, "first_post_names_support", first=True) == []


def test_later_posts_need_not_name_the_support_address() -> None:
    assert review("We are continuing to investigate a resolution.", first=False) == ()


def test_the_policy_sets_the_support_address() -> None:
    policy = CommsPolicy(support_address="help@example.com")
    text = "We are aware of an issue. If you have any questions, email support@sourcegraph.com."
    (finding,) = review(text, first=True, policy=policy)
    assert "help@example.com" in finding.message


# -- no_internal_details -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "excerpt"),
    [
        ("We have told @marketing-incident about this.", "@marketing-incident"),
        ("Follow along in #customer-support.", "#customer-support"),
        ("The primary db-1.internal is failing over.", "db-1.internal"),
        ("Requests to search.svc.cluster.local time out.", "search.svc.cluster.local"),
        ("The health check on localhost:8080 fails.", "localhost:8080"),
    ],
)
def test_no_internal_details_flags(text: str, excerpt: str) -> None:
    assert excerpts(text, "no_internal_details") == [excerpt]


@pytest.mark.parametrize(
    "text",
    [
        "If you have any questions, email support@sourcegraph.com.",
        "Write to first.last+status@example.co.uk for a copy.",
        "The C# and F# language servers are affected.",
        "See issue #1234 and https://sourcegraphstatus.com/#incidents for details.",
        "Thanks for your patience #GrateFul",
        "Details are at internal.example.com/status.",
        "We are investigating a local caching problem.",
    ],
)
def test_no_internal_details_accepts(text: str) -> None:
    assert excerpts(text, "no_internal_details") == []


def test_internal_details_are_recorded_in_text_order() -> None:
    text = "Ping @cs in #ce about db-1.internal and @ce."
    findings = [f for f in review(text) if f.rule == "no_internal_details"]
    assert [f.excerpt for f in findings] == ["@cs", "#ce", "db-1.internal", "@ce"]
    assert not any(f.refused for f in findings)
    assert findings[0].message.startswith("'@cs' is an internal handle")


# -- review: order, decisions, extra rules -------------------------------------------------------


def test_findings_come_rule_by_rule_in_the_policys_order() -> None:
    text = "@bob says: fixed this morning at 9:00 EST."
    assert [f.rule for f in review(text)] == [
        "utc_only",
        "no_regional_words",
        "no_internal_details",
    ]


def test_a_decision_turns_a_refusing_rule_into_a_recording_one() -> None:
    policy = HANDBOOK_COMMS.with_decision("utc_only", "record")
    assert policy.decision("utc_only") == "record"
    (finding,) = review("Errors started at 9:00 EST.", policy=policy)
    assert not finding.refused


def test_a_decision_turns_a_recording_rule_into_a_refusing_one() -> None:
    policy = CommsPolicy(decisions={"no_regional_words": "refuse"})
    (finding,) = review("We will post another update tonight.", policy=policy)
    assert finding.refused


def test_off_skips_the_rule() -> None:
    policy = HANDBOOK_COMMS.with_decision("first_post_names_support", "off")
    assert policy.decision("first_post_names_support") == "off"
    assert review("We are aware of an issue with search.", first=True, policy=policy) == ()


def test_a_decision_accepts_a_rule_or_its_name() -> None:
    assert HANDBOOK_COMMS.decision(HANDBOOK_RULES[0]) == HANDBOOK_COMMS.decision("utc_only")
    assert HANDBOOK_COMMS.decision(NO_SHOUTING) == "record"
    assert DECISIONS == ("refuse", "record", "off")


def test_the_decision_for_an_unknown_rule_name_is_refused() -> None:
    with pytest.raises(InvalidFieldError, match="no rule named 'no_emoji'") as caught:
        HANDBOOK_COMMS.decision("no_emoji")
    assert caught.value.field == "rule"


def test_extra_rules_run_after_the_policys_rules_with_their_own_decision() -> None:
    findings = HANDBOOK_COMMS.review(
        StatusPost("Fixed this morning!", "resolved", False), [NO_SHOUTING]
    )
    assert [(f.rule, f.excerpt, f.refused) for f in findings] == [
        ("no_regional_words", "this morning", False),
        ("no_shouting", "!", False),
    ]


def test_an_extra_rule_carries_its_own_handbook_reference() -> None:
    rule = attrs.evolve(NO_SHOUTING, refuses=True, handbook_ref="Team style guide")
    (finding,) = HANDBOOK_COMMS.review(StatusPost("Fixed!", "resolved", False), [rule])
    assert finding.refused
    assert finding.handbook_ref == "Team style guide"


def test_an_extra_rule_may_not_take_a_policy_rules_name() -> None:
    clash = Rule("succinct", "Another succinct", shout)
    with pytest.raises(ProcessDefinitionError, match="'succinct', which another rule already"):
        HANDBOOK_COMMS.review(StatusPost("Fixed!", "resolved", False), [clash])


def test_two_extra_rules_may_not_share_a_name() -> None:
    with pytest.raises(ProcessDefinitionError, match="no_shouting"):
        HANDBOOK_COMMS.review(StatusPost("Fixed!", "resolved", False), [NO_SHOUTING] * 2)


def test_findings_without_excerpts_are_kept_apart_by_message() -> None:
    def two_remarks(post: StatusPost, policy: CommsPolicy) -> Iterator[tuple[str, str]]:
        yield "say what is affected", ""
        yield "say when the next update comes", ""
        yield "say what is affected", ""

    rule = Rule("complete", "Complete", two_remarks)
    findings = HANDBOOK_COMMS.review(StatusPost("Fixed.", "resolved", False), [rule])
    assert [f.message for f in findings] == [
        "say what is affected",
        "say when the next update comes",
    ]


def test_a_check_that_raises_propagates_unchanged() -> None:
    def broken(post: StatusPost, policy: CommsPolicy) -> Iterator[tuple[str, str]]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        HANDBOOK_COMMS.review(
            StatusPost("Fixed.", "resolved", False), [Rule("broken", "Broken", broken)]
        )


def test_with_rule_adds_a_rule_after_the_others() -> None:
    policy = HANDBOOK_COMMS.with_rule(NO_SHOUTING).with_decision("no_shouting", "refuse")
    assert [rule.name for rule in policy.rules][-1] == "no_shouting"
    (finding,) = review("We have resolved the issue!", policy=policy)
    assert (finding.rule, finding.refused) == ("no_shouting", True)


def test_with_rule_refuses_a_name_that_is_taken() -> None:
    with pytest.raises(ProcessDefinitionError, match="two rules are named 'utc_only'"):
        HANDBOOK_COMMS.with_rule(Rule("utc_only", "Mine", shout))


def test_refusals_are_the_refused_findings() -> None:
    findings = review("Fixed tonight at 9:00 EST.")
    assert [f.rule for f in HANDBOOK_COMMS.refusals(findings)] == ["utc_only"]
    assert [f.rule for f in findings] == ["utc_only", "no_regional_words"]


def test_deriving_a_policy_leaves_the_original_as_it_was() -> None:
    derived = HANDBOOK_COMMS.with_decision("succinct", "off")
    assert HANDBOOK_COMMS.decision("succinct") == "record"
    assert derived != HANDBOOK_COMMS
    assert derived == CommsPolicy(decisions={"succinct": "off"})
    assert hash(derived) == hash(CommsPolicy(decisions={"succinct": "off"}))


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_length": 19}, "max_length must be a whole number of characters, at least 20"),
        ({"max_length": "500"}, "max_length"),
        ({"max_length": True}, "max_length"),
        ({"support_address": ""}, "support_address must be an e-mail address"),
        ({"support_address": "support"}, "support_address"),
        ({"decisions": {"no emoji": "off"}}, "decisions names rule 'no emoji'"),
        ({"decisions": {"utc_only": "warn"}}, "use one of refuse, record, off"),
        ({"decisions": ["utc_only"]}, "decisions must map rule names"),
        ({"rules": (*HANDBOOK_RULES, HANDBOOK_RULES[0])}, "two rules are named 'utc_only'"),
        ({"rules": ("utc_only",)}, "rules must be Rule objects"),
        ({"rules": HANDBOOK_RULES[0]}, "rules must be a sequence of Rule objects"),
        ({"phase_aliases": {"monitoring": ""}}, "phase_aliases must map non-empty names"),
        ({"phase_aliases": {"monitoring": 3}}, "phase_aliases"),
        ({"phase_aliases": ["monitoring"]}, "phase_aliases must map phase names"),
        ({"release_pause_groups": ("@cs", " ")}, "release_pause_groups"),
        ({"marketing_contact": ""}, "marketing_contact"),
        (
            {
                "announcement_days": (
                    AnnouncementDay(date(2024, 5, 1), "Launch"),
                    AnnouncementDay(date(2024, 5, 1), "Funding"),
                )
            },
            "two announcement days fall on 2024-05-01",
        ),
    ],
)
def test_a_malformed_policy_is_refused_naming_the_setting(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProcessDefinitionError, match=message):
        CommsPolicy(**kwargs)


def test_policy_sequences_are_kept_as_tuples() -> None:
    policy = CommsPolicy(rules=list(HANDBOOK_RULES), release_pause_groups="@cs")
    assert policy.rules == HANDBOOK_RULES
    assert policy.release_pause_groups == ("@cs",)
    assert HANDBOOK_COMMS.release_pause_groups == ("@delivery-support", "@cs", "@ce")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "utc only"}, "must be an identifier"),
        ({"name": ""}, "must be an identifier"),
        ({"title": " "}, "title must be a non-empty line"),
        ({"check": "shout"}, "check must be callable"),
        ({"refuses": "yes"}, "refuses must be True or False"),
    ],
)
def test_a_malformed_rule_is_refused(kwargs: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"name": "no_shouting", "title": "No shouting", "check": shout}
    with pytest.raises(ProcessDefinitionError, match=message):
        Rule(**{**fields, **kwargs})


def test_an_announcement_day_is_a_calendar_date() -> None:
    with pytest.raises(ProcessDefinitionError, match="must be a date"):
        AnnouncementDay(datetime(2024, 5, 1, tzinfo=UTC), "Launch")
    with pytest.raises(ProcessDefinitionError, match="name must be a non-empty string"):
        AnnouncementDay(date(2024, 5, 1), "")


@pytest.mark.parametrize("text", ["", "   \n", None, 42])
def test_a_post_needs_a_text(text: Any) -> None:
    with pytest.raises(InvalidFieldError, match="text must be a non-empty string") as caught:
        StatusPost(text, "identified", True)
    assert caught.value.field == "text"


@pytest.mark.parametrize(
    ("kwargs", "field", "error"),
    [
        ({"phase": ""}, "phase", InvalidFieldError),
        ({"phase": None}, "phase", InvalidFieldError),
        ({"first": "yes"}, "first", InvalidFieldError),
        ({"at": datetime(2024, 5, 1, 14, 30)}, "at", InvalidTimestampError),
        ({"at": "2024-05-01T14:30Z"}, "at", InvalidTimestampError),
    ],
)
def test_a_malformed_post_is_refused_naming_the_field(
    kwargs: dict[str, Any], field: str, error: type[Exception]
) -> None:
    fields: dict[str, Any] = {"text": "Fixed.", "phase": "resolved", "first": False}
    with pytest.raises(error) as caught:
        StatusPost(**{**fields, **kwargs})
    assert getattr(caught.value, "field", None) == field


# -- map_phase -----------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["identified", "Identified", "  RESOLVED "])
def test_a_status_phase_maps_to_itself_in_lower_case(phase: str) -> None:
    assert HANDBOOK_COMMS.map_phase(phase, STATUS_PHASES) == phase.strip().lower()


def test_an_alias_maps_to_its_status_phase_in_any_case() -> None:
    policy = CommsPolicy(phase_aliases={"Monitoring": "Investigating"})
    assert policy.phase_aliases == {"monitoring": "investigating"}
    assert policy.map_phase("monitoring", STATUS_PHASES) == "investigating"
    assert policy.map_phase(" MONITORING", STATUS_PHASES) == "investigating"


def test_an_unknown_phase_is_refused_saying_how_to_map_it() -> None:
    with pytest.raises(UnknownPhaseError) as caught:
        HANDBOOK_COMMS.map_phase("monitoring", STATUS_PHASES)
    message = str(caught.value)
    assert caught.value.field == "phase"
    assert "identified, investigating, resolved" in message
    assert "CommsPolicy(phase_aliases={'monitoring': 'investigating'})" in message


def test_an_alias_to_a_phase_that_is_not_a_status_phase_is_refused() -> None:
    policy = CommsPolicy(phase_aliases={"monitoring": "watching"})
    with pytest.raises(UnknownPhaseError, match="maps to 'watching'"):
        policy.map_phase("monitoring", STATUS_PHASES)


def test_a_phase_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(InvalidFieldError) as caught:
        HANDBOOK_COMMS.map_phase(3, STATUS_PHASES)  # type: ignore[arg-type]
    assert caught.value.field == "phase"


# -- announcement days ---------------------------------------------------------------------------

LAUNCH = date(2024, 5, 1)


def test_a_day_is_found_by_its_date() -> None:
    policy = HANDBOOK_COMMS.with_announcement_day(LAUNCH, "Series D announcement")
    assert policy.announcement_on(LAUNCH) == AnnouncementDay(
        LAUNCH, "Series D announcement", "@marketing-incident"
    )
    assert policy.announcement_on(LAUNCH + timedelta(days=1)) is None
    assert HANDBOOK_COMMS.announcement_on(LAUNCH) is None


def test_a_moment_is_placed_on_its_utc_date() -> None:
    policy = HANDBOOK_COMMS.with_announcement_day(LAUNCH, "Launch")
    new_york = timezone(timedelta(hours=-5))
    # 23:30 on 30 April in UTC-5 is 04:30 UTC on 1 May.
    assert policy.announcement_on(datetime(2024, 4, 30, 23, 30, tzinfo=new_york)) is not None
    # 23:30 on 1 May in UTC-5 is 2 May in UTC.
    assert policy.announcement_on(datetime(2024, 5, 1, 23, 30, tzinfo=new_york)) is None
    assert policy.announcement_on(datetime(2024, 5, 1, 23, 59, tzinfo=UTC)) is not None


def test_the_contact_defaults_to_the_policys_marketing_contact() -> None:
    policy = CommsPolicy(marketing_contact="@comms").with_announcement_day(LAUNCH, "Launch")
    assert policy.announcement_days[0].contact == "@comms"
    named = policy.with_announcement_day(date(2024, 6, 1), "Conference", contact="@dana")
    assert named.announcement_days[1].contact == "@dana"


def test_a_second_day_on_the_same_date_is_refused() -> None:
    policy = HANDBOOK_COMMS.with_announcement_day(LAUNCH, "Launch")
    with pytest.raises(ProcessDefinitionError, match="2024-05-01"):
        policy.with_announcement_day(LAUNCH, "Funding")


@pytest.mark.parametrize("moment", [datetime(2024, 5, 1, 12, 0), "2024-05-01"])
def test_a_naive_or_unknown_moment_is_refused(moment: Any) -> None:
    with pytest.raises(InvalidTimestampError) as caught:
        HANDBOOK_COMMS.announcement_on(moment)
    assert caught.value.field == "moment"


# -- templates -----------------------------------------------------------------------------------


def test_the_templates_are_the_handbooks_three_examples() -> None:
    assert list(TEMPLATES) == ["identified", "investigating", "resolved"]
    assert render_template("identified", issue="code search") == (
        "We are aware there is an issue with code search. We are investigating a resolution. "
        "If you have any questions, email support@sourcegraph.com."
    )
    assert render_template("investigating") == (
        "We are continuing to investigate a resolution. We want to resolve this as quickly "
        "as possible!"
    )
    assert render_template("resolved") == (
        "We have resolved the issue and will conduct a postmortem to see how we can learn and "
        "grow. If you would like to know more, please email support@sourcegraph.com."
    )


def test_the_issue_is_trimmed_of_space_and_a_final_full_stop() -> None:
    text = TEMPLATES["identified"].render(issue="  search on sourcegraph.com. ")
    assert text.startswith("We are aware there is an issue with search on sourcegraph.com. We")


@pytest.mark.parametrize("issue", [None, "", "   "])
def test_the_identified_template_needs_the_issue(issue: str | None) -> None:
    with pytest.raises(InvalidFieldError, match="pass what is broken") as caught:
        render_template("identified", issue=issue)
    assert caught.value.field == "issue"


def test_an_unknown_template_phase_is_refused_listing_the_template_phases() -> None:
    with pytest.raises(UnknownPhaseError, match="identified, investigating, resolved"):
        render_template("postmortem")


def test_a_template_uses_the_policys_support_address_and_phase_aliases() -> None:
    policy = CommsPolicy(
        support_address="help@example.com", phase_aliases={"monitoring": "investigating"}
    )
    assert render_template("Resolved", policy=policy).endswith("email help@example.com.")
    assert render_template("monitoring", policy=policy) == render_template("investigating")


def test_a_template_may_use_only_the_known_placeholders() -> None:
    with pytest.raises(ProcessDefinitionError, match="eta"):
        Template("investigating", "We expect a fix by {eta}.")


@pytest.mark.parametrize("phase", list(TEMPLATES))
@pytest.mark.parametrize("first", [True, False])
def test_every_rendered_template_follows_every_handbook_rule(phase: str, first: bool) -> None:
    text = render_template(phase, issue="code search on sourcegraph.com")
    if first and phase != "identified":
        return  # only the identified post opens an incident
    assert review(text, first=first, phase=phase) == ()


# -- properties ----------------------------------------------------------------------------------

# Words the rules look for, mixed with arbitrary text so generated posts reach every branch.
TOKENS = st.sampled_from(
    [
        " ",
        "14:30",
        "2pm",
        " UTC",
        "Z",
        " EST",
        " PT",
        "+02:00",
        "-0500",
        " to ",
        "-",
        "UTC+2",
        "GMT",
        "T",
        "2024-05-01",
        "Central time",
        " central",
        "local time",
        "today",
        "noon",
        "EOD",
        "@cs",
        "#ce",
        "db.internal",
        "localhost",
        "support@sourcegraph.com",
        ".",
        "İ",
        "ß",
    ]
)
POST_TEXT = st.one_of(
    st.text(min_size=1),
    st.lists(st.one_of(TOKENS, st.text(max_size=3)), min_size=1, max_size=30).map("".join),
).filter(lambda text: bool(text.strip()))
UTC_TIMES = st.builds(
    lambda hour, minute, form: form.format(hour=hour, minute=minute, h12=hour % 12 or 12),
    st.integers(0, 23),
    st.integers(0, 59),
    st.sampled_from(["{hour:02}:{minute:02} UTC", "{hour}:{minute:02}Z", "{h12}pm UTC"]),
)
CLOCK_TIMES = st.builds(
    lambda hour, minute, form: form.format(hour=hour, minute=minute, h12=hour % 12 or 12),
    st.integers(0, 23),
    st.integers(0, 59),
    st.sampled_from(["{hour:02}:{minute:02}", "{hour}:{minute:02}", "{h12}pm", "{h12} AM"]),
)


def utc_excerpts(text: str) -> set[str]:
    return {excerpt.casefold() for excerpt in excerpts(text, "utc_only")}


@given(POST_TEXT, st.booleans())
def test_review_never_raises_and_excerpts_are_words_of_the_post(text: str, first: bool) -> None:
    for finding in review(text, first=first):
        assert finding.excerpt.casefold() in text.casefold()
        assert finding.excerpt in text
        assert finding.message


@given(POST_TEXT, UTC_TIMES)
def test_appending_a_time_in_utc_never_adds_a_utc_only_finding(text: str, time: str) -> None:
    assert utc_excerpts(f"{text} {time}") <= utc_excerpts(text)


@given(POST_TEXT, CLOCK_TIMES, POST_TEXT)
def test_a_time_followed_by_est_is_always_flagged(before: str, time: str, after: str) -> None:
    assert "est" in utc_excerpts(f"{before} {time} EST {after}")

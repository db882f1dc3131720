"""The Slack plugin's reactions, driven through real flows against a local Slack Web API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import attrs
import pytest
from incident_flow_slack import messages
from incident_flow_slack.config import SlackConfig
from incident_flow_slack.reactions import SlackPlugin

from incident_flow import FakeClock, IncidentFlow
from incident_flow.comms import HANDBOOK_COMMS, AnnouncementDay
from incident_flow.errors import PermanentDeliveryError, RetryableDeliveryError
from incident_flow.events import ExternalRefRecorded, fold
from incident_flow.model import Incident
from incident_flow.process import HANDBOOK
from incident_flow.testing.vendor_api import Answer, VendorAPI

ALICE = "U0ALICE01"
"""Declares incidents."""
BOB = "U0BOB0001"
"""Leads them."""
CAROL = "U0CAROL01"
"""Is the messenger."""
CHANNEL = "C0INC0001"
"""The id the local Slack gives every new channel."""
FIRST_POST = (
    "Identified: We are aware there is an issue with search. We are investigating a "
    "resolution. If you have any questions, email support@sourcegraph.com."
)
CHECKLIST = (
    "update_status",
    "confirm_messenger_updates",
    "close_github_issues",
    "generate_postmortem_doc",
    "create_followup_issues",
)

Posts = Callable[..., list[dict[str, Any]]]
Bodies = Callable[[str], list[dict[str, Any]]]


@pytest.fixture(autouse=True)
def _channel_id(slack_api: VendorAPI) -> None:
    answer = slack_api.example_response("POST", "/conversations.create")
    answer["channel"]["id"] = CHANNEL
    slack_api.respond("POST", "/conversations.create", json=answer)


def declare(flow: IncidentFlow, *, critical: bool = True, customers: bool = True) -> Incident:
    incident = flow.declare(
        "Search is down!",
        severity="critical" if critical else "major",
        customer_impact=customers,
        description="sourcegraph.com answers 500 to every search",
        by=ALICE,
    )
    assert flow.drain(timeout=10)
    return incident


def staffed(flow: IncidentFlow, **options: bool) -> Incident:
    """Declared, with a lead who said "I'm on it" and a messenger."""
    incident = declare(flow, **options)
    flow.assign(incident.id, "lead", BOB, by=ALICE)
    flow.acknowledge(incident.id, by=BOB)
    flow.assign(incident.id, "messenger", CAROL, by=BOB)
    assert flow.drain(timeout=10)
    return incident


def all_delivered(flow: IncidentFlow) -> None:
    rows = flow.deliveries(plugin="slack")
    assert [
        (row.key, row.status, row.last_error) for row in rows if row.status != "delivered"
    ] == []


def texts(found: list[dict[str, Any]]) -> list[str]:
    return [str(body["text"]) for body in found]


def refs(flow: IncidentFlow, incident_id: str, kind: str) -> list[str]:
    return [
        ref.source
        for ref in flow.get(incident_id).external_refs
        if ref.system == "slack" and ref.kind == kind
    ]


def slack_refuses(api: VendorAPI, method: str, error: str) -> None:
    """Slack's next answer to ``method``: HTTP 200 with ``{"ok": false, "error": error}`` (its
    description only knows errors as a ``default`` answer, so it is not validated)."""
    api.respond_sequence(
        "POST", f"/{method}", [Answer(200, {"ok": False, "error": error}, validate=False)]
    )


def mutations(api: VendorAPI) -> int:
    return sum(1 for request in api.requests if request.method == "POST")


# ------------------------------------------------------------------ declaring


def test_declaring_creates_a_readable_channel_and_records_it(
    flow: IncidentFlow, bodies: Bodies
) -> None:
    incident = declare(flow)

    assert bodies("conversations.create") == [{"name": "inc-20240514-search-is-down"}]
    ref = flow.get(incident.id).external_ref("slack", "channel")
    assert ref is not None
    assert (ref.external_id, ref.url) == (
        CHANNEL,
        f"https://slack.com/app_redirect?channel={CHANNEL}",
    )
    all_delivered(flow)


def test_the_channel_name_is_cut_to_80_characters_of_allowed_letters(
    make_flow: Callable[..., IncidentFlow],
    config_for: Callable[..., SlackConfig],
    slack_api: VendorAPI,
    bodies: Bodies,
) -> None:
    plugin = SlackPlugin(config_for(slack_api, channel_prefix="Incident"))
    flow = make_flow(plugin)
    flow.declare(
        "Ünïcode & spaces: the Search API's (v2) latency > 10 s for EVERY customer on "
        "the planet, again and again",
        severity="major",
        customer_impact=False,
        by=ALICE,
    )
    assert flow.drain(timeout=10)

    (name,) = (body["name"] for body in bodies("conversations.create"))
    assert name.startswith("incident-20240514-unicode-spaces-the-search-api-s-v2-latency")
    assert len(name) <= 80
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_")


def test_a_taken_name_gets_a_suffix_from_the_incident_id(
    flow: IncidentFlow, slack_api: VendorAPI, bodies: Bodies
) -> None:
    slack_refuses(slack_api, "conversations.create", "name_taken")
    incident = flow.declare(
        "Search is down",
        severity="major",
        customer_impact=False,
        by=ALICE,
        incident_id="inc-7c41d2e9a0b3",
    )
    assert flow.drain(timeout=10)

    assert [body["name"] for body in bodies("conversations.create")] == [
        "inc-20240514-search-is-down",
        "inc-20240514-search-is-down-e9a0b3",
    ]
    assert flow.get(incident.id).external_ref("slack", "channel") is not None
    all_delivered(flow)


def test_the_declaration_invites_the_declarer_sets_the_topic_and_posts(
    flow: IncidentFlow, bodies: Bodies, posts: Posts
) -> None:
    incident = declare(flow, critical=False, customers=False)

    assert bodies("conversations.invite") == [{"channel": CHANNEL, "users": ALICE}]
    assert bodies("conversations.setTopic") == [
        {"channel": CHANNEL, "topic": "Major | identified | Lead: unassigned"}
    ]
    (post,) = posts()
    assert post["channel"] == CHANNEL
    assert "*Incident declared: Search is down!*" in post["text"]
    assert f"Reported by <@{ALICE}>" in post["text"]
    assert "/incident lead @engineer" in post["text"]
    assert post["blocks"][0]["text"]["text"] == post["text"]
    assert refs(flow, incident.id, "message") == [f"{incident.id}:1:slack"]


def test_a_customer_impacting_critical_incident_is_announced_as_the_handbook_says(
    flow: IncidentFlow, posts: Posts
) -> None:
    incident = declare(flow, critical=True, customers=True)

    assert [body["channel"] for body in posts()] == [
        CHANNEL,
        "customer-support",
        "ce",
        "sales",
        "general",
        "marketing",
    ]
    (support,) = posts("customer-support")
    assert f"Join <#{CHANNEL}>" in support["text"]
    (marketing,) = posts("marketing")
    assert marketing["text"].startswith("@marketing-incident ")
    assert marketing["link_names"] is True
    assert "no need to answer right away" in marketing["text"]
    (general,) = posts("general")
    assert "*critical*" in general["text"]
    (declaration,) = posts(CHANNEL)
    assert "@cs-leadership" in declaration["text"]
    assert refs(flow, incident.id, "message") == [
        f"{incident.id}:1:slack",
        "announce:customer-support",
        "announce:ce",
        "announce:sales",
        "announce:general",
        "announce:marketing",
    ]


def test_a_major_incident_is_not_announced_in_general(flow: IncidentFlow, posts: Posts) -> None:
    declare(flow, critical=False, customers=True)

    assert [body["channel"] for body in posts()] == [
        CHANNEL,
        "customer-support",
        "ce",
        "sales",
        "marketing",
    ]


def test_an_incident_without_customer_impact_stays_in_its_channel(
    flow: IncidentFlow, posts: Posts
) -> None:
    declare(flow, critical=True, customers=False)

    assert [body["channel"] for body in posts()] == [CHANNEL]


def test_a_group_id_is_tagged_as_a_user_group(
    make_flow: Callable[..., IncidentFlow],
    config_for: Callable[..., SlackConfig],
    slack_api: VendorAPI,
    posts: Posts,
) -> None:
    plugin = SlackPlugin(
        config_for(slack_api, marketing_group="S0MARKET1", announce_channels="C0SUPPORT")
    )
    declare(make_flow(plugin), critical=False)

    assert [body["channel"] for body in posts()] == [CHANNEL, "C0SUPPORT", "marketing"]
    (marketing,) = posts("marketing")
    assert marketing["text"].startswith("<!subteam^S0MARKET1> ")


# ------------------------------------------------------------------ roles


def test_a_role_holder_is_invited_and_the_topic_names_them(
    flow: IncidentFlow, bodies: Bodies, posts: Posts
) -> None:
    incident = declare(flow, customers=True)
    flow.assign(incident.id, "lead", BOB, by=ALICE)
    assert flow.drain(timeout=10)

    assert bodies("conversations.invite")[-1] == {"channel": CHANNEL, "users": BOB}
    assert posts(CHANNEL)[-1]["text"] == (
        f":bust_in_silhouette: <@{BOB}> is now *lead* (<@{ALICE}>)."
    )
    assert bodies("conversations.setTopic")[-1]["topic"] == (
        f"Critical | identified | Lead: <@{BOB}> | Messenger: unassigned | customer impact"
    )
    all_delivered(flow)


def test_someone_already_in_the_channel_counts_as_invited(
    flow: IncidentFlow, slack_api: VendorAPI, posts: Posts
) -> None:
    incident = declare(flow)
    slack_refuses(slack_api, "conversations.invite", "already_in_channel")
    assigned = flow.assign(incident.id, "lead", BOB, by=ALICE)
    assert flow.drain(timeout=10)

    all_delivered(flow)
    assert "is now *lead*" in posts(CHANNEL)[-1]["text"]
    assert refs(flow, incident.id, "invite")[-1] == f"{incident.id}:{assigned.version}:slack:{BOB}"


def test_a_name_that_is_not_a_user_id_is_not_invited_and_the_channel_is_told(
    flow: IncidentFlow, bodies: Bodies, posts: Posts
) -> None:
    incident = declare(flow)
    flow.assign(incident.id, "lead", "dave", by=ALICE)
    assert flow.drain(timeout=10)

    assert [body["users"] for body in bodies("conversations.invite")] == [ALICE]
    text = posts(CHANNEL)[-1]["text"]
    assert "dave is now *lead*" in text
    assert "is not a Slack user id, so nobody was invited" in text
    all_delivered(flow)


def test_a_user_slack_cannot_invite_is_named_in_the_channel(
    flow: IncidentFlow, slack_api: VendorAPI, posts: Posts
) -> None:
    incident = declare(flow)
    slack_refuses(slack_api, "conversations.invite", "user_not_found")
    flow.assign(incident.id, "messenger", "U0GHOST01", by=ALICE)
    assert flow.drain(timeout=10)

    all_delivered(flow)
    assert "Could not invite them (user_not_found)" in posts(CHANNEL)[-1]["text"]


# ------------------------------------------------------------------ every event


def test_every_event_is_one_line_naming_its_actor_and_the_topic_follows(
    flow: IncidentFlow, clock: FakeClock, bodies: Bodies, posts: Posts
) -> None:
    incident = staffed(flow, customers=False)
    flow.triage(incident.id, by=BOB)
    flow.page(incident.id, "delivery team", by=BOB, message="help with search")
    flow.acknowledge_page(incident.id, by=BOB)
    flow.change_severity(incident.id, "major", by=BOB)
    flow.start_mitigation(incident.id, by=BOB)
    flow.record_rollback(incident.id, outcome="rolled back to 3.29", succeeded=True, by=BOB)
    flow.add_follow_up(incident.id, "Alert on search 500s", owner=BOB, by=BOB)
    clock.advance(timedelta(minutes=5))
    assert flow.drain(timeout=10)

    lines = texts(posts(CHANNEL))[1:]  # after the declaration
    page = flow.get(incident.id).pages[0].id
    assert lines == [
        f":bust_in_silhouette: <@{BOB}> is now *lead* (<@{ALICE}>).",
        f":raising_hand: <@{BOB}> acknowledged ownership: “I'm on it.”",
        f":bust_in_silhouette: <@{CAROL}> is now *messenger* (<@{BOB}>).",
        f":arrow_right: *identified* → *triaged* (<@{BOB}>).",
        f":pager: <@{BOB}> paged *delivery team* ({page}): help with search.",
        f":ok_hand: <@{BOB}> answered the page to delivery team ({page}).",
        f":large_orange_circle: Severity critical → *major* (<@{BOB}>).",
        f":arrow_right: *triaged* → *mitigating* (<@{BOB}>).",
        f":leftwards_arrow_with_hook: <@{BOB}> rolled back: rolled back to 3.29 (it worked).",
        f":memo: Follow-up added for <@{BOB}>: Alert on search 500s (<@{BOB}>).",
    ]
    assert [body["topic"] for body in bodies("conversations.setTopic")] == [
        "Critical | identified | Lead: unassigned",
        f"Critical | identified | Lead: <@{BOB}>",
        f"Critical | identified | Lead: <@{BOB}> | Messenger: <@{CAROL}>",
        f"Critical | triaged | Lead: <@{BOB}> | Messenger: <@{CAROL}>",
        f"Major | triaged | Lead: <@{BOB}> | Messenger: <@{CAROL}>",
        f"Major | mitigating | Lead: <@{BOB}> | Messenger: <@{CAROL}>",
    ]
    all_delivered(flow)


def test_text_people_typed_cannot_mention_anyone(flow: IncidentFlow, posts: Posts) -> None:
    incident = declare(flow, customers=False)
    flow.record_rollback(incident.id, outcome="<!channel> reverted <@U0ALL> & more", by=BOB)
    assert flow.drain(timeout=10)

    assert "&lt;!channel&gt; reverted &lt;@U0ALL&gt; &amp; more" in posts(CHANNEL)[-1]["text"]


def test_other_adapters_records_are_never_posted(flow: IncidentFlow, slack_api: VendorAPI) -> None:
    incident = declare(flow, customers=False)
    before = mutations(slack_api)
    flow.record_external(incident.id, system="opsgenie", kind="alert", external_id="a1", by="og")
    assert flow.drain(timeout=10)

    assert mutations(slack_api) == before
    all_delivered(flow)


# ------------------------------------------------------------------ reminders and releases


def test_a_status_update_reminder_mentions_the_messenger_in_the_channel(
    flow: IncidentFlow, clock: FakeClock, posts: Posts
) -> None:
    incident = staffed(flow)
    clock.advance(timedelta(minutes=31))
    flow.fire_reminders(incident.id)
    assert flow.drain(timeout=10)

    text = posts(CHANNEL)[-1]["text"]
    assert text.startswith(f":alarm_clock: <@{CAROL}> (messenger): 30 minutes since declaring")
    assert "/incident statuspage" in text


def test_an_unanswered_page_reminds_the_lead_in_the_channel(
    flow: IncidentFlow, clock: FakeClock, posts: Posts
) -> None:
    incident = staffed(flow, customers=False)
    flow.page(incident.id, "delivery team", by=BOB)
    clock.advance(timedelta(minutes=11))
    flow.fire_reminders(incident.id)
    assert flow.drain(timeout=10)

    text = posts(CHANNEL)[-1]["text"]
    assert text.startswith(f":pager: <@{BOB}> (lead): the page to delivery team")


def test_an_announcement_day_tells_marketing_and_tags_the_group(
    make_flow: Callable[..., IncidentFlow], slack_plugin: SlackPlugin, posts: Posts
) -> None:
    day = AnnouncementDay(date(2024, 5, 14), "Series D announcement", contact="U0MARKET1")
    process = HANDBOOK.with_comms(attrs.evolve(HANDBOOK_COMMS, announcement_days=(day,)))
    flow = make_flow(slack_plugin, process=process)
    incident = declare(flow, critical=False, customers=False)
    flow.fire_reminders(incident.id)
    assert flow.drain(timeout=10)

    (marketing,) = posts("marketing")
    assert marketing["text"].startswith(
        "@marketing-incident An incident is open on an announcement"
    )
    assert "(contact: <@U0MARKET1>)" in marketing["text"]
    assert marketing["link_names"] is True
    assert "Big announcement day" in posts(CHANNEL)[-1]["text"]
    all_delivered(flow)


def test_a_paused_release_tags_its_groups_and_reminds_the_messenger(
    flow: IncidentFlow, posts: Posts
) -> None:
    incident = staffed(flow)
    flow.pause_release(incident.id, release="3.30", by=BOB)
    assert flow.drain(timeout=10)

    paused, reminder = posts(CHANNEL)[-2:]
    assert "Release *3.30* is paused" in paused["text"]
    assert "@delivery-support @cs @ce: plan accordingly" in paused["text"]
    assert paused["link_names"] is True
    assert reminder["text"].startswith(f":octagonal_sign: <@{CAROL}> (messenger): release 3.30")


# ------------------------------------------------------------------ status updates


def test_a_status_update_is_quoted_with_its_findings_and_relayed(
    flow: IncidentFlow, posts: Posts
) -> None:
    incident = staffed(flow, critical=False)
    flow.post_status_update(
        incident.id,
        FIRST_POST.replace("search.", "search this morning."),
        phase="identified",
        by=CAROL,
    )
    assert flow.drain(timeout=10)

    in_channel = posts(CHANNEL)[-1]["text"]
    assert in_channel.startswith(
        f":mega: Status update (*identified*) by <@{CAROL}>:\n> Identified"
    )
    assert ":warning: departs from the handbook's rule `no_regional_words`" in in_channel
    relayed = [body["channel"] for body in posts()[-4:]]
    assert relayed == ["customer-support", "ce", "sales", "marketing"]
    assert posts("sales")[-1]["text"].endswith(
        ":warning: This post departs from the handbook's rules (`no_regional_words`)."
    )
    assert f"More in <#{CHANNEL}>" in posts("sales")[-1]["text"]
    all_delivered(flow)


# ------------------------------------------------------------------ closing


def test_closing_posts_a_note_and_archives_the_channel_once(
    flow: IncidentFlow, bodies: Bodies, posts: Posts
) -> None:
    incident = staffed(flow, customers=False)
    flow.start_mitigation(incident.id, by=BOB)
    flow.resolve(incident.id, by=BOB)
    flow.start_postmortem(incident.id, by=BOB)
    for item in CHECKLIST:
        flow.complete_item(incident.id, item, by=BOB)
    flow.close(incident.id, by=BOB)
    assert flow.drain(timeout=10)

    assert posts(CHANNEL)[-1]["text"].startswith(f":checkered_flag: *Incident closed* by <@{BOB}>")
    assert "Post-mortem checklist: 5 done, 0 waived." in posts(CHANNEL)[-1]["text"]
    assert bodies("conversations.archive") == [{"channel": CHANNEL}]
    assert refs(flow, incident.id, "archive") == [""]
    all_delivered(flow)


def test_a_false_positive_closes_and_archives_the_channel(
    flow: IncidentFlow, slack_api: VendorAPI, bodies: Bodies, posts: Posts
) -> None:
    incident = declare(flow, customers=False)
    slack_refuses(slack_api, "conversations.archive", "already_archived")
    flow.mark_false_positive(incident.id, reason="a test alert", by=ALICE)
    assert flow.drain(timeout=10)

    marked, closed = texts(posts(CHANNEL))[-2:]
    assert "marked this a *false positive*: a test alert" in marked
    assert closed.startswith(":white_check_mark: Closed as a *false positive*")
    # Slack answered already_archived: the channel is archived all the same
    assert bodies("conversations.archive") == [{"channel": CHANNEL}]
    assert refs(flow, incident.id, "archive") == [""]
    all_delivered(flow)


# ------------------------------------------------------------------ idempotency and order


def test_redelivering_every_event_makes_nothing_twice(
    flow: IncidentFlow, clock: FakeClock, slack_plugin: SlackPlugin, slack_api: VendorAPI
) -> None:
    incident = staffed(flow)
    flow.pause_release(incident.id, release="3.30", by=BOB)
    flow.post_status_update(incident.id, FIRST_POST, phase="identified", by=CAROL)
    flow.start_mitigation(incident.id, by=BOB)
    flow.resolve(incident.id, by=BOB)
    flow.start_postmortem(incident.id, by=BOB)
    for item in CHECKLIST:
        flow.complete_item(incident.id, item, by=BOB)
    flow.close(incident.id, by=BOB)
    assert flow.drain(timeout=10)
    all_delivered(flow)
    before = mutations(slack_api)

    history = flow.history(incident.id)
    for row in flow.deliveries(plugin="slack", incident_id=incident.id):
        event = history[row.version - 1]
        as_of = fold(history[: row.version])
        assert as_of is not None
        slack_plugin.incident_flow_event(event, as_of, row.key, flow)

    assert mutations(slack_api) == before


def test_an_event_before_the_channel_is_recorded_waits_for_it(
    make_flow: Callable[..., IncidentFlow], slack_plugin: SlackPlugin, slack_api: VendorAPI
) -> None:
    flow = make_flow(deliver=False)
    incident = flow.declare("Search is down", severity="major", customer_impact=False, by=ALICE)
    after = flow.assign(incident.id, "lead", BOB, by=ALICE)
    event = flow.history(incident.id)[-1]

    with pytest.raises(RetryableDeliveryError, match="no Slack channel recorded yet"):
        slack_plugin.incident_flow_event(event, after, f"{incident.id}:2:slack", flow)
    assert slack_api.requests == []


def test_a_rate_limited_declaration_is_retried_and_the_rest_waits_in_order(
    flow: IncidentFlow, clock: FakeClock, slack_api: VendorAPI, bodies: Bodies, posts: Posts
) -> None:
    slack_api.fail("POST", "/conversations.create", status=429, retry_after=30)
    incident = flow.declare("Search is down", severity="major", customer_impact=False, by=ALICE)
    flow.assign(incident.id, "lead", BOB, by=ALICE)
    assert flow.drain(timeout=10)

    (failed,) = flow.deliveries(plugin="slack", status="failed")
    assert failed.version == 1
    assert "rate limited" in (failed.last_error or "")
    assert posts() == []

    clock.advance(timedelta(seconds=31))
    assert flow.drain(timeout=10)
    all_delivered(flow)
    assert len(bodies("conversations.create")) == 1
    assert [text.split(" ")[0] for text in texts(posts(CHANNEL))] == [
        ":large_orange_circle:",
        ":bust_in_silhouette:",
    ]


def test_a_permanent_slack_error_kills_the_delivery_with_slacks_code(
    flow: IncidentFlow, slack_api: VendorAPI, slack_token: str
) -> None:
    incident = declare(flow, customers=False)
    slack_refuses(slack_api, "chat.postMessage", "not_in_channel")
    flow.record_rollback(incident.id, outcome="reverted", by=BOB)
    assert flow.drain(timeout=10)

    (dead,) = flow.deliveries(plugin="slack", status="dead")
    assert "not_in_channel" in (dead.last_error or "")
    assert "invite it" in (dead.last_error or "")
    assert slack_token not in (dead.last_error or "")


def test_without_a_flow_nothing_can_be_recorded(slack_plugin: SlackPlugin) -> None:
    flow = IncidentFlow(entry_points=False, deliver=False, reminders=False)
    with flow:
        incident = flow.declare("Search is down", severity="major", customer_impact=False, by=ALICE)
        event = flow.history(incident.id)[0]
    with pytest.raises(PermanentDeliveryError, match="needs the flow"):
        slack_plugin.incident_flow_event(event, incident, f"{incident.id}:1:slack", None)


def test_external_ref_events_are_ignored(slack_plugin: SlackPlugin, slack_api: VendorAPI) -> None:
    flow = IncidentFlow(entry_points=False, deliver=False, reminders=False)
    with flow:
        incident = flow.declare("Search is down", severity="major", customer_impact=False, by=ALICE)
        after = flow.record_external(
            incident.id, system="slack", kind="channel", external_id=CHANNEL, by="slack"
        )
        event = flow.history(incident.id)[-1]
        assert isinstance(event, ExternalRefRecorded)
        slack_plugin.incident_flow_event(event, after, f"{incident.id}:2:slack", flow)
    assert slack_api.requests == []


def test_the_recap_says_where_the_incident_stands(flow: IncidentFlow) -> None:
    incident = staffed(flow)
    text = messages.recap(flow.get(incident.id))

    assert text.splitlines()[0] == f"*Search is down!* (`{incident.id}`)"
    assert f"*Lead:* <@{BOB}>" in text
    assert "*Last status update:* none yet" in text
    blocks = messages.recap_blocks(flow.get(incident.id))
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Search is down!"},
    }
    assert any("*Messenger*" in field["text"] for field in blocks[1]["fields"])

"""Pages become Events API v2 alerts that are acknowledged, escalated and resolved with the
incident, each sent once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from incident_flow_pagerduty import PagerDutyPlugin, escalation_dedup_key, page_dedup_key

from incident_flow import FakeClock, IncidentFlow, Severity
from incident_flow.testing.vendor_api import VendorAPI

POST = (
    "Investigating: We are investigating an issue with search. "
    "If you have any questions, email support@sourcegraph.com."
)


def enqueued(api: VendorAPI) -> list[dict[str, Any]]:
    """The bodies of the events sent, in order."""
    bodies: list[dict[str, Any]] = []
    for request in api.requests_to("POST", "/enqueue"):
        assert isinstance(request.body, dict)
        bodies.append(request.body)
    return bodies


def actions(api: VendorAPI) -> list[tuple[str, str]]:
    """``(event_action, dedup_key)`` of each event sent."""
    return [(body["event_action"], body["dedup_key"]) for body in enqueued(api)]


def mitigating(flow: IncidentFlow, *, severity: Severity = Severity.CRITICAL) -> str:
    """A customer-impacting incident led by alice, mitigating, with a status post."""
    incident = flow.declare("Search is down", severity=severity, customer_impact=True, by="alice")
    flow.assign(incident.id, "lead", "alice", by="alice")
    flow.acknowledge(incident.id, by="alice")
    flow.assign(incident.id, "messenger", "bob", by="alice")
    flow.start_mitigation(incident.id, by="alice")
    return incident.id


def test_a_page_triggers_an_alert_on_the_default_routing_key(
    flow: IncidentFlow, events_api: VendorAPI, known: Any
) -> None:
    incident = flow.declare("Search is down", severity="critical", customer_impact=True, by="al")
    flow.page(incident.id, "delivery team", by="al", message="search returns 500s")
    assert flow.drain(timeout=5)

    [body] = enqueued(events_api)
    dedup_key = f"incident-flow/{incident.id}/page-2"
    assert body["routing_key"] == known.routing_key
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == dedup_key
    assert body["client"] == "incident_flow"
    payload = body["payload"]
    assert payload["summary"] == "Search is down: search returns 500s"
    assert payload["source"] == "incident-flow"
    assert payload["severity"] == "critical"
    assert payload["timestamp"] == "2024-05-14T09:00:00+00:00"
    details = payload["custom_details"]
    assert details["incident_id"] == incident.id
    assert details["phase"] == "identified"
    assert details["target"] == "delivery team"
    assert details["page_id"] == "page-2"
    ref = flow.get(incident.id).external_ref("pagerduty", "alert", "page-2")
    assert ref is not None
    assert ref.external_id == dedup_key
    assert ref.by == "pagerduty"


def test_a_page_for_a_listed_target_goes_to_its_own_routing_key(
    flow: IncidentFlow, events_api: VendorAPI, known: Any
) -> None:
    incident = flow.declare("Search is down", severity="major", customer_impact=False, by="al")
    flow.page(incident.id, "Search-Team", by="al")
    assert flow.drain(timeout=5)

    [body] = enqueued(events_api)
    assert body["routing_key"] == known.team_key  # matched ignoring case
    assert body["payload"]["severity"] == "error"  # major pages as error by default
    assert body["payload"]["summary"] == "Search is down"


def test_alert_severities_follow_the_configured_map(
    make_plugin: Callable[..., PagerDutyPlugin],
    flow_for: Callable[..., IncidentFlow],
    events_api: VendorAPI,
) -> None:
    flow = flow_for(make_plugin(severities={"major": "warning"}))
    incident = flow.declare("Search is slow", severity="major", customer_impact=False, by="al")
    flow.page(incident.id, "delivery team", by="al")
    assert flow.drain(timeout=5)

    assert enqueued(events_api)[0]["payload"]["severity"] == "warning"


def test_a_long_summary_is_cut_at_1024_characters(
    flow: IncidentFlow, events_api: VendorAPI
) -> None:
    incident = flow.declare("Search is down", severity="critical", customer_impact=True, by="al")
    flow.page(incident.id, "delivery team", by="al", message="x" * 3000)
    assert flow.drain(timeout=5)

    summary = enqueued(events_api)[0]["payload"]["summary"]
    assert len(summary) == 1024
    assert summary.endswith("…")


def test_a_redelivered_page_triggers_nothing_more(
    flow: IncidentFlow,
    plugin: PagerDutyPlugin,
    events_api: VendorAPI,
    deliver: Callable[..., None],
) -> None:
    incident = flow.declare("Search is down", severity="critical", customer_impact=True, by="al")
    flow.page(incident.id, "delivery team", by="al")
    assert flow.drain(timeout=5)
    refs = flow.get(incident.id).external_refs

    deliver(plugin, flow, incident.id, 2)

    assert len(events_api.requests) == 1
    assert flow.get(incident.id).external_refs == refs


def test_dedup_keys_are_derived_from_the_incident_alone() -> None:
    # A second worker, or the same one after a crash, sends the same key: PagerDuty folds them.
    assert page_dedup_key("incident-flow", "inc-1", "page-2") == "incident-flow/inc-1/page-2"
    long_id = "i" * 300
    key = page_dedup_key("incident-flow", long_id, "page-2")
    assert key == page_dedup_key("incident-flow", long_id, "page-2")
    assert len(key) <= 200
    assert key.startswith("incident-flow/")
    assert escalation_dedup_key("p", "inc-1", "page_unacknowledged:page-2:t") == (
        "p/inc-1/escalation/page_unacknowledged:page-2:t"
    )


def test_acknowledging_a_page_acknowledges_its_alert_once(
    flow: IncidentFlow,
    plugin: PagerDutyPlugin,
    events_api: VendorAPI,
    deliver: Callable[..., None],
    known: Any,
) -> None:
    incident = flow.declare("Search is down", severity="critical", customer_impact=True, by="al")
    flow.page(incident.id, "search-team", by="al")
    flow.acknowledge_page(incident.id, "page-2", by="sam")
    assert flow.drain(timeout=5)
    deliver(plugin, flow, incident.id, 3)  # the acknowledgement, again

    dedup_key = f"incident-flow/{incident.id}/page-2"
    assert actions(events_api) == [("trigger", dedup_key), ("acknowledge", dedup_key)]
    ack = enqueued(events_api)[1]
    assert ack["routing_key"] == known.team_key  # the service the alert is on
    assert "payload" not in ack
    ref = flow.get(incident.id).external_ref("pagerduty", "acknowledge", dedup_key)
    assert ref is not None


def test_the_paged_person_taking_the_lead_acknowledges_their_alert(
    flow: IncidentFlow, events_api: VendorAPI
) -> None:
    incident = flow.declare("Search is down", severity="critical", customer_impact=True, by="al")
    flow.page(incident.id, "sam", by="al")
    flow.assign(incident.id, "lead", "sam", by="al")
    flow.acknowledge(incident.id, by="sam")  # "I'm on it" answers sam's page
    assert flow.drain(timeout=5)

    dedup_key = f"incident-flow/{incident.id}/page-2"
    assert actions(events_api) == [("trigger", dedup_key), ("acknowledge", dedup_key)]


def test_resolving_resolves_every_alert_of_the_incident_once(
    flow: IncidentFlow,
    plugin: PagerDutyPlugin,
    events_api: VendorAPI,
    deliver: Callable[..., None],
    known: Any,
) -> None:
    incident_id = mitigating(flow)
    flow.page(incident_id, "delivery team", by="alice")
    flow.page(incident_id, "search-team", by="alice")
    flow.post_status_update(incident_id, POST, phase="investigating", by="bob")
    resolved = flow.resolve(incident_id, by="alice")
    assert flow.drain(timeout=5)
    deliver(plugin, flow, incident_id, resolved.version)  # the resolution, again

    sent = enqueued(events_api)
    resolves = [body for body in sent if body["event_action"] == "resolve"]
    first, second = (page.id for page in resolved.pages)
    assert [(body["dedup_key"], body["routing_key"]) for body in resolves] == [
        (f"incident-flow/{incident_id}/{first}", known.routing_key),
        (f"incident-flow/{incident_id}/{second}", known.team_key),
    ]
    now = flow.get(incident_id)
    assert {ref.source for ref in now.external_refs if ref.kind == "resolve"} == {
        body["dedup_key"] for body in resolves
    }


def test_a_false_positive_resolves_its_alerts_once(
    flow: IncidentFlow, events_api: VendorAPI
) -> None:
    incident = flow.declare("Search is down", severity="critical", customer_impact=True, by="al")
    flow.page(incident.id, "delivery team", by="al")
    flow.mark_false_positive(incident.id, reason="a monitoring glitch", by="al")
    assert flow.drain(timeout=5)

    dedup_key = f"incident-flow/{incident.id}/page-2"
    # Both the phase change and the false-positive mark arrive; one resolve is sent.
    assert actions(events_api) == [("trigger", dedup_key), ("resolve", dedup_key)]


def test_an_incident_without_pages_sends_nothing(
    flow: IncidentFlow, events_api: VendorAPI, rest_api: VendorAPI
) -> None:
    incident_id = mitigating(flow)
    flow.post_status_update(incident_id, POST, phase="investigating", by="bob")
    flow.resolve(incident_id, by="alice")
    assert flow.drain(timeout=5)

    assert events_api.requests == []
    assert rest_api.requests == []


def test_an_unacknowledged_page_escalates_on_the_escalation_routing_key(
    make_plugin: Callable[..., PagerDutyPlugin],
    flow_for: Callable[..., IncidentFlow],
    events_api: VendorAPI,
    incident_clock: FakeClock,
    known: Any,
) -> None:
    flow = flow_for(make_plugin(escalation_routing_key=known.escalation_key))
    incident = flow.declare("Search is down", severity="critical", customer_impact=True, by="al")
    flow.page(incident.id, "delivery team", by="al", message="search returns 500s")
    incident_clock.advance(timedelta(minutes=10))
    [reminder] = flow.fire_reminders(incident.id)
    assert flow.drain(timeout=5)

    page_key = f"incident-flow/{incident.id}/page-2"
    escalation_key = f"incident-flow/{incident.id}/escalation/{reminder.key}"
    assert actions(events_api) == [("trigger", page_key), ("trigger", escalation_key)]
    escalation = enqueued(events_api)[1]
    assert escalation["routing_key"] == known.escalation_key
    assert escalation["payload"]["summary"].startswith("Escalation: Search is down")
    assert escalation["payload"]["custom_details"]["page_id"] == "page-2"
    ref = flow.get(incident.id).external_ref("pagerduty", "alert", reminder.key)
    assert ref is not None
    assert ref.external_id == escalation_key

    flow.acknowledge_page(incident.id, "page-2", by="sam")
    assert flow.drain(timeout=5)
    # Answering the page acknowledges its escalation too, on the escalation service.
    acks = [body for body in enqueued(events_api) if body["event_action"] == "acknowledge"]
    assert [(body["dedup_key"], body["routing_key"]) for body in acks] == [
        (page_key, known.routing_key),
        (escalation_key, known.escalation_key),
    ]


def test_without_an_escalation_routing_key_pagerduty_escalates_by_itself(
    flow: IncidentFlow, events_api: VendorAPI, incident_clock: FakeClock
) -> None:
    incident = flow.declare("Search is down", severity="critical", customer_impact=True, by="al")
    flow.page(incident.id, "delivery team", by="al")
    incident_clock.advance(timedelta(minutes=10))
    assert len(flow.fire_reminders(incident.id)) == 1
    assert flow.drain(timeout=5)

    assert [action for action, _ in actions(events_api)] == ["trigger"]
    refs = flow.get(incident.id).external_refs
    assert [ref.kind for ref in refs] == ["alert"]


def test_a_page_answered_since_the_reminder_does_not_escalate(
    make_plugin: Callable[..., PagerDutyPlugin],
    make_incident_flow: Callable[..., IncidentFlow],
    events_api: VendorAPI,
    incident_clock: FakeClock,
    deliver: Callable[..., None],
    known: Any,
) -> None:
    plugin = make_plugin(escalation_routing_key=known.escalation_key)
    flow = make_incident_flow(deliver=False)  # delivered by hand, in order
    incident = flow.declare("Search is down", severity="critical", customer_impact=True, by="al")
    flow.page(incident.id, "delivery team", by="al")
    incident_clock.advance(timedelta(minutes=10))
    [reminder] = flow.fire_reminders(incident.id)
    flow.acknowledge_page(incident.id, "page-2", by="sam")

    for version in (2, reminder.version):
        deliver(plugin, flow, incident.id, version)

    assert [action for action, _ in actions(events_api)] == ["trigger"]

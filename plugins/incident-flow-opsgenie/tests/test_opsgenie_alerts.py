"""Each event the adapter reacts to sends the Opsgenie request it should, once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from urllib.parse import unquote

import pytest
from incident_flow_opsgenie import OpsgeniePlugin, Responder, alert_alias

from incident_flow import FakeClock, Incident, IncidentFlow
from incident_flow.events import Event, ReminderDue
from incident_flow.testing.vendor_api import RecordedRequest, VendorAPI
from incident_flow.timers import PAGE_UNACKNOWLEDGED

Declare = Callable[..., Incident]
Resolve = Callable[[IncidentFlow, str], Incident]
Deliver = Callable[[OpsgeniePlugin, IncidentFlow, str, type[Event]], None]

CREATE = ("POST", "/v2/alerts")
ACKNOWLEDGE = ("POST", "/v2/alerts/{identifier}/acknowledge")
CLOSE = ("POST", "/v2/alerts/{identifier}/close")
ESCALATE = ("POST", "/v2/alerts/{identifier}/escalate")
RESPONDERS = ("POST", "/v2/alerts/{identifier}/responders")


def identifier(request: RecordedRequest) -> str:
    """The alert identifier in the request's path, decoded as Opsgenie decodes it."""
    return unquote(request.path_params["identifier"])


def mutating(api: VendorAPI) -> list[str]:
    return [f"{r.method} {r.operation}" for r in api.requests if r.method != "GET"]


def test_a_page_creates_an_alert_with_the_incident_in_it(
    flow: IncidentFlow, opsgenie_api: VendorAPI, declare: Declare, api_key: str
) -> None:
    incident = declare(flow, severity="critical")
    flow.page(incident.id, "Search", by="bob", message="search is down, please join #inc")
    assert flow.drain(timeout=10)

    [request] = opsgenie_api.requests_to(*CREATE)
    assert request.headers["Authorization"] == f"GenieKey {api_key}"
    body = request.body
    assert body["message"] == "search is down, please join #inc"
    assert body["alias"] == alert_alias(incident.id, "page-4")
    assert body["responders"] == [{"type": "team", "name": "Search"}]
    assert body["priority"] == "P1"
    assert body["tags"] == ["incident-flow", "severity:critical"]
    assert body["details"]["incident_id"] == incident.id
    assert body["details"]["phase"] == "identified"
    assert body["details"]["page_id"] == "page-4"
    assert body["source"] == "incident-flow"
    assert body["user"] == "bob"
    assert "Search returns 502" in body["description"]
    assert "Paged by bob for Search" in body["description"]


def test_the_alert_is_recorded_on_the_incident_by_its_alias(
    flow: IncidentFlow, declare: Declare
) -> None:
    incident = declare(flow)
    flow.page(incident.id, "Search", by="bob")
    assert flow.drain(timeout=10)

    ref = flow.get(incident.id).external_ref("opsgenie", "alert", "page-4")
    assert ref is not None
    assert ref.external_id == alert_alias(incident.id, "page-4")
    assert ref.by == "opsgenie"
    assert all(row.status == "delivered" for row in flow.deliveries())


@pytest.mark.parametrize(
    ("target", "responder"),
    [
        ("Search", {"type": "team", "name": "Search"}),
        ("ann@example.com", {"type": "user", "username": "ann@example.com"}),
        ("search on-call", {"type": "schedule", "name": "Search rotation"}),
        ("dba", {"type": "user", "username": "dana@example.com"}),
    ],
)
def test_a_target_is_a_user_when_it_has_an_at_sign_else_a_team_unless_mapped(
    make_flow: Callable[..., IncidentFlow],
    make_plugin: Callable[..., OpsgeniePlugin],
    opsgenie_api: VendorAPI,
    declare: Declare,
    target: str,
    responder: dict[str, str],
) -> None:
    adapter = make_plugin(
        responders={
            "search on-call": Responder.parse("schedule:Search rotation"),
            "dba": Responder.parse("dana@example.com"),
        }
    )
    flow = make_flow(adapter)
    incident = declare(flow)
    flow.page(incident.id, target, by="bob")
    assert flow.drain(timeout=10)

    [request] = opsgenie_api.requests_to(*CREATE)
    assert request.body["responders"] == [responder]


def test_priority_follows_severity_and_can_be_configured(
    make_flow: Callable[..., IncidentFlow],
    make_plugin: Callable[..., OpsgeniePlugin],
    opsgenie_api: VendorAPI,
    declare: Declare,
) -> None:
    flow = make_flow(make_plugin(priorities={"critical": "P1", "major": "P3"}))
    severities = {}
    for severity in ("critical", "major"):
        incident = declare(flow, severity=severity)
        flow.page(incident.id, "Search", by="bob")
        severities[incident.id] = severity
    assert flow.drain(timeout=10)

    # Incidents are delivered side by side: their alerts may come in either order.
    priorities = {
        severities[r.body["details"]["incident_id"]]: r.body["priority"]
        for r in opsgenie_api.requests_to(*CREATE)
    }
    assert priorities == {"critical": "P1", "major": "P3"}


def test_a_long_message_is_cut_at_a_word_to_fit_opsgenie(
    flow: IncidentFlow, opsgenie_api: VendorAPI, declare: Declare
) -> None:
    incident = declare(flow)
    message = "search is returning errors for every query " * 6
    flow.page(incident.id, "Search", by="bob", message=message)
    assert flow.drain(timeout=10)

    [request] = opsgenie_api.requests_to(*CREATE)
    sent = request.body["message"]
    assert len(sent) <= 130
    assert sent.endswith("…")
    assert message.startswith(sent[:-1])
    assert sent[:-1].endswith(("query", "search", "is", "returning", "errors", "for", "every"))


def test_a_page_without_a_message_sends_the_incident_title(
    flow: IncidentFlow, opsgenie_api: VendorAPI, declare: Declare
) -> None:
    incident = declare(flow)
    flow.page(incident.id, "Search", by="bob")
    assert flow.drain(timeout=10)

    [request] = opsgenie_api.requests_to(*CREATE)
    assert request.body["message"] == "Search is down"


def test_a_redelivered_page_creates_no_second_alert(
    quiet_flow: IncidentFlow,
    plugin: OpsgeniePlugin,
    opsgenie_api: VendorAPI,
    declare: Declare,
    deliver: Deliver,
) -> None:
    from incident_flow.events import PageSent

    incident = declare(quiet_flow)
    quiet_flow.page(incident.id, "Search", by="bob")

    deliver(plugin, quiet_flow, incident.id, PageSent)
    deliver(plugin, quiet_flow, incident.id, PageSent)

    assert len(opsgenie_api.requests_to(*CREATE)) == 1
    refs = [r for r in quiet_flow.get(incident.id).external_refs if r.kind == "alert"]
    assert len(refs) == 1


def test_acknowledging_a_page_acknowledges_its_alert_once(
    quiet_flow: IncidentFlow,
    plugin: OpsgeniePlugin,
    opsgenie_api: VendorAPI,
    declare: Declare,
    deliver: Deliver,
) -> None:
    from incident_flow.events import PageAcknowledged, PageSent

    incident = declare(quiet_flow)
    quiet_flow.page(incident.id, "ann@example.com", by="bob")
    deliver(plugin, quiet_flow, incident.id, PageSent)
    quiet_flow.acknowledge_page(incident.id, "page-4", by="ann@example.com")

    deliver(plugin, quiet_flow, incident.id, PageAcknowledged)
    deliver(plugin, quiet_flow, incident.id, PageAcknowledged)

    [request] = opsgenie_api.requests_to(*ACKNOWLEDGE)
    assert identifier(request) == alert_alias(incident.id, "page-4")
    assert request.query["identifierType"] == "alias"
    assert request.body["user"] == "ann@example.com"
    assert quiet_flow.get(incident.id).external_ref("opsgenie", "alert_acknowledged", "page-4")


def test_the_paged_person_taking_the_lead_acknowledges_their_alert(
    flow: IncidentFlow, opsgenie_api: VendorAPI
) -> None:
    incident = flow.declare("Search is down", severity="major", customer_impact=False, by="al")
    flow.page(incident.id, "carol@example.com", by="al")
    flow.page(incident.id, "Search", by="al")
    flow.assign(incident.id, "lead", "carol@example.com", by="al")
    flow.acknowledge(incident.id, by="carol@example.com")
    assert flow.drain(timeout=10)

    [request] = opsgenie_api.requests_to(*ACKNOWLEDGE)
    assert identifier(request) == alert_alias(incident.id, "page-2")
    assert request.body["user"] == "carol@example.com"
    assert all(row.status == "delivered" for row in flow.deliveries())


def test_resolving_closes_every_alert_of_the_incident_once(
    flow: IncidentFlow, opsgenie_api: VendorAPI, declare: Declare, resolve: Resolve
) -> None:
    incident = declare(flow)
    flow.page(incident.id, "Search", by="bob")
    flow.page(incident.id, "ann@example.com", by="bob")
    flow.acknowledge_page(incident.id, "page-5", by="ann@example.com")
    resolve(flow, incident.id)
    flow.start_postmortem(incident.id, by="bob")
    assert flow.drain(timeout=10)

    closed = [identifier(r) for r in opsgenie_api.requests_to(*CLOSE)]
    assert closed == [alert_alias(incident.id, "page-4"), alert_alias(incident.id, "page-5")]
    assert all(r.query["identifierType"] == "alias" for r in opsgenie_api.requests_to(*CLOSE))
    refs = flow.get(incident.id).external_refs
    assert {r.source for r in refs if r.kind == "alert_closed"} == {"page-4", "page-5"}


def test_a_false_positive_closes_its_alerts(
    flow: IncidentFlow, opsgenie_api: VendorAPI, declare: Declare
) -> None:
    incident = declare(flow)
    flow.page(incident.id, "Search", by="bob")
    flow.mark_false_positive(incident.id, reason="a flaky probe", by="bob")
    assert flow.drain(timeout=10)

    [request] = opsgenie_api.requests_to(*CLOSE)
    assert identifier(request) == alert_alias(incident.id, "page-4")
    assert "false positive: a flaky probe" in request.body["note"]


def test_events_without_a_page_send_nothing(
    flow: IncidentFlow, opsgenie_api: VendorAPI, declare: Declare, resolve: Resolve
) -> None:
    incident = declare(flow)
    resolve(flow, incident.id)
    assert flow.drain(timeout=10)

    assert opsgenie_api.requests == []


def _unanswered(
    flow: IncidentFlow, clock: FakeClock, declare: Declare
) -> tuple[str, list[ReminderDue]]:
    incident = declare(flow)
    flow.page(incident.id, "Search", by="bob")
    clock.advance(timedelta(minutes=11))
    reminders = flow.fire_reminders(incident.id)
    assert [r.reminder for r in reminders] == [PAGE_UNACKNOWLEDGED]
    return incident.id, reminders


def test_an_unanswered_page_adds_the_next_responder(
    flow: IncidentFlow, opsgenie_api: VendorAPI, incident_clock: FakeClock, declare: Declare
) -> None:
    incident_id, _ = _unanswered(flow, incident_clock, declare)
    assert flow.drain(timeout=10)

    [request] = opsgenie_api.requests_to(*RESPONDERS)
    assert identifier(request) == alert_alias(incident_id, "page-4")
    assert request.body["responder"] == {"type": "team", "name": "SRE"}
    assert opsgenie_api.requests_to(*ESCALATE) == []


def test_an_unanswered_page_escalates_when_an_escalation_is_named(
    make_flow: Callable[..., IncidentFlow],
    make_plugin: Callable[..., OpsgeniePlugin],
    opsgenie_api: VendorAPI,
    incident_clock: FakeClock,
    declare: Declare,
) -> None:
    flow = make_flow(make_plugin(escalation="Search escalation"))
    incident_id, _ = _unanswered(flow, incident_clock, declare)
    assert flow.drain(timeout=10)

    [request] = opsgenie_api.requests_to(*ESCALATE)
    assert identifier(request) == alert_alias(incident_id, "page-4")
    assert request.body["escalation"] == {"type": "escalation", "name": "Search escalation"}
    assert opsgenie_api.requests_to(*RESPONDERS) == []


def test_each_reminder_escalates_once_even_when_redelivered(
    flow: IncidentFlow,
    plugin: OpsgeniePlugin,
    opsgenie_api: VendorAPI,
    incident_clock: FakeClock,
    declare: Declare,
    deliver: Deliver,
) -> None:
    incident_id, _ = _unanswered(flow, incident_clock, declare)
    incident_clock.advance(timedelta(minutes=10))
    assert len(flow.fire_reminders(incident_id)) == 1
    assert flow.drain(timeout=10)
    deliver(plugin, flow, incident_id, ReminderDue)

    assert len(opsgenie_api.requests_to(*RESPONDERS)) == 2
    refs = flow.get(incident_id).external_refs
    assert len([r for r in refs if r.kind == "alert_escalated"]) == 2


def test_without_an_escalation_setting_an_unanswered_page_sends_nothing(
    make_flow: Callable[..., IncidentFlow],
    make_plugin: Callable[..., OpsgeniePlugin],
    opsgenie_api: VendorAPI,
    incident_clock: FakeClock,
    declare: Declare,
) -> None:
    flow = make_flow(make_plugin(escalate_to=None))
    _unanswered(flow, incident_clock, declare)
    assert flow.drain(timeout=10)

    assert mutating(opsgenie_api) == ["POST /v2/alerts"]

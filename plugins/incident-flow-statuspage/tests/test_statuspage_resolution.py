"""Resolving the incident publishes "resolved" once, unless it was published already."""

from __future__ import annotations

from incident_flow_statuspage import StatuspagePlugin
from incident_flow_statuspage.config import DEFAULT_FALSE_POSITIVE_TEXT, DEFAULT_RESOLVED_TEXT
from statuspage_support import Driver, key_of, last_event

from incident_flow import IncidentFlow
from incident_flow.events import PhaseChanged, fold
from incident_flow.testing.vendor_api import VendorAPI

UPDATE = ("PATCH", "/pages/{page_id}/incidents/{incident_id}")
SUPPORT = "support@sourcegraph.com"
RESOLVED_POST = (
    "We have resolved the issue and will conduct a postmortem. If you would like to know "
    f"more, please email {SUPPORT}."
)


def statuses(statuspage: VendorAPI) -> list[str]:
    return [request.body["incident"]["status"] for request in statuspage.requests_to(*UPDATE)]


def test_resolving_publishes_resolved_with_components_back_to_operational(
    flow: IncidentFlow, driver: Driver, statuspage: VendorAPI, plugin: StatuspagePlugin
) -> None:
    incident = driver.mitigating()
    plugin.set_components(flow, incident.id, {"cmp1": "major_outage"}, by="carol")
    driver.post(incident.id)

    driver.resolve(incident.id)

    assert flow.drain(timeout=10)
    (resolution,) = statuspage.requests_to(*UPDATE)
    assert resolution.body == {
        "incident": {
            "status": "resolved",
            "body": DEFAULT_RESOLVED_TEXT.format(support=SUPPORT),
            "components": {"cmp1": "operational"},
            "component_ids": ["cmp1"],
            "deliver_notifications": True,
        }
    }
    resolved = last_event(flow, incident.id, PhaseChanged)
    assert flow.get(incident.id).external_ref("statuspage", "update", key_of(resolved))


def test_a_resolved_post_is_not_followed_by_a_second_resolution(
    flow: IncidentFlow, driver: Driver, statuspage: VendorAPI
) -> None:
    incident = driver.mitigating()
    driver.post(incident.id)
    driver.post(incident.id, RESOLVED_POST, phase="resolved")

    driver.resolve(incident.id)

    assert flow.drain(timeout=10)
    assert statuses(statuspage) == ["resolved"]


def test_resolving_what_was_never_published_sends_nothing(
    flow: IncidentFlow, driver: Driver, statuspage: VendorAPI
) -> None:
    incident = driver.mitigating(customer_impact=False)

    driver.resolve(incident.id)

    assert flow.drain(timeout=10)
    assert statuspage.requests == []


def test_a_false_positive_is_resolved_once_with_its_own_text(
    flow: IncidentFlow, driver: Driver, statuspage: VendorAPI
) -> None:
    incident = driver.mitigating()
    driver.post(incident.id)

    flow.mark_false_positive(incident.id, reason="a monitoring glitch", by="bob")

    assert flow.drain(timeout=10)
    (resolution,) = statuspage.requests_to(*UPDATE)
    assert resolution.body["incident"]["status"] == "resolved"
    assert resolution.body["incident"]["body"] == DEFAULT_FALSE_POSITIVE_TEXT.format(
        support=SUPPORT
    )


def test_a_reopened_incident_is_resolved_again_only_after_a_new_post(
    flow: IncidentFlow, driver: Driver, statuspage: VendorAPI
) -> None:
    incident = driver.mitigating()
    driver.post(incident.id)
    driver.resolve(incident.id)
    flow.reopen(incident.id, by="bob")
    flow.resolve(incident.id, by="bob")  # nothing new was published in between
    flow.reopen(incident.id, by="bob")
    driver.post(incident.id, "We are investigating the issue again.", phase="investigating")

    flow.resolve(incident.id, by="bob")

    assert flow.drain(timeout=10)
    assert statuses(statuspage) == ["resolved", "investigating", "resolved"]


def test_a_redelivered_resolution_publishes_nothing_again(
    flow: IncidentFlow, driver: Driver, statuspage: VendorAPI, plugin: StatuspagePlugin
) -> None:
    incident = driver.mitigating()
    driver.post(incident.id)
    driver.resolve(incident.id)
    assert flow.drain(timeout=10)
    resolved = last_event(flow, incident.id, PhaseChanged)
    as_of = fold(flow.history(incident.id)[: resolved.version])
    assert as_of is not None

    plugin.incident_flow_event(resolved, as_of, key_of(resolved), flow)

    assert statuses(statuspage) == ["resolved"]


def test_the_status_published_last_is_read_from_the_events(
    flow: IncidentFlow, driver: Driver, plugin: StatuspagePlugin
) -> None:
    incident = driver.mitigating()
    assert plugin.published_status(flow, incident.id) is None
    driver.post(incident.id)
    assert plugin.published_status(flow, incident.id) == "identified"
    driver.post(incident.id, "Still investigating; more news soon.", phase="investigating")
    driver.post(incident.id, "Still investigating. More news today.", phase="identified")
    # The last post has a finding: it is held back, so "investigating" stays the last.
    assert plugin.published_status(flow, incident.id) == "investigating"
    driver.resolve(incident.id)
    assert plugin.published_status(flow, incident.id) == "resolved"
    assert flow.drain(timeout=10)

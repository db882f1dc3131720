"""Customer posts: the first creates the Statuspage incident, later ones update it, once each."""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs
import pytest
from incident_flow_statuspage import StatuspagePlugin
from statuspage_support import API_KEY, FIRST_POST, Driver, key_of, last_event

from incident_flow import HANDBOOK, IncidentFlow, TransitionRefused
from incident_flow.errors import PermanentDeliveryError
from incident_flow.events import StatusUpdatePosted, fold
from incident_flow.testing.vendor_api import VendorAPI

CREATE = ("POST", "/pages/{page_id}/incidents")
UPDATE = ("PATCH", "/pages/{page_id}/incidents/{incident_id}")
LATER_POST = "We are continuing to investigate a resolution."


def answer_with_id(statuspage: VendorAPI, vendor_id: str = "sp-inc-1") -> None:
    body = statuspage.example_response(*CREATE)
    body.update(id=vendor_id, shortlink=f"https://stspg.io/{vendor_id}")
    statuspage.respond(*CREATE, status=201, json=body)


def mutating(statuspage: VendorAPI) -> int:
    return sum(request.method != "GET" for request in statuspage.requests)


def test_the_first_post_creates_the_statuspage_incident(
    flow: IncidentFlow, driver: Driver, statuspage: VendorAPI
) -> None:
    answer_with_id(statuspage)
    incident = driver.mitigating()

    driver.post(incident.id)

    assert flow.drain(timeout=10)
    (request,) = statuspage.requests_to(*CREATE)
    assert request.path == "/pages/pg1/incidents"
    assert request.headers["Authorization"] == f"OAuth {API_KEY}"
    assert request.body == {
        "incident": {
            "name": "Search is down",
            "status": "identified",
            "body": FIRST_POST,
            "deliver_notifications": True,
        }
    }
    after = flow.get(incident.id)
    ref = after.external_ref("statuspage", "incident", "")
    assert ref is not None
    assert (ref.external_id, ref.url, ref.by) == (
        "sp-inc-1",
        "https://stspg.io/sp-inc-1",
        "statuspage",
    )
    post = last_event(flow, incident.id, StatusUpdatePosted)
    assert after.external_ref("statuspage", "update", key_of(post)) is not None
    assert all(row.status == "delivered" for row in flow.deliveries())


def test_later_posts_update_the_statuspage_incident(
    flow: IncidentFlow, driver: Driver, statuspage: VendorAPI
) -> None:
    answer_with_id(statuspage)
    incident = driver.mitigating()
    driver.post(incident.id)

    driver.post(incident.id, LATER_POST, phase="investigating")
    driver.post(incident.id, "We have found the cause and are fixing it.", phase="identified")

    assert flow.drain(timeout=10)
    assert len(statuspage.requests_to(*CREATE)) == 1
    updates = statuspage.requests_to(*UPDATE)
    assert [request.path for request in updates] == ["/pages/pg1/incidents/sp-inc-1"] * 2
    assert [request.body["incident"]["status"] for request in updates] == [
        "investigating",
        "identified",
    ]
    assert updates[0].body == {
        "incident": {"status": "investigating", "body": LATER_POST, "deliver_notifications": True}
    }
    refs = flow.get(incident.id).external_refs
    assert [ref.kind for ref in refs if ref.system == "statuspage"] == [
        "incident",
        "update",
        "update",
        "update",
    ]


def test_a_redelivered_post_publishes_nothing_again(
    flow: IncidentFlow, driver: Driver, statuspage: VendorAPI, plugin: StatuspagePlugin
) -> None:
    incident = driver.mitigating()
    driver.post(incident.id)
    driver.post(incident.id, LATER_POST, phase="investigating")
    assert flow.drain(timeout=10)
    sent = mutating(statuspage)
    assert sent == 2

    for event in flow.history(incident.id):
        as_of = fold(flow.history(incident.id)[: event.version])
        assert as_of is not None
        plugin.incident_flow_event(event, as_of, key_of(event), flow)

    assert mutating(statuspage) == sent


def test_posts_committed_before_any_delivery_are_each_published(
    quiet_flow: IncidentFlow, quiet_driver: Driver, statuspage: VendorAPI, plugin: StatuspagePlugin
) -> None:
    """The second post is delivered with the incident as of it, which knows no Statuspage
    incident yet: it must update the one the first post made, not be taken for it."""
    incident = quiet_driver.mitigating()
    quiet_driver.post(incident.id)
    quiet_driver.post(incident.id, LATER_POST, phase="investigating")
    events = quiet_flow.history(incident.id)

    for event in events:
        as_of = fold(events[: event.version])
        assert as_of is not None
        plugin.incident_flow_event(event, as_of, key_of(event), quiet_flow)

    assert len(statuspage.requests_to(*CREATE)) == 1
    (update,) = statuspage.requests_to(*UPDATE)
    assert update.body["incident"]["body"] == LATER_POST


def test_a_post_with_findings_is_held_back_with_a_warning(
    flow: IncidentFlow,
    driver: Driver,
    statuspage: VendorAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    incident = driver.mitigating()

    with caplog.at_level(logging.WARNING, logger="incident_flow_statuspage"):
        after = driver.post(incident.id, FIRST_POST + " More news later today.")
        assert flow.drain(timeout=10)

    assert [finding.rule for finding in after.status_updates[-1].findings] == ["no_regional_words"]
    assert statuspage.requests == []
    (record,) = [r for r in caplog.records if r.name.startswith("incident_flow_statuspage")]
    assert record.levelno == logging.WARNING
    assert "no_regional_words" in record.getMessage()
    assert "STATUSPAGE_PUBLISH_WITH_FINDINGS" in record.getMessage()
    assert flow.get(incident.id).external_ref("statuspage", "incident") is None


def test_the_clean_post_after_a_held_back_one_creates_the_incident(
    flow: IncidentFlow, driver: Driver, statuspage: VendorAPI
) -> None:
    incident = driver.mitigating()
    driver.post(incident.id, FIRST_POST + " More news later today.")

    driver.post(incident.id)

    assert flow.drain(timeout=10)
    (create,) = statuspage.requests_to(*CREATE)
    assert create.body["incident"]["body"] == FIRST_POST
    assert statuspage.requests_to(*UPDATE) == []


def test_posts_with_findings_are_published_when_configured(
    make_flow: Callable[..., IncidentFlow],
    make_plugin: Callable[..., StatuspagePlugin],
    statuspage: VendorAPI,
) -> None:
    flow = make_flow(make_plugin(publish_with_findings=True))
    driver = Driver(flow)
    incident = driver.mitigating()

    driver.post(incident.id, FIRST_POST + " More news later today.")

    assert flow.drain(timeout=10)
    assert len(statuspage.requests_to(*CREATE)) == 1


def test_a_refused_post_never_reaches_statuspage(
    flow: IncidentFlow, driver: Driver, statuspage: VendorAPI
) -> None:
    incident = driver.mitigating()

    with pytest.raises(TransitionRefused, match="first_post_names_support"):
        driver.post(incident.id, "Search is down since 14:30 PST.")

    assert flow.drain(timeout=10)
    assert statuspage.requests == []


def test_events_other_than_posts_and_resolutions_send_nothing(
    flow: IncidentFlow, driver: Driver, statuspage: VendorAPI
) -> None:
    incident = driver.mitigating()
    flow.page(incident.id, target="search-team", message="search is down", by="bob")
    flow.pause_release(incident.id, release="5.4.0", by="bob")
    flow.change_severity(incident.id, "major", by="bob")

    assert flow.drain(timeout=10)
    assert statuspage.requests == []
    assert all(row.status == "delivered" for row in flow.deliveries())


def test_notifications_can_be_turned_off(
    make_flow: Callable[..., IncidentFlow],
    make_plugin: Callable[..., StatuspagePlugin],
    statuspage: VendorAPI,
) -> None:
    flow = make_flow(make_plugin(deliver_notifications=False))
    driver = Driver(flow)
    incident = driver.mitigating()

    driver.post(incident.id)

    assert flow.drain(timeout=10)
    (create,) = statuspage.requests_to(*CREATE)
    assert create.body["incident"]["deliver_notifications"] is False


def test_a_phase_without_a_statuspage_status_fails_for_good(
    make_flow: Callable[..., IncidentFlow],
    make_plugin: Callable[..., StatuspagePlugin],
    statuspage: VendorAPI,
) -> None:
    process = attrs.evolve(
        HANDBOOK, status_phases=("identified", "investigating", "mitigated", "resolved")
    )
    flow = make_flow(deliver=False, process=process)
    driver = Driver(flow)
    incident = driver.mitigating()
    driver.post(incident.id)
    driver.post(incident.id, "A fix is in place and we are watching it.", phase="mitigated")
    events = flow.history(incident.id)
    first, second = [event for event in events if isinstance(event, StatusUpdatePosted)]
    plugin = make_plugin()
    plugin.incident_flow_event(first, flow.get(incident.id), key_of(first), flow)

    with pytest.raises(PermanentDeliveryError, match="STATUSPAGE_PHASE_MAP=mitigated="):
        plugin.incident_flow_event(second, flow.get(incident.id), key_of(second), flow)

    mapped = make_plugin(phase_map={"mitigated": "monitoring"})
    mapped.incident_flow_event(second, flow.get(incident.id), key_of(second), flow)
    (update,) = statuspage.requests_to(*UPDATE)
    assert update.body["incident"]["status"] == "monitoring"

"""PagerDuty's failures become the delivery errors the worker understands, without keys."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from incident_flow_pagerduty import PagerDutyPlugin

from incident_flow import IncidentFlow, RetryPolicy
from incident_flow.errors import PermanentDeliveryError, RetryableDeliveryError
from incident_flow.testing.vendor_api import VendorAPI

POST = (
    "Investigating: We are investigating an issue with search. "
    "If you have any questions, email support@sourcegraph.com."
)


@pytest.fixture
def paused(make_incident_flow: Callable[..., IncidentFlow]) -> IncidentFlow:
    """A flow that delivers nothing by itself: the test delivers by hand."""
    return make_incident_flow(deliver=False)


def paged(flow: IncidentFlow) -> str:
    incident = flow.declare("Search is down", severity="critical", customer_impact=True, by="al")
    flow.page(incident.id, "delivery team", by="al")
    return incident.id


def test_a_429_is_retried_after_what_pagerduty_asks(
    paused: IncidentFlow,
    plugin: PagerDutyPlugin,
    events_api: VendorAPI,
    deliver: Callable[..., None],
) -> None:
    incident_id = paged(paused)
    events_api.fail("POST", "/enqueue", status=429, retry_after=7)

    with pytest.raises(RetryableDeliveryError) as raised:
        deliver(plugin, paused, incident_id, 2)

    assert raised.value.retry_after == 7
    assert "429" in str(raised.value)
    assert paused.get(incident_id).external_refs == ()  # nothing recorded: it was not sent


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_is_retried(
    paused: IncidentFlow,
    plugin: PagerDutyPlugin,
    events_api: VendorAPI,
    deliver: Callable[..., None],
    status: int,
) -> None:
    incident_id = paged(paused)
    events_api.fail("POST", "/enqueue", status=status)

    with pytest.raises(RetryableDeliveryError):
        deliver(plugin, paused, incident_id, 2)
    deliver(plugin, paused, incident_id, 2)  # PagerDuty is back

    assert [r.status for r in events_api.requests] == [status, 202]
    assert paused.get(incident_id).external_ref("pagerduty", "alert", "page-2") is not None


def test_a_slow_answer_times_out_and_is_retried(
    make_plugin: Callable[..., PagerDutyPlugin],
    paused: IncidentFlow,
    events_api: VendorAPI,
    deliver: Callable[..., None],
) -> None:
    plugin = make_plugin(timeout=0.2)
    incident_id = paged(paused)
    events_api.delay("POST", "/enqueue", seconds=1)

    with pytest.raises(RetryableDeliveryError, match=r"no answer within 0\.2 s"):
        deliver(plugin, paused, incident_id, 2)


def test_an_unreachable_pagerduty_is_retried(
    make_plugin: Callable[..., PagerDutyPlugin],
    paused: IncidentFlow,
    deliver: Callable[..., None],
) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    plugin = make_plugin(events_url=f"http://127.0.0.1:{port}/v2")
    incident_id = paged(paused)

    with pytest.raises(RetryableDeliveryError, match="ConnectError"):
        deliver(plugin, paused, incident_id, 2)


def test_a_refused_event_is_permanent_with_pagerduty_words_and_no_key(
    paused: IncidentFlow,
    plugin: PagerDutyPlugin,
    events_api: VendorAPI,
    deliver: Callable[..., None],
    known: Any,
) -> None:
    incident_id = paged(paused)
    events_api.fail(
        "POST",
        "/enqueue",
        status=400,
        json={
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": [f"routing_key {known.routing_key} is not a valid integration key"],
        },
    )

    with pytest.raises(PermanentDeliveryError) as raised:
        deliver(plugin, paused, incident_id, 2)

    message = str(raised.value)
    assert "HTTP 400" in message
    assert "Event object is invalid" in message
    assert "is not a valid integration key" in message
    assert known.routing_key not in message


def test_a_refused_rest_call_is_permanent_without_the_api_key(
    paused: IncidentFlow,
    plugin: PagerDutyPlugin,
    rest_api: VendorAPI,
    deliver: Callable[..., None],
    known: Any,
) -> None:
    incident_id = paged(paused)
    posted = paused.post_status_update(incident_id, POST, phase="investigating", by="al")
    deliver(plugin, paused, incident_id, 2)
    rest_api.fail(
        "POST",
        "/incidents/{id}/status_updates",
        status=403,
        json={"error": {"message": f"Token token={known.api_key} may not post", "code": 2010}},
    )

    with pytest.raises(PermanentDeliveryError, match="may not post") as raised:
        deliver(plugin, paused, incident_id, posted.version)
    assert known.api_key not in str(raised.value)


def test_in_a_flow_a_429_waits_and_a_400_is_dead_lettered(
    flow_for: Callable[..., IncidentFlow],
    plugin: PagerDutyPlugin,
    events_api: VendorAPI,
    incident_clock: Any,
) -> None:
    flow = flow_for(plugin, retry=RetryPolicy(base=0))
    events_api.fail("POST", "/enqueue", status=429, retry_after=30)
    incident_id = paged(flow)
    assert flow.drain(timeout=5)

    [waiting] = [row for row in flow.deliveries() if row.version == 2]
    assert waiting.status == "failed"
    assert waiting.next_attempt_at is not None
    assert waiting.next_attempt_at - incident_clock.now() >= timedelta(seconds=30)

    incident_clock.advance(timedelta(seconds=31))
    assert flow.drain(timeout=5)
    events_api.fail("POST", "/enqueue", status=400)
    acknowledged = flow.acknowledge_page(incident_id, "page-2", by="sam")
    assert flow.drain(timeout=5)

    statuses = {row.version: row.status for row in flow.deliveries()}
    assert statuses[2] == "delivered"
    assert statuses[acknowledged.version] == "dead"

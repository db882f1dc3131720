"""Statuspage's failures become the delivery errors the worker retries, or gives up on."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from incident_flow_statuspage import StatuspagePlugin
from statuspage_support import API_KEY, Driver, key_of, last_event

from incident_flow import IncidentFlow
from incident_flow.errors import PermanentDeliveryError, RetryableDeliveryError
from incident_flow.events import StatusUpdatePosted
from incident_flow.testing.vendor_api import VendorAPI

CREATE = ("POST", "/pages/{page_id}/incidents")


def deliver_first_post(plugin: StatuspagePlugin, flow: IncidentFlow, driver: Driver) -> str:
    """Post on a new incident and hand the post to ``plugin``; returns the incident's id."""
    incident = driver.mitigating()
    driver.post(incident.id)
    post = last_event(flow, incident.id, StatusUpdatePosted)
    plugin.incident_flow_event(post, flow.get(incident.id), key_of(post), flow)
    return incident.id


def test_a_429_is_retried_after_retry_after(
    quiet_flow: IncidentFlow, quiet_driver: Driver, statuspage: VendorAPI, plugin: StatuspagePlugin
) -> None:
    statuspage.fail(*CREATE, status=429, retry_after=7)

    with pytest.raises(RetryableDeliveryError, match="HTTP 429") as raised:
        deliver_first_post(plugin, quiet_flow, quiet_driver)

    assert raised.value.retry_after == 7


def test_a_5xx_is_retried_and_the_retry_creates_the_incident_once(
    quiet_flow: IncidentFlow, quiet_driver: Driver, statuspage: VendorAPI, plugin: StatuspagePlugin
) -> None:
    statuspage.fail(*CREATE, status=503)

    with pytest.raises(RetryableDeliveryError, match="Statuspage create incident: HTTP 503"):
        deliver_first_post(plugin, quiet_flow, quiet_driver)

    (incident,) = quiet_flow.list()
    assert incident.external_ref("statuspage", "incident") is None
    post = last_event(quiet_flow, incident.id, StatusUpdatePosted)
    plugin.incident_flow_event(post, incident, key_of(post), quiet_flow)
    plugin.incident_flow_event(post, incident, key_of(post), quiet_flow)
    assert [r.status for r in statuspage.requests_to(*CREATE)] == [503, 201]
    assert quiet_flow.get(incident.id).external_ref("statuspage", "incident") is not None


def test_a_slow_statuspage_is_a_retriable_timeout(
    quiet_flow: IncidentFlow,
    quiet_driver: Driver,
    statuspage: VendorAPI,
    make_plugin: Callable[..., StatuspagePlugin],
) -> None:
    statuspage.delay(*CREATE, seconds=2)
    plugin = make_plugin(timeout=0.2)

    with pytest.raises(RetryableDeliveryError, match="timed out"):
        deliver_first_post(plugin, quiet_flow, quiet_driver)


def test_an_unreachable_statuspage_is_retriable(
    quiet_flow: IncidentFlow, quiet_driver: Driver, make_plugin: Callable[..., StatuspagePlugin]
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    plugin = make_plugin(api_url=f"http://127.0.0.1:{port}/v1")

    with pytest.raises(RetryableDeliveryError, match="Statuspage create incident failed"):
        deliver_first_post(plugin, quiet_flow, quiet_driver)


def test_a_4xx_fails_for_good_with_statuspage_s_message(
    quiet_flow: IncidentFlow, quiet_driver: Driver, statuspage: VendorAPI, plugin: StatuspagePlugin
) -> None:
    statuspage.fail(*CREATE, status=422, json={"message": "Name can't be blank"})

    with pytest.raises(PermanentDeliveryError) as raised:
        deliver_first_post(plugin, quiet_flow, quiet_driver)

    assert str(raised.value) == "Statuspage create incident: HTTP 422: Name can't be blank"


def test_the_api_key_never_shows_in_an_error(
    quiet_flow: IncidentFlow, quiet_driver: Driver, statuspage: VendorAPI, plugin: StatuspagePlugin
) -> None:
    statuspage.fail(*CREATE, status=401, json={"message": f"invalid key {API_KEY}"})

    with pytest.raises(PermanentDeliveryError) as raised:
        deliver_first_post(plugin, quiet_flow, quiet_driver)

    assert API_KEY not in str(raised.value)
    assert str(raised.value) == "Statuspage create incident: HTTP 401: invalid key ***"


def test_without_a_flow_nothing_is_sent_and_the_delivery_fails_for_good(
    quiet_flow: IncidentFlow, quiet_driver: Driver, statuspage: VendorAPI, plugin: StatuspagePlugin
) -> None:
    incident = quiet_driver.mitigating()
    quiet_driver.post(incident.id)
    post = last_event(quiet_flow, incident.id, StatusUpdatePosted)

    with pytest.raises(PermanentDeliveryError, match="needs the flow"):
        plugin.incident_flow_event(post, quiet_flow.get(incident.id), key_of(post), None)

    assert statuspage.requests == []


def test_a_failed_delivery_is_retried_by_the_flow(
    flow: IncidentFlow, driver: Driver, statuspage: VendorAPI
) -> None:
    statuspage.fail(*CREATE, status=503)
    incident = driver.mitigating()

    driver.post(incident.id)

    assert flow.drain(timeout=10)
    failed = [row for row in flow.deliveries() if row.status != "delivered"]
    assert len(failed) == 1
    assert "HTTP 503" in (failed[0].last_error or "")
    flow.retry_deliveries()
    assert flow.drain(timeout=10)
    assert [r.status for r in statuspage.requests_to(*CREATE)] == [503, 201]

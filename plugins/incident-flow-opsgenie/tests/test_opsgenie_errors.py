"""Opsgenie's failures become the delivery errors the worker acts on, and record nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from incident_flow_opsgenie import OpsgeniePlugin

from incident_flow import FakeClock, Incident, IncidentFlow
from incident_flow.errors import PermanentDeliveryError, RetryableDeliveryError
from incident_flow.events import Event, PageSent, PhaseChanged, ReminderDue
from incident_flow.testing.vendor_api import VendorAPI

Declare = Callable[..., Incident]
Deliver = Callable[[OpsgeniePlugin, IncidentFlow, str, type[Event]], None]

CREATE = "/v2/alerts"
CLOSE = "/v2/alerts/{identifier}/close"
RESPONDERS = "/v2/alerts/{identifier}/responders"


@pytest.fixture
def paged(quiet_flow: IncidentFlow, declare: Declare) -> str:
    """An incident of ``quiet_flow`` with one page sent, and not yet delivered."""
    incident = declare(quiet_flow)
    quiet_flow.page(incident.id, "Search", by="bob")
    return incident.id


def test_a_429_is_retriable_after_the_time_opsgenie_asks_for(
    quiet_flow: IncidentFlow,
    plugin: OpsgeniePlugin,
    opsgenie_api: VendorAPI,
    paged: str,
    deliver: Deliver,
) -> None:
    opsgenie_api.fail("POST", CREATE, status=429, retry_after=7)

    with pytest.raises(RetryableDeliveryError) as caught:
        deliver(plugin, quiet_flow, paged, PageSent)

    assert caught.value.retry_after == 7
    assert quiet_flow.get(paged).external_refs == ()


def test_the_retry_after_a_429_creates_the_alert_once(
    quiet_flow: IncidentFlow,
    plugin: OpsgeniePlugin,
    opsgenie_api: VendorAPI,
    paged: str,
    deliver: Deliver,
) -> None:
    opsgenie_api.fail("POST", CREATE, status=429, retry_after=7)
    with pytest.raises(RetryableDeliveryError):
        deliver(plugin, quiet_flow, paged, PageSent)

    deliver(plugin, quiet_flow, paged, PageSent)
    deliver(plugin, quiet_flow, paged, PageSent)

    assert [r.status for r in opsgenie_api.requests_to("POST", CREATE)] == [429, 202]
    assert len(quiet_flow.get(paged).external_refs) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_is_retriable(
    quiet_flow: IncidentFlow,
    plugin: OpsgeniePlugin,
    opsgenie_api: VendorAPI,
    paged: str,
    deliver: Deliver,
    status: int,
) -> None:
    opsgenie_api.fail("POST", CREATE, status=status)

    with pytest.raises(RetryableDeliveryError):
        deliver(plugin, quiet_flow, paged, PageSent)
    assert quiet_flow.get(paged).external_refs == ()


def test_a_slow_opsgenie_is_retriable_after_the_client_timeout(
    quiet_flow: IncidentFlow,
    make_plugin: Callable[..., OpsgeniePlugin],
    opsgenie_api: VendorAPI,
    paged: str,
    deliver: Deliver,
) -> None:
    plugin = make_plugin(timeout=0.5)
    opsgenie_api.delay("POST", CREATE, seconds=plugin.config.timeout * 4)

    with pytest.raises(RetryableDeliveryError, match=r"no answer within 0\.5 s"):
        deliver(plugin, quiet_flow, paged, PageSent)
    assert quiet_flow.get(paged).external_refs == ()


def test_an_unreachable_opsgenie_is_retriable(
    quiet_flow: IncidentFlow,
    make_plugin: Callable[..., OpsgeniePlugin],
    paged: str,
    deliver: Deliver,
) -> None:
    # Nothing listens on port 9 (discard) of the loopback interface here.
    adapter = make_plugin(api_url="http://127.0.0.1:9")

    with pytest.raises(RetryableDeliveryError, match="Opsgenie create alert"):
        deliver(adapter, quiet_flow, paged, PageSent)


def test_a_refused_request_is_permanent_with_opsgenie_s_own_words(
    quiet_flow: IncidentFlow,
    plugin: OpsgeniePlugin,
    opsgenie_api: VendorAPI,
    paged: str,
    deliver: Deliver,
) -> None:
    body = {"message": "Responder team [Search] does not exist", "took": 0.01, "requestId": "r1"}
    opsgenie_api.fail("POST", CREATE, status=422, json=body)

    with pytest.raises(PermanentDeliveryError) as caught:
        deliver(plugin, quiet_flow, paged, PageSent)

    message = str(caught.value)
    assert "HTTP 422" in message
    assert "Responder team [Search] does not exist" in message
    assert quiet_flow.get(paged).external_refs == ()


def test_closing_maps_vendor_errors_too(
    quiet_flow: IncidentFlow,
    plugin: OpsgeniePlugin,
    opsgenie_api: VendorAPI,
    paged: str,
    deliver: Deliver,
) -> None:
    deliver(plugin, quiet_flow, paged, PageSent)
    quiet_flow.mark_false_positive(paged, reason="a flaky probe", by="bob")
    opsgenie_api.fail("POST", CLOSE, status=429, retry_after=30)

    with pytest.raises(RetryableDeliveryError) as caught:
        deliver(plugin, quiet_flow, paged, PhaseChanged)
    assert caught.value.retry_after == 30

    opsgenie_api.fail("POST", CLOSE, status=404, json={"message": "Alert not found"})
    with pytest.raises(PermanentDeliveryError, match="Alert not found"):
        deliver(plugin, quiet_flow, paged, PhaseChanged)
    assert quiet_flow.get(paged).external_ref("opsgenie", "alert_closed") is None


def test_escalating_maps_vendor_errors_too(
    quiet_flow: IncidentFlow,
    plugin: OpsgeniePlugin,
    opsgenie_api: VendorAPI,
    incident_clock: FakeClock,
    paged: str,
    deliver: Deliver,
) -> None:
    deliver(plugin, quiet_flow, paged, PageSent)
    incident_clock.advance(timedelta(minutes=11))
    assert quiet_flow.fire_reminders(paged)
    opsgenie_api.fail("POST", RESPONDERS, status=503)

    with pytest.raises(RetryableDeliveryError):
        deliver(plugin, quiet_flow, paged, ReminderDue)
    deliver(plugin, quiet_flow, paged, ReminderDue)

    assert [r.status for r in opsgenie_api.requests_to("POST", RESPONDERS)] == [503, 202]


def test_an_error_that_echoes_the_key_does_not_show_it(
    quiet_flow: IncidentFlow,
    plugin: OpsgeniePlugin,
    opsgenie_api: VendorAPI,
    paged: str,
    deliver: Deliver,
    api_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = {"message": f"Key GenieKey {api_key} is not valid ({api_key})", "took": 0}
    opsgenie_api.fail("POST", CREATE, status=401, json=body)

    with caplog.at_level(logging.DEBUG), pytest.raises(PermanentDeliveryError) as caught:
        deliver(plugin, quiet_flow, paged, PageSent)

    assert "HTTP 401" in str(caught.value)
    assert "is not valid" in str(caught.value)
    assert api_key not in str(caught.value)
    assert api_key not in repr(caught.value)
    assert api_key not in caplog.text


def test_a_target_that_cannot_be_routed_is_permanent(
    quiet_flow: IncidentFlow,
    plugin: OpsgeniePlugin,
    opsgenie_api: VendorAPI,
    declare: Declare,
    deliver: Deliver,
) -> None:
    incident = declare(quiet_flow)
    quiet_flow.page(incident.id, "team:", by="bob")

    with pytest.raises(PermanentDeliveryError, match="needs a name"):
        deliver(plugin, quiet_flow, incident.id, PageSent)
    assert opsgenie_api.requests == []

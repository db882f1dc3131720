"""``/genie whoisoncall``: the first on-call recipient of an Opsgenie schedule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pytest
from incident_flow_opsgenie import OpsgeniePlugin

from incident_flow import IncidentFlow
from incident_flow.errors import (
    IncidentFlowError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from incident_flow.testing.vendor_api import VendorAPI

ON_CALLS = "/v2/schedules/{identifier}/on-calls"


def on_call_answer(api: VendorAPI, recipients: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = api.example_response("GET", ON_CALLS)
    body["data"] = {"onCallRecipients": recipients}
    return body


def test_the_default_schedule_is_asked_at_the_flow_s_time(
    flow: IncidentFlow, opsgenie_api: VendorAPI, api_key: str
) -> None:
    answer = on_call_answer(opsgenie_api, ["ann@example.com", "bob@example.com"])
    opsgenie_api.respond("GET", ON_CALLS, json=answer)

    assert flow.who_is_on_call() == "ann@example.com"

    [request] = opsgenie_api.requests_to("GET", ON_CALLS)
    assert unquote(request.path_params["identifier"]) == "Search on-call"
    assert request.query == {
        "scheduleIdentifierType": "name",
        "flat": "true",
        "date": "2024-05-14T09:00:00Z",
    }
    assert request.headers["Authorization"] == f"GenieKey {api_key}"


def test_a_named_schedule_is_asked_about(flow: IncidentFlow, opsgenie_api: VendorAPI) -> None:
    opsgenie_api.respond("GET", ON_CALLS, json=on_call_answer(opsgenie_api, ["dana@example.com"]))

    assert flow.who_is_on_call("Database on-call") == "dana@example.com"
    [request] = opsgenie_api.requests_to("GET", ON_CALLS)
    assert unquote(request.path_params["identifier"]) == "Database on-call"


def test_an_unknown_schedule_is_nobody(flow: IncidentFlow, opsgenie_api: VendorAPI) -> None:
    opsgenie_api.fail("GET", ON_CALLS, status=404, json={"message": "Schedule not found"})

    assert flow.who_is_on_call("Nope") is None


def test_a_schedule_with_nobody_on_call_is_nobody(
    flow: IncidentFlow, opsgenie_api: VendorAPI
) -> None:
    opsgenie_api.respond("GET", ON_CALLS, json=on_call_answer(opsgenie_api, []))

    assert flow.who_is_on_call() is None


def test_without_a_default_schedule_the_adapter_lets_others_answer(
    make_plugin: Callable[..., OpsgeniePlugin], opsgenie_api: VendorAPI
) -> None:
    adapter = make_plugin(schedule=None)

    assert adapter.incident_flow_who_is_on_call(None, datetime(2024, 5, 14, tzinfo=UTC)) is None
    assert opsgenie_api.requests == []


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, RetryableDeliveryError), (503, RetryableDeliveryError), (401, PermanentDeliveryError)],
)
def test_other_vendor_errors_reach_the_person_asking(
    flow: IncidentFlow, opsgenie_api: VendorAPI, status: int, error: type[Exception]
) -> None:
    opsgenie_api.fail("GET", ON_CALLS, status=status, json={"message": "no", "took": 0})

    with pytest.raises(error) as caught:
        flow.who_is_on_call()
    assert isinstance(caught.value, IncidentFlowError)
    assert f"HTTP {status}" in str(caught.value)


def test_a_slow_answer_is_a_retriable_error(
    make_flow: Callable[..., IncidentFlow],
    make_plugin: Callable[..., OpsgeniePlugin],
    opsgenie_api: VendorAPI,
) -> None:
    flow = make_flow(make_plugin(timeout=0.5))
    opsgenie_api.delay("GET", ON_CALLS, seconds=2)

    with pytest.raises(RetryableDeliveryError):
        flow.who_is_on_call()

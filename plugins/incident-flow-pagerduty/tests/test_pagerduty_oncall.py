"""Who is on call, from PagerDuty's on-calls (``GET /oncalls``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from incident_flow_pagerduty import PagerDutyPlugin

from incident_flow import IncidentFlow
from incident_flow.errors import PermanentDeliveryError
from incident_flow.testing.vendor_api import VendorAPI

AT = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)


def oncall(
    name: str,
    email: str,
    *,
    level: int = 1,
    start: str | None = "2024-05-14T00:00:00Z",
    end: str | None = "2024-05-15T00:00:00Z",
) -> dict[str, Any]:
    """One on-call entry of schedule PI7DH85, its user included in full (PagerDuty answers
    ``type: user`` then; the description knows only ``user_reference``)."""
    user_id = "P" + name.upper().replace(" ", "")[:6]
    return {
        "user": {
            "id": user_id,
            "type": "user_reference",
            "summary": name,
            "name": name,
            "email": email,
            "self": f"https://api.pagerduty.com/users/{user_id}",
            "html_url": f"https://acme.pagerduty.com/users/{user_id}",
        },
        "schedule": {"id": "PI7DH85", "type": "schedule_reference", "summary": "Search"},
        "escalation_policy": {
            "id": "PT20YPA",
            "type": "escalation_policy_reference",
            "summary": "Search escalation",
        },
        "escalation_level": level,
        "start": start,
        "end": end,
    }


def answer(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"oncalls": list(entries), "limit": 25, "offset": 0, "more": False, "total": None}


def test_the_person_on_call_is_named(
    plugin: PagerDutyPlugin, rest_api: VendorAPI, known: Any
) -> None:
    rest_api.respond("GET", "/oncalls", json=answer(oncall("Jo Doe", "jo@example.com")))

    assert plugin.incident_flow_who_is_on_call("PI7DH85", AT) == "Jo Doe"

    [request] = rest_api.requests_to("GET", "/oncalls")
    assert request.query_lists == {
        "schedule_ids[]": ("PI7DH85",),
        "since": ("2024-05-14T09:00:00Z",),
        "until": ("2024-05-14T09:00:01Z",),
        "include[]": ("users",),
        "time_zone": ("UTC",),
    }
    assert request.headers["Authorization"] == f"Token token={known.api_key}"


def test_the_flow_asks_pagerduty_for_the_default_schedule(
    make_plugin: Callable[..., PagerDutyPlugin],
    flow_for: Callable[..., IncidentFlow],
    rest_api: VendorAPI,
) -> None:
    rest_api.respond("GET", "/oncalls", json=answer(oncall("Jo Doe", "jo@example.com")))
    flow = flow_for(make_plugin(schedule_id="PDEFAULT"))

    assert flow.who_is_on_call() == "Jo Doe"
    assert rest_api.requests[0].query["schedule_ids[]"] == "PDEFAULT"


def test_a_schedule_name_is_looked_up_in_the_configured_schedules(
    make_plugin: Callable[..., PagerDutyPlugin], rest_api: VendorAPI
) -> None:
    plugin = make_plugin(schedules={"search": "PSEARCH"})

    plugin.incident_flow_who_is_on_call("search", AT)

    assert rest_api.requests[0].query["schedule_ids[]"] == "PSEARCH"


def test_the_email_is_given_when_configured(
    make_plugin: Callable[..., PagerDutyPlugin], rest_api: VendorAPI
) -> None:
    rest_api.respond("GET", "/oncalls", json=answer(oncall("Jo Doe", "jo@example.com")))
    plugin = make_plugin(oncall_as="email")

    assert plugin.incident_flow_who_is_on_call("PI7DH85", AT) == "jo@example.com"


def test_the_first_level_covering_the_moment_wins(
    plugin: PagerDutyPlugin, rest_api: VendorAPI
) -> None:
    rest_api.respond(
        "GET",
        "/oncalls",
        json=answer(
            oncall("Next Shift", "n@example.com", level=1, start="2024-05-14T09:00:01Z"),
            oncall("Backup", "b@example.com", level=2),
            oncall("Primary", "p@example.com", level=1),
        ),
    )

    assert plugin.incident_flow_who_is_on_call("PI7DH85", AT) == "Primary"


def test_nobody_on_call_is_none(plugin: PagerDutyPlugin, rest_api: VendorAPI) -> None:
    rest_api.respond("GET", "/oncalls", json=answer())

    assert plugin.incident_flow_who_is_on_call("PI7DH85", AT) is None


def test_without_an_api_key_or_a_schedule_pagerduty_is_not_asked(
    make_plugin: Callable[..., PagerDutyPlugin], rest_api: VendorAPI
) -> None:
    assert make_plugin(api_key=None).incident_flow_who_is_on_call("PI7DH85", AT) is None
    assert make_plugin().incident_flow_who_is_on_call(None, AT) is None
    assert rest_api.requests == []


def test_a_refused_key_reaches_the_caller_without_the_key(
    plugin: PagerDutyPlugin, rest_api: VendorAPI, known: Any
) -> None:
    rest_api.fail(
        "GET",
        "/oncalls",
        status=401,
        json={"error": {"message": f"Invalid key Token token={known.api_key}", "code": 2006}},
    )

    with pytest.raises(PermanentDeliveryError, match="401") as raised:
        plugin.incident_flow_who_is_on_call("PI7DH85", AT)
    assert known.api_key not in str(raised.value)
    assert "Invalid key" in str(raised.value)

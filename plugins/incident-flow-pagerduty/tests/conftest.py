"""Fixtures for the PagerDuty adapter's tests: both PagerDuty APIs on 127.0.0.1, a plugin
pointed at them, and a flow that delivers to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from incident_flow_pagerduty import PagerDutyConfig, PagerDutyPlugin

from incident_flow import Event, Incident, IncidentFlow
from incident_flow.events import fold
from incident_flow.store.memory import MemoryStore
from incident_flow.testing.vendor_api import VendorAPI

EVENTS_SPEC = "pagerduty_events_v2_openapiv3.json"
REST_SPEC = "pagerduty_rest_openapiv3.json"

ROUTING_KEY = "R0UT1NGKEYdefault0000000000000001"
TEAM_KEY = "R0UT1NGKEYsearch00000000000000002"
ESCALATION_KEY = "R0UT1NGKEYescalate000000000000003"
API_KEY = "y_NbAkKc66ryYTWUXYEu"
FROM = "incident-bot@example.com"
PD_INCIDENT = "PT4KHLK"


def pd_incidents(*ids: str, incident_key: str | None = None) -> dict[str, Any]:
    """A ``GET /incidents`` answer listing incidents with these ids."""
    return {
        "incidents": [
            {
                "id": vendor_id,
                "type": "incident",
                "incident_number": 1000 + n,
                "title": "Search is down",
                "status": "triggered",
                **({"incident_key": incident_key} if incident_key else {}),
                "html_url": f"https://acme.pagerduty.com/incidents/{vendor_id}",
            }
            for n, vendor_id in enumerate(ids)
        ],
        "limit": 25,
        "offset": 0,
        "more": False,
        "total": None,
    }


@pytest.fixture
def events_api(vendor_api: Callable[..., VendorAPI]) -> VendorAPI:
    """PagerDuty's Events API v2, validating every request."""
    return vendor_api(EVENTS_SPEC)


@pytest.fixture
def rest_api(vendor_api: Callable[..., VendorAPI]) -> VendorAPI:
    """PagerDuty's REST API, validating every request; ``GET /incidents`` lists one incident."""
    api = vendor_api(REST_SPEC)
    api.respond("GET", "/incidents", json=pd_incidents(PD_INCIDENT))
    return api


@pytest.fixture
def make_config(events_api: VendorAPI, rest_api: VendorAPI) -> Callable[..., PagerDutyConfig]:
    """Settings pointed at the local servers, REST included; override any of them."""

    def make(**overrides: Any) -> PagerDutyConfig:
        settings: dict[str, Any] = {
            "routing_key": ROUTING_KEY,
            "routing_keys": {"search-team": TEAM_KEY},
            "api_key": API_KEY,
            "from_email": FROM,
            "events_url": events_api.base_url,
            "api_url": rest_api.base_url,
            "timeout": 1.0,
        }
        settings.update(overrides)
        return PagerDutyConfig(**settings)

    return make


@pytest.fixture
def make_plugin(
    make_config: Callable[..., PagerDutyConfig],
) -> Iterator[Callable[..., PagerDutyPlugin]]:
    """Plugins built from :func:`make_config` overrides; their clients are closed after."""
    made: list[PagerDutyPlugin] = []

    def make(**overrides: Any) -> PagerDutyPlugin:
        plugin = PagerDutyPlugin(make_config(**overrides))
        made.append(plugin)
        return plugin

    yield make
    for plugin in made:
        plugin.close()


@pytest.fixture
def plugin(make_plugin: Callable[..., PagerDutyPlugin]) -> PagerDutyPlugin:
    """The plugin with the default test settings (no escalation routing key)."""
    return make_plugin()


@pytest.fixture
def flow_for(make_incident_flow: Callable[..., IncidentFlow]) -> Callable[..., IncidentFlow]:
    """A flow delivering to the given plugin (memory store, fake clock, no reminder thread)."""

    def make(plugin: PagerDutyPlugin, **options: Any) -> IncidentFlow:
        return make_incident_flow(store=MemoryStore(), plugins=[plugin], **options)

    return make


@pytest.fixture
def flow(flow_for: Callable[..., IncidentFlow], plugin: PagerDutyPlugin) -> IncidentFlow:
    """A flow delivering to :func:`plugin`."""
    return flow_for(plugin)


Deliver = Callable[[PagerDutyPlugin, IncidentFlow, str, int], None]


@pytest.fixture
def deliver() -> Deliver:
    """Deliver event ``version`` of an incident to a plugin by hand, as the worker would
    (same key, the incident as of that event, the flow), and let any error through."""

    def call(plugin: PagerDutyPlugin, flow: IncidentFlow, incident_id: str, version: int) -> None:
        events: list[Event] = flow.history(incident_id)[:version]
        incident = fold(events)
        assert isinstance(incident, Incident)
        key = f"{incident_id}:{version}:{plugin.incident_flow_name}"
        plugin.incident_flow_event(events[-1], incident, key, flow)

    return call


class Known:
    """The test settings' values and helpers, for tests to compare against (a fixture, since
    test modules of several plugin folders cannot import one another's conftest)."""

    routing_key = ROUTING_KEY
    team_key = TEAM_KEY
    escalation_key = ESCALATION_KEY
    api_key = API_KEY
    from_email = FROM
    pd_incident = PD_INCIDENT
    pd_incidents = staticmethod(pd_incidents)

    @staticmethod
    def mutating(*apis: VendorAPI) -> int:
        """How many requests that change something the servers received."""
        return sum(
            request.method not in ("GET", "HEAD") for api in apis for request in api.requests
        )


@pytest.fixture
def known() -> type[Known]:
    """The test settings' values and helpers."""
    return Known

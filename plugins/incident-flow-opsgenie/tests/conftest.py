"""Fixtures for the Opsgenie adapter's tests: a local Opsgenie API, the adapter pointed at it,
flows that deliver to it, and a way to hand one event to the hook directly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from incident_flow_opsgenie import OpsgenieConfig, OpsgeniePlugin, Responder

from incident_flow import FakeClock, IncidentFlow
from incident_flow.adapters import Secret
from incident_flow.events import Event, fold
from incident_flow.model import Incident
from incident_flow.store.memory import MemoryStore
from incident_flow.testing.vendor_api import VendorAPI

API_KEY = "og-test-key-0123456789abcdef"


@pytest.fixture
def api_key() -> str:
    """The key the tests configure; no request, log line or error may show it."""
    return API_KEY


@pytest.fixture
def opsgenie_api(vendor_api: Callable[..., VendorAPI]) -> VendorAPI:
    """A local Opsgenie that checks each request against Opsgenie's Swagger description."""
    return vendor_api("opsgenie_swagger.json")


@pytest.fixture
def make_config(opsgenie_api: VendorAPI) -> Callable[..., OpsgenieConfig]:
    """Configs pointed at the local Opsgenie, with a short timeout; keyword arguments override."""

    def make(**overrides: Any) -> OpsgenieConfig:
        settings: dict[str, Any] = {
            "api_key": Secret(API_KEY),
            "api_url": opsgenie_api.base_url,
            "timeout": 2.0,
            "schedule": "Search on-call",
            "escalate_to": Responder("team", "SRE"),
        }
        settings.update(overrides)
        return OpsgenieConfig(**settings)

    return make


@pytest.fixture
def make_plugin(
    make_config: Callable[..., OpsgenieConfig],
) -> Iterator[Callable[..., OpsgeniePlugin]]:
    """``make_plugin(**config overrides)``: adapters whose connections are closed after the
    test (and after every flow of ``make_flow`` has shut down)."""
    made: list[OpsgeniePlugin] = []

    def make(**overrides: Any) -> OpsgeniePlugin:
        adapter = OpsgeniePlugin(make_config(**overrides))
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


@pytest.fixture
def plugin(make_plugin: Callable[..., OpsgeniePlugin]) -> OpsgeniePlugin:
    """The adapter with the default test config (escalating to the SRE team)."""
    return make_plugin()


@pytest.fixture
def make_flow(
    make_plugin: Callable[..., OpsgeniePlugin], incident_clock: FakeClock
) -> Iterator[Callable[..., IncidentFlow]]:
    """``make_flow(*plugins)``: flows on a memory store and the fake clock, delivering to
    ``plugins``, shut down after the test; reminders fire only on ``fire_reminders()``."""
    flows: list[IncidentFlow] = []

    def make(*plugins: object) -> IncidentFlow:
        made = IncidentFlow(
            store=MemoryStore(),
            clock=incident_clock,
            plugins=list(plugins),
            entry_points=False,
            reminders=False,
        )
        flows.append(made)
        return made

    yield make
    for made in flows:
        made.shutdown()


@pytest.fixture
def flow(make_flow: Callable[..., IncidentFlow], plugin: OpsgeniePlugin) -> IncidentFlow:
    """A flow that delivers to the adapter (call ``flow.drain()`` to wait for it)."""
    return make_flow(plugin)


@pytest.fixture
def quiet_flow(make_flow: Callable[..., IncidentFlow]) -> IncidentFlow:
    """A flow with no plugins: tests hand its events to the hook themselves."""
    return make_flow()


Deliver = Callable[[OpsgeniePlugin, IncidentFlow, str, type[Event]], None]


@pytest.fixture
def deliver() -> Deliver:
    """``deliver(plugin, flow, incident_id, EventClass)``: call the hook, on this thread, with
    the latest event of that class and the incident as of it, as the delivery worker would."""

    def run(adapter: OpsgeniePlugin, on: IncidentFlow, incident_id: str, kind: type[Event]) -> None:
        history = on.history(incident_id)
        index = max(n for n, event in enumerate(history) if isinstance(event, kind))
        incident = fold(history[: index + 1])
        assert isinstance(incident, Incident)
        adapter.incident_flow_event(event=history[index], incident=incident, flow=on)

    return run


Declare = Callable[..., Incident]


@pytest.fixture
def declare() -> Declare:
    """``declare(flow, severity="major")``: an incident with a lead who acknowledged, not yet
    triaged, that needs no status post to be resolved (no customer impact)."""

    def run(on: IncidentFlow, severity: str = "major", **options: Any) -> Incident:
        incident = on.declare(
            "Search is down",
            severity=severity,
            customer_impact=False,
            by="alice",
            description="Search returns 502 for every query since the 3.30 deploy.",
            **options,
        )
        on.assign(incident.id, "lead", "bob", by="alice")
        return on.acknowledge(incident.id, by="bob")

    return run


Resolve = Callable[[IncidentFlow, str], Incident]


@pytest.fixture
def resolve() -> Resolve:
    """``resolve(flow, incident_id)``: triage, mitigate and resolve a declared incident."""

    def run(on: IncidentFlow, incident_id: str) -> Incident:
        on.triage(incident_id, by="bob")
        on.start_mitigation(incident_id, by="bob")
        return on.resolve(incident_id, by="bob")

    return run

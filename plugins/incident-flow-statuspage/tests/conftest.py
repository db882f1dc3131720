"""Fixtures of the Statuspage adapter's tests: a local Statuspage, the plugin, flows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from incident_flow_statuspage import StatuspageConfig, StatuspagePlugin
from statuspage_support import API_KEY, PAGE_ID, START, Driver

from incident_flow import FakeClock, IncidentFlow
from incident_flow.store.memory import MemoryStore
from incident_flow.testing.vendor_api import VendorAPI


@pytest.fixture
def statuspage(vendor_api: Callable[..., VendorAPI]) -> VendorAPI:
    """A local Statuspage; an invalid request fails the test."""
    return vendor_api("statuspage_openapi.json")


@pytest.fixture
def make_config(statuspage: VendorAPI) -> Callable[..., StatuspageConfig]:
    """Settings pointing at the local Statuspage, with a short timeout; override any."""

    def make(**overrides: Any) -> StatuspageConfig:
        settings: dict[str, Any] = {
            "api_key": API_KEY,
            "page_id": PAGE_ID,
            "api_url": statuspage.base_url,
            "timeout": 1.0,
        }
        settings.update(overrides)
        return StatuspageConfig(**settings)

    return make


@pytest.fixture
def make_plugin(
    make_config: Callable[..., StatuspageConfig],
) -> Iterator[Callable[..., StatuspagePlugin]]:
    """A factory of plugins (settings as for ``make_config``), closed after the test."""
    plugins: list[StatuspagePlugin] = []

    def make(**overrides: Any) -> StatuspagePlugin:
        plugin = StatuspagePlugin(make_config(**overrides))
        plugins.append(plugin)
        return plugin

    yield make
    for plugin in plugins:
        plugin.close()


@pytest.fixture
def plugin(make_plugin: Callable[..., StatuspagePlugin]) -> StatuspagePlugin:
    return make_plugin()


@pytest.fixture
def make_flow() -> Iterator[Callable[..., IncidentFlow]]:
    """A factory of flows on a memory store and a fake clock; shut down after the test."""
    flows: list[IncidentFlow] = []

    def make(*plugins: object, **options: Any) -> IncidentFlow:
        options.setdefault("store", MemoryStore())
        options.setdefault("clock", FakeClock(START))
        flow = IncidentFlow(plugins=list(plugins), entry_points=False, reminders=False, **options)
        flows.append(flow)
        return flow

    yield make
    for flow in flows:
        flow.shutdown()


@pytest.fixture
def flow(make_flow: Callable[..., IncidentFlow], plugin: StatuspagePlugin) -> IncidentFlow:
    """A flow that delivers to the plugin in the background (``flow.drain()`` waits)."""
    return make_flow(plugin)


@pytest.fixture
def quiet_flow(make_flow: Callable[..., IncidentFlow]) -> IncidentFlow:
    """A flow with no plugin, for tests that call the hook themselves and see what it raises."""
    return make_flow(deliver=False)


@pytest.fixture
def driver(flow: IncidentFlow) -> Driver:
    return Driver(flow)


@pytest.fixture
def quiet_driver(quiet_flow: IncidentFlow) -> Driver:
    return Driver(quiet_flow)

"""Fixtures of the GitHub adapter's tests: a local GitHub API, a configured plugin, and flows
that drive incidents to the moments the adapter acts on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from incident_flow_github import GitHubConfig, GitHubPlugin

from incident_flow import FakeClock, IncidentFlow, Role
from incident_flow.adapters import Secret
from incident_flow.store.memory import MemoryStore
from incident_flow.testing.vendor_api import VendorAPI

SPEC = "github_issues_subset_openapi.json"
TOKEN = "ghp_test0123456789abcdefTOKEN"
INCIDENT_URL = "https://incidents.example.com/{incident_id}"


@pytest.fixture
def github_api(vendor_api: Callable[..., VendorAPI]) -> VendorAPI:
    """A local GitHub (the issue endpoints), validating every request against the description."""
    return vendor_api(SPEC)


@pytest.fixture
def make_config(github_api: VendorAPI) -> Callable[..., GitHubConfig]:
    """Settings pointing at the local GitHub, with a short client timeout; override any."""

    def make(**changes: Any) -> GitHubConfig:
        settings: dict[str, Any] = {
            "token": Secret(TOKEN),
            "repository": "acme/incidents",
            "api_url": github_api.base_url,
            "incident_url_template": INCIDENT_URL,
            "timeout": 2.0,
        }
        settings.update(changes)
        return GitHubConfig(**settings)

    return make


@pytest.fixture
def config(make_config: Callable[..., GitHubConfig]) -> GitHubConfig:
    """The default test settings."""
    return make_config()


@pytest.fixture
def make_plugin(make_config: Callable[..., GitHubConfig]) -> Iterator[Callable[..., GitHubPlugin]]:
    """A factory of plugins on the local GitHub; each is closed after the test."""
    made: list[GitHubPlugin] = []

    def make(**changes: Any) -> GitHubPlugin:
        plugin = GitHubPlugin(make_config(**changes))
        made.append(plugin)
        return plugin

    yield make
    for plugin in made:
        plugin.close()


@pytest.fixture
def plugin(make_plugin: Callable[..., GitHubPlugin]) -> GitHubPlugin:
    """The plugin with the default test settings."""
    return make_plugin()


@pytest.fixture
def clock() -> FakeClock:
    """The flows' clock; it moves only when a test moves it (so retries wait for it)."""
    return FakeClock()


@pytest.fixture
def make_flow(clock: FakeClock) -> Iterator[Callable[..., IncidentFlow]]:
    """A factory of flows on a memory store, notifying the given plugins; shut down after the
    test. They deliver when the test calls ``flow.drain()``, in the test's thread, so that
    commands and deliveries interleave as the test says (``deliver=True``: in the background)."""
    flows: list[IncidentFlow] = []

    def make(*plugins: object, **options: Any) -> IncidentFlow:
        options.setdefault("store", MemoryStore())
        options.setdefault("clock", clock)
        options.setdefault("deliver", False)
        flow = IncidentFlow(plugins=list(plugins), entry_points=False, reminders=False, **options)
        flows.append(flow)
        return flow

    yield make
    for flow in flows:
        flow.shutdown()


def mitigating(flow: IncidentFlow, title: str = "Search is down") -> str:
    """Declare an incident and take it to mitigation with a status update; its id."""
    incident = flow.declare(title, severity="critical", customer_impact=True, by="alice")
    flow.assign(incident.id, Role.LEAD, "bob", by="alice")
    flow.acknowledge(incident.id, by="bob")
    flow.assign(incident.id, Role.MESSENGER, "carol", by="bob")
    flow.start_mitigation(incident.id, by="bob")
    flow.post_status_update(
        incident.id,
        "Identified: search is down. Questions: support@sourcegraph.com.",
        phase="identified",
        by="carol",
    )
    return incident.id


@pytest.fixture
def drive() -> Callable[[IncidentFlow], str]:
    """``drive(flow)``: an incident in mitigation, ready to be resolved by ``bob``."""
    return mitigating

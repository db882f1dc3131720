"""Settings come from the environment; a missing or bad one is a clear load failure."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import pytest
from incident_flow_opsgenie import OpsgenieClient, OpsgenieConfig, OpsgeniePlugin, Responder

from incident_flow import IncidentFlow
from incident_flow.adapters import Secret
from incident_flow.errors import AdapterConfigError
from incident_flow.store.memory import MemoryStore

KEY = "og-env-key-0123456789abcdef"


def test_only_the_key_is_required() -> None:
    config = OpsgenieConfig.from_env({"OPSGENIE_API_KEY": KEY})

    assert config.api_key == Secret(KEY)
    assert config.api_url == "https://api.opsgenie.com"
    assert config.timeout == 10
    assert config.schedule is None
    assert config.escalation is None
    assert config.escalate_to is None
    assert dict(config.priorities) == {"critical": "P1", "major": "P2"}
    assert config.tags == ("incident-flow",)
    assert config.source == "incident-flow"


def test_the_eu_region_uses_the_eu_host() -> None:
    config = OpsgenieConfig.from_env({"OPSGENIE_API_KEY": KEY, "OPSGENIE_REGION": "EU"})

    assert config.api_url == "https://api.eu.opsgenie.com"


def test_the_api_url_overrides_the_region() -> None:
    environ = {
        "OPSGENIE_API_KEY": KEY,
        "OPSGENIE_REGION": "eu",
        "OPSGENIE_API_URL": "http://127.0.0.1:8080/",
    }

    assert OpsgenieConfig.from_env(environ).api_url == "http://127.0.0.1:8080"


def test_every_setting_is_read() -> None:
    config = OpsgenieConfig.from_env(
        {
            "OPSGENIE_API_KEY": KEY,
            "OPSGENIE_TIMEOUT": "2.5",
            "OPSGENIE_SCHEDULE": "Search on-call",
            "OPSGENIE_ESCALATION": "Search escalation",
            "OPSGENIE_ESCALATE_TO": "sre@example.com",
            "OPSGENIE_RESPONDERS": "search=team:Search Core, dba = schedule:DB rotation",
            "OPSGENIE_PRIORITIES": "major=p3",
            "OPSGENIE_TAGS": "incident, sourcegraph",
            "OPSGENIE_SOURCE": "handbook-bot",
        }
    )

    assert config.timeout == 2.5
    assert config.schedule == "Search on-call"
    assert config.escalation == "Search escalation"
    assert config.escalate_to == Responder("user", "sre@example.com")
    assert dict(config.responders) == {
        "search": Responder("team", "Search Core"),
        "dba": Responder("schedule", "DB rotation"),
    }
    assert dict(config.priorities) == {"critical": "P1", "major": "P3"}
    assert config.tags == ("incident", "sourcegraph")
    assert config.source == "handbook-bot"


def test_a_missing_key_names_the_variable() -> None:
    with pytest.raises(AdapterConfigError, match="OPSGENIE_API_KEY") as caught:
        OpsgenieConfig.from_env({})
    assert caught.value.setting == "OPSGENIE_API_KEY"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPSGENIE_REGION", "apac"),
        ("OPSGENIE_TIMEOUT", "0"),
        ("OPSGENIE_TIMEOUT", "soon"),
        ("OPSGENIE_PRIORITIES", "critical=P9"),
        ("OPSGENIE_PRIORITIES", "minor=P4"),
        ("OPSGENIE_PRIORITIES", "critical"),
        ("OPSGENIE_RESPONDERS", "search"),
        ("OPSGENIE_API_URL", "api.opsgenie.com"),
    ],
)
def test_a_bad_setting_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(AdapterConfigError) as caught:
        OpsgenieConfig.from_env({"OPSGENIE_API_KEY": KEY, name: value})

    assert caught.value.setting == name
    assert name in str(caught.value)


@pytest.mark.parametrize(
    ("text", "responder"),
    [
        ("Search", Responder("team", "Search")),
        ("ann@example.com", Responder("user", "ann@example.com")),
        ("user:ann", Responder("user", "ann")),
        ("escalation:Search escalation", Responder("escalation", "Search escalation")),
        ("Team: Search", Responder("team", "Search")),
        ("ops:db", Responder("team", "ops:db")),
    ],
)
def test_a_responder_is_read_from_text(text: str, responder: Responder) -> None:
    assert Responder.parse(text) == responder


def test_the_key_never_shows_in_a_repr() -> None:
    config = OpsgenieConfig.from_env({"OPSGENIE_API_KEY": KEY})
    plugin = OpsgeniePlugin(config)

    for shown in (repr(config), str(config), repr(plugin), repr(OpsgenieClient(config))):
        assert KEY not in shown


@pytest.fixture
def fresh_entry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], IncidentFlow]]:
    """Flows that load only this adapter from its entry point, built from the environment as
    it is when the flow is made."""
    monkeypatch.setenv("INCIDENT_FLOW_PLUGINS", "opsgenie")
    monkeypatch.delitem(sys.modules, "incident_flow_opsgenie.entry", raising=False)
    flows: list[IncidentFlow] = []

    def make() -> IncidentFlow:
        made = IncidentFlow(store=MemoryStore(), reminders=False)
        flows.append(made)
        return made

    yield make
    for made in flows:
        made.shutdown()
    sys.modules.pop("incident_flow_opsgenie.entry", None)


def test_an_unconfigured_install_is_a_load_failure_naming_the_key(
    fresh_entry: Callable[[], IncidentFlow], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPSGENIE_API_KEY", raising=False)

    flow = fresh_entry()

    assert flow.plugins.names() == []
    [failure] = flow.plugin_failures
    assert failure.name == "opsgenie"
    assert "AdapterConfigError" in failure.error
    assert "OPSGENIE_API_KEY" in failure.error


def test_a_configured_install_loads_under_its_name(
    fresh_entry: Callable[[], IncidentFlow], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSGENIE_API_KEY", KEY)
    monkeypatch.setenv("OPSGENIE_REGION", "eu")

    flow = fresh_entry()

    assert flow.plugins.names() == ["opsgenie"]
    assert flow.plugin_failures == []
    plugin = flow.plugins.manager.get_plugin("opsgenie")
    assert isinstance(plugin, OpsgeniePlugin)
    assert plugin.config.api_url == "https://api.eu.opsgenie.com"

"""Settings come from the environment, a missing one is named, and no key is ever printed."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
from incident_flow_pagerduty import PagerDutyClient, PagerDutyConfig, PagerDutyPlugin

from incident_flow import IncidentFlow
from incident_flow.adapters import Secret
from incident_flow.errors import AdapterConfigError

ROUTING = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
TEAM = "f6e5d4c3b2a1f6e5d4c3b2a1f6e5d4c3"
ESCALATION = "0123456789abcdef0123456789abcdef"
API_KEY = "u+AbCdEfGhIjKlMnOpQr"

FULL_ENV = {
    "PAGERDUTY_ROUTING_KEY": ROUTING,
    "PAGERDUTY_ROUTING_KEYS": f"search-team={TEAM}, delivery team = {ESCALATION}",
    "PAGERDUTY_ESCALATION_ROUTING_KEY": ESCALATION,
    "PAGERDUTY_SEVERITIES": "major=warning",
    "PAGERDUTY_SOURCE": "incidents.example.com",
    "PAGERDUTY_DEDUP_PREFIX": "acme",
    "PAGERDUTY_API_KEY": API_KEY,
    "PAGERDUTY_FROM": "bot@example.com",
    "PAGERDUTY_SCHEDULE_ID": "PDEFAULT",
    "PAGERDUTY_SCHEDULES": "search=PSEARCH,web=PWEB",
    "PAGERDUTY_ONCALL_AS": "Email",
    "PAGERDUTY_EVENTS_URL": "http://127.0.0.1:9/v2/",
    "PAGERDUTY_API_URL": "http://127.0.0.1:9",
    "PAGERDUTY_TIMEOUT": "2.5",
}


def test_every_setting_is_read_from_the_environment() -> None:
    config = PagerDutyConfig.from_env(FULL_ENV)

    assert config.routing_key == Secret(ROUTING)
    assert config.routing_key_for("search-team") == Secret(TEAM)
    assert config.routing_key_for("Delivery Team") == Secret(ESCALATION)
    assert config.routing_key_for("someone else") == Secret(ROUTING)
    assert config.escalation_routing_key == Secret(ESCALATION)
    assert config.alert_severity("critical") == "critical"
    assert config.alert_severity("major") == "warning"
    assert config.source == "incidents.example.com"
    assert config.dedup_prefix == "acme"
    assert config.api_key == Secret(API_KEY)
    assert config.from_email == "bot@example.com"
    assert config.posts_status_updates
    assert config.schedule_for(None) == "PDEFAULT"
    assert config.schedule_for("search") == "PSEARCH"
    assert config.schedule_for("PRAW123") == "PRAW123"
    assert config.oncall_as == "email"
    assert config.events_url == "http://127.0.0.1:9/v2"
    assert config.api_url == "http://127.0.0.1:9"
    assert config.timeout == 2.5


def test_only_the_routing_key_is_required() -> None:
    config = PagerDutyConfig.from_env({"PAGERDUTY_ROUTING_KEY": ROUTING})

    assert config.routing_keys == {}
    assert config.escalation_routing_key is None
    assert dict(config.severities) == {"critical": "critical", "major": "error"}
    assert config.source == "incident-flow"
    assert config.api_key is None
    assert config.from_email is None
    assert not config.posts_status_updates
    assert config.schedule_for(None) is None
    assert config.events_url == "https://events.pagerduty.com/v2"
    assert config.api_url == "https://api.pagerduty.com"
    assert config.timeout == 10.0


def test_an_unset_routing_key_is_named() -> None:
    with pytest.raises(AdapterConfigError, match="PAGERDUTY_ROUTING_KEY is not set") as raised:
        PagerDutyConfig.from_env({"PAGERDUTY_API_KEY": API_KEY})
    assert raised.value.setting == "PAGERDUTY_ROUTING_KEY"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PAGERDUTY_ROUTING_KEYS", f"search-team{TEAM}"),
        ("PAGERDUTY_SEVERITIES", "major=urgent"),
        ("PAGERDUTY_SEVERITIES", "minor=info"),
        ("PAGERDUTY_TIMEOUT", "soon"),
        ("PAGERDUTY_TIMEOUT", "0"),
        ("PAGERDUTY_FROM", "not an address"),
        ("PAGERDUTY_ONCALL_AS", "phone"),
        ("PAGERDUTY_EVENTS_URL", "events.pagerduty.com"),
        ("PAGERDUTY_API_URL", "ftp://api.pagerduty.com"),
    ],
)
def test_a_malformed_setting_is_named_without_its_keys(name: str, value: str) -> None:
    with pytest.raises(AdapterConfigError) as raised:
        PagerDutyConfig.from_env({"PAGERDUTY_ROUTING_KEY": ROUTING, name: value})
    assert raised.value.setting == name
    assert name in str(raised.value)
    assert TEAM not in str(raised.value)


def test_no_key_shows_in_reprs() -> None:
    config = PagerDutyConfig.from_env(FULL_ENV)
    plugin = PagerDutyPlugin(config)
    try:
        shown = " ".join(
            [
                repr(config),
                str(config),
                repr(plugin),
                repr(plugin.client),
                repr(PagerDutyClient(config)),
            ]
        )
    finally:
        plugin.close()
    for secret in (ROUTING, TEAM, ESCALATION, API_KEY):
        assert secret not in shown
    assert "***" in shown


@pytest.fixture
def fresh_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Import the entry point anew in the test, with the environment it sets."""
    for name in list(FULL_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "incident_flow_pagerduty.entry", raising=False)
    monkeypatch.setenv("INCIDENT_FLOW_PLUGINS", "pagerduty")


@pytest.mark.usefixtures("fresh_entry")
def test_an_unconfigured_install_is_reported_not_loaded(
    make_incident_flow: Callable[..., IncidentFlow],
) -> None:
    flow = make_incident_flow(entry_points=True)

    assert flow.plugins.names() == []
    [failure] = flow.plugin_failures
    assert failure.name == "pagerduty"
    assert "AdapterConfigError" in failure.error
    assert "PAGERDUTY_ROUTING_KEY" in failure.error


@pytest.mark.usefixtures("fresh_entry")
def test_a_configured_install_loads_from_its_entry_point(
    make_incident_flow: Callable[..., IncidentFlow], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", ROUTING)
    flow = make_incident_flow(entry_points=True)

    assert flow.plugins.names() == ["pagerduty"]
    assert flow.plugin_failures == []
    plugin: Any = flow.plugins.manager.get_plugin("pagerduty")
    assert isinstance(plugin, PagerDutyPlugin)
    assert plugin.config.routing_key == Secret(ROUTING)
    plugin.close()

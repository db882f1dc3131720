"""Settings from the environment; a missing one is a load failure naming it; secrets hidden."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from incident_flow_statuspage import StatuspageConfig, StatuspagePlugin
from statuspage_support import API_KEY

from incident_flow import IncidentFlow
from incident_flow.errors import AdapterConfigError

REQUIRED = {"STATUSPAGE_API_KEY": API_KEY, "STATUSPAGE_PAGE_ID": "kctbh9vrtdwd"}


def test_the_required_settings_and_the_defaults() -> None:
    config = StatuspageConfig.from_env(REQUIRED)

    assert config.api_key.reveal() == API_KEY
    assert config.page_id == "kctbh9vrtdwd"
    assert config.api_url == "https://api.statuspage.io/v1"
    assert config.components == {}
    assert config.phase_map["identified"] == "identified"
    assert config.publish_with_findings is False
    assert config.deliver_notifications is True
    assert config.timeout == 10.0
    assert "{support}" in config.resolved_text


def test_every_setting_from_the_environment() -> None:
    config = StatuspageConfig.from_env(
        {
            **REQUIRED,
            "STATUSPAGE_API_URL": "http://127.0.0.1:9/v1/",
            "STATUSPAGE_COMPONENTS": "cmp1=major_outage, cmp2=partial_outage",
            "STATUSPAGE_PHASE_MAP": "mitigated=monitoring",
            "STATUSPAGE_PUBLISH_WITH_FINDINGS": "1",
            "STATUSPAGE_DELIVER_NOTIFICATIONS": "false",
            "STATUSPAGE_TIMEOUT": "2.5",
            "STATUSPAGE_RESOLVED_TEXT": "All fixed. Questions: {support}.",
            "STATUSPAGE_FALSE_POSITIVE_TEXT": "No issue after all.",
        }
    )

    assert config.api_url == "http://127.0.0.1:9/v1"
    assert config.components == {"cmp1": "major_outage", "cmp2": "partial_outage"}
    assert config.phase_map["mitigated"] == "monitoring"
    assert config.phase_map["resolved"] == "resolved"
    assert config.publish_with_findings is True
    assert config.deliver_notifications is False
    assert config.timeout == 2.5
    assert config.resolved_text == "All fixed. Questions: {support}."
    assert config.false_positive_text == "No issue after all."


@pytest.mark.parametrize("missing", ["STATUSPAGE_API_KEY", "STATUSPAGE_PAGE_ID"])
def test_a_missing_required_setting_is_named(missing: str) -> None:
    environ = {name: value for name, value in REQUIRED.items() if name != missing}

    with pytest.raises(AdapterConfigError, match=f"{missing} is not set") as raised:
        StatuspageConfig.from_env(environ)

    assert raised.value.setting == missing


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STATUSPAGE_API_KEY", "sp key with spaces"),
        ("STATUSPAGE_PAGE_ID", "../pages"),
        ("STATUSPAGE_API_URL", "api.statuspage.io"),
        ("STATUSPAGE_COMPONENTS", "cmp1=down"),
        ("STATUSPAGE_COMPONENTS", "cmp1"),
        ("STATUSPAGE_PHASE_MAP", "mitigated=fixed"),
        ("STATUSPAGE_PHASE_MAP", "mitigated"),
        ("STATUSPAGE_PUBLISH_WITH_FINDINGS", "maybe"),
        ("STATUSPAGE_TIMEOUT", "0"),
        ("STATUSPAGE_TIMEOUT", "soon"),
        ("STATUSPAGE_RESOLVED_TEXT", "Fixed, ask {team}"),
    ],
)
def test_a_malformed_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(AdapterConfigError, match=name) as raised:
        StatuspageConfig.from_env({**REQUIRED, name: value})

    assert raised.value.setting == name
    assert API_KEY not in str(raised.value)
    assert "sp key with spaces" not in str(raised.value)


def test_the_api_key_never_shows(make_plugin: Callable[..., StatuspagePlugin]) -> None:
    plugin = make_plugin()

    for shown in (repr(plugin.config), str(plugin.config), repr(plugin), repr(plugin.client)):
        assert API_KEY not in shown
    assert "***" in repr(plugin.config)


def test_an_unconfigured_install_is_a_load_failure_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INCIDENT_FLOW_PLUGINS", "statuspage")
    monkeypatch.delenv("STATUSPAGE_API_KEY", raising=False)
    monkeypatch.setenv("STATUSPAGE_PAGE_ID", "kctbh9vrtdwd")
    monkeypatch.delitem(__import__("sys").modules, "incident_flow_statuspage.entry", raising=False)

    with IncidentFlow(reminders=False) as flow:
        assert flow.plugins.names() == []
        (failure,) = flow.plugin_failures

    assert failure.name == "statuspage"
    assert "AdapterConfigError" in failure.error
    assert "STATUSPAGE_API_KEY" in failure.error


def test_a_configured_install_loads_through_its_entry_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INCIDENT_FLOW_PLUGINS", "statuspage")
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delitem(__import__("sys").modules, "incident_flow_statuspage.entry", raising=False)

    with IncidentFlow(reminders=False) as flow:
        assert flow.plugins.names() == ["statuspage"]
        assert flow.plugin_failures == []
        loaded = flow.plugins.manager.get_plugin("statuspage")
        assert isinstance(loaded, StatuspagePlugin)
        loaded.close()

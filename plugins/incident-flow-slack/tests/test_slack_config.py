"""The Slack settings: read from the environment (or a TOML file), never shown, and an
unconfigured install reported as a load failure rather than a crash."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from incident_flow_slack.config import DEFAULT_API_URL, SlackConfig

from incident_flow import IncidentFlow
from incident_flow.errors import AdapterConfigError

ENV = {
    "SLACK_BOT_TOKEN": "xoxb-env-token-123456",
    "SLACK_SIGNING_SECRET": "signing-secret-abcdef",
    "SLACK_ANNOUNCE_CHANNELS": "#support, C0CE00001 ,sales",
    "SLACK_SEVERE_CHANNELS": "everyone",
    "SLACK_MARKETING_CHANNEL": "mkt",
    "SLACK_MARKETING_GROUP": "S0MARKET1",
    "SLACK_CHANNEL_PREFIX": "incident",
    "SLACK_API_URL": "http://127.0.0.1:9/api",
    "SLACK_TIMEOUT": "2.5",
}


def test_every_setting_comes_from_the_environment() -> None:
    config = SlackConfig.from_env(ENV)

    assert config.bot_token.reveal() == "xoxb-env-token-123456"
    assert config.signing_secret is not None
    assert config.announce_channels == ("support", "C0CE00001", "sales")
    assert config.severe_channels == ("everyone",)
    assert (config.marketing_channel, config.marketing_group) == ("mkt", "S0MARKET1")
    assert config.channel_prefix == "incident"
    assert config.api_url == "http://127.0.0.1:9/api/"
    assert config.timeout == 2.5


def test_the_defaults_follow_the_handbook() -> None:
    config = SlackConfig.from_env({"SLACK_BOT_TOKEN": "xoxb-1"})

    assert config.announce_channels == ("customer-support", "ce", "sales")
    assert config.severe_channels == ("general",)
    assert (config.marketing_channel, config.marketing_group) == (
        "marketing",
        "@marketing-incident",
    )
    assert (config.channel_prefix, config.api_url, config.timeout) == ("inc", DEFAULT_API_URL, 10)


def test_a_missing_bot_token_names_the_variable() -> None:
    with pytest.raises(AdapterConfigError, match="SLACK_BOT_TOKEN is not set") as caught:
        SlackConfig.from_env({})
    assert caught.value.setting == "SLACK_BOT_TOKEN"


def test_a_bad_timeout_names_the_variable() -> None:
    with pytest.raises(AdapterConfigError, match="SLACK_TIMEOUT"):
        SlackConfig.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_TIMEOUT": "0"})


def test_a_file_gives_settings_and_the_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "slack.toml"
    path.write_text('bot_token = "xoxb-file"\nchannel_prefix = "file"\ntimeout = 3\n')

    config = SlackConfig.from_env(
        {"INCIDENT_FLOW_SLACK_CONFIG": str(path), "SLACK_CHANNEL_PREFIX": "env"}
    )

    assert config.bot_token.reveal() == "xoxb-file"
    assert (config.channel_prefix, config.timeout) == ("env", 3)


def test_secrets_never_show() -> None:
    config = SlackConfig.from_env(ENV)

    for text in (repr(config), str(config), f"{config.bot_token}"):
        assert "xoxb-env-token-123456" not in text
        assert "signing-secret-abcdef" not in text


def test_an_unconfigured_install_is_a_load_failure_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("INCIDENT_FLOW_SLACK_CONFIG", raising=False)
    monkeypatch.setenv("INCIDENT_FLOW_PLUGINS", "slack")
    monkeypatch.delitem(sys.modules, "incident_flow_slack.entry", raising=False)

    with IncidentFlow(deliver=False, reminders=False) as flow:
        assert flow.plugins.names() == []
        (failure,) = flow.plugin_failures
    assert "SLACK_BOT_TOKEN" in str(failure)


def test_a_configured_install_loads_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-entry-point")
    monkeypatch.setenv("INCIDENT_FLOW_PLUGINS", "slack")
    monkeypatch.delitem(sys.modules, "incident_flow_slack.entry", raising=False)

    with IncidentFlow(deliver=False, reminders=False) as flow:
        assert flow.plugins.names() == ["slack"]
        assert flow.plugin_failures == []
    monkeypatch.delitem(sys.modules, "incident_flow_slack.entry", raising=False)

"""Settings come from the environment; a missing or malformed one is an AdapterConfigError that
names it, an unconfigured install is a load failure, and the token never shows."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import pytest
from incident_flow_github import GitHubClient, GitHubConfig, GitHubPlugin

from incident_flow import IncidentFlow
from incident_flow.adapters import Secret
from incident_flow.errors import AdapterConfigError

TOKEN = "ghp_test0123456789abcdefTOKEN"
REQUIRED = {"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": "acme/incidents"}


def test_every_setting_is_read_from_the_environment() -> None:
    config = GitHubConfig.from_env(
        {
            **REQUIRED,
            "GITHUB_API_URL": "https://github.example.com/api/v3/",
            "GITHUB_SERVER_URL": "https://github.example.com",
            "GITHUB_FOLLOWUP_LABELS": " incident-follow-up, reliability ,",
            "GITHUB_OWNER_LOGINS": "alice@example.com=alice, bob=@bob-gh",
            "INCIDENT_FLOW_URL_TEMPLATE": "https://incidents.example.com/{incident_id}",
            "GITHUB_TIMEOUT": "2.5",
        }
    )

    assert config.token.reveal() == TOKEN
    assert (config.owner, config.repo) == ("acme", "incidents")
    assert config.api_url == "https://github.example.com/api/v3"
    assert config.server_url == "https://github.example.com"
    assert config.followup_labels == ("incident-follow-up", "reliability")
    assert dict(config.owner_logins) == {"alice@example.com": "alice", "bob": "bob-gh"}
    assert config.incident_url("INC 1/2") == "https://incidents.example.com/INC%201%2F2"
    assert config.timeout == 2.5


def test_the_defaults() -> None:
    config = GitHubConfig.from_env(REQUIRED)

    assert config.api_url == "https://api.github.com"
    assert config.server_url == "https://github.com"
    assert config.followup_labels == ("incident-follow-up",)
    assert dict(config.owner_logins) == {}
    assert config.incident_url("INC-1") is None
    assert config.timeout == 10


@pytest.mark.parametrize("missing", ["GITHUB_TOKEN", "GITHUB_REPOSITORY"])
def test_a_required_setting_that_is_unset_is_named(missing: str) -> None:
    environ = {name: value for name, value in REQUIRED.items() if name != missing}

    with pytest.raises(AdapterConfigError, match=missing) as raised:
        GitHubConfig.from_env(environ)

    assert raised.value.setting == missing


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GITHUB_REPOSITORY", "acme"),
        ("GITHUB_REPOSITORY", "acme/web/extra"),
        ("GITHUB_API_URL", "api.github.com"),
        ("GITHUB_SERVER_URL", "ftp://github.com"),
        ("GITHUB_TIMEOUT", "soon"),
        ("GITHUB_TIMEOUT", "0"),
        ("GITHUB_OWNER_LOGINS", "alice"),
        ("INCIDENT_FLOW_URL_TEMPLATE", "https://incidents.example.com/"),
        ("INCIDENT_FLOW_URL_TEMPLATE", "https://incidents.example.com/{id}/{incident_id}"),
    ],
)
def test_a_malformed_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(AdapterConfigError, match=name) as raised:
        GitHubConfig.from_env({**REQUIRED, name: value})

    assert raised.value.setting == name
    assert TOKEN not in str(raised.value)


def test_the_token_never_shows_in_a_repr() -> None:
    config = GitHubConfig.from_env(REQUIRED)
    plugin = GitHubPlugin(config)
    try:
        for text in (repr(config), str(config), repr(plugin), repr(plugin.client)):
            assert TOKEN not in text
            assert "***" in text
    finally:
        plugin.close()


def test_a_token_given_as_text_is_kept_as_a_secret() -> None:
    config = GitHubConfig(token=TOKEN, repository="acme/incidents")

    assert isinstance(config.token, Secret)
    assert config.token == Secret(TOKEN)
    with GitHubClient(config) as client:
        assert "api.github.com" in repr(client)
        assert TOKEN not in repr(client)


def test_the_entry_point_is_declared() -> None:
    (found,) = [ep for ep in entry_points(group="incident_flow") if ep.name == "github"]
    assert found.value == "incident_flow_github.entry:plugin"


@pytest.fixture
def fresh_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget an earlier import of the entry module, so that loading it reads the environment."""
    monkeypatch.delitem(sys.modules, "incident_flow_github.entry", raising=False)
    monkeypatch.setenv("INCIDENT_FLOW_PLUGINS", "github")
    for name in ("GITHUB_TOKEN", "GITHUB_REPOSITORY", "GITHUB_API_URL", "GITHUB_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("fresh_entry")
def test_an_unconfigured_install_is_a_load_failure_naming_the_variable() -> None:
    with IncidentFlow(reminders=False) as flow:
        assert flow.plugins.names() == []
        (failure,) = flow.plugin_failures

    assert failure.name == "github"
    assert "AdapterConfigError" in failure.error
    assert "GITHUB_TOKEN" in failure.error


@pytest.mark.usefixtures("fresh_entry")
def test_a_configured_install_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/incidents")

    with IncidentFlow(reminders=False) as flow:
        assert flow.plugins.names() == ["github"]
        assert flow.plugin_failures == []
        plugin = flow.plugins.manager.get_plugin("github")
    assert isinstance(plugin, GitHubPlugin)
    assert plugin.config.repository == "acme/incidents"
    plugin.close()

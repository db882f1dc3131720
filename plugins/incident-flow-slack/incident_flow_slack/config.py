"""The Slack adapter's settings: from the environment, or a TOML file, never printed.

Environment variables (``SlackConfig.from_env``):

``SLACK_BOT_TOKEN`` (required)
    the bot token (``xoxb-…``) the Web API calls are made with.
``SLACK_SIGNING_SECRET`` (required to serve commands over HTTP)
    verifies that a request comes from Slack.
``SLACK_APP_TOKEN``
    an app-level token (``xapp-…``), for Socket Mode only.
``SLACK_ANNOUNCE_CHANNELS``
    comma-separated channels told of every customer-impacting incident; default
    ``customer-support,ce,sales``.
``SLACK_SEVERE_CHANNELS``
    channels told only of critical incidents; default ``general``.
``SLACK_MARKETING_CHANNEL`` / ``SLACK_MARKETING_GROUP``
    where, and whom to tag, on announcement days (and always, for customer-impacting incidents);
    default ``marketing`` / ``@marketing-incident``.
``SLACK_CHANNEL_PREFIX``
    the start of every incident channel's name; default ``inc``.
``SLACK_API_URL``
    the Web API's base URL; default ``https://slack.com/api/`` (tests point it elsewhere).
``SLACK_TIMEOUT``
    seconds one Web API call may take; default 10.
``INCIDENT_FLOW_SLACK_CONFIG``
    a TOML file with the same settings in lower case (``bot_token = "…"``); the environment
    wins over the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

import attrs

from incident_flow.adapters import Secret
from incident_flow.errors import AdapterConfigError

__all__ = ["DEFAULT_API_URL", "SlackConfig"]

DEFAULT_API_URL = "https://slack.com/api/"

_NAMES = (
    "bot_token",
    "signing_secret",
    "app_token",
    "announce_channels",
    "severe_channels",
    "marketing_channel",
    "marketing_group",
    "channel_prefix",
    "api_url",
    "timeout",
)
_SECRETS = ("bot_token", "signing_secret", "app_token")


def _channels(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(item.strip().lstrip("#") for item in items if item.strip())


def _secret(value: Secret | str | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value)


@attrs.frozen
class SlackConfig:
    """Everything the adapter needs to know about the workspace; see the module docstring."""

    bot_token: Secret = attrs.field(converter=_secret)
    signing_secret: Secret | None = attrs.field(default=None, converter=_secret)
    app_token: Secret | None = attrs.field(default=None, converter=_secret)
    announce_channels: tuple[str, ...] = attrs.field(
        default=("customer-support", "ce", "sales"), converter=_channels
    )
    severe_channels: tuple[str, ...] = attrs.field(default=("general",), converter=_channels)
    marketing_channel: str = "marketing"
    marketing_group: str = "@marketing-incident"
    channel_prefix: str = "inc"
    api_url: str = DEFAULT_API_URL
    timeout: float = attrs.field(default=10.0, converter=float)

    def __attrs_post_init__(self) -> None:
        if self.bot_token is None:
            raise AdapterConfigError(
                "SLACK_BOT_TOKEN is not set; set it to the app's bot token (xoxb-…)",
                setting="SLACK_BOT_TOKEN",
            )
        if not self.timeout > 0:
            raise AdapterConfigError(
                f"SLACK_TIMEOUT must be a number of seconds > 0, not {self.timeout!r}",
                setting="SLACK_TIMEOUT",
            )
        if not self.api_url.endswith("/"):
            object.__setattr__(self, "api_url", self.api_url + "/")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SlackConfig:
        """Read the settings from ``environ`` (default ``os.environ``), over those of the
        ``INCIDENT_FLOW_SLACK_CONFIG`` file when it names one.

        Raises:
            AdapterConfigError: ``SLACK_BOT_TOKEN`` is unset, the file cannot be read, or a
                value is malformed (the message names the setting, never a secret's value).
        """
        source = os.environ if environ is None else environ
        settings: dict[str, object] = {}
        path = source.get("INCIDENT_FLOW_SLACK_CONFIG", "").strip()
        if path:
            settings.update(_read_file(Path(path)))
        for name in _NAMES:
            value = source.get(f"SLACK_{name.upper()}", "").strip()
            if value:
                settings[name] = value
        if "bot_token" not in settings:
            raise AdapterConfigError(
                "SLACK_BOT_TOKEN is not set; set it to the app's bot token (xoxb-…), in the "
                "environment or in the file INCIDENT_FLOW_SLACK_CONFIG names",
                setting="SLACK_BOT_TOKEN",
            )
        try:
            return cls(**settings)  # type: ignore[arg-type]
        except (TypeError, ValueError) as error:
            if isinstance(error, AdapterConfigError):
                raise
            raise AdapterConfigError(f"a Slack setting is malformed: {error}") from None


def _read_file(path: Path) -> dict[str, object]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise AdapterConfigError(
            f"cannot read the Slack config file {path}: {error.strerror}",
            setting="INCIDENT_FLOW_SLACK_CONFIG",
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise AdapterConfigError(
            f"the Slack config file {path} is not valid TOML: {error}",
            setting="INCIDENT_FLOW_SLACK_CONFIG",
        ) from None
    unknown = sorted(set(data) - set(_NAMES))
    if unknown:
        raise AdapterConfigError(
            f"the Slack config file {path} has unknown settings {', '.join(unknown)}; "
            f"known: {', '.join(_NAMES)}",
            setting="INCIDENT_FLOW_SLACK_CONFIG",
        )
    return dict(data)

"""The adapter's settings, read once from the environment so a bad one fails at load time.

An installed but unconfigured adapter is reported by the plugin registry as a load failure that
names the missing variable (:class:`~incident_flow.errors.AdapterConfigError`), rather than
failing on the first page in the middle of an incident.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import attrs

from incident_flow.adapters import Secret, env_secret, env_setting
from incident_flow.errors import AdapterConfigError
from incident_flow.model import Severity

__all__ = [
    "DEFAULT_PRIORITIES",
    "PRIORITIES",
    "REGIONS",
    "OpsgenieConfig",
    "Responder",
]

REGIONS: Final[Mapping[str, str]] = MappingProxyType(
    {"us": "https://api.opsgenie.com", "eu": "https://api.eu.opsgenie.com"}
)
"""Opsgenie's API hosts by region: an account lives in exactly one of them."""

PRIORITIES: Final = ("P1", "P2", "P3", "P4", "P5")
"""The priorities Opsgenie knows, most urgent first."""

DEFAULT_PRIORITIES: Final[Mapping[str, str]] = MappingProxyType(
    {Severity.CRITICAL.value: "P1", Severity.MAJOR.value: "P2"}
)
"""Both of the handbook's severities need an immediate response; critical pages louder."""

RESPONDER_TYPES: Final = ("team", "user", "escalation", "schedule")
"""Recipient types an alert can be routed to by name."""


@attrs.frozen
class Responder:
    """Whom an alert is routed to: an Opsgenie team, user, escalation or schedule, by name.

    Opsgenie names a user by ``username`` (their e-mail address) and the others by ``name``.
    """

    type: str
    name: str

    @classmethod
    def parse(cls, text: str) -> Responder:
        """Read ``team:Search``, ``user:ann@example.com``, ``escalation:…``, ``schedule:…``,
        or a bare name: a user when it holds ``@`` (an e-mail address), a team otherwise.

        Raises:
            AdapterConfigError: the text is empty or names an unknown type.
        """
        text = text.strip()
        kind, colon, rest = text.partition(":")
        if colon and kind.strip().lower() in RESPONDER_TYPES:
            kind, name = kind.strip().lower(), rest.strip()
        else:
            kind, name = ("user" if "@" in text else "team"), text
        if not name:
            raise AdapterConfigError(f"an Opsgenie responder needs a name: {text!r}")
        return cls(kind, name)

    def payload(self) -> dict[str, str]:
        """The responder as Opsgenie's ``Recipient`` object."""
        if self.type == "user":
            return {"type": "user", "username": self.name}
        return {"type": self.type, "name": self.name}

    def __str__(self) -> str:
        return f"{self.type}:{self.name}"


def _pairs(name: str, text: str) -> dict[str, str]:
    """``a=b, c=d`` as a dict; the value may itself hold ``:`` or ``@``."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, equals, value = item.partition("=")
        if not equals or not key.strip() or not value.strip():
            raise AdapterConfigError(
                f"{name} must be a comma-separated list of name=value pairs; {item.strip()!r} "
                "is not one",
                setting=name,
            )
        pairs[key.strip()] = value.strip()
    return pairs


def _priorities(text: str) -> Mapping[str, str]:
    priorities = dict(DEFAULT_PRIORITIES)
    for key, value in _pairs("OPSGENIE_PRIORITIES", text).items():
        try:
            severity = Severity.parse(key)
        except ValueError as error:
            raise AdapterConfigError(
                f"OPSGENIE_PRIORITIES: {key!r} is not a severity (critical, major)",
                setting="OPSGENIE_PRIORITIES",
            ) from error
        priority = value.upper()
        if priority not in PRIORITIES:
            raise AdapterConfigError(
                f"OPSGENIE_PRIORITIES: {value!r} is not an Opsgenie priority "
                f"({', '.join(PRIORITIES)})",
                setting="OPSGENIE_PRIORITIES",
            )
        priorities[severity.value] = priority
    return MappingProxyType(priorities)


def _responders(text: str) -> Mapping[str, Responder]:
    return MappingProxyType(
        {
            target: Responder.parse(value)
            for target, value in _pairs("OPSGENIE_RESPONDERS", text).items()
        }
    )


def _timeout(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (seconds > 0 and math.isfinite(seconds)):
        raise AdapterConfigError(
            f"OPSGENIE_TIMEOUT must be a number of seconds above 0, not {text!r}",
            setting="OPSGENIE_TIMEOUT",
        )
    return seconds


def _optional(name: str, environ: Mapping[str, str] | None) -> str | None:
    return env_setting(name, default="", environ=environ) or None


def _frozen_responders(value: Mapping[str, Responder]) -> Mapping[str, Responder]:
    return MappingProxyType(dict(value))


def _frozen_priorities(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType({str(key): priority for key, priority in value.items()})


@attrs.frozen(kw_only=True)
class OpsgenieConfig:
    """Everything the adapter needs to reach one Opsgenie account and page through it.

    Build it with :meth:`from_env`, or directly in tests. ``api_key`` is a
    :class:`~incident_flow.adapters.Secret`, so the config's repr never shows it.
    """

    api_key: Secret
    """An Opsgenie API integration key (sent as ``Authorization: GenieKey <key>``)."""
    api_url: str = attrs.field(default=REGIONS["us"])
    """Where the API is: the region's host, or ``OPSGENIE_API_URL`` (a local server in tests)."""
    timeout: float = 10.0
    """Seconds to wait for Opsgenie on each request before the delivery is retried later."""
    schedule: str | None = None
    """The schedule asked about when ``/genie whoisoncall`` names none."""
    escalation: str | None = None
    """The escalation an unanswered page is escalated to, by name; it wins over
    ``escalate_to``."""
    escalate_to: Responder | None = None
    """Who is added to an unanswered page's alert when no escalation is named."""
    responders: Mapping[str, Responder] = attrs.field(factory=dict, converter=_frozen_responders)
    """Page targets (as people type them after ``for``) mapped to Opsgenie responders."""
    priorities: Mapping[str, str] = attrs.field(
        default=DEFAULT_PRIORITIES, converter=_frozen_priorities
    )
    """An incident's severity (``critical``, ``major``) mapped to an alert priority."""
    tags: tuple[str, ...] = ("incident-flow",)
    """Tags put on every alert, besides the severity's."""
    source: str = "incident-flow"
    """The alert's ``source`` field, which Opsgenie shows and can filter on."""

    @api_url.validator
    def _check_url(self, attribute: attrs.Attribute[str], value: str) -> None:
        if not value.startswith(("https://", "http://")):
            raise AdapterConfigError(
                f"the Opsgenie API URL (OPSGENIE_API_URL) must start with https:// or http://, "
                f"not {value!r}",
                setting="OPSGENIE_API_URL",
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OpsgenieConfig:
        """Read the ``OPSGENIE_*`` variables (``os.environ`` when ``environ`` is None).

        Raises:
            AdapterConfigError: ``OPSGENIE_API_KEY`` is unset, ``OPSGENIE_REGION`` is neither
                ``us`` nor ``eu``, or another setting is malformed; the message names it.
        """
        api_key = env_secret(
            "OPSGENIE_API_KEY",
            environ=environ,
            hint="an API key of an Opsgenie API integration, with create and update rights",
        )
        region = env_setting("OPSGENIE_REGION", default="us", environ=environ).lower()
        if region not in REGIONS:
            raise AdapterConfigError(
                f"OPSGENIE_REGION must be one of {', '.join(REGIONS)}, not {region!r}",
                setting="OPSGENIE_REGION",
            )
        api_url = env_setting("OPSGENIE_API_URL", default=REGIONS[region], environ=environ)
        escalate_to = _optional("OPSGENIE_ESCALATE_TO", environ)
        tags = env_setting("OPSGENIE_TAGS", default="incident-flow", environ=environ)
        return cls(
            api_key=api_key,
            api_url=api_url.rstrip("/"),
            timeout=_timeout(env_setting("OPSGENIE_TIMEOUT", default="10", environ=environ)),
            schedule=_optional("OPSGENIE_SCHEDULE", environ),
            escalation=_optional("OPSGENIE_ESCALATION", environ),
            escalate_to=None if escalate_to is None else Responder.parse(escalate_to),
            responders=_responders(env_setting("OPSGENIE_RESPONDERS", default="", environ=environ)),
            priorities=_priorities(env_setting("OPSGENIE_PRIORITIES", default="", environ=environ)),
            tags=tuple(tag.strip() for tag in tags.split(",") if tag.strip()),
            source=env_setting("OPSGENIE_SOURCE", default="incident-flow", environ=environ),
        )

    def responder(self, target: str) -> Responder:
        """Whom a page for ``target`` goes to: its mapping in :attr:`responders`, else a user
        by username when it holds ``@``, else a team by name."""
        mapped = self.responders.get(target.strip())
        if mapped is not None:
            return mapped
        return Responder.parse(target)

    def priority(self, severity: str) -> str:
        """The alert priority for an incident of ``severity`` (P3, Opsgenie's default, when the
        severity is not mapped)."""
        return self.priorities.get(str(severity), "P3")

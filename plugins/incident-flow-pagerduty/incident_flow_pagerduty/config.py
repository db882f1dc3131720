"""The PagerDuty adapter's settings, read from the environment and never printed.

Environment variables (:meth:`PagerDutyConfig.from_env`):

``PAGERDUTY_ROUTING_KEY`` (required)
    the integration key of an Events API v2 integration: where pages go by default.
``PAGERDUTY_ROUTING_KEYS``
    per-target integration keys, ``target=key,target=key``: a page for a target listed here
    goes to that service instead of the default one.
``PAGERDUTY_ESCALATION_ROUTING_KEY``
    where an unacknowledged page escalates to; unset, the adapter leaves escalation to the
    PagerDuty service's own escalation policy.
``PAGERDUTY_SEVERITIES``
    how incident severities become PagerDuty alert severities, ``critical=critical,major=error``
    (the default); values are ``critical``, ``error``, ``warning`` or ``info``.
``PAGERDUTY_SOURCE``
    the alerts' ``payload.source``; default ``incident-flow``.
``PAGERDUTY_DEDUP_PREFIX``
    the start of every dedup key; default ``incident-flow``. Give each installation sharing a
    PagerDuty account its own.
``PAGERDUTY_API_KEY``
    a REST API key: needed for status updates and for who is on call.
``PAGERDUTY_FROM``
    the e-mail of the PagerDuty user status updates are posted as (REST ``From`` header).
``PAGERDUTY_SCHEDULE_ID``
    the schedule asked about when who-is-on-call names none.
``PAGERDUTY_SCHEDULES``
    schedule names to schedule ids, ``name=id,name=id``; a name not listed is taken as an id.
``PAGERDUTY_ONCALL_AS``
    ``name`` (the default) or ``email``: how who-is-on-call names the person.
``PAGERDUTY_EVENTS_URL``
    the Events API v2 base URL; default ``https://events.pagerduty.com/v2``.
``PAGERDUTY_API_URL``
    the REST API base URL; default ``https://api.pagerduty.com``.
``PAGERDUTY_TIMEOUT``
    seconds one HTTP call may take; default 10.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from incident_flow.adapters import Secret, env_secret, env_setting
from incident_flow.errors import AdapterConfigError
from incident_flow.model import Severity

__all__ = [
    "ALERT_SEVERITIES",
    "DEFAULT_API_URL",
    "DEFAULT_EVENTS_URL",
    "DEFAULT_SEVERITIES",
    "PagerDutyConfig",
]

DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2"
DEFAULT_API_URL = "https://api.pagerduty.com"

ALERT_SEVERITIES = ("critical", "error", "warning", "info")
"""The severities an Events API v2 alert may have."""

DEFAULT_SEVERITIES: Mapping[str, str] = MappingProxyType(
    {Severity.CRITICAL.value: "critical", Severity.MAJOR.value: "error"}
)
"""Critical incidents page as ``critical`` alerts, major ones as ``error`` (both high urgency
under PagerDuty's default severity-based urgency rules)."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _pairs(text: str, setting: str) -> dict[str, str]:
    """``a=1,b=2`` as a dict; each value may itself hold ``=`` (only the first one splits)."""
    found: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            # Never echo the item: its value may be a routing key.
            raise AdapterConfigError(
                f"{setting} must be a comma-separated list of name=value pairs; "
                f"one item has no name or no value",
                setting=setting,
            )
        found[name.strip()] = value.strip()
    return found


def _secret(value: Secret | str) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


def _optional_secret(value: Secret | str | None) -> Secret | None:
    return None if value is None else _secret(value)


def _routing_keys(value: Mapping[str, Secret | str]) -> Mapping[str, Secret]:
    return MappingProxyType({str(name): _secret(key) for name, key in value.items()})


def _text_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType({str(name): str(item) for name, item in value.items()})


def _severities(value: Mapping[str, str]) -> Mapping[str, str]:
    merged = dict(DEFAULT_SEVERITIES)
    for name, severity in value.items():
        key = str(name).strip().lower()
        if key not in {member.value for member in Severity}:
            raise AdapterConfigError(
                f"PAGERDUTY_SEVERITIES names {name!r}, which is not an incident severity; "
                f"use {', '.join(member.value for member in Severity)}",
                setting="PAGERDUTY_SEVERITIES",
            )
        level = str(severity).strip().lower()
        if level not in ALERT_SEVERITIES:
            raise AdapterConfigError(
                f"PAGERDUTY_SEVERITIES maps {name!r} to {severity!r}, which PagerDuty does not "
                f"take; use one of {', '.join(ALERT_SEVERITIES)}",
                setting="PAGERDUTY_SEVERITIES",
            )
        merged[key] = level
    return MappingProxyType(merged)


def _url(value: str) -> str:
    return value.rstrip("/")


def _check_url(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.startswith(("http://", "https://")):
        setting = f"PAGERDUTY_{attribute.name.upper()}"
        raise AdapterConfigError(
            f"{setting} must be an http(s) URL, not {value!r}", setting=setting
        )


def _check_timeout(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise AdapterConfigError(
            f"PAGERDUTY_TIMEOUT must be a positive number of seconds, not {value!r}",
            setting="PAGERDUTY_TIMEOUT",
        )


def _check_email(
    instance: object, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value is not None and not _EMAIL.match(value):
        raise AdapterConfigError(
            f"PAGERDUTY_FROM must be the e-mail address of a PagerDuty user, not {value!r}",
            setting="PAGERDUTY_FROM",
        )


def _check_oncall_as(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ("name", "email"):
        raise AdapterConfigError(
            f"PAGERDUTY_ONCALL_AS must be 'name' or 'email', not {value!r}",
            setting="PAGERDUTY_ONCALL_AS",
        )


@attrs.frozen
class PagerDutyConfig:
    """Where the adapter pages, with which keys, and how it talks to PagerDuty.

    Build it with :meth:`from_env`, or directly (strings given for keys become
    :class:`~incident_flow.adapters.Secret`). See the module docstring for each setting.

    Raises:
        AdapterConfigError: a setting is malformed; the message names it and never a key.
    """

    routing_key: Secret = attrs.field(converter=_secret)
    routing_keys: Mapping[str, Secret] = attrs.field(factory=dict, converter=_routing_keys)
    escalation_routing_key: Secret | None = attrs.field(default=None, converter=_optional_secret)
    severities: Mapping[str, str] = attrs.field(factory=dict, converter=_severities)
    source: str = "incident-flow"
    dedup_prefix: str = "incident-flow"
    api_key: Secret | None = attrs.field(default=None, converter=_optional_secret)
    from_email: str | None = attrs.field(default=None, validator=_check_email)
    schedule_id: str | None = None
    schedules: Mapping[str, str] = attrs.field(factory=dict, converter=_text_map)
    oncall_as: str = attrs.field(default="name", validator=_check_oncall_as)
    events_url: str = attrs.field(default=DEFAULT_EVENTS_URL, converter=_url, validator=_check_url)
    api_url: str = attrs.field(default=DEFAULT_API_URL, converter=_url, validator=_check_url)
    timeout: float = attrs.field(default=10.0, converter=float, validator=_check_timeout)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PagerDutyConfig:
        """The settings from ``environ`` (default: ``os.environ``).

        Raises:
            AdapterConfigError: ``PAGERDUTY_ROUTING_KEY`` is unset, or a setting is malformed.
        """

        def optional(name: str) -> str | None:
            return env_setting(name, default="", environ=environ) or None

        timeout_text = env_setting("PAGERDUTY_TIMEOUT", default="10", environ=environ)
        try:
            timeout = float(timeout_text)
        except ValueError:
            raise AdapterConfigError(
                f"PAGERDUTY_TIMEOUT must be a number of seconds, not {timeout_text!r}",
                setting="PAGERDUTY_TIMEOUT",
            ) from None
        api_key = optional("PAGERDUTY_API_KEY")
        escalation = optional("PAGERDUTY_ESCALATION_ROUTING_KEY")
        return cls(
            routing_key=env_secret(
                "PAGERDUTY_ROUTING_KEY",
                environ=environ,
                hint="the integration key of an Events API v2 integration of a PagerDuty service",
            ),
            routing_keys=_pairs(
                env_setting("PAGERDUTY_ROUTING_KEYS", default="", environ=environ),
                "PAGERDUTY_ROUTING_KEYS",
            ),
            escalation_routing_key=escalation,
            severities=_pairs(
                env_setting("PAGERDUTY_SEVERITIES", default="", environ=environ),
                "PAGERDUTY_SEVERITIES",
            ),
            source=env_setting("PAGERDUTY_SOURCE", default="incident-flow", environ=environ),
            dedup_prefix=env_setting(
                "PAGERDUTY_DEDUP_PREFIX", default="incident-flow", environ=environ
            ),
            api_key=api_key,
            from_email=optional("PAGERDUTY_FROM"),
            schedule_id=optional("PAGERDUTY_SCHEDULE_ID"),
            schedules=_pairs(
                env_setting("PAGERDUTY_SCHEDULES", default="", environ=environ),
                "PAGERDUTY_SCHEDULES",
            ),
            oncall_as=env_setting("PAGERDUTY_ONCALL_AS", default="name", environ=environ).lower(),
            events_url=env_setting(
                "PAGERDUTY_EVENTS_URL", default=DEFAULT_EVENTS_URL, environ=environ
            ),
            api_url=env_setting("PAGERDUTY_API_URL", default=DEFAULT_API_URL, environ=environ),
            timeout=timeout,
        )

    @property
    def secrets(self) -> tuple[Secret, ...]:
        """Every credential held, to take out of any message built from a vendor's answer."""
        found = [self.routing_key, *self.routing_keys.values()]
        if self.escalation_routing_key is not None:
            found.append(self.escalation_routing_key)
        if self.api_key is not None:
            found.append(self.api_key)
        return tuple(found)

    @property
    def posts_status_updates(self) -> bool:
        """True when the REST API key and the ``From`` user are both set."""
        return self.api_key is not None and self.from_email is not None

    def routing_key_for(self, target: str) -> Secret:
        """The integration key a page for ``target`` goes to: the target's own, matched
        exactly and then ignoring case, else the default one."""
        found = self.routing_keys.get(target)
        if found is not None:
            return found
        folded = target.strip().casefold()
        for name, key in self.routing_keys.items():
            if name.casefold() == folded:
                return key
        return self.routing_key

    def alert_severity(self, severity: str) -> str:
        """The PagerDuty alert severity for an incident severity (``error`` if unknown)."""
        return self.severities.get(str(severity).lower(), "error")

    def schedule_for(self, schedule: str | None) -> str | None:
        """The schedule id to ask about: a listed name's id, else ``schedule`` itself, else
        the default schedule (None when there is none)."""
        if schedule is None or not schedule.strip():
            return self.schedule_id
        return self.schedules.get(schedule.strip(), schedule.strip())

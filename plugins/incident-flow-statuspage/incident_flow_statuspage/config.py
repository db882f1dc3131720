"""The Statuspage adapter's settings, read from the environment and never printed.

Environment variables (:meth:`StatuspageConfig.from_env`):

``STATUSPAGE_API_KEY`` (required)
    the API key (Statuspage: avatar menu → API info), sent as ``Authorization: OAuth <key>``.
``STATUSPAGE_PAGE_ID`` (required)
    the id of the page incidents are published on.
``STATUSPAGE_API_URL``
    the API's base URL; default ``https://api.statuspage.io/v1`` (tests point it elsewhere).
``STATUSPAGE_COMPONENTS``
    the components every incident affects unless told otherwise:
    ``component_id=status,…`` with a status of
    :data:`~incident_flow_statuspage.components.COMPONENT_STATUSES`; default none.
``STATUSPAGE_PHASE_MAP``
    extra or changed ``status_phase=statuspage_status`` pairs, on top of
    :data:`~incident_flow_statuspage.phases.DEFAULT_PHASE_MAP`.
``STATUSPAGE_PUBLISH_WITH_FINDINGS``
    ``1`` to publish posts that break a recorded communication rule; default ``0``
    (they are held back, with a warning in the log).
``STATUSPAGE_DELIVER_NOTIFICATIONS``
    ``0`` to publish without notifying the page's subscribers; default ``1``.
``STATUSPAGE_TIMEOUT``
    seconds one API call may take; default 10.
``STATUSPAGE_RESOLVED_TEXT`` / ``STATUSPAGE_FALSE_POSITIVE_TEXT``
    what the adapter publishes when the incident is resolved without a "resolved" post, or
    found to be a false positive; ``{support}`` is replaced by the process's support address.
    Defaults: the handbook's resolved post, and a short all-clear.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

import attrs

from incident_flow.adapters import Secret, env_secret, env_setting
from incident_flow.errors import AdapterConfigError, ValidationError
from incident_flow_statuspage.components import check_components, parse_components
from incident_flow_statuspage.phases import DEFAULT_PHASE_MAP, check_phase_map

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_FALSE_POSITIVE_TEXT",
    "DEFAULT_RESOLVED_TEXT",
    "DEFAULT_TIMEOUT",
    "StatuspageConfig",
]

DEFAULT_API_URL: Final = "https://api.statuspage.io/v1"
DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_RESOLVED_TEXT: Final = (
    "We have resolved the issue and will conduct a postmortem to see how we can learn and "
    "grow. If you would like to know more, please email {support}."
)
"""The handbook's resolved post (:data:`incident_flow.comms.TEMPLATES`)."""
DEFAULT_FALSE_POSITIVE_TEXT: Final = (
    "We have confirmed that there was no issue after all and everything is working normally. "
    "If you have any questions, please email {support}."
)

_PAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_API_KEY = re.compile(r"[!-~]+")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _api_key(value: Secret | str) -> Secret:
    secret = value if isinstance(value, Secret) else Secret(value)
    # It goes into an HTTP header: printable ASCII without spaces. The value is not shown.
    if not _API_KEY.fullmatch(secret.reveal()):
        raise AdapterConfigError(
            "STATUSPAGE_API_KEY must be the key as Statuspage shows it (printable ASCII, no "
            "spaces); copy it again from the API info page",
            setting="STATUSPAGE_API_KEY",
        )
    return secret


def _page_id(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not _PAGE_ID.fullmatch(value):
        raise AdapterConfigError(
            f"STATUSPAGE_PAGE_ID must be a page id (letters and digits, as on Statuspage's "
            f"API info page), not {value!r}",
            setting="STATUSPAGE_PAGE_ID",
        )


def _api_url(value: object) -> str:
    if not isinstance(value, str) or not re.match(r"https?://[^/\s]+", value.strip()):
        raise AdapterConfigError(
            f"STATUSPAGE_API_URL must be an http(s) URL such as {DEFAULT_API_URL}, not {value!r}",
            setting="STATUSPAGE_API_URL",
        )
    return value.strip().rstrip("/")


def _timeout(value: object) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not 0 < seconds <= 600:
        raise AdapterConfigError(
            f"STATUSPAGE_TIMEOUT must be a number of seconds above 0 (at most 600), not {value!r}",
            setting="STATUSPAGE_TIMEOUT",
        )
    return seconds


def _config_error(setting: str, error: ValidationError) -> AdapterConfigError:
    text = str(error)
    message = text if text.startswith(setting) else f"{setting}: {text}"
    return AdapterConfigError(message, setting=setting)


def _components(value: Mapping[str, str] | str) -> Mapping[str, str]:
    try:
        if isinstance(value, str):
            return parse_components(value)
        return MappingProxyType(check_components(value))
    except ValidationError as error:
        raise _config_error("STATUSPAGE_COMPONENTS", error) from error


def _phase_map(value: Mapping[str, str]) -> Mapping[str, str]:
    try:
        return check_phase_map(value)
    except ValidationError as error:
        raise _config_error("STATUSPAGE_PHASE_MAP", error) from error


def _text(setting: str) -> Callable[[object, attrs.Attribute[str], object], None]:
    def check(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
        if not isinstance(value, str) or not value.strip():
            raise AdapterConfigError(f"{setting} must not be empty", setting=setting)
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(value) if name}
        except ValueError as error:
            raise AdapterConfigError(f"{setting}: {error}", setting=setting) from error
        if fields - {"support"}:
            raise AdapterConfigError(
                f"{setting} may use the placeholder {{support}} only, not "
                f"{', '.join(sorted(fields - {'support'}))}",
                setting=setting,
            )

    return check


def _flag(name: str, environ: Mapping[str, str] | None, default: bool) -> bool:
    value = env_setting(name, default="1" if default else "0", environ=environ).lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise AdapterConfigError(f"{name} must be 1 or 0, not {value!r}", setting=name)


def _pairs(name: str, environ: Mapping[str, str] | None) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in env_setting(name, default="", environ=environ).split(","):
        if not item.strip():
            continue
        key, equals, value = item.partition("=")
        if not equals or not key.strip() or not value.strip():
            raise AdapterConfigError(
                f"{name}: {item.strip()!r} is not phase=status (for example mitigated=monitoring)",
                setting=name,
            )
        pairs[key.strip()] = value.strip()
    return pairs


@attrs.frozen
class StatuspageConfig:
    """Where and how to publish; see the module docstring for each setting.

    Raises:
        AdapterConfigError: a setting is missing or malformed; ``setting`` names its
            environment variable, and the message never holds the API key.
    """

    api_key: Secret = attrs.field(converter=_api_key)
    """Sent as ``Authorization: OAuth <key>``; shows as ``***``."""
    page_id: str = attrs.field(validator=_page_id)
    api_url: str = attrs.field(default=DEFAULT_API_URL, converter=_api_url)
    components: Mapping[str, str] = attrs.field(factory=dict, converter=_components)
    """Component id → status for an incident whose components were never set."""
    phase_map: Mapping[str, str] = attrs.field(default=DEFAULT_PHASE_MAP, converter=_phase_map)
    """Status phase → Statuspage status: the whole mapping (``from_env`` adds
    ``STATUSPAGE_PHASE_MAP`` to :data:`~incident_flow_statuspage.phases.DEFAULT_PHASE_MAP`)."""
    publish_with_findings: bool = False
    deliver_notifications: bool = True
    timeout: float = attrs.field(default=DEFAULT_TIMEOUT, converter=_timeout)
    resolved_text: str = attrs.field(
        default=DEFAULT_RESOLVED_TEXT, validator=_text("STATUSPAGE_RESOLVED_TEXT")
    )
    false_positive_text: str = attrs.field(
        default=DEFAULT_FALSE_POSITIVE_TEXT, validator=_text("STATUSPAGE_FALSE_POSITIVE_TEXT")
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StatuspageConfig:
        """The settings from ``environ`` (default: ``os.environ``).

        Raises:
            AdapterConfigError: ``STATUSPAGE_API_KEY`` or ``STATUSPAGE_PAGE_ID`` is unset, or
                a setting is malformed; the message names the variable.
        """
        hint = "Statuspage: avatar menu → API info"
        phase_map = {**DEFAULT_PHASE_MAP, **_pairs("STATUSPAGE_PHASE_MAP", environ)}
        return cls(
            api_key=env_secret("STATUSPAGE_API_KEY", environ=environ, hint=hint),
            page_id=env_setting("STATUSPAGE_PAGE_ID", environ=environ, hint=hint),
            api_url=env_setting("STATUSPAGE_API_URL", default=DEFAULT_API_URL, environ=environ),
            components=env_setting("STATUSPAGE_COMPONENTS", default="", environ=environ),
            phase_map=phase_map,
            publish_with_findings=_flag("STATUSPAGE_PUBLISH_WITH_FINDINGS", environ, False),
            deliver_notifications=_flag("STATUSPAGE_DELIVER_NOTIFICATIONS", environ, True),
            timeout=env_setting(
                "STATUSPAGE_TIMEOUT", default=str(DEFAULT_TIMEOUT), environ=environ
            ),
            resolved_text=env_setting(
                "STATUSPAGE_RESOLVED_TEXT", default=DEFAULT_RESOLVED_TEXT, environ=environ
            ),
            false_positive_text=env_setting(
                "STATUSPAGE_FALSE_POSITIVE_TEXT",
                default=DEFAULT_FALSE_POSITIVE_TEXT,
                environ=environ,
            ),
        )

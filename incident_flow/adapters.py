"""What every adapter needs and should not write again: secrets that never print, settings from
the environment, vendor answers turned into delivery errors, and making a thing only once.

An adapter (a plugin under ``plugins/``) reacts to events by calling a vendor. The delivery
worker retries what fails, so an adapter must (see ``docs/adapters.md``):

- tell a retriable failure from a permanent one: :func:`raise_for_status` maps an HTTP answer
  (429 with ``Retry-After``, 5xx, 408 → :class:`~incident_flow.errors.RetryableDeliveryError`;
  other 4xx → :class:`~incident_flow.errors.PermanentDeliveryError` with the vendor's message);
- make nothing twice when an event is delivered again: :func:`once` looks for what was made
  among the incident's :attr:`~incident_flow.model.Incident.external_refs` before making it,
  and records it (:meth:`IncidentFlow.record_external
  <incident_flow.IncidentFlow.record_external>`) right after;
- keep credentials out of logs, reprs and errors: :class:`Secret`, :func:`redact`.

This module imports no HTTP client; adapters bring their own (httpx, the Slack SDK).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final

import attrs

from incident_flow.errors import (
    AdapterConfigError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    UnknownIncidentError,
)
from incident_flow.model import ExternalRef

if TYPE_CHECKING:
    from incident_flow.flow import IncidentFlow

__all__ = [
    "RETRIABLE_STATUSES",
    "Secret",
    "env_secret",
    "env_setting",
    "once",
    "raise_for_status",
    "redact",
    "retry_after_seconds",
    "vendor_message",
]

RETRIABLE_STATUSES: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth trying again; every other 5xx is retriable too."""

_MASK = "***"


@attrs.frozen(repr=False)
class Secret:
    """A credential that never shows itself: ``repr``, ``str`` and f-strings give ``***``.

    Call :meth:`reveal` only where the value is sent (a header). Two secrets are equal when
    their values are.
    """

    _value: str = attrs.field(alias="value")

    def __attrs_post_init__(self) -> None:
        if not isinstance(self._value, str) or not self._value.strip():
            raise AdapterConfigError("a secret must be a non-empty string")

    def reveal(self) -> str:
        """The value itself, for the request that needs it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_MASK!r})"

    def __str__(self) -> str:
        return _MASK


def env_setting(
    name: str,
    *,
    default: str | None = None,
    environ: Mapping[str, str] | None = None,
    hint: str = "",
) -> str:
    """The environment variable ``name``, stripped; ``default`` when unset or empty.

    Raises:
        AdapterConfigError: it is unset and there is no default; the message says what to set.
    """
    source = os.environ if environ is None else environ
    value = source.get(name, "").strip()
    if value:
        return value
    if default is not None:
        return default
    raise AdapterConfigError(
        f"{name} is not set; set it in the environment{f' ({hint})' if hint else ''}",
        setting=name,
    )


def env_secret(name: str, *, environ: Mapping[str, str] | None = None, hint: str = "") -> Secret:
    """The environment variable ``name`` as a :class:`Secret`.

    Raises:
        AdapterConfigError: it is unset or empty (the message names it, never a value).
    """
    return Secret(env_setting(name, environ=environ, hint=hint))


def redact(text: str, secrets: Iterable[Secret | str | None]) -> str:
    """``text`` with every secret's value (and every ``Bearer``/``token`` credential in it)
    replaced by ``***``, for a log line or an error message built from a vendor's answer."""
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value:
            text = text.replace(value, _MASK)
    return _CREDENTIAL.sub(lambda m: f"{m.group(1)}{_MASK}", text)


_CREDENTIAL = re.compile(
    r"((?:Bearer|Basic|GenieKey|OAuth|Token|token)[ =:]+)[A-Za-z0-9._~+/=-]{8,}"
    r"|((?<![A-Za-z])xox[abpre]-)[A-Za-z0-9-]+"
)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header as seconds from now: delta-seconds or an HTTP date; None when
    absent or unreadable. A date in the past gives 0."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def vendor_message(body: Any, fallback: str = "") -> str:
    """The human part of a vendor's error answer: ``message``, ``error``, ``errors`` or
    ``detail`` of a JSON object (Opsgenie, PagerDuty, Statuspage, GitHub and Slack all use one
    of them), else ``fallback``."""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            return vendor_message(error, fallback)
        parts = []
        for name in ("message", "error", "detail", "error_description"):
            value = body.get(name)
            if isinstance(value, str) and value:
                parts.append(value)
        errors = body.get("errors")
        if isinstance(errors, list):
            parts.extend(
                vendor_message(item, "") if isinstance(item, Mapping) else str(item)
                for item in errors
            )
        elif isinstance(errors, Mapping):
            parts.extend(f"{key}: {value}" for key, value in errors.items())
        text = "; ".join(part for part in parts if part)
        if text:
            return text
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return fallback


def raise_for_status(
    vendor: str,
    operation: str,
    status: int,
    headers: Mapping[str, str],
    body: Any = None,
    *,
    secrets: Iterable[Secret | str | None] = (),
) -> None:
    """Return for a 1xx–3xx answer; raise the delivery error that fits any other.

    ``headers`` is looked up as given and lower-cased (httpx's headers ignore case). The
    message names the vendor, the operation, the status and the vendor's own words, with
    ``secrets`` taken out.

    Raises:
        RetryableDeliveryError: 429 (``retry_after`` from ``Retry-After``), 408, 425 or any 5xx.
        PermanentDeliveryError: any other 4xx: retrying the same request cannot help.
    """
    if status < 400:
        return
    words = vendor_message(body, fallback="no message")
    message = redact(f"{vendor} {operation}: HTTP {status}: {words}", secrets)
    if status in RETRIABLE_STATUSES or status >= 500:
        raw = headers.get("Retry-After") or headers.get("retry-after")
        raise RetryableDeliveryError(message, retry_after=retry_after_seconds(raw))
    raise PermanentDeliveryError(message)


def once(
    flow: IncidentFlow | None,
    incident_id: str,
    *,
    system: str,
    kind: str,
    source: str = "",
    by: str,
    make: Callable[[], tuple[str, str | None]],
) -> ExternalRef:
    """The thing ``system`` made of ``kind`` for ``source`` on this incident, made now if it
    was not made before.

    Looks among the incident's :attr:`~incident_flow.model.Incident.external_refs` as they are
    now (not as of the event being delivered: what a first delivery made is recorded after
    it); when absent, calls ``make()`` (which returns the vendor's id and a URL or None) and
    records the result with :meth:`IncidentFlow.record_external
    <incident_flow.IncidentFlow.record_external>`. A crash between making and recording can
    still make it twice; give the vendor an idempotency key of its own where it takes one
    (Opsgenie's alias, PagerDuty's dedup key) to close that gap.

    Raises:
        PermanentDeliveryError: ``flow`` is None (a worker built without ``flow=``), or the
            incident does not exist.
        Exception: whatever ``make`` raises, with nothing recorded.
    """
    if flow is None:
        raise PermanentDeliveryError(
            f"{by} needs the flow to record what it makes; build the DeliveryWorker with flow="
        )
    try:
        incident = flow.get(incident_id)
    except UnknownIncidentError as error:
        raise PermanentDeliveryError(str(error)) from error
    found = incident.external_ref(system, kind, source)
    if found is not None:
        return found
    external_id, url = make()
    after = flow.record_external(
        incident_id,
        system=system,
        kind=kind,
        external_id=external_id,
        source=source,
        url=url,
        by=by,
    )
    recorded = after.external_ref(system, kind, source)
    assert recorded is not None
    return recorded

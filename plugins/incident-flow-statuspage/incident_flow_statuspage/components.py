"""Affected components: which parts of the status page an incident touches, and how badly.

Statuspage shows each component (``api``, ``search``…) with a status. A post can change them:
``components`` maps a component id to its new status and ``component_ids`` lists the
components the incident affects. This module checks such a mapping against Statuspage's
statuses and writes it as the text kept on the incident
(``api1=major_outage,web2=degraded_performance``),
so that the choice survives a restart: it lives in the incident's own events, not in memory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from incident_flow.errors import ValidationError

__all__ = [
    "COMPONENT_STATUSES",
    "NO_COMPONENTS",
    "InvalidComponentError",
    "check_components",
    "format_components",
    "parse_components",
]

COMPONENT_STATUSES: Final = (
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
)
"""The statuses Statuspage accepts for a component, from best to worst (maintenance last)."""

NO_COMPONENTS: Final = "none"
"""How an empty choice is written (a component list that was cleared on purpose)."""

_COMPONENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LIMIT = 200  # the longest external id incident_flow records (flow.MAX_TITLE)


class InvalidComponentError(ValidationError):
    """Raised when a component id or status is malformed: an id that is empty or holds other
    characters than letters, digits, ``_`` and ``-``, a status Statuspage does not know, or
    more components than fit in the record kept on the incident. ``field`` is
    ``components``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="components")


def check_components(components: Mapping[str, str]) -> dict[str, str]:
    """``components`` checked and tidied (ids and statuses stripped, statuses lower-cased).

    Raises:
        InvalidComponentError: it is not a mapping, an id is malformed, or a status is not one
            of :data:`COMPONENT_STATUSES`.
    """
    if not isinstance(components, Mapping):
        raise InvalidComponentError(
            f"components must map component ids to statuses, such as "
            f"{{'8kbf7d35c070': 'major_outage'}}, not {components!r}"
        )
    checked: dict[str, str] = {}
    for component_id, status in components.items():
        name = component_id.strip() if isinstance(component_id, str) else component_id
        if not isinstance(name, str) or not _COMPONENT_ID.fullmatch(name):
            raise InvalidComponentError(
                f"component id {component_id!r} is not a Statuspage component id (letters, "
                "digits, '_' and '-'; see the component's page in Statuspage's manage view)"
            )
        value = status.strip().lower() if isinstance(status, str) else status
        if value not in COMPONENT_STATUSES:
            raise InvalidComponentError(
                f"component {name}: status {status!r} is not one of Statuspage's: "
                f"{', '.join(COMPONENT_STATUSES)}"
            )
        checked[name] = value
    return checked


def format_components(components: Mapping[str, str]) -> str:
    """``components`` as the text recorded on the incident: ``id=status`` pairs, in order,
    joined by commas; :data:`NO_COMPONENTS` for none.

    Raises:
        InvalidComponentError: a component is malformed, or the text would exceed the 200
            characters an incident's record holds (about six components).
    """
    checked = check_components(components)
    text = ",".join(f"{name}={status}" for name, status in checked.items()) or NO_COMPONENTS
    if len(text) > _LIMIT:
        raise InvalidComponentError(
            f"{len(checked)} components take {len(text)} characters to record; at most "
            f"{_LIMIT} fit: name only the components this incident affects"
        )
    return text


def parse_components(text: str, *, setting: str = "components") -> Mapping[str, str]:
    """The components written as ``id=status,id=status`` (or :data:`NO_COMPONENTS`, or
    blank, for none), read-only.

    Args:
        text: the text, as in ``STATUSPAGE_COMPONENTS`` or an incident's record.
        setting: what the text is, for the error message.

    Raises:
        InvalidComponentError: a pair is not ``id=status``, or an id or status is malformed.
    """
    stripped = text.strip()
    if not stripped or stripped == NO_COMPONENTS:
        return MappingProxyType({})
    pairs: dict[str, str] = {}
    for item in stripped.split(","):
        if not item.strip():
            continue
        name, equals, status = item.partition("=")
        if not equals:
            raise InvalidComponentError(
                f"{setting}: {item.strip()!r} is not component_id=status (for example "
                "8kbf7d35c070=major_outage)"
            )
        pairs[name.strip()] = status.strip()
    return MappingProxyType(check_components(pairs))

"""Status phases both ways: the process's status phases ↔ Statuspage incident statuses.

A post's phase reaches a plugin already mapped by the core:
:meth:`Process.check_status_phase <incident_flow.process.Process.check_status_phase>` turns
what the messenger typed into one of the process's status phases (``identified``,
``investigating``, ``resolved`` in the handbook), following
:attr:`CommsPolicy.phase_aliases <incident_flow.comms.CommsPolicy.phase_aliases>`. So
:attr:`StatusUpdatePosted.status_phase <incident_flow.events.StatusUpdatePosted.status_phase>`
is never an alias: with ``phase_aliases={"monitoring": "investigating"}`` a post typed as
``monitoring`` is recorded, and published, as ``investigating``.

Statuspage has four statuses for a live incident: ``investigating``, ``identified``,
``monitoring`` and ``resolved``. The default mapping is the identity on those four; the
handbook's three phases are among them, and ``monitoring`` is used only by a process that
has a status phase of that name. A team maps its own phases with ``STATUSPAGE_PHASE_MAP``
(``mitigated=monitoring``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from incident_flow.errors import UnknownPhaseError
from incident_flow.process import HANDBOOK, Process

__all__ = [
    "DEFAULT_PHASE_MAP",
    "STATUSPAGE_STATUSES",
    "check_phase_map",
    "from_statuspage",
    "to_statuspage",
]

STATUSPAGE_STATUSES: Final = ("investigating", "identified", "monitoring", "resolved")
"""Statuspage's statuses of a live (not scheduled) incident."""

DEFAULT_PHASE_MAP: Final[Mapping[str, str]] = MappingProxyType(
    {status: status for status in STATUSPAGE_STATUSES}
)
"""Status phase → Statuspage status: the identity on Statuspage's four statuses."""

_SETTING = "STATUSPAGE_PHASE_MAP"


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UnknownPhaseError(f"{what} must be a non-empty name, not {value!r}", field="phase")
    return value.strip().lower()


def check_phase_map(mapping: Mapping[str, str]) -> Mapping[str, str]:
    """``mapping`` (status phase → Statuspage status) with names lower-cased, read-only.

    Raises:
        UnknownPhaseError: a name is blank, or a status is not one of
            :data:`STATUSPAGE_STATUSES`.
    """
    checked: dict[str, str] = {}
    for phase, status in mapping.items():
        name = _name(phase, "a status phase")
        target = _name(status, "a Statuspage status")
        if target not in STATUSPAGE_STATUSES:
            raise UnknownPhaseError(
                f"phase {name!r} maps to {status!r}, which is not a Statuspage incident "
                f"status; use one of {', '.join(STATUSPAGE_STATUSES)}",
                field="phase",
            )
        checked[name] = target
    return MappingProxyType(checked)


def to_statuspage(phase: str, mapping: Mapping[str, str] = DEFAULT_PHASE_MAP) -> str:
    """The Statuspage status a post of status phase ``phase`` is published with.

    Args:
        phase: one of the process's status phases (any case), as a post carries it.
        mapping: status phase → Statuspage status (:data:`DEFAULT_PHASE_MAP`, or the
            plugin's configured map).

    Raises:
        UnknownPhaseError: ``mapping`` has no entry for ``phase``; the message says how to add
            one.
    """
    name = _name(phase, "a status phase")
    status = mapping.get(name)
    if status is None:
        raise UnknownPhaseError(
            f"status phase {name!r} has no Statuspage status; map it with "
            f"{_SETTING}={name}=<{'|'.join(STATUSPAGE_STATUSES)}>",
            field="phase",
        )
    return status


def from_statuspage(
    status: str,
    mapping: Mapping[str, str] = DEFAULT_PHASE_MAP,
    *,
    process: Process = HANDBOOK,
) -> str:
    """The process's status phase that the Statuspage status ``status`` stands for.

    The status is looked up backwards in ``mapping`` (a phase of the same name first, then
    the others that map to it), and the first that ``process`` knows wins, through its own
    mapping
    (:meth:`~incident_flow.process.Process.check_status_phase`, which follows
    ``process.comms.phase_aliases``). So Statuspage's ``monitoring`` is a phase of the
    handbook's process only when the process maps it, e.g.
    ``CommsPolicy(phase_aliases={"monitoring": "investigating"})``.

    Raises:
        UnknownPhaseError: ``status`` is not a Statuspage status, or neither ``mapping`` nor
            ``process`` turns it into one of the process's status phases.
    """
    name = _name(status, "a Statuspage status")
    if name not in STATUSPAGE_STATUSES:
        raise UnknownPhaseError(
            f"{status!r} is not a Statuspage incident status; Statuspage's are "
            f"{', '.join(STATUSPAGE_STATUSES)}",
            field="phase",
        )
    phases = [phase for phase, target in mapping.items() if target == name]
    # A phase named like the status first; then the others, in the mapping's order.
    candidates = sorted(phases, key=lambda phase: phase != name) or [name]
    refusal: UnknownPhaseError | None = None
    for candidate in candidates:
        try:
            return process.check_status_phase(candidate)
        except UnknownPhaseError as error:
            refusal = refusal or error
    assert refusal is not None
    raise refusal

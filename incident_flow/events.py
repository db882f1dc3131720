"""Everything that can happen to an incident, one frozen class per kind of event.

Every event carries the incident's id, its ``version`` (1, 2, 3… with no gaps), an aware UTC
``at`` and the ``actor`` who caused it. ``apply`` folds the event into the incident before it;
:func:`fold` rebuilds an incident from its whole log. Nothing else holds an incident's state.

Event classes register themselves by class name in :data:`EVENT_TYPES`; that name is what the
stores write, so renaming a class is a schema change (see :mod:`incident_flow.serialization`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar

import attrs

from incident_flow.errors import CorruptEventError
from incident_flow.model import (
    ChecklistItem,
    Incident,
    ItemState,
    Rollback,
    Severity,
    StatusUpdate,
    Warning,
    evolve_incident,
)

__all__ = [
    "EVENT_TYPES",
    "ActionTaken",
    "ChecklistItemCompleted",
    "ChecklistItemWaived",
    "Event",
    "FalsePositiveMarked",
    "IncidentDeclared",
    "OwnershipAcknowledged",
    "PhaseChanged",
    "ReleasePaused",
    "ReleaseResumed",
    "RoleAssigned",
    "RollbackRecorded",
    "SeverityChanged",
    "StatusUpdatePosted",
    "WarningRecorded",
    "fold",
]

EVENT_TYPES: dict[str, type[Event]] = {}
"""Every event class, by the name stored in the log."""


@attrs.frozen(kw_only=True)
class Event:
    """The fields every event has. Subclasses add their own and implement :meth:`apply`."""

    incident_id: str
    version: int
    at: datetime
    actor: str

    schema_version: ClassVar[int] = 1
    """Bumped when a subclass's stored fields change; older rows are upcast on load."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        EVENT_TYPES[cls.__name__] = cls

    @property
    def type(self) -> str:
        """The name under which this event is stored."""
        return type(self).__name__

    def apply(self, incident: Incident | None) -> Incident:
        """Return the incident after this event."""
        raise NotImplementedError

    def _current(self, incident: Incident | None) -> Incident:
        """Return ``incident``, checked to be the state this event follows."""
        if incident is None:
            raise CorruptEventError(
                f"{self.type} cannot be the first event of an incident",
                incident_id=self.incident_id,
                version=self.version,
            )
        return incident

    def _advance(self, incident: Incident | None, **changes: Any) -> Incident:
        """Return the incident after this event, with ``changes`` applied."""
        current = self._current(incident)
        if self.version != current.version + 1:
            raise CorruptEventError(
                f"expected version {current.version + 1}, found {self.version}",
                incident_id=self.incident_id,
                version=self.version,
            )
        changes["version"] = self.version
        changes["updated_at"] = self.at
        return evolve_incident(current, changes)


@attrs.frozen(kw_only=True)
class IncidentDeclared(Event):
    """IncidentDeclared: someone started an incident; the first event of every incident.

    ``checklist`` holds the post-mortem items of the process in force at that moment as
    ``(name, required)`` pairs, so an incident folds the same way whatever the process is later.
    """

    title: str
    description: str
    severity: Severity
    customer_impact: bool
    phase: str
    checklist: tuple[tuple[str, bool], ...] = ()

    def apply(self, incident: Incident | None) -> Incident:
        if incident is not None or self.version != 1:
            raise CorruptEventError(
                "IncidentDeclared must be the first event, at version 1",
                incident_id=self.incident_id,
                version=self.version,
            )
        return Incident(
            id=self.incident_id,
            title=self.title,
            description=self.description,
            severity=self.severity,
            customer_impact=self.customer_impact,
            phase=self.phase,
            declared_at=self.at,
            updated_at=self.at,
            version=1,
            roles={"reporter": self.actor},
            checklist=tuple(ChecklistItem(name, required) for name, required in self.checklist),
        )


@attrs.frozen(kw_only=True)
class RoleAssigned(Event):
    """RoleAssigned: a person now holds a role (replacing whoever held it before)."""

    role: str
    person: str

    def apply(self, incident: Incident | None) -> Incident:
        incident = self._current(incident)
        roles = dict(incident.roles)
        roles[self.role] = self.person
        frozen_roles = MappingProxyType(roles)
        ack = incident.lead_acknowledged_by
        if self.role == "lead" and self.person != ack:
            ack = None  # a new lead has to say "I'm on it" again
        return self._advance(incident, roles=frozen_roles, lead_acknowledged_by=ack)


@attrs.frozen(kw_only=True)
class OwnershipAcknowledged(Event):
    """OwnershipAcknowledged: the Incident Lead said "I'm on it"."""

    def apply(self, incident: Incident | None) -> Incident:
        return self._advance(incident, lead_acknowledged_by=self.actor)


@attrs.frozen(kw_only=True)
class PhaseChanged(Event):
    """PhaseChanged: a transition of the process moved the incident from ``source`` to ``dest``."""

    action: str
    source: str
    dest: str
    resolves: bool = False
    """True when ``dest`` is the first phase past the active ones (the incident is resolved)."""
    closes: bool = False
    """True when ``dest`` is a terminal phase."""

    def apply(self, incident: Incident | None) -> Incident:
        incident = self._current(incident)
        changes: dict[str, Any] = {"phase": self.dest}
        if self.resolves and incident.resolved_at is None:
            changes["resolved_at"] = self.at
        if self.closes:
            changes["closed_at"] = self.at
        return self._advance(incident, **changes)


@attrs.frozen(kw_only=True)
class ActionTaken(Event):
    """ActionTaken: a team's own action (one the handbook does not have) was taken.

    Recorded when the action keeps the phase or was given arguments; a phase change is recorded
    as :class:`PhaseChanged` as well.
    """

    action: str
    arguments: dict[str, str] = attrs.field(factory=dict)

    def apply(self, incident: Incident | None) -> Incident:
        return self._advance(incident)


@attrs.frozen(kw_only=True)
class RollbackRecorded(Event):
    """RollbackRecorded: someone tried to return to a known good state, with this outcome."""

    outcome: str
    succeeded: bool | None = None

    def apply(self, incident: Incident | None) -> Incident:
        incident = self._current(incident)
        rollback = Rollback(self.outcome, self.succeeded, self.at, self.actor)
        return self._advance(incident, rollbacks=(*incident.rollbacks, rollback))


@attrs.frozen(kw_only=True)
class ReleasePaused(Event):
    """ReleasePaused: a release is on hold; delivery, support and CE must be told."""

    release: str

    def apply(self, incident: Incident | None) -> Incident:
        incident = self._current(incident)
        return self._advance(incident, paused_releases=(*incident.paused_releases, self.release))


@attrs.frozen(kw_only=True)
class ReleaseResumed(Event):
    """ReleaseResumed: a paused release may go ahead again."""

    release: str

    def apply(self, incident: Incident | None) -> Incident:
        incident = self._current(incident)
        paused = tuple(r for r in incident.paused_releases if r != self.release)
        return self._advance(incident, paused_releases=paused)


@attrs.frozen(kw_only=True)
class StatusUpdatePosted(Event):
    """StatusUpdatePosted: a post for customers, with its status-page phase."""

    text: str
    status_phase: str

    def apply(self, incident: Incident | None) -> Incident:
        incident = self._current(incident)
        update = StatusUpdate(self.text, self.status_phase, self.at, self.actor)
        return self._advance(incident, status_updates=(*incident.status_updates, update))


@attrs.frozen(kw_only=True)
class SeverityChanged(Event):
    """SeverityChanged: the incident was found to be more or less severe."""

    severity: Severity
    previous: Severity

    def apply(self, incident: Incident | None) -> Incident:
        return self._advance(incident, severity=self.severity)


@attrs.frozen(kw_only=True)
class FalsePositiveMarked(Event):
    """FalsePositiveMarked: there was no incident after all; it stays on record with the reason."""

    reason: str

    def apply(self, incident: Incident | None) -> Incident:
        return self._advance(incident, false_positive=True, false_positive_reason=self.reason)


def _set_item(incident: Incident, name: str, item: ChecklistItem) -> tuple[ChecklistItem, ...]:
    return tuple(item if entry.name == name else entry for entry in incident.checklist)


@attrs.frozen(kw_only=True)
class ChecklistItemCompleted(Event):
    """ChecklistItemCompleted: a post-mortem checklist item is done."""

    item: str

    def apply(self, incident: Incident | None) -> Incident:
        incident = self._current(incident)
        current = incident.item(self.item)
        required = current.required if current is not None else False
        done = ChecklistItem(self.item, required, ItemState.DONE, self.actor, self.at)
        return self._advance(incident, checklist=_set_item(incident, self.item, done))


@attrs.frozen(kw_only=True)
class ChecklistItemWaived(Event):
    """ChecklistItemWaived: a post-mortem checklist item will not be done, for this reason."""

    item: str
    reason: str

    def apply(self, incident: Incident | None) -> Incident:
        incident = self._current(incident)
        current = incident.item(self.item)
        required = current.required if current is not None else False
        waived = ChecklistItem(
            self.item, required, ItemState.WAIVED, self.actor, self.at, self.reason
        )
        return self._advance(incident, checklist=_set_item(incident, self.item, waived))


@attrs.frozen(kw_only=True)
class WarningRecorded(Event):
    """WarningRecorded: a command went ahead against the handbook's advice, kept on record."""

    name: str
    reason: str
    handbook_ref: str

    def apply(self, incident: Incident | None) -> Incident:
        incident = self._current(incident)
        warning = Warning(self.name, self.reason, self.handbook_ref, self.at)
        return self._advance(incident, warnings=(*incident.warnings, warning))


def fold(events: Iterable[Event], incident: Incident | None = None) -> Incident | None:
    """Apply ``events`` in order to ``incident`` (None for a new one) and return the result.

    Raises:
        CorruptEventError: the events do not start at version 1 or skip a version.
    """
    for event in events:
        incident = event.apply(incident)
    return incident

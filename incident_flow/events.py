"""Everything that can happen to an incident, one frozen class per kind of event.

Every event carries the incident's id, its ``version`` (1, 2, 3… with no gaps), an aware UTC
``at`` and the ``actor`` who caused it. ``apply`` folds the event into the incident before it;
:func:`fold` rebuilds an incident from its whole log. Nothing else holds an incident's state.

Event classes register themselves by class name in :data:`EVENT_TYPES`; that name is what the
stores write, so renaming a class is a schema change (see :mod:`incident_flow.serialization`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar, cast

import attrs

from incident_flow.errors import CorruptEventError
from incident_flow.model import (
    ActionRecord,
    ChecklistItem,
    ExternalRef,
    Finding,
    FollowUp,
    Incident,
    IncidentDraft,
    ItemState,
    Page,
    Reminder,
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
    "ExternalRefRecorded",
    "FalsePositiveMarked",
    "FollowUpAdded",
    "IncidentDeclared",
    "OwnershipAcknowledged",
    "PageAcknowledged",
    "PageSent",
    "PhaseChanged",
    "ReleasePaused",
    "ReleaseResumed",
    "ReminderDue",
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
        """Return the incident after this event.

        Raises:
            CorruptEventError: the event does not follow ``incident`` (or there is none).
        """
        if incident is None:
            raise CorruptEventError(
                f"{self.type} cannot be the first event of an incident",
                incident_id=self.incident_id,
                version=self.version,
            )
        self._check_follows(incident.version)
        changes = self._changes(incident)
        changes["version"] = self.version
        changes["updated_at"] = self.at
        return evolve_incident(incident, changes)

    def _changes(self, incident: Incident) -> dict[str, Any]:
        """The fields this event changes, given the incident before it (or a draft of it)."""
        raise NotImplementedError

    def _check_follows(self, version: int) -> None:
        if self.version != version + 1:
            raise CorruptEventError(
                f"expected version {version + 1}, found {self.version}",
                incident_id=self.incident_id,
                version=self.version,
            )


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
            checklist=_open_checklist(self.checklist),
        )


@functools.lru_cache(maxsize=64)
def _open_checklist(items: tuple[tuple[str, bool], ...]) -> tuple[ChecklistItem, ...]:
    # Every incident of a process starts with the same open items: share them (they are frozen).
    return tuple(ChecklistItem(name, required) for name, required in items)


@attrs.frozen(kw_only=True)
class RoleAssigned(Event):
    """RoleAssigned: a person now holds a role (replacing whoever held it before)."""

    role: str
    person: str

    def _changes(self, incident: Incident) -> dict[str, Any]:
        roles = dict(incident.roles)
        roles[self.role] = self.person
        ack = incident.lead_acknowledged_by
        if self.role == "lead" and self.person != ack:
            ack = None  # a new lead has to say "I'm on it" again
        return {"roles": MappingProxyType(roles), "lead_acknowledged_by": ack}


@attrs.frozen(kw_only=True)
class OwnershipAcknowledged(Event):
    """OwnershipAcknowledged: the Incident Lead said "I'm on it"."""

    def _changes(self, incident: Incident) -> dict[str, Any]:
        changes: dict[str, Any] = {"lead_acknowledged_by": self.actor}
        if any(page.is_open and page.target == self.actor for page in incident.pages):
            # The person paged took the lead and said "I'm on it": that answers their page.
            changes["pages"] = tuple(
                attrs.evolve(page, acknowledged_by=self.actor, acknowledged_at=self.at)
                if page.is_open and page.target == self.actor
                else page
                for page in incident.pages
            )
        return changes


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

    def _changes(self, incident: Incident) -> dict[str, Any]:
        changes: dict[str, Any] = {"phase": self.dest}
        if self.resolves and incident.resolved_at is None:
            changes["resolved_at"] = self.at
        if self.closes:
            changes["closed_at"] = self.at
        return changes


@attrs.frozen(kw_only=True)
class ActionTaken(Event):
    """ActionTaken: a team's own action (one the handbook does not have) was taken.

    Recorded when the action keeps the phase or was given arguments; a phase change is recorded
    as :class:`PhaseChanged` as well.
    """

    action: str
    arguments: dict[str, str] = attrs.field(factory=dict)

    def _changes(self, incident: Incident) -> dict[str, Any]:
        record = ActionRecord(
            self.action, MappingProxyType(dict(self.arguments)), self.at, self.actor
        )
        return {"team_actions": (*incident.team_actions, record)}


@attrs.frozen(kw_only=True)
class RollbackRecorded(Event):
    """RollbackRecorded: someone tried to return to a known good state, with this outcome."""

    outcome: str
    succeeded: bool | None = None

    def _changes(self, incident: Incident) -> dict[str, Any]:
        rollback = Rollback(self.outcome, self.succeeded, self.at, self.actor)
        return {"rollbacks": (*incident.rollbacks, rollback)}


@attrs.frozen(kw_only=True)
class ReleasePaused(Event):
    """ReleasePaused: a release is on hold; the groups in ``alert`` must be told.

    The handbook's groups are delivery, customer support and customer engineering
    (``@delivery-support``, ``@cs``, ``@ce``); a process sets its own in
    :attr:`CommsPolicy.release_pause_groups <incident_flow.comms.CommsPolicy.release_pause_groups>`.
    """

    release: str
    alert: tuple[str, ...] = ()

    def _changes(self, incident: Incident) -> dict[str, Any]:
        return {"paused_releases": (*incident.paused_releases, self.release)}


@attrs.frozen(kw_only=True)
class ReleaseResumed(Event):
    """ReleaseResumed: a paused release may go ahead again."""

    release: str

    def _changes(self, incident: Incident) -> dict[str, Any]:
        return {"paused_releases": tuple(r for r in incident.paused_releases if r != self.release)}


@attrs.frozen(kw_only=True)
class StatusUpdatePosted(Event):
    """StatusUpdatePosted: a post for customers, with its status-page phase.

    ``findings`` are the communication rules the post departs from that the process only
    records (a rule that refuses would have stopped the post); an adapter that publishes posts
    may hold back a post with findings.
    """

    text: str
    status_phase: str
    findings: tuple[Finding, ...] = ()

    def _changes(self, incident: Incident) -> dict[str, Any]:
        update = StatusUpdate(self.text, self.status_phase, self.at, self.actor, self.findings)
        return {"status_updates": (*incident.status_updates, update)}


@attrs.frozen(kw_only=True)
class SeverityChanged(Event):
    """SeverityChanged: the incident was found to be more or less severe."""

    severity: Severity
    previous: Severity

    def _changes(self, incident: Incident) -> dict[str, Any]:
        return {"severity": self.severity}


@attrs.frozen(kw_only=True)
class FalsePositiveMarked(Event):
    """FalsePositiveMarked: there was no incident after all; it stays on record with the reason."""

    reason: str

    def _changes(self, incident: Incident) -> dict[str, Any]:
        return {"false_positive": True, "false_positive_reason": self.reason}


@attrs.frozen(kw_only=True)
class FollowUpAdded(Event):
    """FollowUpAdded: work to do after the incident, for the post-mortem and its follow-up
    issues; its id is ``followup-<version>``."""

    title: str
    owner: str | None = None

    @property
    def follow_up_id(self) -> str:
        """The id of the follow-up this event added."""
        return f"followup-{self.version}"

    def _changes(self, incident: Incident) -> dict[str, Any]:
        follow_up = FollowUp(self.follow_up_id, self.title, self.owner, self.at, self.actor)
        return {"follow_ups": (*incident.follow_ups, follow_up)}


@attrs.frozen(kw_only=True)
class PageSent(Event):
    """PageSent: someone paged a team, a schedule or a person (``/genie alert … for …``).

    The page's id is ``page-<version>``; an unacknowledged page escalates (see
    :mod:`incident_flow.timers`).
    """

    target: str
    message: str

    @property
    def page_id(self) -> str:
        """The id of the page this event sent."""
        return f"page-{self.version}"

    def _changes(self, incident: Incident) -> dict[str, Any]:
        page = Page(self.page_id, self.target, self.message, self.at, self.actor)
        return {"pages": (*incident.pages, page)}


@attrs.frozen(kw_only=True)
class PageAcknowledged(Event):
    """PageAcknowledged: the page ``page_id`` was answered by ``actor``."""

    page_id: str

    def _changes(self, incident: Incident) -> dict[str, Any]:
        pages = tuple(
            attrs.evolve(page, acknowledged_by=self.actor, acknowledged_at=self.at)
            if page.id == self.page_id
            else page
            for page in incident.pages
        )
        return {"pages": pages}


@attrs.frozen(kw_only=True)
class ReminderDue(Event):
    """ReminderDue: a reminder fell due and is recorded, once, for plugins to pass on.

    ``reminder`` names the kind (``status_update_due``, ``page_unacknowledged``,
    ``announcement_day``, ``release_paused_status_post`` or a team's own); ``key`` is unique
    per occurrence, so the same reminder is never recorded twice. ``at`` is when it was
    recorded, ``due_at`` when it fell due; ``missed`` counts earlier occurrences that were
    overdue by then and are covered by this one. ``actor`` is ``incident-flow`` when the clock
    brought the reminder, and the person who ran the command when a command did (pausing a
    release reminds the messenger in the same transaction).
    """

    reminder: str
    key: str
    due_at: datetime
    recipient: str
    person: str | None = None
    subject: str = ""
    message: str = ""
    missed: int = 0

    def _changes(self, incident: Incident) -> dict[str, Any]:
        reminder = Reminder(
            self.reminder,
            self.key,
            self.due_at,
            self.at,
            self.recipient,
            self.person,
            self.subject,
            self.message,
            self.missed,
        )
        return {"reminders": (*incident.reminders, reminder)}


@attrs.frozen(kw_only=True)
class ExternalRefRecorded(Event):
    """ExternalRefRecorded: an adapter made something outside for this incident (a channel, an
    alert, a status-page incident, an issue) and records its id, so that it is never made twice.

    ``actor`` is the plugin's name. It changes nothing else on the incident, in any phase, and
    it is not delivered to plugins: it is their own bookkeeping.
    """

    system: str
    kind: str
    external_id: str
    source: str = ""
    url: str | None = None

    def _changes(self, incident: Incident) -> dict[str, Any]:
        ref = ExternalRef(
            self.system, self.kind, self.external_id, self.source, self.url, self.at, self.actor
        )
        return {"external_refs": (*incident.external_refs, ref)}


def _set_item(incident: Incident, name: str, item: ChecklistItem) -> tuple[ChecklistItem, ...]:
    return tuple(item if entry.name == name else entry for entry in incident.checklist)


def _required(incident: Incident, name: str) -> bool:
    return any(entry.required for entry in incident.checklist if entry.name == name)


@attrs.frozen(kw_only=True)
class ChecklistItemCompleted(Event):
    """ChecklistItemCompleted: a post-mortem checklist item is done."""

    item: str
    link: str | None = None
    """Where the result is (the post-mortem document, an issue), when given."""

    def _changes(self, incident: Incident) -> dict[str, Any]:
        done = ChecklistItem(
            self.item,
            _required(incident, self.item),
            ItemState.DONE,
            self.actor,
            self.at,
            link=self.link,
        )
        return {"checklist": _set_item(incident, self.item, done)}


@attrs.frozen(kw_only=True)
class ChecklistItemWaived(Event):
    """ChecklistItemWaived: a post-mortem checklist item will not be done, for this reason."""

    item: str
    reason: str

    def _changes(self, incident: Incident) -> dict[str, Any]:
        required = _required(incident, self.item)
        waived = ChecklistItem(
            self.item, required, ItemState.WAIVED, self.actor, self.at, self.reason
        )
        return {"checklist": _set_item(incident, self.item, waived)}


@attrs.frozen(kw_only=True)
class WarningRecorded(Event):
    """WarningRecorded: a command went ahead against the handbook's advice, kept on record."""

    name: str
    reason: str
    handbook_ref: str

    def _changes(self, incident: Incident) -> dict[str, Any]:
        warning = Warning(self.name, self.reason, self.handbook_ref, self.at)
        return {"warnings": (*incident.warnings, warning)}


def fold(events: Iterable[Event], incident: Incident | None = None) -> Incident | None:
    """Apply ``events`` in order to ``incident`` (None for a new one) and return the result.

    A long run of events is folded into one mutable draft and frozen once at the end, rather
    than through one new incident per event; the result is the same.

    Raises:
        CorruptEventError: the events do not start at version 1 or skip a version.
    """
    pending = events if isinstance(events, list) else list(events)
    start = 0
    if incident is None:
        if not pending:
            return None
        incident = pending[0].apply(None)
        start = 1
    if len(pending) - start < 3:
        for event in pending[start:]:
            incident = event.apply(incident)
        return incident
    draft = IncidentDraft.of(incident)
    view = cast(Incident, draft)  # a draft has every attribute an event reads
    for event in pending[start:]:
        event._check_follows(draft.version)
        for name, value in event._changes(view).items():
            setattr(draft, name, value)
        draft.version = event.version
        draft.updated_at = event.at
    folded: Incident = draft.freeze()
    return folded

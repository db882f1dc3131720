"""The incident and its parts: frozen records, rebuilt from the event log.

An :class:`Incident` is never edited: each event's ``apply`` returns a new one (see
:mod:`incident_flow.events`). Phases and roles are plain strings so a team's process can add its
own; :class:`Phase` and :class:`Role` name the handbook's and compare equal to those strings.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs

from incident_flow.errors import InvalidSeverityError, MinorIssueError

__all__ = [
    "ActionRecord",
    "ChecklistItem",
    "ExternalRef",
    "Finding",
    "FollowUp",
    "Incident",
    "ItemState",
    "Page",
    "Phase",
    "Reminder",
    "Role",
    "Rollback",
    "Severity",
    "StatusUpdate",
    "Warning",
]

SUPPORT_PROCESS_HINT = (
    "minor (severity 2) issues do not use the incident process; send them through the usual "
    "support and feedback processes (handbook: Severity levels)"
)


class Severity(enum.StrEnum):
    """How bad it is: the handbook's two levels that warrant an incident (both SLA severity 1)."""

    CRITICAL = "critical"
    """Very high impact to customers; immediate response required (a full outage, a data breach)."""
    MAJOR = "major"
    """Significant impact; immediate response usually required (an important sub-system failing)."""

    @classmethod
    def parse(cls, value: object) -> Severity:
        """Return the severity named by ``value`` (a :class:`Severity` or its name, any case).

        Raises:
            MinorIssueError: ``value`` is ``minor`` (or ``sev2``/``severity 2``).
            InvalidSeverityError: anything else that is not ``critical`` or ``major``.
        """
        if isinstance(value, cls):
            return value
        text = str(value).strip().lower() if isinstance(value, str) else None
        if text in {"minor", "sev2", "sev 2", "severity 2", "2"}:
            raise MinorIssueError(SUPPORT_PROCESS_HINT, field="severity")
        if text is not None:
            for member in cls:
                if text == member.value:
                    return member
        raise InvalidSeverityError(
            f"unknown severity {value!r}; use Severity.CRITICAL or Severity.MAJOR", field="severity"
        )


class Phase(enum.StrEnum):
    """The phases of the handbook's process. A team's process may add its own (any string)."""

    IDENTIFIED = "identified"
    TRIAGED = "triaged"
    MITIGATING = "mitigating"
    RESOLVED = "resolved"
    POSTMORTEM = "postmortem"
    CLOSED = "closed"
    FALSE_POSITIVE = "false_positive"


class Role(enum.StrEnum):
    """The handbook's roles. A team's process may rename them or add its own."""

    REPORTER = "reporter"
    LEAD = "lead"
    MESSENGER = "messenger"
    RESOLUTION_OWNER = "resolution_owner"


class ItemState(enum.StrEnum):
    """Where a post-mortem checklist item stands."""

    OPEN = "open"
    DONE = "done"
    WAIVED = "waived"


@attrs.frozen
class Finding:
    """Where a status-page post departs from a communication rule (:mod:`incident_flow.comms`)."""

    rule: str
    """The rule's name, such as ``utc_only``."""
    message: str
    """What is wrong and what to write instead."""
    excerpt: str = ""
    """The words of the post at fault, when the rule can point at them."""
    refused: bool = False
    """True when the process refuses a post with this finding; False when it is only recorded."""
    handbook_ref: str = "Messenger roles and responsibilities"


@attrs.frozen
class StatusUpdate:
    """A post for customers on the status page, with the rule findings recorded against it."""

    text: str
    phase: str
    at: datetime
    by: str
    findings: tuple[Finding, ...] = ()


@attrs.frozen
class Rollback:
    """An attempt to return to a known good state (the handbook's first move)."""

    outcome: str
    succeeded: bool | None
    at: datetime
    by: str


@attrs.frozen
class ChecklistItem:
    """One post-mortem checklist item and its state."""

    name: str
    required: bool
    state: ItemState = ItemState.OPEN
    by: str | None = None
    at: datetime | None = None
    reason: str | None = None
    link: str | None = None
    """Where the result is, when completing the item pointed at it (a document, an issue)."""

    @property
    def is_open(self) -> bool:
        """True while the item is neither done nor waived."""
        return self.state is ItemState.OPEN


@attrs.frozen
class Page:
    """A page sent to someone on call (``/genie alert … for <team or person>``)."""

    id: str
    """Unique within the incident: ``page-<version of the event that sent it>``."""
    target: str
    """The team, schedule or person paged."""
    message: str
    at: datetime
    by: str
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        """True until someone acknowledged the page."""
        return self.acknowledged_at is None


@attrs.frozen
class Reminder:
    """A reminder that fell due and was recorded (see :mod:`incident_flow.timers`)."""

    name: str
    key: str
    """Unique per occurrence: the same reminder never fires twice."""
    due_at: datetime
    at: datetime
    recipient: str
    """The role to remind (``messenger``), or a team or contact when no role fits."""
    person: str | None
    """Who held that role when the reminder fell due, if anyone."""
    subject: str = ""
    """What the reminder is about, when there can be several (a page id, a release)."""
    message: str = ""
    missed: int = 0
    """Earlier occurrences of the same reminder that were overdue when it was recorded."""


@attrs.frozen
class FollowUp:
    """Follow-up work noted for after the incident (the post-mortem's follow-up issues)."""

    id: str
    """Unique within the incident: ``followup-<version of the event that added it>``."""
    title: str
    owner: str | None
    at: datetime
    by: str


@attrs.frozen
class ExternalRef:
    """Something an adapter made outside incident_flow for this incident, and its id there.

    A Slack channel, an Opsgenie alert, a Statuspage incident, a GitHub issue: adapters record
    each one (:meth:`IncidentFlow.record_external <incident_flow.IncidentFlow.record_external>`)
    right after making it, and look here before making it again, so that a redelivered event
    makes nothing twice.
    """

    system: str
    """The adapter or vendor: ``slack``, ``opsgenie``, ``statuspage``, ``github``."""
    kind: str
    """What was made: ``channel``, ``message``, ``alert``, ``incident``, ``issue``."""
    external_id: str
    """Its id at the vendor."""
    source: str
    """What it was made for, so it is found again: an idempotency key, a page or follow-up id,
    or ``""`` when there is one per incident."""
    url: str | None
    at: datetime
    by: str


@attrs.frozen
class ActionRecord:
    """A team's own action (one the handbook does not have), with its arguments."""

    action: str
    arguments: Mapping[str, str]
    at: datetime
    by: str


@attrs.frozen
class Warning:
    """An advisory recorded on the incident (the command went ahead)."""

    name: str
    reason: str
    handbook_ref: str
    at: datetime


def _frozen_mapping(value: Mapping[str, str]) -> Mapping[str, str]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


@attrs.frozen
class Incident:
    """An incident as of its latest event. Build it by folding events, never by hand."""

    id: str
    title: str
    description: str
    severity: Severity
    customer_impact: bool
    phase: str
    declared_at: datetime
    updated_at: datetime
    version: int
    roles: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_mapping)
    lead_acknowledged_by: str | None = None
    status_updates: tuple[StatusUpdate, ...] = ()
    rollbacks: tuple[Rollback, ...] = ()
    checklist: tuple[ChecklistItem, ...] = ()
    paused_releases: tuple[str, ...] = ()
    false_positive: bool = False
    false_positive_reason: str | None = None
    warnings: tuple[Warning, ...] = ()
    pages: tuple[Page, ...] = ()
    reminders: tuple[Reminder, ...] = ()
    team_actions: tuple[ActionRecord, ...] = ()
    follow_ups: tuple[FollowUp, ...] = ()
    external_refs: tuple[ExternalRef, ...] = ()
    resolved_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def lead(self) -> str | None:
        """The Incident Lead, if one is assigned."""
        return self.roles.get(Role.LEAD)

    @property
    def messenger(self) -> str | None:
        """The Messenger, if one is assigned."""
        return self.roles.get(Role.MESSENGER)

    @property
    def release_paused(self) -> bool:
        """True while at least one release is paused because of this incident."""
        return bool(self.paused_releases)

    @property
    def open_pages(self) -> tuple[Page, ...]:
        """Pages nobody has acknowledged yet."""
        return tuple(page for page in self.pages if page.is_open)

    def page(self, page_id: str) -> Page | None:
        """The page ``page_id``, or None."""
        for page in self.pages:
            if page.id == page_id:
                return page
        return None

    def reminded(self, key: str) -> bool:
        """True when the reminder occurrence ``key`` was already recorded."""
        return any(reminder.key == key for reminder in self.reminders)

    def external_ref(self, system: str, kind: str, source: str | None = None) -> ExternalRef | None:
        """The latest thing ``system`` recorded making of ``kind`` (for ``source``, when
        given), or None when it made none."""
        for ref in reversed(self.external_refs):
            if ref.system != system or ref.kind != kind:
                continue
            if source is None or ref.source == source:
                return ref
        return None

    def item(self, name: str) -> ChecklistItem | None:
        """The checklist item called ``name``, or None."""
        for entry in self.checklist:
            if entry.name == name:
                return entry
        return None


def _compile_evolve(cls: type[Incident]) -> Callable[[Incident, dict[str, Any]], Incident]:
    """Build ``evolve(incident, changes)``: a copy with ``changes``, without re-running converters.

    The fold makes one new incident per event, so this is its hot path: an unrolled copy of the
    slots costs about half of :func:`attrs.evolve`. ``changes`` must already hold values of the
    right types (a read-only mapping for ``roles``).
    """
    names = [field.name for field in attrs.fields(cls)]
    source = "\n".join(
        [
            "def evolve(old, changes):",
            "    new = new_object(cls)",
            *(f"    set_attribute(new, {name!r}, old.{name})" for name in names),
            "    for name, value in changes.items():",
            "        set_attribute(new, name, value)",
            "    return new",
        ]
    )
    namespace: dict[str, Any] = {
        "new_object": object.__new__,
        "set_attribute": object.__setattr__,
        "cls": cls,
    }
    exec(source, namespace)  # the same technique attrs uses for its generated methods
    evolve: Callable[[Incident, dict[str, Any]], Incident] = namespace["evolve"]
    return evolve


evolve_incident = _compile_evolve(Incident)


def _compile_draft(cls: type[Incident]) -> type[Any]:
    """Build :class:`IncidentDraft`: the same attributes as an incident, but writable."""
    names = [field.name for field in attrs.fields(cls)]
    source = "\n".join(
        [
            "class IncidentDraft:",
            '    """A writable copy of an incident, for folding many events at once."""',
            f"    __slots__ = {tuple(names)!r}",
            "    @classmethod",
            "    def of(draft_cls, incident):",
            "        draft = new_object(draft_cls)",
            *(f"        draft.{name} = incident.{name}" for name in names),
            "        return draft",
            "    def freeze(self):",
            "        incident = new_object(cls)",
            *(f"        set_attribute(incident, {name!r}, self.{name})" for name in names),
            "        return incident",
        ]
    )
    namespace: dict[str, Any] = {
        "new_object": object.__new__,
        "set_attribute": object.__setattr__,
        "cls": cls,
    }
    exec(source, namespace)
    draft: type[Any] = namespace["IncidentDraft"]
    draft.__module__ = __name__
    return draft


IncidentDraft = _compile_draft(Incident)
"""A writable copy of an incident: ``IncidentDraft.of(incident)`` … ``draft.freeze()``."""

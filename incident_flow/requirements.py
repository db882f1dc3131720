"""Guards: named requirements a command must meet, each able to say why it is not met.

A :class:`Guard` has a stable ``name``, a ``check`` that is true when the requirement is met, a
``reason`` a person can act on, and the handbook section it comes from. A process refers to guards
by name; :data:`HANDBOOK_GUARDS` holds the handbook's. When a guard is not met it yields
:class:`Requirement` entries; every unmet one of a command is reported together, never just the
first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import attrs

from incident_flow.model import Incident, Role

__all__ = [
    "HANDBOOK_GUARDS",
    "ChecklistGuard",
    "Context",
    "Guard",
    "Requirement",
]

LEAD_SECTION = "Incident Lead roles and responsibilities"
MESSENGER_SECTION = "Messenger roles and responsibilities"
ROLES_SECTION = "How to identify folks to serve in incident lead and messenger roles"
POSTMORTEM_SECTION = "Post-mortem"
RELEASE_SECTION = "Pausing a release"


@attrs.frozen
class Requirement:
    """One requirement that is not met, as reported by a refusal or a warning."""

    name: str
    """Stable identifier, safe to match on (``lead_assigned``, ``required_items_done:<item>``)."""
    reason: str
    """A sentence saying what is missing and what to do about it."""
    handbook_ref: str = ""
    """The section of the incident handbook the requirement comes from."""


@attrs.frozen
class Context:
    """What a guard knows of the command being decided, besides the incident."""

    action: str
    actor: str
    at: datetime
    payload: Mapping[str, Any] = attrs.field(factory=dict)
    command: bool = False
    """True when a command is being decided; False for a question ("which actions are
    available?", :meth:`IncidentFlow.requirements <incident_flow.IncidentFlow.requirements>`),
    which may leave arguments out."""


def _frozen_names(names: Iterable[str]) -> frozenset[str]:
    return frozenset(names)


Check = Callable[[Incident, Context], bool]
Reason = str | Callable[[Incident, Context], str]


@attrs.frozen
class Guard:
    """A requirement of a transition: met when ``check(incident, context)`` is true."""

    name: str
    check: Check
    reason: Reason
    handbook_ref: str = ""
    reads: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen_names)
    """Command arguments (``context.payload`` keys) the check depends on. A question that
    leaves one of them out does not run ``check`` (see ``possible``); a command always does,
    so a check can refuse a command that leaves out an argument it needs."""
    possible: Callable[[Incident], bool] | None = None
    """Asked instead of ``check`` when an argument in ``reads`` is not given (a question such as
    "which actions are available?"): could some argument meet the guard? None means yes."""
    impossible_reason: str = ""
    """The reason reported when ``possible`` says no."""

    def is_met(self, incident: Incident, context: Context) -> bool:
        """True when nothing of this guard is unmet (the fast question; see :meth:`unmet`)."""
        if self.reads and not context.command and not self.reads <= context.payload.keys():
            return self.possible is None or self.possible(incident)
        return self.check(incident, context)

    def unmet(self, incident: Incident, context: Context) -> Iterator[Requirement]:
        """Yield a :class:`Requirement` for each part of this guard that is not met."""
        if self.reads and not context.command and not self.reads <= context.payload.keys():
            if self.possible is not None and not self.possible(incident):
                yield Requirement(self.name, self.impossible_reason, self.handbook_ref)
            return
        if not self.check(incident, context):
            reason = self.reason if isinstance(self.reason, str) else self.reason(incident, context)
            yield Requirement(self.name, reason, self.handbook_ref)


@attrs.frozen
class ChecklistGuard(Guard):
    """Met when no required post-mortem checklist item is open; one requirement per open item."""

    name: str = "required_items_done"
    check: Check = lambda incident, context: True
    reason: Reason = "complete or waive every required post-mortem checklist item"
    handbook_ref: str = POSTMORTEM_SECTION

    def is_met(self, incident: Incident, context: Context) -> bool:
        return not any(item.required and item.is_open for item in incident.checklist)

    def unmet(self, incident: Incident, context: Context) -> Iterator[Requirement]:
        for item in incident.checklist:
            if item.required and item.is_open:
                yield Requirement(
                    f"{self.name}:{item.name}",
                    f"the post-mortem checklist item {item.name!r} is open; complete it with "
                    f"complete_item(id, {item.name!r}) or waive it with a reason",
                    self.handbook_ref,
                )


def _assigned_role(role: str, incident: Incident, context: Context) -> str | None:
    """Who holds ``role`` once the command has run (an ``assign`` may change it)."""
    if context.action == "assign" and context.payload.get("role") == role:
        person = context.payload.get("person")
        return person if isinstance(person, str) else None
    return incident.roles.get(role)


def _distinct_lead_and_messenger(incident: Incident, context: Context) -> bool:
    # Only the assignment that makes them one person is warned about, not every later one.
    if not incident.customer_impact or context.payload.get("role") not in (
        Role.LEAD,
        Role.MESSENGER,
    ):
        return True
    lead = _assigned_role(Role.LEAD, incident, context)
    messenger = _assigned_role(Role.MESSENGER, incident, context)
    return lead is None or messenger is None or lead != messenger


def _rollback_before_owner(incident: Incident, context: Context) -> bool:
    if context.payload.get("role") != Role.RESOLUTION_OWNER:
        return True
    return bool(incident.rollbacks)


def _payload_item(incident: Incident, context: Context) -> str:
    return str(context.payload.get("item"))


def _item_is_open(incident: Incident, context: Context) -> bool:
    item = incident.item(_payload_item(incident, context))
    return item is not None and item.is_open


def _page_id(context: Context) -> str:
    return str(context.payload.get("page"))


def _page_is_open(incident: Incident, context: Context) -> bool:
    page = incident.page(_page_id(context))
    return page is not None and page.is_open


def _page_state(incident: Incident, context: Context) -> str:
    page = incident.page(_page_id(context))
    if page is None:
        known = ", ".join(page.id for page in incident.pages) or "none"
        return f"there is no page {_page_id(context)!r} on this incident (pages: {known})"
    return f"{page.id} was already acknowledged by {page.acknowledged_by}"


def _release(context: Context) -> str:
    return str(context.payload.get("release"))


HANDBOOK_GUARDS: Mapping[str, Guard] = {
    guard.name: guard
    for guard in (
        Guard(
            "lead_assigned",
            lambda incident, context: incident.lead is not None,
            "assign an Incident Lead first (assign(id, Role.LEAD, person)); "
            "the lead drives the incident to resolution",
            ROLES_SECTION,
        ),
        Guard(
            "lead_acknowledged",
            lambda incident, context: (
                incident.lead is not None and incident.lead_acknowledged_by == incident.lead
            ),
            'the Incident Lead must acknowledge ownership ("I\'m on it") with '
            "acknowledge(id, by=<lead>) before mitigation starts",
            LEAD_SECTION,
        ),
        Guard(
            "actor_is_lead",
            lambda incident, context: context.actor == incident.lead,
            lambda incident, context: (
                f"only the Incident Lead can acknowledge ownership; {context.actor!r} is not "
                + (f"the lead ({incident.lead!r})" if incident.lead else "assigned as lead yet")
            ),
            LEAD_SECTION,
        ),
        Guard(
            "messenger_assigned",
            lambda incident, context: (
                not incident.customer_impact or incident.messenger is not None
            ),
            "a customer-impacting incident needs a Messenger before mitigation starts "
            "(assign(id, Role.MESSENGER, person)) so the lead can focus on the fix",
            MESSENGER_SECTION,
        ),
        Guard(
            "status_update_posted",
            lambda incident, context: not incident.customer_impact or bool(incident.status_updates),
            "a customer-impacting incident cannot be resolved before at least one status-page "
            "update was posted (post_status_update)",
            MESSENGER_SECTION,
        ),
        ChecklistGuard(),
        Guard(
            "item_open",
            _item_is_open,
            lambda incident, context: (
                f"the checklist item {_payload_item(incident, context)!r} is already "
                f"{getattr(incident.item(_payload_item(incident, context)), 'state', 'closed')}"
            ),
            POSTMORTEM_SECTION,
            reads=("item",),
            possible=lambda incident: any(item.is_open for item in incident.checklist),
            impossible_reason="every post-mortem checklist item is already done or waived",
        ),
        Guard(
            "page_open",
            _page_is_open,
            _page_state,
            ROLES_SECTION,
            reads=("page",),
            possible=lambda incident: bool(incident.open_pages),
            impossible_reason="no page of this incident is waiting for an acknowledgement",
        ),
        Guard(
            "release_not_paused",
            lambda incident, context: _release(context) not in incident.paused_releases,
            lambda incident, context: f"release {_release(context)!r} is already paused",
            RELEASE_SECTION,
            reads=("release",),
        ),
        Guard(
            "release_is_paused",
            lambda incident, context: _release(context) in incident.paused_releases,
            lambda incident, context: (
                f"release {_release(context)!r} is not paused by this incident; paused: "
                + (", ".join(incident.paused_releases) or "none")
            ),
            RELEASE_SECTION,
            reads=("release",),
            possible=lambda incident: incident.release_paused,
            impossible_reason="no release is paused by this incident",
        ),
        Guard(
            "severity_differs",
            lambda incident, context: context.payload.get("severity") != incident.severity,
            lambda incident, context: f"the severity is already {incident.severity}",
            "Severity levels",
            reads=("severity",),
        ),
        Guard(
            "distinct_lead_and_messenger",
            _distinct_lead_and_messenger,
            "on a customer-impacting incident the lead and the messenger should be different "
            "people, so the lead can focus on solving the issue",
            ROLES_SECTION,
            reads=("role", "person"),
        ),
        Guard(
            "rollback_before_resolution_owner",
            _rollback_before_owner,
            "no rollback was tried yet: the handbook says to roll back to a known good state "
            "before looking for a resolution owner (record_rollback)",
            LEAD_SECTION,
            reads=("role",),
        ),
    )
}
"""The guards the handbook implies, by name. A process may use any of them, and its own."""

"""Commands as data: an action, who runs it and its arguments, replayable on any flow.

The harness drives a process through :class:`Command` values rather than calls, so that a
sequence can be generated, printed, shrunk and replayed. :func:`candidates` lists, for an
incident, a small deterministic set of commands for each action of its phase, with arguments
that can meet the handbook's guards (an open checklist item, a paused release, the lead as the
actor…): the explorer of :mod:`incident_flow.testing.paths` walks those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from incident_flow.flow import IncidentFlow
from incident_flow.model import Incident, Role, Severity
from incident_flow.process import Process

__all__ = [
    "BUILTIN_ACTIONS",
    "PAGE_TARGETS",
    "PEOPLE",
    "RELEASES",
    "Command",
    "Declaration",
    "candidates",
]

PEOPLE: tuple[str, ...] = ("alice", "bob", "carol", "dave")
"""Who the harness lets act, unless told otherwise."""

PAGE_TARGETS: tuple[str, ...] = ("delivery team",)
"""Whom the harness pages."""

RELEASES: tuple[str, ...] = ("3.30",)
"""Release names the harness pauses and resumes (and ``3.31``, never paused, to be refused)."""

STATUS_TEXTS: Mapping[str, str] = {
    "identified": "Identified: We are aware of an issue with search and are investigating. "
    "Questions: support@sourcegraph.com.",
    "investigating": "Investigating: We are continuing to investigate a resolution. "
    "Questions: support@sourcegraph.com.",
    "resolved": "Resolved: We have resolved the issue and will conduct a postmortem. If you "
    "would like to know more, please email support@sourcegraph.com.",
}


@attrs.frozen
class Declaration:
    """How a harness incident starts: ``flow.declare(...)`` with these arguments."""

    severity: Severity = Severity.CRITICAL
    customer_impact: bool = True
    by: str = "alice"
    title: str = "Search is down"

    def run(self, flow: IncidentFlow, incident_id: str | None = None) -> Incident:
        return flow.declare(
            self.title,
            severity=self.severity,
            customer_impact=self.customer_impact,
            by=self.by,
            incident_id=incident_id,
        )

    def __str__(self) -> str:
        impact = "customer impact" if self.customer_impact else "no customer impact"
        return f"declare {self.severity} ({impact}) by {self.by}"


@attrs.frozen
class Command:
    """One command: ``action`` run by ``by`` with ``arguments`` (name, value pairs)."""

    action: str
    by: str
    arguments: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.arguments)

    def run(self, flow: IncidentFlow, incident_id: str) -> Incident:
        """Run the command on ``flow``: the flow's own method for the handbook's actions,
        ``flow.transition`` for a team's."""
        runner = BUILTIN_ACTIONS.get(self.action)
        if runner is None:
            return flow.transition(incident_id, self.action, by=self.by, **self.kwargs)
        return runner(flow, incident_id, self.by, self.kwargs)

    def __str__(self) -> str:
        arguments = ", ".join(f"{name}={value!r}" for name, value in self.arguments)
        return (
            f"{self.action}({arguments}) by {self.by}"
            if arguments
            else f"{self.action} by {self.by}"
        )


_Runner = Callable[[IncidentFlow, str, str, dict[str, Any]], Incident]

BUILTIN_ACTIONS: Mapping[str, _Runner] = {
    "assign": lambda f, i, by, a: f.assign(i, a["role"], a["person"], by=by),
    "acknowledge": lambda f, i, by, a: f.acknowledge(i, by=by),
    "page": lambda f, i, by, a: f.page(
        i, a["target"], by=by, message=a.get("message", "we have an incident, please help")
    ),
    "acknowledge_page": lambda f, i, by, a: f.acknowledge_page(i, a["page"], by=by),
    "triage": lambda f, i, by, a: f.triage(i, by=by),
    "start_mitigation": lambda f, i, by, a: f.start_mitigation(i, by=by),
    "record_rollback": lambda f, i, by, a: f.record_rollback(
        i, by=by, outcome=a.get("outcome", "rolled back"), succeeded=a.get("succeeded")
    ),
    "pause_release": lambda f, i, by, a: f.pause_release(i, release=a["release"], by=by),
    "resume_release": lambda f, i, by, a: f.resume_release(i, release=a["release"], by=by),
    "post_status_update": lambda f, i, by, a: f.post_status_update(
        i, a["text"], phase=a["phase"], by=by
    ),
    "change_severity": lambda f, i, by, a: f.change_severity(i, a["severity"], by=by),
    "resolve": lambda f, i, by, a: f.resolve(i, by=by),
    "reopen": lambda f, i, by, a: f.reopen(i, by=by),
    "mark_false_positive": lambda f, i, by, a: f.mark_false_positive(
        i, reason=a.get("reason", "the alert was noise"), by=by
    ),
    "start_postmortem": lambda f, i, by, a: f.start_postmortem(i, by=by),
    "complete_item": lambda f, i, by, a: f.complete_item(i, a["item"], by=by),
    "add_follow_up": lambda f, i, by, a: f.add_follow_up(
        i, a.get("title", "add an alert on search latency"), by=by
    ),
    "waive_item": lambda f, i, by, a: f.waive_item(
        i, a["item"], reason=a.get("reason", "not needed"), by=by
    ),
    "close": lambda f, i, by, a: f.close(i, by=by),
}
"""How each of the flow's own commands is run from a :class:`Command`."""


def actors(incident: Incident, people: Sequence[str] = PEOPLE) -> list[str]:
    """Who may plausibly act on ``incident``: its role holders first, then ``people``."""
    seen: list[str] = []
    for person in (incident.lead, incident.messenger, *incident.roles.values(), *people):
        if person and person not in seen:
            seen.append(person)
    return seen


def _arguments(
    process: Process, incident: Incident, action: str, people: Sequence[str]
) -> Iterator[tuple[tuple[str, Any], ...]]:
    """Deterministic argument choices for ``action`` that can meet the handbook's guards."""
    if action == "assign":
        lead, messenger = incident.lead, incident.messenger
        for role in process.roles:
            if role == Role.REPORTER:
                continue
            holder = incident.roles.get(role)
            # Someone new for the role (or a first holder), and for the messenger the lead too
            # (the handbook warns when one person holds both).
            others = [p for p in people if p not in (holder, lead, messenger)]
            choices = others[:1] or [p for p in people if p != holder][:1]
            if role == Role.MESSENGER and lead is not None and lead != holder:
                choices.append(lead)
            for person in choices:
                yield (("role", role), ("person", person))
    elif action == "page":
        yield (("target", PAGE_TARGETS[0]),)
    elif action == "acknowledge_page":
        # Each open page, and one that is answered already or never existed (to be refused).
        answered = [page.id for page in incident.pages if not page.is_open]
        for page_id in (*(page.id for page in incident.open_pages), *(answered or ["page-0"])[:1]):
            yield (("page", page_id),)
    elif action in ("pause_release", "resume_release"):
        # A release that is paused and one that is not: each action's guard meets one.
        for release in dict.fromkeys((*incident.paused_releases, *RELEASES, "3.31")):
            yield (("release", release),)
    elif action == "post_status_update":
        for phase in process.status_phases:
            yield (("text", STATUS_TEXTS.get(phase, f"{phase}: update")), ("phase", phase))
    elif action == "change_severity":
        for severity in sorted(Severity, key=lambda level: level == incident.severity):
            yield (("severity", severity),)  # the other level first, then the same one
    elif action in ("complete_item", "waive_item"):
        open_items = [item.name for item in incident.checklist if item.is_open]
        done = [item.name for item in incident.checklist if not item.is_open]
        for name in (*open_items, *done[:1]):  # and one that is done already
            yield (("item", name),)
    elif action == "record_rollback":
        yield (("outcome", "rolled back to the last release"), ("succeeded", True))
    else:
        yield ()


def candidates(
    process: Process,
    incident: Incident,
    *,
    people: Sequence[str] = PEOPLE,
    arguments: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
) -> Iterator[Command]:
    """Commands worth trying on ``incident``: each action of its phase, with a few argument
    choices and actors (the role holders first).

    ``arguments`` gives the argument choices of a team's own actions (``{"monitor":
    [{"reason": "wait"}]}``); without them such an action is tried with none.
    """
    everyone = actors(incident, people)
    for action in process.actions_in(incident.phase):
        if arguments and action in arguments:
            choices: list[tuple[tuple[str, Any], ...]] = [
                tuple(sorted(choice.items())) for choice in arguments[action]
            ]
        else:
            choices = list(_arguments(process, incident, action, everyone))
        for choice in choices:
            for actor in everyone[:2]:  # a role holder, and someone else (to be refused)
                yield Command(action, actor, choice)

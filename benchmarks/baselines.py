"""The peers each case is compared with, doing the same work as incident_flow.

``IncidentRecord`` is an incident as a plain object with the fields of
:class:`~incident_flow.Incident` and a history list; its methods are the handbook's guards and
effects. Two peers drive it through the same lifecycle:

* :func:`transitions_incident`: a ``transitions.Machine`` per incident, ``auto_transitions=False``,
  the process's sixteen transitions, each with one condition (a model method holding the same
  guards as the handbook's) and two ``after`` callbacks (apply the effect, record the history).
* :func:`statemachine_incident`: a ``python-statemachine`` ``StateMachine`` per incident with the
  same states, transitions, conditions and callbacks, on the same model class.

Both run the argument checks incident_flow runs (a non-empty actor, known roles and status phases,
non-empty texts), evaluate the ``assign`` warnings and record one history entry per event
incident_flow would record, so the comparison is work for work.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from statemachine import State, StateMachine
from transitions import Machine

__all__ = [
    "ACTIONS",
    "CHECKLIST",
    "PHASES",
    "Declare",
    "IncidentRecord",
    "bare_commits",
    "bare_replay",
    "decision_floor",
    "drive_lifecycle",
    "drive_to_mitigating",
    "statemachine_incident",
    "transitions_incident",
    "trigger",
]

PHASES = (
    "identified",
    "triaged",
    "mitigating",
    "resolved",
    "postmortem",
    "closed",
    "false_positive",
)
_OPEN = ("identified", "triaged", "mitigating")
_UNTIL_POSTMORTEM = (*_OPEN, "resolved", "postmortem")
_AFTER_RESOLUTION = ("resolved", "postmortem")

# (action, sources, dest or None for "keeps the phase"): the handbook process, as in process.py.
ACTIONS: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("assign", _UNTIL_POSTMORTEM, None),
    ("acknowledge", _OPEN, None),
    ("triage", ("identified",), "triaged"),
    ("start_mitigation", ("identified", "triaged"), "mitigating"),
    ("record_rollback", _OPEN, None),
    ("pause_release", _UNTIL_POSTMORTEM, None),
    ("resume_release", _UNTIL_POSTMORTEM, None),
    ("post_status_update", _UNTIL_POSTMORTEM, None),
    ("change_severity", _OPEN, None),
    ("resolve", ("mitigating",), "resolved"),
    ("reopen", ("resolved",), "mitigating"),
    ("mark_false_positive", _OPEN, "false_positive"),
    ("start_postmortem", ("resolved",), "postmortem"),
    ("complete_item", _AFTER_RESOLUTION, None),
    ("waive_item", _AFTER_RESOLUTION, None),
    ("close", ("postmortem",), "closed"),
)

CHECKLIST: tuple[tuple[str, bool], ...] = (
    ("update_status", True),
    ("confirm_messenger_updates", True),
    ("close_github_issues", True),
    ("generate_postmortem_doc", True),
    ("create_followup_issues", True),
    ("schedule_retrospective", False),
)
REQUIRED_ITEMS = tuple(name for name, required in CHECKLIST if required)
_ROLES = frozenset({"reporter", "lead", "messenger", "resolution_owner"})
_STATUS_PHASES = frozenset({"identified", "investigating", "resolved"})
_SEVERITIES = frozenset({"critical", "major"})

Payload = Mapping[str, Any]


def _person(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= 10_000


class IncidentRecord:
    """An incident as a plain object: the fields of ``Incident``, a history and the guards.

    ``state`` is kept by the state-machine library that drives the record. Every ``allow_*``
    method is one action's condition (argument checks plus the handbook's guards), every
    ``apply_*`` its effect; ``record_*`` appends the history entries the action produces.
    """

    def __init__(
        self,
        incident_id: str,
        title: str,
        *,
        severity: str,
        customer_impact: bool,
        by: str,
        at: datetime,
    ) -> None:
        if not _text(title) or severity not in _SEVERITIES or not _person(by):
            raise ValueError("invalid declaration")
        self.state = "identified"
        self.id = incident_id
        self.title = title.strip()
        self.description = ""
        self.severity = severity
        self.customer_impact = customer_impact
        self.declared_at = at
        self.updated_at = at
        self.version = 0
        self.roles: dict[str, str] = {"reporter": by}
        self.lead_acknowledged_by: str | None = None
        self.status_updates: list[tuple[str, str, datetime, str]] = []
        self.rollbacks: list[tuple[str, bool | None, datetime, str]] = []
        self.checklist: dict[str, str] = {name: "open" for name, _ in CHECKLIST}
        self.paused_releases: list[str] = []
        self.false_positive_reason: str | None = None
        self.warnings: list[tuple[str, datetime]] = []
        self.resolved_at: datetime | None = None
        self.closed_at: datetime | None = None
        self.history: list[dict[str, Any]] = []
        self._append("declare", by, at, {"title": title, "severity": severity})

    # -- history ---------------------------------------------------------------------------

    def _append(self, action: str, by: str, at: datetime, payload: Payload) -> None:
        self.version += 1
        self.updated_at = at
        self.history.append(
            {"action": action, "version": self.version, "at": at, "actor": by, **payload}
        )

    # -- conditions: argument checks and the handbook's guards --------------------------------

    def allow_assign(self, by: str, at: datetime, payload: Payload) -> bool:
        """Known role, a person named, by someone."""
        return _person(by) and payload["role"] in _ROLES and _person(payload["person"])

    def allow_acknowledge(self, by: str, at: datetime, payload: Payload) -> bool:
        """lead_assigned, actor_is_lead."""
        lead = self.roles.get("lead")
        return _person(by) and lead is not None and by == lead

    def allow_triage(self, by: str, at: datetime, payload: Payload) -> bool:
        """No guard besides the actor."""
        return _person(by)

    def allow_start_mitigation(self, by: str, at: datetime, payload: Payload) -> bool:
        """lead_assigned, lead_acknowledged, messenger_assigned."""
        lead = self.roles.get("lead")
        return (
            _person(by)
            and lead is not None
            and self.lead_acknowledged_by == lead
            and (not self.customer_impact or "messenger" in self.roles)
        )

    def allow_record_rollback(self, by: str, at: datetime, payload: Payload) -> bool:
        """An outcome text."""
        return _person(by) and _text(payload["outcome"])

    def allow_pause_release(self, by: str, at: datetime, payload: Payload) -> bool:
        """release_not_paused."""
        return _person(by) and payload["release"] not in self.paused_releases

    def allow_resume_release(self, by: str, at: datetime, payload: Payload) -> bool:
        """release_is_paused."""
        return _person(by) and payload["release"] in self.paused_releases

    def allow_post_status_update(self, by: str, at: datetime, payload: Payload) -> bool:
        """A text and a known status-page phase."""
        return _person(by) and _text(payload["text"]) and payload["phase"] in _STATUS_PHASES

    def allow_change_severity(self, by: str, at: datetime, payload: Payload) -> bool:
        """severity_differs."""
        return (
            _person(by)
            and payload["severity"] in _SEVERITIES
            and (payload["severity"] != self.severity)
        )

    def allow_resolve(self, by: str, at: datetime, payload: Payload) -> bool:
        """lead_assigned, status_update_posted."""
        return (
            _person(by)
            and "lead" in self.roles
            and (not self.customer_impact or bool(self.status_updates))
        )

    def allow_reopen(self, by: str, at: datetime, payload: Payload) -> bool:
        """No guard besides the actor."""
        return _person(by)

    def allow_mark_false_positive(self, by: str, at: datetime, payload: Payload) -> bool:
        """A reason."""
        return _person(by) and _text(payload["reason"])

    def allow_start_postmortem(self, by: str, at: datetime, payload: Payload) -> bool:
        """No guard besides the actor."""
        return _person(by)

    def allow_complete_item(self, by: str, at: datetime, payload: Payload) -> bool:
        """item_open."""
        return _person(by) and self.checklist.get(payload["item"]) == "open"

    def allow_waive_item(self, by: str, at: datetime, payload: Payload) -> bool:
        """item_open, and a reason."""
        return (
            _person(by)
            and self.checklist.get(payload["item"]) == "open"
            and _text(payload["reason"])
        )

    def allow_close(self, by: str, at: datetime, payload: Payload) -> bool:
        """required_items_done."""
        return _person(by) and all(self.checklist[name] != "open" for name in REQUIRED_ITEMS)

    # -- effects -------------------------------------------------------------------------

    def apply_assign(self, by: str, at: datetime, payload: Payload) -> None:
        """Set the role; check the two warnings of ``assign`` and record any that applies."""
        role, person = payload["role"], payload["person"]
        self.roles[role] = person
        if role == "lead" and person != self.lead_acknowledged_by:
            self.lead_acknowledged_by = None
        lead, messenger = self.roles.get("lead"), self.roles.get("messenger")
        if self.customer_impact and role in ("lead", "messenger") and lead == messenger:
            self.warnings.append(("distinct_lead_and_messenger", at))
            self._append("warning", by, at, {"name": "distinct_lead_and_messenger"})
        if role == "resolution_owner" and not self.rollbacks:
            self.warnings.append(("rollback_before_resolution_owner", at))
            self._append("warning", by, at, {"name": "rollback_before_resolution_owner"})

    def apply_acknowledge(self, by: str, at: datetime, payload: Payload) -> None:
        """The lead said "I'm on it"."""
        self.lead_acknowledged_by = by

    def apply_triage(self, by: str, at: datetime, payload: Payload) -> None:
        """Only the phase changes."""

    def apply_start_mitigation(self, by: str, at: datetime, payload: Payload) -> None:
        """Only the phase changes."""

    def apply_record_rollback(self, by: str, at: datetime, payload: Payload) -> None:
        """Keep the attempt."""
        self.rollbacks.append((payload["outcome"], payload.get("succeeded"), at, by))

    def apply_pause_release(self, by: str, at: datetime, payload: Payload) -> None:
        """Hold the release."""
        self.paused_releases.append(payload["release"])

    def apply_resume_release(self, by: str, at: datetime, payload: Payload) -> None:
        """Let the release go."""
        self.paused_releases.remove(payload["release"])

    def apply_post_status_update(self, by: str, at: datetime, payload: Payload) -> None:
        """Keep the post."""
        self.status_updates.append((payload["text"], payload["phase"], at, by))

    def apply_change_severity(self, by: str, at: datetime, payload: Payload) -> None:
        """Set the severity."""
        self.severity = payload["severity"]

    def apply_resolve(self, by: str, at: datetime, payload: Payload) -> None:
        """Resolved now."""
        if self.resolved_at is None:
            self.resolved_at = at

    def apply_reopen(self, by: str, at: datetime, payload: Payload) -> None:
        """Only the phase changes."""

    def apply_mark_false_positive(self, by: str, at: datetime, payload: Payload) -> None:
        """Kept on record with the reason."""
        self.false_positive_reason = payload["reason"]
        self.resolved_at = self.resolved_at or at
        self.closed_at = at

    def apply_start_postmortem(self, by: str, at: datetime, payload: Payload) -> None:
        """Only the phase changes."""

    def apply_complete_item(self, by: str, at: datetime, payload: Payload) -> None:
        """The item is done."""
        self.checklist[payload["item"]] = "done"

    def apply_waive_item(self, by: str, at: datetime, payload: Payload) -> None:
        """The item is waived."""
        self.checklist[payload["item"]] = "waived"

    def apply_close(self, by: str, at: datetime, payload: Payload) -> None:
        """Closed now."""
        self.closed_at = at


def _recorder(action: str) -> Callable[[IncidentRecord, str, datetime, Payload], None]:
    def record(self: IncidentRecord, by: str, at: datetime, payload: Payload) -> None:
        self._append(action, by, at, payload)

    record.__name__ = record.__qualname__ = f"record_{action}"
    record.__doc__ = f"Append the history entry of {action}."
    return record


for _entry in ACTIONS:
    setattr(IncidentRecord, f"record_{_entry[0]}", _recorder(_entry[0]))


Declare = Callable[..., IncidentRecord]
"""A peer's way to declare an incident: :func:`transitions_incident` or
:func:`statemachine_incident`."""


# -- transitions: one Machine per incident ---------------------------------------------------

_TRANSITIONS = [
    {
        "trigger": action,
        "source": list(sources),
        "dest": dest,
        "conditions": f"allow_{action}",
        "after": [f"apply_{action}", f"record_{action}"],
    }
    for action, sources, dest in ACTIONS
]


def transitions_incident(
    incident_id: str,
    title: str,
    *,
    severity: str,
    customer_impact: bool,
    by: str,
    at: datetime,
) -> IncidentRecord:
    """Declare an incident: a model and its own ``transitions.Machine``."""
    record = IncidentRecord(
        incident_id, title, severity=severity, customer_impact=customer_impact, by=by, at=at
    )
    Machine(
        model=record,
        states=list(PHASES),
        transitions=_TRANSITIONS,
        initial="identified",
        auto_transitions=False,
    )
    return record


# -- python-statemachine: one StateMachine per incident --------------------------------------


def _edges(action: str, sources: Sequence[State], dest: State | None) -> Any:
    """Every transition of ``action``, with its one condition and two ``after`` callbacks."""
    options: dict[str, Any] = {
        "cond": f"allow_{action}",
        "after": [f"apply_{action}", f"record_{action}"],
    }
    edges: Any = None
    for source in sources:
        to: Any = source.to
        edge = to.itself(internal=True, **options) if dest is None else to(dest, **options)
        edges = edge if edges is None else edges | edge
    return edges


class HandbookStateMachine(StateMachine):
    """The handbook process as a ``python-statemachine`` class; the model is an IncidentRecord."""

    identified = State(initial=True)
    triaged = State()
    mitigating = State()
    resolved = State()
    postmortem = State()
    closed = State(final=True)
    false_positive = State(final=True)

    _o = (identified, triaged, mitigating)
    _u = (*_o, resolved, postmortem)
    _r = (resolved, postmortem)
    assign = _edges("assign", _u, None)
    acknowledge = _edges("acknowledge", _o, None)
    triage = _edges("triage", (identified,), triaged)
    start_mitigation = _edges("start_mitigation", (identified, triaged), mitigating)
    record_rollback = _edges("record_rollback", _o, None)
    pause_release = _edges("pause_release", _u, None)
    resume_release = _edges("resume_release", _u, None)
    post_status_update = _edges("post_status_update", _u, None)
    change_severity = _edges("change_severity", _o, None)
    resolve = _edges("resolve", (mitigating,), resolved)
    reopen = _edges("reopen", (resolved,), mitigating)
    mark_false_positive = _edges("mark_false_positive", _o, false_positive)
    start_postmortem = _edges("start_postmortem", (resolved,), postmortem)
    complete_item = _edges("complete_item", _r, None)
    waive_item = _edges("waive_item", _r, None)
    close = _edges("close", (postmortem,), closed)
    del _o, _u, _r


class _StatemachineIncident(IncidentRecord):
    """An IncidentRecord whose triggers go through its own HandbookStateMachine."""

    machine: HandbookStateMachine

    def trigger(self, action: str, by: str, at: datetime, payload: Payload) -> None:
        self.machine.send(action, by=by, at=at, payload=payload)


def statemachine_incident(
    incident_id: str,
    title: str,
    *,
    severity: str,
    customer_impact: bool,
    by: str,
    at: datetime,
) -> IncidentRecord:
    """Declare an incident: a model and its own ``HandbookStateMachine`` instance."""
    record = _StatemachineIncident(
        incident_id, title, severity=severity, customer_impact=customer_impact, by=by, at=at
    )
    record.machine = HandbookStateMachine(model=record)
    return record


def trigger(record: IncidentRecord, action: str, by: str, at: datetime, **payload: Any) -> None:
    """Run ``action`` on ``record`` through whichever machine drives it.

    Raises:
        RuntimeError: the transitions machine refused (its trigger returned False).
        statemachine.exceptions.TransitionNotAllowed: the python-statemachine machine refused.
    """
    if isinstance(record, _StatemachineIncident):
        record.trigger(action, by, at, payload)  # raises TransitionNotAllowed when refused
        return
    if not getattr(record, action)(by=by, at=at, payload=payload):
        raise RuntimeError(f"{action} was refused in {record.state}")


def drive_to_mitigating(
    declare: Declare,
    incident_id: str,
    title: str,
    at: Callable[[], datetime],
) -> IncidentRecord:
    """Declare an incident with ``declare`` and take it to ``mitigating`` as the handbook does."""
    record = declare(
        incident_id, title, severity="critical", customer_impact=True, by="alice", at=at()
    )
    trigger(record, "assign", "alice", at(), role="lead", person="bob")
    trigger(record, "acknowledge", "bob", at())
    trigger(record, "assign", "bob", at(), role="messenger", person="carol")
    trigger(record, "triage", "bob", at())
    trigger(record, "start_mitigation", "bob", at())
    return record


def drive_lifecycle(
    declare: Declare,
    incident_id: str,
    title: str,
    at: Callable[[], datetime],
) -> IncidentRecord:
    """Declare an incident with ``declare`` and drive it through the handbook to ``closed``."""
    record = drive_to_mitigating(declare, incident_id, title, at)
    trigger(record, "record_rollback", "bob", at(), outcome="rolled back to 3.29", succeeded=None)
    trigger(
        record,
        "post_status_update",
        "carol",
        at(),
        text="Identified: we are aware.",
        phase="identified",
    )
    trigger(record, "resolve", "bob", at())
    trigger(record, "start_postmortem", "bob", at())
    for item in REQUIRED_ITEMS:
        trigger(record, "complete_item", "bob", at(), item=item)
    trigger(record, "close", "bob", at())
    return record


# -- the floors of the other cases -----------------------------------------------------------

Guard = Callable[[Mapping[str, Any], str], bool]


def decision_floor(
    table: Mapping[tuple[str, str], Sequence[Guard]],
    incident: Mapping[str, Any],
    phase: str,
    actions: Iterable[str],
    actor: str,
) -> list[str]:
    """The plain-dict floor of a decision: per action, look up its guards, call them, list the
    names of those unmet."""
    unmet: list[str] = []
    for action in actions:
        for guard in table[(phase, action)]:
            if not guard(incident, actor):
                unmet.append(action)
    return unmet


def bare_commits(conn: sqlite3.Connection, rows: Iterable[str]) -> None:
    """Commit each of ``rows`` in its own ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction."""
    for data in rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO bare (data) VALUES (?)", (data,))
        conn.execute("COMMIT")


def bare_replay(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """Read every stored event in order and fold each incident into a dict, a new dict per row."""
    incidents: dict[str, dict[str, Any]] = {}
    loads = json.loads
    for (data,) in conn.execute("SELECT data FROM events ORDER BY incident_id, version"):
        record = loads(data)
        key = record["incident_id"]
        incidents[key] = {**incidents.get(key, {}), **record}
    return incidents

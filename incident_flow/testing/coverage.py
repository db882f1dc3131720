"""What a test run exercised of a process: phases, transitions, guards and events.

A :class:`CoverageRecorder` is a plugin: register it with a flow (``IncidentFlow(plugins=[rec])``)
and it notes every guard the flow asks (seen passing, seen refusing) and every event committed
(the phases reached, the transitions taken, the kinds of event). The harness's drivers feed one
directly. :meth:`CoverageRecorder.coverage` compares what was seen with what the process can do,
and :meth:`Coverage.require_complete` fails a test that left anything out.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from incident_flow.errors import InvalidFieldError
from incident_flow.events import ActionTaken, Event, IncidentDeclared, PhaseChanged
from incident_flow.hookspecs import hookimpl
from incident_flow.model import Incident
from incident_flow.process import Process
from incident_flow.requirements import Context

__all__ = ["EFFECT_EVENTS", "Coverage", "CoverageRecorder", "GuardKey", "TransitionKey"]

TransitionKey = tuple[str, str, str]
"""``(source phase, action, destination phase)``; the destination is the source for an action
that keeps the phase."""

GuardKey = tuple[str, str]
"""``(action, guard name)``: a guard of an action, in whichever phase the action is taken."""

EFFECT_EVENTS: Mapping[str, str] = {
    "assign": "RoleAssigned",
    "acknowledge": "OwnershipAcknowledged",
    "page": "PageSent",
    "acknowledge_page": "PageAcknowledged",
    "add_follow_up": "FollowUpAdded",
    "record_rollback": "RollbackRecorded",
    "pause_release": "ReleasePaused",
    "resume_release": "ReleaseResumed",
    "post_status_update": "StatusUpdatePosted",
    "change_severity": "SeverityChanged",
    "mark_false_positive": "FalsePositiveMarked",
    "complete_item": "ChecklistItemCompleted",
    "waive_item": "ChecklistItemWaived",
}
"""The event each of the flow's own actions records (besides a phase change)."""

_ACTION_OF_EVENT = {event: action for action, event in EFFECT_EVENTS.items()}


def transitions_of(process: Process) -> list[TransitionKey]:
    """Every transition of the process's decision table, in table order."""
    return [(source, action, dest or source) for source, action, dest in process.edges()]


def guards_of(process: Process) -> list[GuardKey]:
    """Every (action, guard) of the process's decision table."""
    keys: dict[GuardKey, None] = {}
    for source, action, _ in process.edges():
        for guard in process.guards_of(action, source):
            keys[(action, guard.name)] = None
    return list(keys)


def events_of(process: Process) -> list[str]:
    """The kinds of event the process's actions can record."""
    kinds = {"IncidentDeclared"}
    for source, action, dest in process.edges():
        if action in EFFECT_EVENTS:
            kinds.add(EFFECT_EVENTS[action])
            if action == "pause_release":
                kinds.add("ReminderDue")  # the messenger is reminded to post, at once
        elif dest is None or dest == source:
            kinds.add("ActionTaken")
        if dest is not None and dest != source:
            kinds.add("PhaseChanged")
        if process.warnings_of(action, source):
            kinds.add("WarningRecorded")
    return sorted(kinds)


@functools.lru_cache(maxsize=64)
def _single_sources(process: Process) -> Mapping[str, str]:
    """Each action that keeps the phase in exactly one phase → that phase."""
    sources: dict[str, list[str]] = {}
    for source, action, dest in process.edges():
        if dest in (None, source):
            sources.setdefault(action, []).append(source)
    return {action: found[0] for action, found in sources.items() if len(found) == 1}


def _percent(seen: int, total: int) -> float:
    return 100.0 if total == 0 else 100.0 * seen / total


@attrs.frozen
class Coverage:
    """What was seen of a process, against all it has (see :class:`CoverageRecorder`)."""

    process: str
    phases: Mapping[str, bool]
    transitions: Mapping[TransitionKey, bool]
    guards_passed: Mapping[GuardKey, bool]
    guards_refused: Mapping[GuardKey, bool]
    events: Mapping[str, bool]

    def percentages(self) -> dict[str, float]:
        """Per kind (phases, transitions, guards passing, guards refusing, events): the share
        seen, in percent."""
        return {
            name: _percent(sum(table.values()), len(table))
            for name, table in self._tables().items()
        }

    def _tables(self) -> dict[str, Mapping[Any, bool]]:
        return {
            "phases": self.phases,
            "transitions": self.transitions,
            "guards passing": self.guards_passed,
            "guards refusing": self.guards_refused,
            "events": self.events,
        }

    def missing_by_kind(self) -> dict[str, list[str]]:
        """For each kind, one line per thing never seen."""
        return {
            "phases": [f"phase {phase}" for phase, seen in self.phases.items() if not seen],
            "transitions": [
                f"transition {source} --{action}--> {dest}"
                for (source, action, dest), seen in self.transitions.items()
                if not seen
            ],
            "guards passing": [
                f"guard {guard} of {action} never seen passing"
                for (action, guard), seen in self.guards_passed.items()
                if not seen
            ],
            "guards refusing": [
                f"guard {guard} of {action} never seen refusing"
                for (action, guard), seen in self.guards_refused.items()
                if not seen
            ],
            "events": [f"event {kind}" for kind, seen in self.events.items() if not seen],
        }

    def missing(self) -> list[str]:
        """One line per thing never seen, such as ``transition triaged --resolve--> resolved``."""
        return [line for lines in self.missing_by_kind().values() for line in lines]

    @property
    def complete(self) -> bool:
        """True when everything was seen."""
        return not self.missing()

    def require_complete(self, *, kinds: Iterable[str] | None = None) -> None:
        """Fail (``AssertionError``) unless coverage is 100 %, listing what was not seen.

        ``kinds`` limits the requirement to some of ``phases``, ``transitions``,
        ``guards passing``, ``guards refusing`` and ``events``.
        """
        by_kind = self.missing_by_kind()
        wanted = list(kinds) if kinds is not None else list(by_kind)
        unknown = [kind for kind in wanted if kind not in by_kind]
        if unknown:
            raise InvalidFieldError(
                f"unknown coverage kinds {unknown}; use {list(by_kind)}", field="kinds"
            )
        missing = [line for kind in wanted for line in by_kind[kind]]
        if missing:
            raise AssertionError(
                f"coverage of process {self.process!r} is incomplete:\n  " + "\n  ".join(missing)
            )

    def report(self) -> str:
        """A short table of the percentages, then what is missing."""
        lines = [f"coverage of process {self.process!r}"]
        for name, table in self._tables().items():
            seen = sum(table.values())
            lines.append(
                f"  {name:<16} {seen:>4}/{len(table):<4} {_percent(seen, len(table)):6.1f} %"
            )
        missing = self.missing()
        if missing:
            lines.append("  not seen:")
            lines += [f"    {line}" for line in missing]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


class CoverageRecorder:
    """Notes what a flow does to a process: register it as a plugin, or feed it directly.

    Thread-safe. ``incident_flow_name`` is ``incident-flow-coverage``.
    """

    incident_flow_name = "incident-flow-coverage"

    def __init__(self, process: Process) -> None:
        self.process = process
        self._lock = threading.Lock()
        self._phases: set[str] = set()
        self._transitions: set[TransitionKey] = set()
        self._passed: set[GuardKey] = set()
        self._refused: set[GuardKey] = set()
        self._events: set[str] = set()

    # -- as a plugin -----------------------------------------------------------------------------

    @hookimpl
    def incident_flow_requirements(
        self, incident: Incident, action: str, context: Context
    ) -> list[object]:
        """Ask each guard of ``action`` as the flow does, and note the answers. Adds nothing."""
        self.observe_guards(incident, context)
        return []

    @hookimpl
    def incident_flow_event(self, event: Event, incident: Incident) -> None:
        self.observe_events([event])
        action = _ACTION_OF_EVENT.get(event.type)
        if isinstance(event, ActionTaken):
            action = event.action
        if action is not None:
            # The incident right after the event: its phase is the one the action was taken in
            # (an event that comes with a phase change is recorded before the PhaseChanged).
            with self._lock:
                self._transitions.add((incident.phase, action, incident.phase))

    # -- fed directly ----------------------------------------------------------------------------

    def observe_guards(self, incident: Incident, context: Context) -> None:
        """Note whether each guard of ``context.action`` in the incident's phase is met."""
        for guard in self.process.guards_of(context.action, incident.phase):
            key = (context.action, guard.name)
            met = guard.is_met(incident, context)
            with self._lock:
                (self._passed if met else self._refused).add(key)

    def observe_events(self, events: Iterable[Event]) -> None:
        """Note the phases, transitions and kinds of ``events`` (committed, in order)."""
        with self._lock:
            for event in events:
                self._events.add(event.type)
                if isinstance(event, IncidentDeclared):
                    self._phases.add(event.phase)
                elif isinstance(event, PhaseChanged):
                    self._phases.add(event.dest)
                    self._transitions.add((event.source, event.action, event.dest))
                elif isinstance(event, ActionTaken):
                    self._keep_phase(event, event.action)
                elif event.type in _ACTION_OF_EVENT:
                    self._keep_phase(event, _ACTION_OF_EVENT[event.type])

    def observe_transition(self, key: TransitionKey) -> None:
        """Note a transition taken (drivers that know the phases call this)."""
        with self._lock:
            self._transitions.add(key)
            self._phases.add(key[2])

    def _keep_phase(self, event: Event, action: str) -> None:
        # Which phase it happened in is not on the event; a driver notes it with
        # observe_transition. Here only actions defined in a single phase can be placed.
        sources = _single_sources(self.process).get(action)
        if sources is not None:
            self._transitions.add((sources, action, sources))

    def transitions_seen(self) -> int:
        with self._lock:
            return len(self._transitions)

    def coverage(self) -> Coverage:
        """What was seen so far, against everything the process has."""
        process = self.process
        with self._lock:
            return Coverage(
                process=process.name,
                phases={p.name: p.name in self._phases for p in process.phases},
                transitions={k: k in self._transitions for k in transitions_of(process)},
                guards_passed={k: k in self._passed for k in guards_of(process)},
                guards_refused={k: k in self._refused for k in guards_of(process)},
                events={kind: kind in self._events for kind in events_of(process)},
            )

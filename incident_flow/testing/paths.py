"""Paths through a process: the shortest one to every transition, and simple paths up to a bound.

:func:`explore` walks a process breadth-first from each :class:`Declaration`, trying the
commands :func:`~incident_flow.testing.commands.candidates` proposes at each state, through a
real :class:`~incident_flow.IncidentFlow` on a memory store. Two incidents that the guards
cannot tell apart (same phase, roles filled, acknowledgement, status updates, rollbacks, paused
releases, checklist, severity…) are one state. The result holds the state graph, the shortest
path to each transition, the coverage the walk reached, and the guards that raised.

A :class:`Path` is a declaration and commands; :meth:`Path.replay` runs it on any flow, so each
is a test::

    @pytest.mark.parametrize("path", shortest_paths(MY_PROCESS), ids=str)
    def test_path(path, flow):
        path.replay(flow)
"""

from __future__ import annotations

import functools
import itertools
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import attrs

from incident_flow.clock import FakeClock
from incident_flow.errors import IncidentFlowError, TransitionRefused
from incident_flow.events import Event
from incident_flow.flow import IncidentFlow
from incident_flow.hookspecs import hookimpl
from incident_flow.model import Incident, Severity
from incident_flow.process import Process
from incident_flow.requirements import Context
from incident_flow.store.memory import MemoryStore
from incident_flow.testing.commands import PEOPLE, Command, Declaration, candidates
from incident_flow.testing.coverage import Coverage, CoverageRecorder, TransitionKey

__all__ = [
    "DECLARATIONS",
    "Exploration",
    "GuardFailure",
    "Path",
    "explore",
    "shape",
    "shortest_paths",
    "simple_paths",
]

DECLARATIONS: tuple[Declaration, ...] = (
    Declaration(Severity.CRITICAL, customer_impact=True),
    Declaration(Severity.MAJOR, customer_impact=False),
)
"""The incidents a walk starts from: a customer-impacting critical one, and a quiet major one."""

START = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)


@attrs.frozen
class Step:
    """One command of a path, and the transition it took."""

    command: Command
    transition: TransitionKey

    def __str__(self) -> str:
        source, _, dest = self.transition
        moved = f" ({source} -> {dest})" if source != dest else ""
        return f"{self.command}{moved}"


@attrs.frozen
class Path:
    """A declaration and the commands that follow it; every command is allowed in turn."""

    declaration: Declaration
    steps: tuple[Step, ...] = ()

    @property
    def commands(self) -> tuple[Command, ...]:
        return tuple(step.command for step in self.steps)

    @property
    def transitions(self) -> tuple[TransitionKey, ...]:
        return tuple(step.transition for step in self.steps)

    def then(self, step: Step) -> Path:
        return Path(self.declaration, (*self.steps, step))

    def replay(self, flow: IncidentFlow, *, incident_id: str | None = None) -> Incident:
        """Run the path on ``flow``; return the incident at its end.

        Raises:
            TransitionRefused: a step is refused (the flow's process is not the one the path
                was found in, or a plugin's policy refuses it).
        """
        incident = self.declaration.run(flow, incident_id)
        for step in self.steps:
            incident = step.command.run(flow, incident.id)
        return incident

    def __len__(self) -> int:
        return len(self.steps)

    def __str__(self) -> str:
        return " -> ".join([str(self.declaration), *(str(step) for step in self.steps)])


@attrs.frozen
class GuardFailure:
    """A guard that raised instead of answering, and the path that reached it."""

    guard: str
    action: str
    phase: str
    error: str
    path: Path

    def __str__(self) -> str:
        return (
            f"guard {self.guard} of {self.action} in {self.phase} raised {self.error} "
            f"after: {self.path}"
        )


_Shape = tuple[object, ...]


def shape(incident: Incident, process: Process | None = None) -> _Shape:
    """What the guards can tell about an incident: explored once per shape.

    Coarse on purpose: who holds a role, which release is paused, which checklist item is open
    and the severity are left out (commands are tried with arguments that fit the incident), so
    that the walk reaches the end of the process in a few thousand states. With ``process``,
    open pages count only in a phase where a guard asks about a page.
    """
    pages = bool(incident.open_pages)
    if pages and process is not None:
        pages = _asks_about_pages(process, incident.phase)
    return (
        incident.phase,
        incident.customer_impact,
        tuple(sorted(incident.roles)),
        incident.lead is not None and incident.lead == incident.messenger,
        incident.lead is not None and incident.lead_acknowledged_by == incident.lead,
        bool(incident.status_updates),
        bool(incident.rollbacks),
        bool(incident.paused_releases),
        pages,
        sum(item.is_open for item in incident.checklist if item.required),
        sum(item.is_open for item in incident.checklist if not item.required),
        incident.false_positive,
    )


@functools.lru_cache(maxsize=256)
def _asks_about_pages(process: Process, phase: str) -> bool:
    return any(
        "page" in guard.reads
        for action in process.actions_in(phase)
        for guard in (*process.guards_of(action, phase), *process.warnings_of(action, phase))
    )


@attrs.frozen
class Exploration:
    """The outcome of :func:`explore`."""

    process: Process
    shortest: Mapping[TransitionKey, Path]
    """For each transition taken, the shortest path that ends with it."""
    edges: Mapping[_Shape, tuple[tuple[Step, _Shape], ...]]
    """The state graph: from each state, the steps allowed and where they lead."""
    roots: Mapping[_Shape, Path]
    """The states where each declaration starts."""
    paths_to: Mapping[_Shape, Path]
    """The shortest path to each state."""
    coverage: Coverage
    guard_failures: tuple[GuardFailure, ...]
    truncated: bool
    """True when ``max_states`` stopped the walk before it saw every state."""

    def simple_paths(self, max_length: int, *, limit: int = 1000) -> list[Path]:
        """Paths from a declaration that visit no state twice, at most ``max_length`` steps,
        shortest first, at most ``limit`` of them."""
        found: list[Path] = []
        for root, start in self.roots.items():
            stack: list[tuple[_Shape, Path, frozenset[_Shape]]] = [(root, start, frozenset({root}))]
            while stack and len(found) < limit * 4:
                state, path, visited = stack.pop()
                if path.steps:
                    found.append(path)
                if len(path) >= max_length:
                    continue
                for step, target in reversed(self.edges.get(state, ())):
                    if target not in visited:
                        stack.append((target, path.then(step), visited | {target}))
        found.sort(key=lambda p: (len(p), str(p)))
        return found[:limit]


@attrs.define
class _Copy:
    incident_id: str
    length: int


class _GuardObserver:
    """Tells the recorder what each guard answered, as the flow decides."""

    incident_flow_name = "incident-flow-guard-observer"

    def __init__(self, recorder: CoverageRecorder) -> None:
        self.recorder = recorder

    @hookimpl
    def incident_flow_requirements(
        self, incident: Incident, action: str, context: Context
    ) -> list[object]:
        self.recorder.observe_guards(incident, context)
        return []


class _Walker:
    """One flow over a memory store, where each attempt runs on a fresh copy of an incident."""

    FRESH_STORE_EVERY = 500
    """Attempts after which the walker starts over on an empty store, to bound its memory."""

    def __init__(self, process: Process, recorder: CoverageRecorder) -> None:
        self.process = process
        self.recorder = recorder
        self.clock = FakeClock(START)
        self.flow = self._flow()
        self.copies = 0
        self.ids = (f"walk-{n}" for n in itertools.count(1))

    def _flow(self) -> IncidentFlow:
        return IncidentFlow(
            process=self.process,
            store=MemoryStore(),
            clock=self.clock,
            entry_points=False,
            plugins=[_GuardObserver(self.recorder)],
            snapshot_cache=64,
            deliver=False,
            reminders=False,
        )

    def declare(self, declaration: Declaration) -> tuple[Incident, list[Event]]:
        incident = declaration.run(self.flow, next(self.ids))
        events = self.flow.history(incident.id)
        self.recorder.observe_events(events)
        return incident, events

    def at(self, incident: Incident, events: Sequence[Event]) -> _Copy:
        """A fresh copy of the incident ``events`` make, to try commands on."""
        self.copies += 1
        if self.copies % self.FRESH_STORE_EVERY == 0:
            self.flow.shutdown()
            self.flow = self._flow()
        copy = next(self.ids)
        moved = [_with_incident_id(event, copy) for event in events]
        self.flow.store.append(copy, 0, moved, phase=incident.phase)
        # The copy's state is known: spare the flow loading and folding it again.
        self.flow._remember(_with_incident_id(incident, copy))
        return _Copy(copy, len(moved))

    def attempt(self, copy: _Copy, command: Command) -> tuple[Incident, list[Event]] | None:
        """Run ``command`` on the copy; None when refused (the copy is then still as it was,
        and may be tried again; after a success it may not).

        Raises:
            IncidentFlowError: the command's arguments are invalid for this process.
            Exception: whatever a guard raised.
        """
        try:
            after = command.run(self.flow, copy.incident_id)
        except TransitionRefused:
            return None
        new = self.flow.history(copy.incident_id)[copy.length :]
        self.recorder.observe_events(new)
        return after, new

    def close(self) -> None:
        self.flow.shutdown()


def _guard_failure(
    process: Process, incident: Incident, command: Command, path: Path, error: BaseException
) -> GuardFailure:
    """Name the guard that raised ``error`` by asking each guard of the command alone."""
    context = Context(command.action, command.by, incident.updated_at, command.kwargs)
    for guard in process.guards_of(command.action, incident.phase) + process.warnings_of(
        command.action, incident.phase
    ):
        try:
            guard.is_met(incident, context)
        except Exception as raised:
            return GuardFailure(
                guard.name,
                command.action,
                incident.phase,
                f"{type(raised).__name__}: {raised}",
                path,
            )
    return GuardFailure(
        "?", command.action, incident.phase, f"{type(error).__name__}: {error}", path
    )


def explore(
    process: Process,
    *,
    declarations: Sequence[Declaration] = DECLARATIONS,
    people: Sequence[str] = PEOPLE,
    arguments: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
    max_states: int = 20_000,
    exhaustive: bool = False,
) -> Exploration:
    """Walk ``process`` breadth-first from each declaration; see the module docstring.

    ``arguments`` gives argument choices for a team's own actions (see
    :func:`~incident_flow.testing.commands.candidates`). ``max_states`` bounds the walk. The
    walk stops once coverage is complete (every phase, transition and event seen, every guard
    seen passing and refusing) unless ``exhaustive``: the paths found are still the shortest,
    but the state graph (and so :meth:`Exploration.simple_paths`) is then partial.

    The walk is deterministic, so its result is kept: asking again about the same process
    with the same options (and no ``arguments``) costs nothing.
    """
    if arguments is None:
        return _explore_once(process, tuple(declarations), tuple(people), max_states, exhaustive)
    return _explore(process, declarations, people, arguments, max_states, exhaustive)


@functools.lru_cache(maxsize=16)
def _explore_once(
    process: Process,
    declarations: tuple[Declaration, ...],
    people: tuple[str, ...],
    max_states: int,
    exhaustive: bool,
) -> Exploration:
    return _explore(process, declarations, people, None, max_states, exhaustive)


def _explore(
    process: Process,
    declarations: Sequence[Declaration],
    people: Sequence[str],
    arguments: Mapping[str, Sequence[Mapping[str, str]]] | None,
    max_states: int,
    exhaustive: bool,
) -> Exploration:
    recorder = CoverageRecorder(process)
    walker = _Walker(process, recorder)
    shortest: dict[TransitionKey, Path] = {}
    edges: dict[_Shape, list[tuple[Step, _Shape]]] = {}
    roots: dict[_Shape, Path] = {}
    paths_to: dict[_Shape, Path] = {}
    failures: dict[tuple[str, str], GuardFailure] = {}
    frontier: deque[tuple[_Shape, Path, list[Event], Incident]] = deque()
    try:
        for declaration in declarations:
            incident, events = walker.declare(declaration)
            key = shape(incident, process)
            if key not in paths_to:
                roots[key] = paths_to[key] = Path(declaration)
                frontier.append((key, Path(declaration), events, incident))
        truncated = False
        for visited in itertools.count():
            if not frontier:
                break
            if not exhaustive and visited % 25 == 0 and recorder.coverage().complete:
                break
            state, path, events, incident = frontier.popleft()
            out = edges.setdefault(state, [])
            copy: _Copy | None = None
            for command in candidates(process, incident, people=people, arguments=arguments):
                if copy is None:
                    copy = walker.at(incident, events)
                try:
                    result = walker.attempt(copy, command)
                except IncidentFlowError:
                    continue  # arguments this process does not take (an unknown role, say)
                except Exception as error:
                    failure = _guard_failure(process, incident, command, path, error)
                    failures.setdefault((failure.guard, failure.action), failure)
                    continue
                if result is None:
                    continue
                copy = None  # the command changed it: the next one needs a fresh copy
                after, new = result
                transition = (incident.phase, command.action, after.phase)
                step = Step(command, transition)
                walker.recorder.observe_transition(transition)
                target = shape(after, process)
                out.append((step, target))
                longer = path.then(step)
                shortest.setdefault(transition, longer)
                if target not in paths_to:
                    if len(paths_to) >= max_states:
                        truncated = True
                        continue
                    paths_to[target] = longer
                    frontier.append((target, longer, [*events, *_moved(new, events)], after))
    finally:
        walker.close()
    return Exploration(
        process=process,
        shortest=shortest,
        edges={state: tuple(steps) for state, steps in edges.items()},
        roots=roots,
        paths_to=paths_to,
        coverage=recorder.coverage(),
        guard_failures=tuple(failures.values()),
        truncated=truncated,
    )


def _moved(new: Sequence[Event], events: Sequence[Event]) -> Iterator[Event]:
    """``new`` events under the incident id of ``events``."""
    incident_id = events[0].incident_id
    for event in new:
        yield _with_incident_id(event, incident_id)


_T = TypeVar("_T", Event, Incident)


def _with_incident_id(record: _T, incident_id: str) -> _T:
    """A copy of a frozen event or incident under another id (fields are already valid, so
    none of :func:`attrs.evolve`'s checks are needed; the walk makes hundreds of thousands)."""
    cls = type(record)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(field.name for field in attrs.fields(cls))
    copy = object.__new__(cls)
    for name in names:
        object.__setattr__(copy, name, getattr(record, name))
    object.__setattr__(copy, "id" if isinstance(record, Incident) else "incident_id", incident_id)
    return copy


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def shortest_paths(process: Process, **options: object) -> list[Path]:
    """The shortest path to each transition of ``process`` that can be taken, in table order
    (see :func:`explore` for ``options``)."""
    exploration = explore(process, **options)  # type: ignore[arg-type]
    order = {key: index for index, key in enumerate(exploration.coverage.transitions)}
    return [
        exploration.shortest[key]
        for key in sorted(exploration.shortest, key=lambda k: order.get(k, len(order)))
    ]


def simple_paths(
    process: Process, max_length: int = 8, *, limit: int = 200, **options: object
) -> list[Path]:
    """Paths that visit no state twice, up to ``max_length`` steps (see
    :meth:`Exploration.simple_paths`)."""
    return explore(process, **options).simple_paths(max_length, limit=limit)  # type: ignore[arg-type]

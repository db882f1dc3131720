"""A hypothesis state machine that drives any process through random commands.

:class:`ProcessMachine` declares incidents and runs commands on them — the ones
:func:`~incident_flow.testing.commands.candidates` proposes, by role holders and by others, so
many are refused — through a real :class:`~incident_flow.IncidentFlow` on a memory store, while
a fake clock moves. After every step it checks:

* every incident equals the fold of its events, and its versions run 1, 2, 3… with times that
  never go back;
* a refused command wrote nothing and names every unmet requirement with a reason;
* an allowed command had every guard of its transition met, as the flow asked them;
* every event survives a JSON round trip;
* the process's table of available actions agrees with deciding each action;
* each of the team's own ``rules`` holds on every incident;
* when time passes, every reminder that fell due is recorded once, and none before it is due.

Besides random commands, a rule follows the shortest path to a randomly chosen transition (see
:mod:`incident_flow.testing.paths`), so that runs reach every part of the process and a broken
guard deep in it is found, and shrunk to that path.

A team gets it for its own process in one line::

    TestTeamProcess = process_test_case(TEAM_PROCESS)

and adds its own rules (a function of an incident that returns a message when broken)::

    def resolved_after_a_status_update(incident):
        if incident.resolved_at and incident.customer_impact and not incident.status_updates:
            return "resolved without a status update"

    TestTeamProcess = process_test_case(TEAM_PROCESS, rules=[resolved_after_a_status_update])
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from incident_flow.clock import FakeClock
from incident_flow.errors import IncidentFlowError, TransitionRefused
from incident_flow.events import fold
from incident_flow.flow import IncidentFlow
from incident_flow.hookspecs import hookimpl
from incident_flow.model import Incident, Severity
from incident_flow.process import HANDBOOK, Process
from incident_flow.requirements import Context
from incident_flow.serialization import dumps_event, loads_event
from incident_flow.store.memory import MemoryStore
from incident_flow.testing.commands import PEOPLE, Command, Declaration, candidates
from incident_flow.testing.coverage import CoverageRecorder
from incident_flow.testing.paths import DECLARATIONS, START, Path, explore
from incident_flow.timers import due_reminders

__all__ = ["FAILING_FAST", "ProcessMachine", "Rule", "machine_for", "process_test_case"]

FAILING_FAST = tuple(phase for phase in Phase if phase is not Phase.explain)
"""Every hypothesis phase but *explain*, which traces every line of every step to say which ran
only in failing runs: minutes on a state machine, for little help here."""

Rule = Callable[[Incident], "str | None"]
"""A team's own invariant: given an incident, a message when it is broken, else None."""


class _Asked:
    """Remembers the context of each decision the flow makes, per incident, and feeds the
    coverage recorder."""

    incident_flow_name = "incident-flow-harness"

    def __init__(self, recorder: CoverageRecorder) -> None:
        self.recorder = recorder
        self.last: dict[str, tuple[Incident, Context]] = {}
        self._lock = threading.Lock()

    @hookimpl
    def incident_flow_requirements(
        self, incident: Incident, action: str, context: Context
    ) -> list[object]:
        with self._lock:
            self.last[incident.id] = (incident, context)
        self.recorder.observe_guards(incident, context)
        return []


class ProcessMachine(RuleBasedStateMachine):
    """Random commands over several incidents of :attr:`process`; see the module docstring.

    Subclass it and set the class attributes, or use :func:`process_test_case`.
    """

    process: ClassVar[Process] = HANDBOOK
    people: ClassVar[Sequence[str]] = PEOPLE
    arguments: ClassVar[Mapping[str, Sequence[Mapping[str, str]]] | None] = None
    team_rules: ClassVar[Sequence[Rule]] = ()
    """The team's own invariants (see :data:`Rule`)."""
    plugins: ClassVar[Sequence[Callable[[], object]]] = ()
    """Factories of plugins registered on each run's flow (a plugin under test, say)."""
    recorder: ClassVar[CoverageRecorder | None] = None
    """Collects coverage across every run of the machine (set by :func:`process_test_case`)."""

    incidents = Bundle("incidents")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(START)
        recorder = type(self).recorder or CoverageRecorder(self.process)
        self.asked = _Asked(recorder)
        self.flow = IncidentFlow(
            process=self.process,
            store=MemoryStore(),
            clock=self.clock,
            plugins=[self.asked, *(make() for make in self.plugins)],
            entry_points=False,
            reminders=False,
        )
        self.known: dict[str, Incident] = {}
        self.ids = (f"inc-{n}" for n in itertools.count(1))

    def teardown(self) -> None:
        self.flow.shutdown()

    # -- rules -----------------------------------------------------------------------------------

    @rule(
        target=incidents,
        severity=st.sampled_from(list(Severity)),
        customer_impact=st.booleans(),
        data=st.data(),
    )
    def declare(self, severity: Severity, customer_impact: bool, data: st.DataObject) -> str:
        by = data.draw(st.sampled_from(self.people), label="by")
        incident = Declaration(severity, customer_impact, by).run(self.flow, next(self.ids))
        self.asked.recorder.observe_events(self.flow.history(incident.id))
        self.known[incident.id] = incident
        return incident.id

    @rule(target=incidents, data=st.data())
    def follow(self, data: st.DataObject) -> str:
        """Declare an incident and take it along the shortest path to one of the process's
        transitions (found by :func:`~incident_flow.testing.paths.explore` from each of its
        declarations), checking every step: random commands alone rarely get deep into a
        process."""
        declaration = data.draw(st.sampled_from(DECLARATIONS), label="declaration")
        shortest = type(self)._shortest(declaration)
        transition = data.draw(st.sampled_from(sorted(shortest)), label="transition")
        path = shortest[transition]
        incident = path.declaration.run(self.flow, next(self.ids))
        self.asked.recorder.observe_events(self.flow.history(incident.id))
        self.known[incident.id] = incident
        for command in path.commands:
            self.run(incident.id, command)
        return incident.id

    follow_states: ClassVar[int] = 1500
    """How many states the walk behind :meth:`follow` may visit per declaration."""

    _paths: ClassVar[dict[tuple[type, Declaration], Mapping[Any, Path]]] = {}

    @classmethod
    def _shortest(cls, declaration: Declaration) -> Mapping[Any, Path]:
        """The shortest path to each transition from ``declaration``, walked once per class."""
        key = (cls, declaration)
        if key not in ProcessMachine._paths:
            exploration = explore(
                cls.process,
                declarations=(declaration,),
                people=cls.people,
                arguments=cls.arguments,
                max_states=cls.follow_states,
            )
            ProcessMachine._paths[key] = exploration.shortest
        return ProcessMachine._paths[key]

    @rule(minutes=st.integers(min_value=0, max_value=90))
    def time_passes(self, minutes: int) -> None:
        """The clock moves and the reminders that fell due are recorded: each once, none
        early, and none left behind."""
        self.clock.advance(minutes=minutes)
        now = self.clock.now()
        fired = self.flow.fire_reminders()
        for event in fired:
            assert event.due_at <= event.at, f"{event.key} recorded before it fell due"
        for incident_id in self.known:
            incident = self.flow.get(incident_id)
            self.known[incident_id] = incident
            keys = [reminder.key for reminder in incident.reminders]
            assert len(keys) == len(set(keys)), f"a reminder of {incident_id} fired twice"
            left = due_reminders(incident, self.process, now)
            assert not left, f"{incident_id}: {left[0].key} fell due but was not recorded"
        assert self.flow.fire_reminders() == [], "reminders fired twice at one moment"

    @rule(incident_id=incidents, data=st.data())
    def act(self, incident_id: str, data: st.DataObject) -> None:
        """One command, allowed or not."""
        incident = self.flow.get(incident_id)
        choices = list(
            candidates(self.process, incident, people=self.people, arguments=self.arguments)
        )
        if not choices:
            return
        self.run(incident_id, self._pick(incident, choices, data))

    @rule(incident_id=incidents, data=st.data())
    def advance(self, incident_id: str, data: st.DataObject) -> None:
        """Several allowed commands in a row, so runs reach the later phases too."""
        for _ in range(data.draw(st.integers(min_value=1, max_value=20), label="steps")):
            incident = self.flow.get(incident_id)
            allowed = [
                command
                for command in candidates(
                    self.process, incident, people=self.people, arguments=self.arguments
                )
                if self._allowed(incident, command)
            ]
            if not allowed:
                return
            self.run(incident_id, self._pick(incident, allowed, data))

    def _pick(self, incident: Incident, commands: list[Command], data: st.DataObject) -> Command:
        """An action first, then one of its commands (a uniform pick among commands would
        mostly reassign roles). Actions that move the incident on are weighted up and those that
        end it (into a terminal phase) down, so that runs reach the later phases."""
        by_action: dict[str, list[Command]] = {}
        for command in commands:
            by_action.setdefault(command.action, []).append(command)
        weighted = [
            action for action in by_action for _ in range(self._weight(action, incident.phase))
        ]
        action = data.draw(st.sampled_from(weighted), label="action")
        return data.draw(st.sampled_from(by_action[action]), label="command")

    def _weight(self, action: str, phase: str) -> int:
        dest = self.process.dest_of(action, phase)
        if dest is None or dest == phase:
            return 2
        return 1 if self.process.is_terminal(dest) else 6

    def _allowed(self, incident: Incident, command: Command) -> bool:
        context = Context(
            command.action, command.by, self.clock.now(), command.kwargs, command=True
        )
        try:
            return self.process.decide(incident, context).allowed
        except Exception:
            return True  # let run() meet the error and report it

    def run(self, incident_id: str, command: Command) -> None:
        """Run ``command`` and check what a refusal or a success must look like."""
        history = self.flow.history(incident_id)
        before = fold(history)
        assert before is not None
        try:
            after = command.run(self.flow, incident_id)
        except TransitionRefused as refused:
            unmet = refused.unmet
            assert unmet, f"{command} was refused without a reason"
            for requirement in unmet:
                assert requirement.name, f"{command}: a requirement without a name"
                assert requirement.reason, f"{command}: {requirement.name} without a reason"
            assert self.flow.history(incident_id) == history, f"refused {command} wrote events"
            return
        except IncidentFlowError:
            assert self.flow.history(incident_id) == history, f"invalid {command} wrote events"
            return
        except Exception as error:
            raise AssertionError(self._crash(before, command, error)) from error
        new = self.flow.history(incident_id)[len(history) :]
        assert new, f"{command} was allowed but wrote nothing"
        self.asked.recorder.observe_events(new)
        self.asked.recorder.observe_transition((before.phase, command.action, after.phase))
        asked_about, context = self.asked.last[incident_id]
        assert asked_about.version == before.version
        for guard in self.process.guards_of(command.action, before.phase):
            assert guard.is_met(before, context), (
                f"{command} was allowed in {before.phase} although guard {guard.name} is not met"
            )
        self.known[incident_id] = after

    def _crash(self, incident: Incident, command: Command, error: Exception) -> str:
        """Say which guard raised (asking each alone), or that the command did."""
        actions = (
            [command.action]
            if command.action in self.process.actions_in(incident.phase)
            else list(self.process.actions_in(incident.phase))
        )
        for action in actions:
            context = Context(action, command.by, self.clock.now(), command.kwargs)
            guards = self.process.guards_of(action, incident.phase)
            for guard in guards + self.process.warnings_of(action, incident.phase):
                try:
                    guard.is_met(incident, context)
                except Exception as raised:
                    return (
                        f"guard {guard.name} of {action} in {incident.phase} raised "
                        f"{type(raised).__name__}: {raised} (while running {command})"
                    )
        return f"{command} raised {type(error).__name__}: {error} in {incident.phase}"

    # -- invariants ------------------------------------------------------------------------------

    @invariant()
    def incidents_are_the_fold_of_their_events(self) -> None:
        for incident_id, known in self.known.items():
            events = self.flow.history(incident_id)
            assert [event.version for event in events] == list(range(1, len(events) + 1))
            assert all(a.at <= b.at for a, b in itertools.pairwise(events)), "time went back"
            assert fold(events) == known == self.flow.get(incident_id)

    @invariant()
    def events_survive_a_json_round_trip(self) -> None:
        for incident_id in list(self.known)[-2:]:
            for event in self.flow.history(incident_id):
                assert loads_event(dumps_event(event)) == event

    @invariant()
    def available_actions_agree_with_deciding(self) -> None:
        for incident in list(self.known.values())[-2:]:
            now = self.clock.now()
            for actor in {incident.lead or self.people[0], self.people[-1]}:
                try:
                    expected = [
                        action
                        for action in self.process.actions_in(incident.phase)
                        if self.process.decide(incident, Context(action, actor, now)).allowed
                    ]
                    available = self.process.available_actions(incident, actor, now)
                except Exception as error:
                    raise AssertionError(
                        self._crash(incident, Command("available_actions", actor), error)
                    ) from error
                assert available == expected

    @invariant()
    def the_teams_rules_hold(self) -> None:
        for incident in self.known.values():
            for check in self.team_rules:
                message = check(incident)
                assert message is None, f"{getattr(check, '__name__', check)}: {message}"


def machine_for(
    process: Process,
    *,
    rules: Iterable[Rule] = (),
    people: Sequence[str] = PEOPLE,
    arguments: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
    plugins: Sequence[Callable[[], object]] = (),
    recorder: CoverageRecorder | None = None,
) -> type[ProcessMachine]:
    """A :class:`ProcessMachine` subclass for ``process`` (for
    ``hypothesis.stateful.run_state_machine_as_test``, or to subclass with more rules)."""
    name = "".join(part.title() for part in process.name.replace("-", "_").split("_"))
    return type(
        f"{name or 'Process'}Machine",
        (ProcessMachine,),
        {
            "process": process,
            "team_rules": tuple(rules),
            "people": tuple(people),
            "arguments": arguments,
            "plugins": tuple(plugins),
            "recorder": recorder,
        },
    )


def process_test_case(
    process: Process,
    *,
    rules: Iterable[Rule] = (),
    people: Sequence[str] = PEOPLE,
    arguments: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
    plugins: Sequence[Callable[[], object]] = (),
    max_examples: int = 60,
    steps: int = 40,
    recorder: CoverageRecorder | None = None,
) -> Any:
    """A ``unittest.TestCase`` class (pytest collects it) running :class:`ProcessMachine` over
    ``process``; ``recorder``, when given, collects the coverage of every run.

    ``max_examples`` runs of at most ``steps`` steps each; hypothesis shrinks a failure to the
    shortest sequence of commands that shows it, and prints it.
    """
    machine = machine_for(
        process, rules=rules, people=people, arguments=arguments, plugins=plugins, recorder=recorder
    )
    case: Any = machine.TestCase
    case.settings = settings(
        max_examples=max_examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        phases=FAILING_FAST,
    )
    return case

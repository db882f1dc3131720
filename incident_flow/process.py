"""The incident lifecycle as data: phases, transitions, guards, roles and the checklist.

A :class:`Process` is defined once and shared by every incident. Its transitions are held by a
single model-free :class:`transitions.Machine` (never one machine per incident); decisions read a
table compiled from that machine, so the machine stays the one definition while a decision costs
a dictionary lookup and the guards' own checks. :data:`HANDBOOK` is the handbook's process; a team
derives its own with :meth:`Process.evolve` and the ``with_*``/``without_*`` helpers, and a
malformed process is refused with :class:`~incident_flow.errors.ProcessDefinitionError` when it is
built.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
from transitions import Machine

from incident_flow.comms import HANDBOOK_COMMS, CommsPolicy
from incident_flow.errors import ProcessDefinitionError, UnknownPhaseError, UnknownRoleError
from incident_flow.model import Incident, Phase, Role
from incident_flow.requirements import HANDBOOK_GUARDS, Context, Guard, Requirement
from incident_flow.timers import ReminderRule, TimerPolicy

__all__ = [
    "HANDBOOK",
    "ChecklistItemSpec",
    "PhaseSpec",
    "Process",
    "Transition",
]


def _names(value: Iterable[str] | str) -> tuple[str, ...]:
    # Plain strings, never enum members: transitions would name an Enum state by its member name.
    return (str(value),) if isinstance(value, str) else tuple(str(name) for name in value)


def _optional_name(value: str | None) -> str | None:
    return None if value is None else str(value)


@attrs.frozen
class PhaseSpec:
    """A phase of a process.

    ``active`` phases are those of an unresolved incident: leaving them for a phase that is not
    active sets the incident's ``resolved_at``. A ``terminal`` phase is the end of the road: no
    transition leaves it.
    """

    name: str = attrs.field(converter=str)
    title: str = ""
    active: bool = False
    terminal: bool = False


@attrs.frozen
class Transition:
    """An action allowed in ``sources``; ``dest`` None keeps the phase (as ``assign`` does).

    ``guards`` must all be met or the action is refused; ``warnings`` are guards whose failure is
    only recorded on the incident as a warning.
    """

    action: str
    sources: tuple[str, ...] = attrs.field(converter=_names)
    dest: str | None = attrs.field(default=None, converter=_optional_name)
    guards: tuple[str, ...] = attrs.field(default=(), converter=_names)
    warnings: tuple[str, ...] = attrs.field(default=(), converter=_names)


@attrs.frozen
class ChecklistItemSpec:
    """An item of the post-mortem checklist."""

    name: str
    title: str
    required: bool = True
    handbook_ref: str = "Post-mortem"


@attrs.frozen
class Decision:
    """What a process decided about an action in a phase (see :meth:`Process.decide`)."""

    action: str
    source: str
    dest: str | None
    """The phase after the action, or None when the action does not change the phase."""
    unmet: tuple[Requirement, ...]
    """Requirements that refuse the action; empty when it is allowed."""
    warnings: tuple[Requirement, ...]
    """Advice that does not refuse the action but is recorded on the incident."""

    @property
    def allowed(self) -> bool:
        """True when nothing refuses the action."""
        return not self.unmet


@attrs.frozen
class _Compiled:
    dest: str | None
    guards: tuple[Guard, ...]
    warnings: tuple[Guard, ...]


def _tuple_of_phases(value: Iterable[PhaseSpec]) -> tuple[PhaseSpec, ...]:
    return tuple(value)


def _tuple_of_transitions(value: Iterable[Transition]) -> tuple[Transition, ...]:
    return tuple(value)


def _tuple_of_items(value: Iterable[ChecklistItemSpec]) -> tuple[ChecklistItemSpec, ...]:
    return tuple(value)


@attrs.frozen(eq=False)
class Process:
    """An incident process. Build once, share across all incidents and threads.

    Raises:
        ProcessDefinitionError: on any inconsistency, naming it.
    """

    name: str
    phases: tuple[PhaseSpec, ...] = attrs.field(converter=_tuple_of_phases)
    initial: str = attrs.field(converter=str)
    transitions: tuple[Transition, ...] = attrs.field(converter=_tuple_of_transitions)
    guards: Mapping[str, Guard] = attrs.field(factory=lambda: dict(HANDBOOK_GUARDS))
    roles: Mapping[str, str] = attrs.field(
        factory=lambda: {
            Role.REPORTER: "Reporter",
            Role.LEAD: "Incident Lead",
            Role.MESSENGER: "Messenger",
            Role.RESOLUTION_OWNER: "Resolution owner",
        }
    )
    """Role name → the title people use for it (rename a role by changing its title)."""
    checklist: tuple[ChecklistItemSpec, ...] = attrs.field(default=(), converter=_tuple_of_items)
    status_phases: tuple[str, ...] = attrs.field(
        default=("identified", "investigating", "resolved"), converter=_names
    )
    """The phases a status-page post may carry."""
    comms: CommsPolicy = HANDBOOK_COMMS
    """The rules status-page posts are checked against, which of them refuse a post, the
    support address, release-pause groups and announcement days (see :mod:`incident_flow.comms`)."""
    timers: TimerPolicy = attrs.field(factory=TimerPolicy)
    """The reminders and their intervals (see :mod:`incident_flow.timers`)."""

    _machine: Any = attrs.field(init=False, repr=False)
    _table: dict[tuple[str, str], _Compiled] = attrs.field(init=False, repr=False)
    _by_phase: dict[str, tuple[str, ...]] = attrs.field(init=False, repr=False)
    _phase_index: dict[str, PhaseSpec] = attrs.field(init=False, repr=False)
    _availability: dict[str, tuple[tuple[str, tuple[Guard, ...]], ...]] = attrs.field(
        init=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        index = self._validate()
        machine = Machine(
            model=None,
            states=[phase.name for phase in self.phases],
            initial=self.initial,
            auto_transitions=False,
            send_event=True,
        )
        for transition in self.transitions:
            machine.add_transition(
                trigger=transition.action,
                source=list(transition.sources),
                dest=transition.dest,
                conditions=list(transition.guards),
            )
        object.__setattr__(self, "_machine", machine)
        object.__setattr__(self, "_phase_index", index)
        table, by_phase = self._compile(machine)
        object.__setattr__(self, "_table", table)
        object.__setattr__(self, "_by_phase", by_phase)
        # For "what can be done now?": per phase, each action with only the guards that can
        # refuse without the command's arguments (the others are asked with them, later).
        availability = {
            phase: tuple(
                (
                    action,
                    tuple(
                        guard
                        for guard in table[(action, phase)].guards
                        if not guard.reads or guard.possible is not None
                    ),
                )
                for action in actions
            )
            for phase, actions in by_phase.items()
        }
        object.__setattr__(self, "_availability", availability)

    # -- building -------------------------------------------------------------------------

    def _validate(self) -> dict[str, PhaseSpec]:
        def fail(message: str) -> ProcessDefinitionError:
            return ProcessDefinitionError(f"process {self.name!r}: {message}")

        index: dict[str, PhaseSpec] = {}
        for phase in self.phases:
            if not phase.name or not phase.name.isidentifier():
                raise fail(f"phase name {phase.name!r} must be a non-empty identifier")
            if phase.name in index:
                raise fail(f"phase {phase.name!r} is defined twice")
            if phase.active and phase.terminal:
                raise fail(f"phase {phase.name!r} cannot be both active and terminal")
            index[phase.name] = phase
        if self.initial not in index:
            raise fail(f"initial phase {self.initial!r} is not one of the phases")
        if index[self.initial].terminal:
            raise fail(f"initial phase {self.initial!r} is terminal")
        seen: set[tuple[str, str]] = set()
        for transition in self.transitions:
            action = transition.action
            if not action.isidentifier():
                raise fail(f"action name {action!r} must be an identifier")
            if not transition.sources:
                raise fail(f"action {action!r} has no source phase")
            for phase_name in (*transition.sources, transition.dest):
                if phase_name is not None and phase_name not in index:
                    raise fail(f"action {action!r} refers to unknown phase {phase_name!r}")
            for source in transition.sources:
                if index[source].terminal:
                    raise fail(
                        f"action {action!r} leaves terminal phase {source!r}; "
                        "nothing may leave a terminal phase"
                    )
                if (action, source) in seen:
                    raise fail(f"action {action!r} is defined twice from phase {source!r}")
                seen.add((action, source))
            for guard_name in (*transition.guards, *transition.warnings):
                if guard_name not in self.guards:
                    raise fail(
                        f"action {action!r} uses guard {guard_name!r}, which does not exist; "
                        f"known guards: {', '.join(sorted(self.guards))}"
                    )
        for name, guard in self.guards.items():
            if guard.name != name:
                raise fail(f"guard registered as {name!r} is named {guard.name!r}")
        reachable = self._reachable(index)
        unreachable = [phase.name for phase in self.phases if phase.name not in reachable]
        if unreachable:
            raise fail(f"phase(s) {', '.join(unreachable)} cannot be reached from {self.initial!r}")
        for phase in self.phases:
            leaves = any(
                phase.name in t.sources and t.dest not in (None, phase.name)
                for t in self.transitions
            )
            if not phase.terminal and not leaves:
                raise fail(f"phase {phase.name!r} is not terminal but no action leaves it")
        items = [item.name for item in self.checklist]
        if len(items) != len(set(items)):
            raise fail("a checklist item name is used twice")
        if not self.status_phases:
            raise fail("at least one status-page phase is needed")
        for alias, target in self.comms.phase_aliases.items():
            if target not in self.status_phases:
                raise fail(
                    f"status phase alias {alias!r} maps to {target!r}, which is not one of the "
                    f"status phases ({', '.join(self.status_phases)})"
                )
        return index

    def _reachable(self, index: Mapping[str, PhaseSpec]) -> set[str]:
        reachable = {self.initial}
        queue = deque([self.initial])
        while queue:
            phase = queue.popleft()
            for transition in self.transitions:
                dest = transition.dest
                if phase in transition.sources and dest is not None and dest not in reachable:
                    reachable.add(dest)
                    queue.append(dest)
        return reachable

    def _compile(
        self, machine: Any
    ) -> tuple[dict[tuple[str, str], _Compiled], dict[str, tuple[str, ...]]]:
        """Read the decision table back out of the machine: the machine is the definition."""
        warnings = {(t.action, s): t.warnings for t in self.transitions for s in t.sources}
        table: dict[tuple[str, str], _Compiled] = {}
        by_phase: dict[str, list[str]] = {phase.name: [] for phase in self.phases}
        for action, event in machine.events.items():
            for source, candidates in event.transitions.items():
                for candidate in candidates:
                    table[(action, source)] = _Compiled(
                        dest=candidate.dest,
                        guards=tuple(self.guards[c.func] for c in candidate.conditions),
                        warnings=tuple(self.guards[n] for n in warnings[(action, source)]),
                    )
                    by_phase[source].append(action)
        return table, {phase: tuple(actions) for phase, actions in by_phase.items()}

    # -- reading --------------------------------------------------------------------------

    @property
    def machine(self) -> Any:
        """The :class:`transitions.Machine` that defines this process (model-free)."""
        return self._machine

    @property
    def actions(self) -> tuple[str, ...]:
        """Every action of the process, in definition order, each once."""
        return tuple(dict.fromkeys(t.action for t in self.transitions))

    def phase(self, name: str) -> PhaseSpec:
        """The phase called ``name``.

        Raises:
            UnknownPhaseError: no such phase.
        """
        try:
            return self._phase_index[name]
        except KeyError:
            raise UnknownPhaseError(
                f"unknown phase {name!r}; phases: {', '.join(self._phase_index)}", field="phase"
            ) from None

    def is_active(self, phase: str) -> bool:
        """True when an incident in ``phase`` is not yet resolved."""
        return self.phase(phase).active

    def is_terminal(self, phase: str) -> bool:
        """True when nothing can happen to an incident in ``phase`` any more."""
        return self.phase(phase).terminal

    def check_role(self, role: str) -> str:
        """Return ``role`` if the process has it.

        Raises:
            UnknownRoleError: the process has no such role.
        """
        if role not in self.roles:
            raise UnknownRoleError(
                f"unknown role {role!r}; roles: {', '.join(self.roles)}", field="role"
            )
        return sys.intern(str(role))  # one string per role name, however many incidents

    def check_status_phase(self, phase: str) -> str:
        """Return the status phase ``phase`` stands for: one of :attr:`status_phases` (any
        case), or the phase an alias of :attr:`CommsPolicy.phase_aliases
        <incident_flow.comms.CommsPolicy.phase_aliases>` maps it to.

        Raises:
            UnknownPhaseError: it is neither a status phase nor mapped to one.
        """
        return self.comms.map_phase(phase, self.status_phases)

    def edges(self) -> Iterator[tuple[str, str, str | None]]:
        """Yield ``(source, action, dest)`` for every entry of the decision table."""
        for (action, source), compiled in self._table.items():
            yield source, action, compiled.dest

    def to_mermaid(self) -> str:
        """The process as a Mermaid state diagram, read from the decision table.

        Phase changes are arrows labelled with their action and guards; actions that keep the
        phase are listed in a note on each phase.
        """
        lines = ["stateDiagram-v2", f"    [*] --> {self.initial}"]
        for phase in self.phases:
            title = phase.title or phase.name
            lines.append(f'    state "{title}" as {phase.name}')
        for (action, source), compiled in self._table.items():
            if compiled.dest is not None and compiled.dest != source:
                label = action
                if compiled.guards:
                    label += " [" + ", ".join(g.name for g in compiled.guards) + "]"
                lines.append(f"    {source} --> {compiled.dest}: {label}")
        for phase in self.phases:
            if phase.terminal:
                lines.append(f"    {phase.name} --> [*]")
        for phase in self.phases:
            staying = [
                action
                for action in self.actions_in(phase.name)
                if self._table[(action, phase.name)].dest in (None, phase.name)
            ]
            if staying:
                lines.append(f"    note right of {phase.name}: {', '.join(staying)}")
        return "\n".join(lines) + "\n"

    def guards_of(self, action: str, phase: str) -> tuple[Guard, ...]:
        """The guards that must all be met for ``action`` in ``phase`` (empty when the action
        is not defined there)."""
        compiled = self._table.get((action, phase))
        return compiled.guards if compiled is not None else ()

    def warnings_of(self, action: str, phase: str) -> tuple[Guard, ...]:
        """The guards whose failure only warns, for ``action`` in ``phase``."""
        compiled = self._table.get((action, phase))
        return compiled.warnings if compiled is not None else ()

    def dest_of(self, action: str, phase: str) -> str | None:
        """The phase ``action`` leads to from ``phase`` (None: the phase stays, or the action is
        not defined there; see :meth:`actions_in`)."""
        compiled = self._table.get((action, phase))
        return compiled.dest if compiled is not None else None

    def actions_in(self, phase: str) -> tuple[str, ...]:
        """The actions defined from ``phase``, whether or not their guards are met now."""
        return self._by_phase.get(phase, ())

    def available_actions(self, incident: Incident, actor: str, at: datetime) -> list[str]:
        """The actions whose guards are met now, asked without any command arguments.

        Gives the same answer as :meth:`decide` for each action of the phase (a test holds
        them to it), from a table that skips the guards no argument-less question can fail.
        """
        available = []
        for action, guards in self._availability.get(incident.phase, ()):
            if guards:
                context = Context(action, actor, at)
                if not all(guard.is_met(incident, context) for guard in guards):
                    continue
            available.append(action)
        return available

    def decide(self, incident: Incident, context: Context) -> Decision:
        """Decide ``context.action`` for ``incident``: every unmet guard and every warning.

        An action that is not defined from the incident's phase is refused with one requirement
        named ``phase``, listing where the action applies.
        """
        action = context.action
        compiled = self._table.get((action, incident.phase))
        if compiled is None:
            return Decision(
                action, incident.phase, None, (self._phase_requirement(action, incident.phase),), ()
            )
        unmet: tuple[Requirement, ...] = ()
        warned: tuple[Requirement, ...] = ()
        for guard in compiled.guards:
            if not guard.is_met(incident, context):
                unmet += tuple(guard.unmet(incident, context))
        for guard in compiled.warnings:
            if not guard.is_met(incident, context):
                warned += tuple(guard.unmet(incident, context))
        return Decision(action, incident.phase, compiled.dest, unmet, warned)

    def _phase_requirement(self, action: str, phase: str) -> Requirement:
        sources = [source for (name, source) in self._table if name == action]
        if not sources:
            reason = f"{action!r} is not an action of the process {self.name!r}"
        else:
            reason = (
                f"{action!r} applies only in phase {' or '.join(sources)}; the incident is {phase}"
            )
            allowed = self.actions_in(phase)
            if allowed:
                reason += f" (possible now: {', '.join(allowed)})"
        return Requirement("phase", reason, "Process")

    # -- deriving -------------------------------------------------------------------------

    def evolve(self, **changes: Any) -> Process:
        """Return a copy with ``changes`` (any constructor argument), validated anew."""
        return attrs.evolve(self, **changes)

    def with_phase(self, phase: PhaseSpec, *transitions: Transition) -> Process:
        """Add ``phase`` and the ``transitions`` that lead into and out of it."""
        return self.evolve(
            phases=(*self.phases, phase), transitions=(*self.transitions, *transitions)
        )

    def with_transition(self, transition: Transition) -> Process:
        """Add one transition."""
        return self.evolve(transitions=(*self.transitions, transition))

    def with_guard(self, action: str, guard: Guard | str, *, warning: bool = False) -> Process:
        """Require ``guard`` (a :class:`Guard`, or the name of a known one) for ``action``."""
        guards = dict(self.guards)
        if isinstance(guard, Guard):
            guards[guard.name] = guard
            name = guard.name
        else:
            name = guard
        self._require_action(action)
        transitions = []
        for transition in self.transitions:
            if transition.action == action:
                field = "warnings" if warning else "guards"
                current: tuple[str, ...] = getattr(transition, field)
                if name not in current:
                    changes: dict[str, Any] = {field: (*current, name)}
                    transition = attrs.evolve(transition, **changes)
            transitions.append(transition)
        return self.evolve(guards=guards, transitions=transitions)

    def without_guard(self, action: str, name: str) -> Process:
        """Stop requiring (or warning about) the guard ``name`` for ``action``."""
        self._require_action(action)
        transitions = [
            attrs.evolve(
                t,
                guards=tuple(g for g in t.guards if g != name),
                warnings=tuple(g for g in t.warnings if g != name),
            )
            if t.action == action
            else t
            for t in self.transitions
        ]
        return self.evolve(transitions=transitions)

    def with_roles(self, **titles: str) -> Process:
        """Rename or add roles: ``with_roles(lead="Incident Commander", scribe="Scribe")``."""
        return self.evolve(roles={**self.roles, **titles})

    def with_checklist(self, items: Sequence[ChecklistItemSpec]) -> Process:
        """Replace the post-mortem checklist."""
        return self.evolve(checklist=tuple(items))

    def with_comms(self, comms: CommsPolicy) -> Process:
        """Replace the communication rules (see :class:`~incident_flow.comms.CommsPolicy`)."""
        return self.evolve(comms=comms)

    def with_timers(self, **changes: Any) -> Process:
        """Change reminder intervals: ``with_timers(status_update_every=timedelta(minutes=15))``."""
        return self.evolve(timers=attrs.evolve(self.timers, **changes))

    def with_reminder(self, rule: ReminderRule) -> Process:
        """Add a team's own reminder rule (see :class:`~incident_flow.timers.ReminderRule`)."""
        return self.evolve(timers=self.timers.with_rule(rule))

    def _require_action(self, action: str) -> None:
        if action not in self.actions:
            raise ProcessDefinitionError(
                f"process {self.name!r} has no action {action!r}; "
                f"actions: {', '.join(self.actions)}"
            )


_OPEN = (Phase.IDENTIFIED, Phase.TRIAGED, Phase.MITIGATING)
_UNTIL_POSTMORTEM = (*_OPEN, Phase.RESOLVED, Phase.POSTMORTEM)
_AFTER_RESOLUTION = (Phase.RESOLVED, Phase.POSTMORTEM)

HANDBOOK = Process(
    name="handbook",
    phases=[
        PhaseSpec(Phase.IDENTIFIED, "Identified", active=True),
        PhaseSpec(Phase.TRIAGED, "Triaged", active=True),
        PhaseSpec(Phase.MITIGATING, "Mitigating", active=True),
        PhaseSpec(Phase.RESOLVED, "Resolved"),
        PhaseSpec(Phase.POSTMORTEM, "Post-mortem"),
        PhaseSpec(Phase.CLOSED, "Closed", terminal=True),
        PhaseSpec(Phase.FALSE_POSITIVE, "False positive", terminal=True),
    ],
    initial=Phase.IDENTIFIED,
    transitions=[
        Transition(
            "assign",
            _UNTIL_POSTMORTEM,
            warnings=("distinct_lead_and_messenger", "rollback_before_resolution_owner"),
        ),
        Transition("acknowledge", _OPEN, guards=("lead_assigned", "actor_is_lead")),
        Transition("page", _OPEN),
        Transition("acknowledge_page", _OPEN, guards="page_open"),
        Transition("triage", Phase.IDENTIFIED, Phase.TRIAGED),
        Transition(
            "start_mitigation",
            (Phase.IDENTIFIED, Phase.TRIAGED),
            Phase.MITIGATING,
            guards=("lead_assigned", "lead_acknowledged", "messenger_assigned"),
        ),
        Transition("record_rollback", _OPEN),
        Transition("pause_release", _UNTIL_POSTMORTEM, guards="release_not_paused"),
        Transition("resume_release", _UNTIL_POSTMORTEM, guards="release_is_paused"),
        Transition("post_status_update", _UNTIL_POSTMORTEM),
        Transition("change_severity", _OPEN, guards="severity_differs"),
        Transition(
            "resolve",
            Phase.MITIGATING,
            Phase.RESOLVED,
            guards=("actor_is_lead", "status_update_posted"),
        ),
        Transition("reopen", Phase.RESOLVED, Phase.MITIGATING),
        Transition("mark_false_positive", _OPEN, Phase.FALSE_POSITIVE),
        Transition("start_postmortem", Phase.RESOLVED, Phase.POSTMORTEM),
        Transition("add_follow_up", _UNTIL_POSTMORTEM),
        Transition("complete_item", _AFTER_RESOLUTION, guards="item_open"),
        Transition("waive_item", _AFTER_RESOLUTION, guards="item_open"),
        Transition("close", Phase.POSTMORTEM, Phase.CLOSED, guards="required_items_done"),
    ],
    checklist=[
        ChecklistItemSpec("update_status", "Update the incident status and close"),
        ChecklistItemSpec(
            "confirm_messenger_updates",
            "Confirm the messenger updated every customer channel, internal thread and social post",
        ),
        ChecklistItemSpec(
            "close_github_issues", "Update and close the relevant public GitHub issues"
        ),
        ChecklistItemSpec(
            "generate_postmortem_doc", "Generate the post-mortem document and publish it"
        ),
        ChecklistItemSpec("create_followup_issues", "Create GitHub issues for follow-up work"),
        ChecklistItemSpec(
            "schedule_retrospective",
            "Schedule a retrospective if you think it would be valuable",
            required=False,
        ),
    ],
)
"""The process of the incident handbook: the default of :class:`~incident_flow.IncidentFlow`."""

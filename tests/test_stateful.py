"""Property-based: random command sequences over several incidents keep the handbook's rules.

A hypothesis ``RuleBasedStateMachine`` drives the handbook process through random commands by
random people over several incidents and checks, after every step: each incident equals the fold
of its events; versions are contiguous; a refused command changes nothing and names what is
unmet; no customer-impacting incident is resolved without a status update; none closes with a
required checklist item open; mitigation never starts without an acknowledged lead. A second
test walks the process breadth-first and proves every transition can be exercised.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
)

from incident_flow import (
    HANDBOOK,
    Event,
    FakeClock,
    Incident,
    IncidentFlow,
    Phase,
    Role,
    TransitionRefused,
)
from incident_flow.events import PhaseChanged, fold
from incident_flow.requirements import Context
from incident_flow.serialization import dumps_event, loads_event
from incident_flow.store import MemoryStore
from tests.strategies import people, severities

ITEMS = [item.name for item in HANDBOOK.checklist]
RELEASES = ["3.30", "3.31"]

Command = Callable[[IncidentFlow, str, str], Incident]

commands: st.SearchStrategy[tuple[str, Command]] = st.one_of(
    st.builds(
        lambda role, person: (
            f"assign {role} {person}",
            lambda f, i, by: f.assign(i, role, person, by=by),
        ),
        st.sampled_from([Role.LEAD, Role.MESSENGER, Role.RESOLUTION_OWNER]),
        people,
    ),
    st.just(("acknowledge", lambda f, i, by: f.acknowledge(i, by=by))),
    st.just(("triage", lambda f, i, by: f.triage(i, by=by))),
    st.just(("start_mitigation", lambda f, i, by: f.start_mitigation(i, by=by))),
    st.just(("rollback", lambda f, i, by: f.record_rollback(i, by=by, outcome="back to 3.29"))),
    st.builds(
        lambda release: (
            f"pause {release}",
            lambda f, i, by: f.pause_release(i, release=release, by=by),
        ),
        st.sampled_from(RELEASES),
    ),
    st.builds(
        lambda release: (
            f"resume {release}",
            lambda f, i, by: f.resume_release(i, release=release, by=by),
        ),
        st.sampled_from(RELEASES),
    ),
    st.builds(
        lambda phase: (
            f"post {phase}",
            lambda f, i, by: f.post_status_update(i, f"{phase}: update", phase=phase, by=by),
        ),
        st.sampled_from(HANDBOOK.status_phases),
    ),
    st.builds(
        lambda severity: (
            f"severity {severity}",
            lambda f, i, by: f.change_severity(i, severity, by=by),
        ),
        severities,
    ),
    st.just(("resolve", lambda f, i, by: f.resolve(i, by=by))),
    st.just(("reopen", lambda f, i, by: f.reopen(i, by=by))),
    st.just(
        ("false positive", lambda f, i, by: f.mark_false_positive(i, reason="test alert", by=by))
    ),
    st.just(("start_postmortem", lambda f, i, by: f.start_postmortem(i, by=by))),
    st.builds(
        lambda item: (f"complete {item}", lambda f, i, by: f.complete_item(i, item, by=by)),
        st.sampled_from(ITEMS),
    ),
    st.builds(
        lambda item: (
            f"waive {item}",
            lambda f, i, by: f.waive_item(i, item, reason="not needed", by=by),
        ),
        st.sampled_from(ITEMS),
    ),
    st.just(("close", lambda f, i, by: f.close(i, by=by))),
)


def _open_item(flow: IncidentFlow, incident_id: str) -> str:
    return next(item.name for item in flow.get(incident_id).checklist if item.is_open)


GUIDED: dict[str, Command] = {
    "assign": lambda f, i, by: (
        f.assign(i, Role.MESSENGER, "carol", by=by)
        if f.get(i).lead
        else f.assign(i, Role.LEAD, by, by=by)
    ),
    "acknowledge": lambda f, i, by: f.acknowledge(i, by=by),
    "triage": lambda f, i, by: f.triage(i, by=by),
    "start_mitigation": lambda f, i, by: f.start_mitigation(i, by=by),
    "record_rollback": lambda f, i, by: f.record_rollback(i, by=by, outcome="rolled back"),
    "pause_release": lambda f, i, by: f.pause_release(i, release="3.30", by=by),
    "resume_release": lambda f, i, by: f.resume_release(
        i, release=f.get(i).paused_releases[0], by=by
    ),
    "post_status_update": lambda f, i, by: f.post_status_update(
        i, "Investigating: still on it", phase="investigating", by=by
    ),
    "change_severity": lambda f, i, by: f.change_severity(
        i, "major" if f.get(i).severity == "critical" else "critical", by=by
    ),
    "resolve": lambda f, i, by: f.resolve(i, by=by),
    "reopen": lambda f, i, by: f.reopen(i, by=by),
    "mark_false_positive": lambda f, i, by: f.mark_false_positive(i, reason="noise", by=by),
    "start_postmortem": lambda f, i, by: f.start_postmortem(i, by=by),
    "complete_item": lambda f, i, by: f.complete_item(i, _open_item(f, i), by=by),
    "waive_item": lambda f, i, by: f.waive_item(i, _open_item(f, i), reason="n/a", by=by),
    "close": lambda f, i, by: f.close(i, by=by),
}
"""For each action of the handbook, a command with arguments that can meet its guards."""

FORWARD = {
    "assign",
    "acknowledge",
    "triage",
    "start_mitigation",
    "post_status_update",
    "resolve",
    "start_postmortem",
    "complete_item",
    "close",
}


class HandbookMachine(RuleBasedStateMachine):
    incidents = Bundle("incidents")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.flow = IncidentFlow(store=MemoryStore(), clock=self.clock, entry_points=False)
        self.known: dict[str, Incident] = {}

    def teardown(self) -> None:
        self.flow.shutdown()

    @rule(
        target=incidents,
        severity=severities,
        customer_impact=st.booleans(),
        by=people,
    )
    def declare(self, severity: Any, customer_impact: bool, by: str) -> str:
        incident = self.flow.declare(
            "Something broke", severity=severity, customer_impact=customer_impact, by=by
        )
        self.known[incident.id] = incident
        return incident.id

    @rule(minutes=st.integers(min_value=0, max_value=90))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule(incident_id=incidents, command=commands, by=people)
    def run(self, incident_id: str, command: tuple[str, Command], by: str) -> None:
        name, run = command
        after: Incident | None = None
        before = self.flow.get(incident_id)
        history_before = self.flow.history(incident_id)
        try:
            after = run(self.flow, incident_id, by)
        except TransitionRefused as refused:
            unmet = refused.unmet
        else:
            unmet = ()
        if unmet or after is None:
            assert unmet, f"{name} refused without a reason"
            assert all(r.name and r.reason for r in unmet)
            assert self.flow.history(incident_id) == history_before, "a refusal wrote something"
            return
        assert after.version > before.version
        assert self.flow.get(incident_id) == after
        new_events = self.flow.history(incident_id)[before.version :]
        for event in new_events:
            if isinstance(event, PhaseChanged) and event.action == "start_mitigation":
                assert before.lead is not None
                assert before.lead_acknowledged_by == before.lead
                if before.customer_impact:
                    assert before.messenger is not None
        self.known[incident_id] = after

    @rule(incident_id=incidents, data=st.data())
    def advance(self, incident_id: str, data: st.DataObject) -> None:
        """Take several actions available now in a row, so runs reach the later phases too."""
        for _ in range(data.draw(st.integers(min_value=1, max_value=30), label="steps")):
            incident = self.flow.get(incident_id)
            available = self.flow.available_actions(incident_id)
            if not available:
                assert HANDBOOK.is_terminal(incident.phase)
                return
            # Moving forward is weighted up: a uniform choice rarely gets past mitigation.
            weighted = available + [a for a in available if a in FORWARD] * 6
            action = data.draw(st.sampled_from(weighted), label="action")
            self.run(incident_id, (action, GUIDED[action]), incident.lead or "bob")

    @rule(incident_id=consumes(incidents))
    def forget(self, incident_id: str) -> None:
        """Stop driving one incident, so others get more steps."""

    @invariant()
    def every_incident_is_the_fold_of_its_events(self) -> None:
        for incident_id, known in self.known.items():
            events = self.flow.history(incident_id)
            assert [e.version for e in events] == list(range(1, len(events) + 1))
            assert fold(events) == known
            assert all(a.at <= b.at for a, b in itertools.pairwise(events))

    @invariant()
    def handbook_rules_hold(self) -> None:
        for incident in self.known.values():
            past_resolution = incident.phase in (Phase.RESOLVED, Phase.POSTMORTEM, Phase.CLOSED)
            if past_resolution and incident.customer_impact:
                assert incident.status_updates, "resolved without a status update"
            if incident.phase == Phase.CLOSED:
                assert not [i for i in incident.checklist if i.required and i.is_open]
            if incident.phase == Phase.FALSE_POSITIVE:
                assert incident.false_positive

    @invariant()
    def the_availability_table_agrees_with_deciding(self) -> None:
        for incident in list(self.known.values())[-2:]:
            for actor in ("bob", "carol"):
                now = self.clock.now()
                expected = [
                    action
                    for action in HANDBOOK.actions_in(incident.phase)
                    if HANDBOOK.decide(incident, Context(action, actor, now)).allowed
                ]
                assert HANDBOOK.available_actions(incident, actor, now) == expected

    @invariant()
    def events_round_trip_through_json(self) -> None:
        for incident_id in list(self.known)[-1:]:
            for event in self.flow.history(incident_id):
                assert loads_event(dumps_event(event)) == event


HandbookMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_handbook_process = HandbookMachine.TestCase


# -- every transition can be exercised ----------------------------------------------------------


def _complete(item: str) -> Command:
    return lambda f, i, by: f.complete_item(i, item, by=by)


CONCRETE: list[tuple[str, Command]] = [
    ("assign lead bob", lambda f, i, by: f.assign(i, Role.LEAD, "bob", by=by)),
    ("assign messenger carol", lambda f, i, by: f.assign(i, Role.MESSENGER, "carol", by=by)),
    ("assign owner dave", lambda f, i, by: f.assign(i, Role.RESOLUTION_OWNER, "dave", by=by)),
    ("acknowledge", lambda f, i, by: f.acknowledge(i, by="bob")),
    ("triage", lambda f, i, by: f.triage(i, by=by)),
    ("start_mitigation", lambda f, i, by: f.start_mitigation(i, by=by)),
    ("rollback", lambda f, i, by: f.record_rollback(i, by=by, outcome="rolled back")),
    ("pause", lambda f, i, by: f.pause_release(i, release="3.30", by=by)),
    ("resume", lambda f, i, by: f.resume_release(i, release="3.30", by=by)),
    ("post", lambda f, i, by: f.post_status_update(i, "Identified: x", phase="identified", by=by)),
    ("severity", lambda f, i, by: f.change_severity(i, "major", by=by)),
    ("resolve", lambda f, i, by: f.resolve(i, by=by)),
    ("reopen", lambda f, i, by: f.reopen(i, by=by)),
    ("false_positive", lambda f, i, by: f.mark_false_positive(i, reason="no", by=by)),
    ("start_postmortem", lambda f, i, by: f.start_postmortem(i, by=by)),
    ("close", lambda f, i, by: f.close(i, by=by)),
    *[(f"complete {item}", _complete(item)) for item in ITEMS],
    ("waive retro", lambda f, i, by: f.waive_item(i, "schedule_retrospective", reason="-", by=by)),
]


def _shape(incident: Incident) -> tuple[object, ...]:
    """What matters to the guards; states with one shape are explored once."""
    return (
        incident.phase,
        tuple(sorted(incident.roles)),
        incident.lead_acknowledged_by is not None,
        bool(incident.status_updates),
        bool(incident.rollbacks),
        incident.paused_releases,
        sum(item.required and item.is_open for item in incident.checklist),
        tuple(item.state for item in incident.checklist if not item.required),
    )


def test_every_transition_of_the_process_can_be_exercised() -> None:
    """Breadth-first over command sequences until every (phase, action) pair has succeeded."""
    clock = FakeClock()
    wanted = {(source, action) for source, action, _ in HANDBOOK.edges()}
    covered: set[tuple[str, str]] = set()
    with IncidentFlow(clock=clock, entry_points=False) as seed:
        root = seed.declare("x", severity="critical", customer_impact=True, by="alice")
        frontier = deque([seed.history(root.id)])
    seen = {_shape(root)}
    while frontier and covered != wanted:
        events = frontier.popleft()
        for _, command in CONCRETE:
            store = MemoryStore()
            incident = fold(events)
            assert incident is not None
            store.append(root.id, 0, events, phase=incident.phase)
            with IncidentFlow(store=store, clock=clock, entry_points=False) as flow:
                before = flow.get(root.id)
                try:
                    after = command(flow, root.id, "bob")
                except TransitionRefused:
                    continue
                covered.add((before.phase, _action_of(flow.history(root.id)[before.version])))
                if _shape(after) not in seen:
                    seen.add(_shape(after))
                    frontier.append(flow.history(root.id))
    assert covered == wanted, f"never exercised: {sorted(wanted - covered)}"


def _action_of(first: Event) -> str:
    """The action whose command wrote ``first`` as its first event."""
    if isinstance(first, PhaseChanged):
        return first.action
    return {
        "RoleAssigned": "assign",
        "OwnershipAcknowledged": "acknowledge",
        "RollbackRecorded": "record_rollback",
        "ReleasePaused": "pause_release",
        "ReleaseResumed": "resume_release",
        "StatusUpdatePosted": "post_status_update",
        "SeverityChanged": "change_severity",
        "FalsePositiveMarked": "mark_false_positive",
        "ChecklistItemCompleted": "complete_item",
        "ChecklistItemWaived": "waive_item",
    }[first.type]


@pytest.mark.parametrize("phase", [p.name for p in HANDBOOK.phases if not p.terminal])
def test_every_open_phase_has_an_action(phase: str) -> None:
    assert HANDBOOK.actions_in(phase)

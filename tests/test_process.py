"""Process: the lifecycle as data, validated when built, decided from the machine's table."""

from __future__ import annotations

import attrs
import pytest

from incident_flow import (
    HANDBOOK,
    ChecklistItemSpec,
    FakeClock,
    Guard,
    Incident,
    IncidentFlow,
    Phase,
    PhaseSpec,
    Process,
    Role,
    Transition,
    TransitionRefused,
)
from incident_flow.errors import ProcessDefinitionError, UnknownPhaseError, UnknownRoleError
from incident_flow.events import ActionTaken
from tests.conftest import to_mitigating


def monitoring_process() -> Process:
    """The handbook with a monitoring phase between mitigating and resolved."""
    transitions = [
        Transition(t.action, ("monitoring",), t.dest, t.guards, t.warnings)
        if t.action == "resolve"
        else t
        for t in HANDBOOK.transitions
    ]
    return HANDBOOK.evolve(
        name="with-monitoring",
        phases=(*HANDBOOK.phases, PhaseSpec("monitoring", "Monitoring", active=True)),
        transitions=(
            *transitions,
            Transition("monitor", Phase.MITIGATING, "monitoring"),
            Transition("relapse", "monitoring", Phase.MITIGATING),
        ),
    )


def test_handbook_phases_in_order() -> None:
    assert [p.name for p in HANDBOOK.phases] == [
        "identified",
        "triaged",
        "mitigating",
        "resolved",
        "postmortem",
        "closed",
        "false_positive",
    ]
    assert [p.name for p in HANDBOOK.phases if p.terminal] == ["closed", "false_positive"]


def test_one_machine_is_shared_and_has_no_model() -> None:
    assert HANDBOOK.machine.models == []
    assert set(HANDBOOK.machine.states) == {p.name for p in HANDBOOK.phases}


def test_the_decision_table_agrees_with_the_machine() -> None:
    machine = HANDBOOK.machine
    for source, action, dest in HANDBOOK.edges():
        (transition,) = machine.get_transitions(trigger=action, source=source)
        assert transition.dest == dest
        assert tuple(c.func for c in transition.conditions) == next(
            t.guards for t in HANDBOOK.transitions if t.action == action
        )
    for phase in HANDBOOK.phases:
        assert set(HANDBOOK.actions_in(phase.name)) == set(machine.get_triggers(phase.name))


def test_a_team_adds_a_monitoring_phase(clock: FakeClock) -> None:
    process = monitoring_process()
    with IncidentFlow(process=process, clock=clock, entry_points=False) as flow:
        incident = to_mitigating(flow)
        flow.post_status_update(
            incident.id,
            "Identified: aware. Questions: support@sourcegraph.com.",
            phase="identified",
            by="carol",
        )
        with pytest.raises(TransitionRefused):
            flow.resolve(incident.id, by="bob")
        assert flow.transition(incident.id, "monitor", by="bob").phase == "monitoring"
        assert "relapse" in flow.available_actions(incident.id)
        resolved = flow.resolve(incident.id, by="bob")
        assert resolved.phase == Phase.RESOLVED
        assert resolved.resolved_at is not None


def test_a_team_drops_a_guard(clock: FakeClock) -> None:
    process = HANDBOOK.without_guard("resolve", "status_update_posted")
    with IncidentFlow(process=process, clock=clock, entry_points=False) as flow:
        incident = to_mitigating(flow)
        assert flow.resolve(incident.id, by="bob").phase == Phase.RESOLVED


def test_a_team_adds_its_own_guard(clock: FakeClock) -> None:
    rollback_first = Guard(
        "rollback_tried",
        lambda incident, context: bool(incident.rollbacks),
        "roll back before resolving",
        "Incident Lead roles and responsibilities",
    )
    process = HANDBOOK.with_guard("resolve", rollback_first)
    with IncidentFlow(process=process, clock=clock, entry_points=False) as flow:
        incident = to_mitigating(flow)
        with pytest.raises(TransitionRefused) as refused:
            flow.resolve(incident.id, by="bob")
        assert [r.name for r in refused.value.unmet] == ["status_update_posted", "rollback_tried"]


def test_a_team_renames_and_adds_roles(clock: FakeClock) -> None:
    process = HANDBOOK.with_roles(lead="Incident Commander", scribe="Scribe")
    assert process.roles[Role.LEAD] == "Incident Commander"
    with IncidentFlow(process=process, clock=clock, entry_points=False) as flow:
        incident = flow.declare("x", severity="major", customer_impact=False, by="a")
        assert flow.assign(incident.id, "scribe", "sam", by="a").roles["scribe"] == "sam"
    with pytest.raises(UnknownRoleError):
        HANDBOOK.check_role("scribe")


def test_a_team_changes_the_checklist(clock: FakeClock) -> None:
    process = HANDBOOK.with_checklist([ChecklistItemSpec("write_timeline", "Write the timeline")])
    with IncidentFlow(process=process, clock=clock, entry_points=False) as flow:
        incident = flow.declare("x", severity="major", customer_impact=False, by="a")
        assert [item.name for item in incident.checklist] == ["write_timeline"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"initial": "nowhere"}, "initial phase 'nowhere'"),
        ({"initial": "closed"}, "is terminal"),
        (
            {"transitions": (*HANDBOOK.transitions, Transition("jump", "triaged", "limbo"))},
            "unknown phase 'limbo'",
        ),
        (
            {"phases": (*HANDBOOK.phases, PhaseSpec("limbo", active=True))},
            "limbo cannot be reached",
        ),
        (
            {"transitions": (*HANDBOOK.transitions, Transition("revive", "closed", "triaged"))},
            "leaves terminal phase 'closed'",
        ),
        (
            {
                "transitions": (
                    *HANDBOOK.transitions,
                    Transition("x", "triaged", "resolved", guards="is_friday"),
                )
            },
            "guard 'is_friday', which does not exist",
        ),
        (
            {"transitions": (*HANDBOOK.transitions, Transition("triage", "identified", "closed"))},
            "defined twice",
        ),
        ({"phases": (*HANDBOOK.phases, PhaseSpec("triaged"))}, "defined twice"),
        (
            {
                "phases": (*HANDBOOK.phases, PhaseSpec("stuck")),
                "transitions": (*HANDBOOK.transitions, Transition("stick", "triaged", "stuck")),
            },
            "no action leaves it",
        ),
        ({"checklist": (ChecklistItemSpec("a", "A"), ChecklistItemSpec("a", "B"))}, "twice"),
        ({"status_phases": ()}, "status-page phase"),
    ],
)
def test_malformed_processes_are_refused_naming_the_problem(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ProcessDefinitionError, match=message):
        HANDBOOK.evolve(**change)


def test_with_guard_on_an_unknown_action_is_refused() -> None:
    with pytest.raises(ProcessDefinitionError, match="no action 'fly'"):
        HANDBOOK.with_guard("fly", "lead_assigned")


def test_unknown_phase_lookup() -> None:
    with pytest.raises(UnknownPhaseError):
        HANDBOOK.phase("limbo")


def test_mermaid_diagram_has_every_phase_change() -> None:
    diagram = HANDBOOK.to_mermaid()
    assert diagram.startswith("stateDiagram-v2\n")
    for source, action, dest in HANDBOOK.edges():
        if dest is not None:
            assert f"{source} --> {dest}: {action}" in diagram


def test_processes_are_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        HANDBOOK.name = "x"  # type: ignore[misc]


def test_a_team_action_that_keeps_the_phase_is_recorded_with_its_arguments(
    clock: FakeClock,
) -> None:
    licence_short = Guard(
        "licence_valid_at_most_7_days",
        lambda incident, context: int(context.payload.get("days", "0")) <= 7,
        "a temporary licence key may be valid for at most 7 days",
        "Go-to-market (license and subscription) issues",
        reads=("days",),
    )
    process = HANDBOOK.evolve(
        guards={**HANDBOOK.guards, licence_short.name: licence_short},
        transitions=(
            *HANDBOOK.transitions,
            Transition(
                "issue_temporary_licence",
                (Phase.IDENTIFIED, Phase.TRIAGED, Phase.MITIGATING),
                guards=licence_short.name,
            ),
        ),
    )
    with IncidentFlow(process=process, clock=clock, entry_points=False) as flow:
        incident = flow.declare("Licence expired", severity="major", customer_impact=True, by="a")
        with pytest.raises(TransitionRefused) as refused:
            flow.transition(incident.id, "issue_temporary_licence", by="a", days="30")
        assert [r.name for r in refused.value.unmet] == ["licence_valid_at_most_7_days"]
        assert "issue_temporary_licence" in flow.available_actions(incident.id)
        after = flow.transition(incident.id, "issue_temporary_licence", by="a", days="7")
        event = flow.history(incident.id)[-1]
        assert isinstance(event, ActionTaken)
        assert (event.action, event.arguments) == ("issue_temporary_licence", {"days": "7"})
        assert after.phase == Phase.IDENTIFIED
        assert after.version == 2


def test_warnings_belong_to_each_transition_not_to_the_action_name() -> None:
    process = monitoring_process().with_transition(Transition("assign", "monitoring"))
    assert process.decide is not None
    table = {(a, s): c for (a, s), c in process._table.items()}
    assert [g.name for g in table[("assign", "identified")].warnings] == [
        "distinct_lead_and_messenger",
        "rollback_before_resolution_owner",
    ]
    assert table[("assign", "monitoring")].warnings == ()


def test_available_actions_agree_with_deciding_each_action(clock: FakeClock) -> None:
    """The availability table gives the answer decide() gives, in every phase the walk reaches."""
    from incident_flow.requirements import Context

    with IncidentFlow(clock=clock, entry_points=False) as flow:
        incidents = [declare_in_every_phase(flow, phase) for phase in ("identified", "mitigating")]
        for incident in incidents:
            for actor in ("bob", "mallory"):
                expected = [
                    action
                    for action in HANDBOOK.actions_in(incident.phase)
                    if HANDBOOK.decide(incident, Context(action, actor, clock.now())).allowed
                ]
                assert HANDBOOK.available_actions(incident, actor, clock.now()) == expected


def declare_in_every_phase(flow: IncidentFlow, phase: str) -> Incident:
    incident = flow.declare("x", severity="major", customer_impact=True, by="alice")
    flow.assign(incident.id, Role.LEAD, "bob", by="alice")
    if phase == "mitigating":
        flow.acknowledge(incident.id, by="bob")
        flow.assign(incident.id, Role.MESSENGER, "carol", by="bob")
        flow.start_mitigation(incident.id, by="bob")
        flow.pause_release(incident.id, release="3.30", by="bob")
    return flow.get(incident.id)

"""The harness catches what it is for: broken guards and processes, with a shrunk example."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import run_state_machine_as_test

from incident_flow import HANDBOOK, FakeClock, Guard, IncidentFlow, PhaseSpec, Process, Transition
from incident_flow.testing import (
    CoverageRecorder,
    Declaration,
    Finding,
    check_process,
    explore,
    shortest_paths,
    simple_paths,
)
from incident_flow.testing import strategies as ifst
from incident_flow.testing.paths import Path
from incident_flow.testing.stateful import FAILING_FAST, machine_for
from tests.test_stateful import HANDBOOK_RULES

QUICK = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
    phases=FAILING_FAST,
)


def test_a_missing_guard_is_caught_with_a_shrunk_counter_example() -> None:
    """Resolving without a status update: the team's rule catches the broken process."""
    broken = HANDBOOK.without_guard("resolve", "status_update_posted").evolve(name="broken")
    machine = machine_for(broken, rules=HANDBOOK_RULES)
    with pytest.raises(AssertionError, match="resolved without a status update") as caught:
        run_state_machine_as_test(machine, settings=QUICK)
    notes = getattr(caught.value, "__notes__", [])
    steps = ("declare(", "follow(", "act(", "advance(", "time_passes(")
    rules = [line for line in notes if "state." in line and any(s in line for s in steps)]
    assert rules, f"hypothesis printed no counter-example: {notes}"
    # Shrunk: a declaration and a step or two, not the 30 steps the failing run may have taken.
    assert len(rules) <= 3, rules


def _explode(incident: object, context: object) -> bool:
    raise KeyError("severity_matrix")


def _flawed_process() -> Process:
    """The handbook with four flaws: a guard that never holds (on triage), one that never
    refuses (on acknowledge), one that raises (on pause_release), and a phase nothing reaches."""
    never = Guard("change_freeze_lifted", lambda incident, context: False, "the freeze holds")
    always = Guard("sky_is_up", lambda incident, context: True, "the sky fell")
    raising = Guard("matrix", _explode, "-")
    process = HANDBOOK.with_phase(
        PhaseSpec("monitoring", "Monitoring", active=True),
        Transition("monitor", "mitigating", "monitoring"),
        Transition("relapse", "monitoring", "mitigating"),
    )
    process = process.with_guard("monitor", never)
    process = process.with_guard("triage", never)
    process = process.with_guard("acknowledge", always)
    return process.with_guard("pause_release", raising).evolve(name="flawed")


@pytest.fixture(scope="module")
def findings() -> list[Finding]:
    return check_process(_flawed_process(), declarations=(Declaration(),))


def test_a_guard_that_never_holds_is_reported(findings: list[Finding]) -> None:
    kinds = {(f.kind, f.subject) for f in findings}
    assert ("guard-never-met", "change_freeze_lifted") in kinds
    assert ("transition-not-covered", "identified --triage--> triaged") in kinds


def test_a_guard_that_never_refuses_is_reported(findings: list[Finding]) -> None:
    never_refuses = [f for f in findings if f.kind == "guard-never-refuses"]
    assert [f.subject for f in never_refuses] == ["sky_is_up"]
    assert "acknowledge" in never_refuses[0].message


def test_a_guard_that_raises_is_reported_with_its_name_and_path(findings: list[Finding]) -> None:
    raised = [f for f in findings if f.kind == "guard-raised"]
    assert [f.subject for f in raised] == ["matrix"]
    assert "KeyError" in raised[0].message
    assert "pause_release" in raised[0].message
    assert raised[0].path is not None
    assert str(raised[0].path).startswith("declare critical")


def test_a_phase_nothing_reaches_is_reported(findings: list[Finding]) -> None:
    kinds = {(f.kind, f.subject) for f in findings}
    assert ("unreachable-phase", "monitoring") in kinds
    assert not [f for f in findings if f.kind == "walk-truncated"]


def test_a_dead_end_phase_is_reported() -> None:
    never = Guard("change_freeze_lifted", lambda incident, context: False, "the freeze holds")
    process = HANDBOOK.with_phase(
        PhaseSpec("monitoring", "Monitoring", active=True),
        Transition("monitor", "mitigating", "monitoring"),
        Transition("relapse", "monitoring", "mitigating"),
    )
    process = process.with_guard("relapse", never).evolve(name="stuck")
    # Only a walk that reaches monitoring can tell; a few hundred states do.
    kinds = {
        (f.kind, f.subject)
        for f in check_process(process, declarations=(Declaration(),), max_states=400)
    }
    assert ("dead-end-phase", "monitoring") in kinds


def test_shortest_paths_are_shortest_and_end_with_their_transition() -> None:
    paths = shortest_paths(HANDBOOK)
    assert len(paths) == len({(s, a) for s, a, _ in HANDBOOK.edges()})
    by_end = {path.transitions[-1]: path for path in paths}
    assert len(by_end[("identified", "triage", "triaged")]) == 1
    close = by_end[("postmortem", "close", "closed")]
    assert [step.command.action for step in close.steps].count("complete_item") == 5


def test_simple_paths_visit_no_state_twice_and_replay() -> None:
    paths = simple_paths(HANDBOOK, 4, limit=30)
    assert paths
    assert all(1 <= len(path) <= 4 for path in paths)
    assert len({str(path) for path in paths}) == len(paths)
    for path in paths[-3:]:
        with IncidentFlow(clock=FakeClock(), entry_points=False) as flow:
            path.replay(flow)


def test_coverage_from_a_flow_that_a_recorder_watches() -> None:
    recorder = CoverageRecorder(HANDBOOK)
    with IncidentFlow(clock=FakeClock(), plugins=[recorder], entry_points=False) as flow:
        explore(HANDBOOK).shortest[("postmortem", "close", "closed")].replay(flow)
        assert flow.drain(timeout=5)
    coverage = recorder.coverage()
    assert coverage.phases["closed"]
    assert not coverage.phases["false_positive"]
    with pytest.raises(AssertionError, match="phase false_positive"):
        coverage.require_complete(kinds=["phases"])
    assert "transitions" in coverage.report()
    with pytest.raises(ValueError, match="unknown coverage kinds"):
        coverage.require_complete(kinds=["states"])


@settings(max_examples=25, deadline=None)
@given(ifst.command_sequences(HANDBOOK, max_steps=15))
def test_generated_command_sequences_replay(path: Path) -> None:
    with IncidentFlow(clock=FakeClock(), entry_points=False) as flow:
        incident = path.replay(flow)
    assert incident.version >= len(path) + 1


def test_the_explored_walk_is_deterministic() -> None:
    first = explore(HANDBOOK, max_states=40, exhaustive=True)
    second = explore(HANDBOOK, max_states=40, exhaustive=True)
    assert [str(p) for p in first.shortest.values()] == [str(p) for p in second.shortest.values()]


def test_a_guard_that_raises_in_the_machine_is_named() -> None:
    process = HANDBOOK.with_guard("triage", Guard("matrix", _explode, "-")).evolve(name="raising")
    machine = machine_for(process)
    with pytest.raises(
        AssertionError, match="guard matrix of triage in identified raised KeyError"
    ):
        run_state_machine_as_test(machine, settings=QUICK)

"""Property-based: the handbook process under the harness of :mod:`incident_flow.testing`.

The state machine drives random commands by random people over several incidents, with the
harness's invariants (fold, contiguous versions, refusals write nothing and say why, guards held,
JSON round trip, available actions) and the handbook's own rules below. The walk finds a
shortest path to every transition, each replayed as its own test, and coverage is complete.
"""

from __future__ import annotations

import pytest

from incident_flow import HANDBOOK, FakeClock, Incident, IncidentFlow, Phase
from incident_flow.testing import check_process, explore, process_test_case


def resolved_only_after_a_status_update(incident: Incident) -> str | None:
    past = incident.phase in (Phase.RESOLVED, Phase.POSTMORTEM, Phase.CLOSED)
    if past and incident.customer_impact and not incident.status_updates:
        return "a customer-impacting incident was resolved without a status update"
    return None


def closed_only_with_the_checklist_done(incident: Incident) -> str | None:
    if incident.phase == Phase.CLOSED and any(i.required and i.is_open for i in incident.checklist):
        return "closed with a required checklist item open"
    return None


def false_positives_are_marked(incident: Incident) -> str | None:
    if incident.phase == Phase.FALSE_POSITIVE and not incident.false_positive:
        return "in false_positive without the mark"
    return None


HANDBOOK_RULES = [
    resolved_only_after_a_status_update,
    closed_only_with_the_checklist_done,
    false_positives_are_marked,
]

TestHandbookProcess = process_test_case(HANDBOOK, rules=HANDBOOK_RULES, max_examples=100, steps=40)


TRANSITIONS = sorted({(s, a, d or s) for s, a, d in HANDBOOK.edges()})


def test_the_walk_covers_the_whole_handbook() -> None:
    exploration = explore(HANDBOOK)
    exploration.coverage.require_complete()
    assert not exploration.guard_failures
    assert sorted(exploration.shortest) == TRANSITIONS


@pytest.mark.parametrize("transition", TRANSITIONS, ids=lambda t: f"{t[0]}-{t[1]}-{t[2]}")
def test_the_shortest_path_to_each_transition_replays(transition: tuple[str, str, str]) -> None:
    path = explore(HANDBOOK).shortest[transition]
    with IncidentFlow(clock=FakeClock(), entry_points=False) as flow:
        incident = path.replay(flow)
    assert path.transitions[-1] == transition
    assert incident.phase == transition[2]


def test_the_handbook_has_nothing_for_check_process_to_find() -> None:
    assert check_process(HANDBOOK) == []


@pytest.mark.parametrize("phase", [p.name for p in HANDBOOK.phases if not p.terminal])
def test_every_open_phase_has_an_action(phase: str) -> None:
    assert HANDBOOK.actions_in(phase)

"""IncidentFlow: the commands, their guards, warnings and the at= rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from incident_flow import (
    FakeClock,
    IncidentFlow,
    ItemState,
    Phase,
    Role,
    Severity,
    TransitionRefused,
)
from incident_flow.errors import (
    DuplicateIncidentError,
    InvalidActorError,
    InvalidFieldError,
    InvalidSeverityError,
    InvalidTimestampError,
    MinorIssueError,
    TimeWentBackwardsError,
    UnknownChecklistItemError,
    UnknownIncidentError,
    UnknownPhaseError,
    UnknownRoleError,
    ValidationError,
)
from incident_flow.events import PhaseChanged, WarningRecorded
from tests.conftest import START, declare, to_mitigating, to_postmortem

REQUIRED_ITEMS = [
    "update_status",
    "confirm_messenger_updates",
    "close_github_issues",
    "generate_postmortem_doc",
    "create_followup_issues",
]


def unmet_names(error: TransitionRefused) -> list[str]:
    return [requirement.name for requirement in error.unmet]


def test_declare_starts_identified_with_reporter_and_checklist(flow: IncidentFlow) -> None:
    incident = declare(flow)
    assert incident.phase == Phase.IDENTIFIED
    assert incident.version == 1
    assert incident.roles == {"reporter": "alice"}
    assert incident.declared_at == START
    assert [item.name for item in incident.checklist] == [*REQUIRED_ITEMS, "schedule_retrospective"]
    assert flow.get(incident.id) == incident


def test_the_whole_handbook_lifecycle_reaches_closed(flow: IncidentFlow) -> None:
    incident = to_postmortem(flow)
    for item in REQUIRED_ITEMS:
        flow.complete_item(incident.id, item, by="bob")
    closed = flow.close(incident.id, by="bob")
    assert closed.phase == Phase.CLOSED
    assert closed.closed_at is not None
    assert closed.resolved_at is not None
    assert [e.version for e in flow.history(incident.id)] == list(range(1, closed.version + 1))


def test_mitigation_before_a_lead_lists_every_unmet_requirement(flow: IncidentFlow) -> None:
    incident = declare(flow)
    with pytest.raises(TransitionRefused) as refused:
        flow.start_mitigation(incident.id, by="alice")
    assert unmet_names(refused.value) == [
        "lead_assigned",
        "lead_acknowledged",
        "messenger_assigned",
    ]
    assert all(r.reason and r.handbook_ref for r in refused.value.unmet)
    assert flow.get(incident.id) == incident


def test_a_messenger_is_not_needed_without_customer_impact(flow: IncidentFlow) -> None:
    incident = declare(flow, customer_impact=False)
    flow.assign(incident.id, Role.LEAD, "bob", by="alice")
    flow.acknowledge(incident.id, by="bob")
    assert flow.start_mitigation(incident.id, by="bob").phase == Phase.MITIGATING


def test_only_the_lead_can_acknowledge(flow: IncidentFlow) -> None:
    incident = declare(flow)
    flow.assign(incident.id, Role.LEAD, "bob", by="alice")
    with pytest.raises(TransitionRefused) as refused:
        flow.acknowledge(incident.id, by="mallory")
    assert unmet_names(refused.value) == ["actor_is_lead"]
    assert "mallory" in refused.value.unmet[0].reason


def test_a_new_lead_must_acknowledge_again(flow: IncidentFlow) -> None:
    incident = declare(flow)
    flow.assign(incident.id, Role.LEAD, "bob", by="alice")
    flow.acknowledge(incident.id, by="bob")
    incident = flow.assign(incident.id, Role.LEAD, "dave", by="bob")
    assert incident.lead_acknowledged_by is None
    assert "lead_acknowledged" in flow.requirements(incident.id, "start_mitigation")[0].name


def test_customer_impacting_incident_needs_a_status_update_to_resolve(flow: IncidentFlow) -> None:
    incident = to_mitigating(flow)
    with pytest.raises(TransitionRefused) as refused:
        flow.resolve(incident.id, by="bob")
    assert unmet_names(refused.value) == ["status_update_posted"]
    flow.post_status_update(
        incident.id,
        "Identified: aware. Questions: support@sourcegraph.com.",
        phase="identified",
        by="carol",
    )
    assert flow.resolve(incident.id, by="bob").phase == Phase.RESOLVED


def test_close_lists_each_open_required_item_and_ignores_the_optional_one(
    flow: IncidentFlow,
) -> None:
    incident = to_postmortem(flow)
    flow.complete_item(incident.id, "update_status", by="bob")
    flow.waive_item(incident.id, "close_github_issues", reason="no public issue", by="bob")
    with pytest.raises(TransitionRefused) as refused:
        flow.close(incident.id, by="bob")
    assert unmet_names(refused.value) == [
        "required_items_done:confirm_messenger_updates",
        "required_items_done:generate_postmortem_doc",
        "required_items_done:create_followup_issues",
    ]


def test_waived_item_keeps_its_reason(flow: IncidentFlow) -> None:
    incident = to_postmortem(flow)
    incident = flow.waive_item(incident.id, "close_github_issues", reason="none", by="bob")
    item = incident.item("close_github_issues")
    assert item is not None
    assert (item.state, item.reason, item.by) == (ItemState.WAIVED, "none", "bob")


def test_completing_an_item_twice_is_refused(flow: IncidentFlow) -> None:
    incident = to_postmortem(flow)
    flow.complete_item(incident.id, "update_status", by="bob")
    with pytest.raises(TransitionRefused) as refused:
        flow.complete_item(incident.id, "update_status", by="bob")
    assert unmet_names(refused.value) == ["item_open"]


def test_lead_and_messenger_the_same_person_is_a_warning(flow: IncidentFlow) -> None:
    incident = declare(flow)
    flow.assign(incident.id, Role.LEAD, "bob", by="alice")
    incident = flow.assign(incident.id, Role.MESSENGER, "bob", by="alice")
    assert incident.messenger == "bob"
    assert [w.name for w in incident.warnings] == ["distinct_lead_and_messenger"]
    assert isinstance(flow.history(incident.id)[-1], WarningRecorded)


def test_same_lead_and_messenger_is_fine_without_customer_impact(flow: IncidentFlow) -> None:
    incident = declare(flow, customer_impact=False)
    flow.assign(incident.id, Role.LEAD, "bob", by="alice")
    assert flow.assign(incident.id, Role.MESSENGER, "bob", by="alice").warnings == ()


def test_resolution_owner_before_a_rollback_is_a_warning(flow: IncidentFlow) -> None:
    incident = to_mitigating(flow)
    incident = flow.assign(incident.id, Role.RESOLUTION_OWNER, "erin", by="bob")
    assert [w.name for w in incident.warnings] == ["rollback_before_resolution_owner"]
    flow.record_rollback(incident.id, by="bob", outcome="did not help", succeeded=False)
    assert len(flow.assign(incident.id, Role.RESOLUTION_OWNER, "dave", by="bob").warnings) == 1


def test_pause_and_resume_a_release(flow: IncidentFlow) -> None:
    incident = to_mitigating(flow)
    incident = flow.pause_release(incident.id, release="3.30", by="bob")
    assert incident.paused_releases == ("3.30",)
    with pytest.raises(TransitionRefused):
        flow.pause_release(incident.id, release="3.30", by="bob")
    with pytest.raises(TransitionRefused) as refused:
        flow.resume_release(incident.id, release="3.31", by="bob")
    assert "3.30" in refused.value.unmet[0].reason
    assert not flow.resume_release(incident.id, release="3.30", by="bob").release_paused


def test_false_positive_is_kept_on_record(flow: IncidentFlow) -> None:
    incident = declare(flow)
    incident = flow.mark_false_positive(incident.id, reason="a test alert", by="alice")
    assert incident.phase == Phase.FALSE_POSITIVE
    assert incident.false_positive
    assert incident.false_positive_reason == "a test alert"
    assert flow.list(phase=Phase.FALSE_POSITIVE) == [incident]
    with pytest.raises(TransitionRefused) as refused:
        flow.triage(incident.id, by="alice")
    assert unmet_names(refused.value) == ["phase"]


def test_change_severity_records_the_previous_level(flow: IncidentFlow) -> None:
    incident = declare(flow)
    incident = flow.change_severity(incident.id, "major", by="alice")
    assert incident.severity == Severity.MAJOR
    with pytest.raises(TransitionRefused):
        flow.change_severity(incident.id, Severity.MAJOR, by="alice")


def test_reopen_returns_to_mitigating(flow: IncidentFlow) -> None:
    incident = to_postmortem(flow)
    with pytest.raises(TransitionRefused):
        flow.reopen(incident.id, by="bob")  # only from resolved
    other = to_mitigating(flow)
    flow.post_status_update(
        other.id,
        "Identified: aware. Questions: support@sourcegraph.com.",
        phase="identified",
        by="carol",
    )
    flow.resolve(other.id, by="bob")
    assert flow.reopen(other.id, by="bob").phase == Phase.MITIGATING


def test_phase_changes_are_events_with_source_and_dest(flow: IncidentFlow) -> None:
    incident = declare(flow)
    flow.triage(incident.id, by="alice")
    event = flow.history(incident.id)[-1]
    assert isinstance(event, PhaseChanged)
    assert (event.action, event.source, event.dest) == ("triage", "identified", "triaged")


def test_requirements_answers_without_trying(flow: IncidentFlow) -> None:
    incident = declare(flow)
    names = [r.name for r in flow.requirements(incident.id, "start_mitigation")]
    assert names == ["lead_assigned", "lead_acknowledged", "messenger_assigned"]
    assert flow.get(incident.id).version == 1
    assert flow.requirements(incident.id, "triage") == []
    assert [r.name for r in flow.requirements(incident.id, "close")] == ["phase"]


def test_available_actions_follow_phase_and_guards(flow: IncidentFlow) -> None:
    incident = declare(flow)
    assert flow.available_actions(incident.id) == [
        "assign",
        "page",
        "triage",
        "record_rollback",
        "pause_release",
        "post_status_update",
        "change_severity",
        "mark_false_positive",
        "add_follow_up",
    ]
    incident = to_postmortem(flow)
    available = flow.available_actions(incident.id)
    assert "close" not in available
    assert "complete_item" in available


def test_list_filters_by_phase_in_declaration_order(flow: IncidentFlow) -> None:
    first = declare(flow)
    second = declare(flow)
    flow.triage(second.id, by="alice")
    assert [i.id for i in flow.list()] == [first.id, second.id]
    assert [i.id for i in flow.list(phase="triaged")] == [second.id]
    with pytest.raises(UnknownPhaseError):
        flow.list(phase="nowhere")


# -- time ---------------------------------------------------------------------------------------


def test_commands_take_the_clock_time(flow: IncidentFlow, clock: FakeClock) -> None:
    incident = declare(flow)
    clock.advance(minutes=7)
    assert flow.triage(incident.id, by="alice").updated_at == START + timedelta(minutes=7)


def test_at_enters_a_past_timeline_and_is_kept_in_utc(flow: IncidentFlow) -> None:
    cest = timezone(timedelta(hours=2))
    at = datetime(2024, 2, 1, 12, 0, tzinfo=cest)
    incident = flow.declare("Old one", severity="major", customer_impact=False, by="a", at=at)
    assert incident.declared_at == datetime(2024, 2, 1, 10, 0, tzinfo=UTC)
    assert incident.declared_at.tzinfo is UTC


def test_at_must_not_go_backwards(flow: IncidentFlow) -> None:
    incident = declare(flow)
    with pytest.raises(TimeWentBackwardsError):
        flow.triage(incident.id, by="alice", at=START - timedelta(seconds=1))
    assert flow.get(incident.id).version == 1


@pytest.mark.parametrize(
    "at",
    [datetime(2024, 3, 1, 8, 0), START + timedelta(minutes=1), "2024-03-01T08:00:00Z"],
    ids=["naive", "future", "string"],
)
def test_bad_at_is_refused(flow: IncidentFlow, at: object) -> None:
    with pytest.raises(InvalidTimestampError):
        flow.declare("x", severity="major", customer_impact=False, by="a", at=at)  # type: ignore[arg-type]
    assert flow.list() == []


def test_clock_behind_the_last_event_does_not_move_time_back(flow: IncidentFlow) -> None:
    incident = declare(flow)
    other = IncidentFlow(
        store=flow.store, clock=FakeClock(START - timedelta(hours=1)), entry_points=False
    )
    assert other.triage(incident.id, by="alice").updated_at == START


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("severity", ["minor", "sev2", "Minor"])
def test_minor_issues_are_sent_to_the_support_process(flow: IncidentFlow, severity: str) -> None:
    with pytest.raises(MinorIssueError, match="support"):
        flow.declare("Typo", severity=severity, customer_impact=False, by="a")
    assert flow.list() == []


def test_downgrading_to_minor_is_refused(flow: IncidentFlow) -> None:
    incident = declare(flow)
    with pytest.raises(MinorIssueError):
        flow.change_severity(incident.id, "minor", by="alice")


@pytest.mark.parametrize("severity", ["sev9", "", 1, None])
def test_unknown_severity(flow: IncidentFlow, severity: object) -> None:
    with pytest.raises(InvalidSeverityError):
        flow.declare("x", severity=severity, customer_impact=False, by="a")  # type: ignore[arg-type]


@pytest.mark.parametrize("title", ["", "   ", None, "x" * 201])
def test_bad_titles(flow: IncidentFlow, title: object) -> None:
    with pytest.raises(InvalidFieldError):
        flow.declare(title, severity="major", customer_impact=False, by="a")  # type: ignore[arg-type]


@pytest.mark.parametrize("by", [None, "", "  ", 42, ["bob"]])
def test_actor_must_be_a_non_empty_string(flow: IncidentFlow, by: object) -> None:
    incident = declare(flow)
    with pytest.raises(InvalidActorError):
        flow.triage(incident.id, by=by)  # type: ignore[arg-type]
    with pytest.raises(TypeError):  # also a TypeError, for generic handlers
        flow.declare("x", severity="major", customer_impact=False, by=by)  # type: ignore[arg-type]


def test_customer_impact_must_be_a_bool(flow: IncidentFlow) -> None:
    with pytest.raises(InvalidFieldError):
        flow.declare("x", severity="major", customer_impact="yes", by="a")  # type: ignore[arg-type]


def test_unknown_incident(flow: IncidentFlow) -> None:
    with pytest.raises(UnknownIncidentError, match="inc-nope"):
        flow.triage("inc-nope", by="alice")
    with pytest.raises(UnknownIncidentError):
        flow.get("inc-nope")


def test_unknown_role(flow: IncidentFlow) -> None:
    incident = declare(flow)
    with pytest.raises(UnknownRoleError, match="scribe"):
        flow.assign(incident.id, "scribe", "bob", by="alice")
    assert flow.get(incident.id).version == 1


def test_unknown_checklist_item(flow: IncidentFlow) -> None:
    incident = to_postmortem(flow)
    with pytest.raises(UnknownChecklistItemError, match="generate_postmortem_doc"):
        flow.complete_item(incident.id, "write_poem", by="bob")


def test_unknown_status_phase(flow: IncidentFlow) -> None:
    incident = declare(flow)
    with pytest.raises(UnknownPhaseError, match="monitoring"):
        flow.post_status_update(incident.id, "Monitoring: ...", phase="monitoring", by="carol")


def test_empty_reason_for_a_false_positive(flow: IncidentFlow) -> None:
    incident = declare(flow)
    with pytest.raises(InvalidFieldError):
        flow.mark_false_positive(incident.id, reason=" ", by="alice")


def test_duplicate_incident_id(flow: IncidentFlow) -> None:
    flow.declare("x", severity="major", customer_impact=False, by="a", incident_id="inc-1")
    with pytest.raises(DuplicateIncidentError):
        flow.declare("y", severity="major", customer_impact=False, by="a", incident_id="inc-1")
    assert flow.get("inc-1").title == "x"


def test_transition_refuses_actions_that_take_arguments(flow: IncidentFlow) -> None:
    incident = declare(flow)
    with pytest.raises(ValidationError, match="assign"):
        flow.transition(incident.id, "assign", by="alice")


def test_an_action_the_process_does_not_have(flow: IncidentFlow) -> None:
    incident = declare(flow)
    with pytest.raises(TransitionRefused, match="not an action"):
        flow.transition(incident.id, "monitor", by="alice")


def test_unknown_delivery_status(flow: IncidentFlow) -> None:
    with pytest.raises(InvalidFieldError, match="pending"):
        flow.deliveries(status="lost")


def test_the_lead_messenger_warning_is_recorded_once(flow: IncidentFlow) -> None:
    incident = declare(flow)
    flow.assign(incident.id, Role.LEAD, "bob", by="alice")
    flow.assign(incident.id, Role.MESSENGER, "bob", by="alice")
    incident = flow.assign(incident.id, Role.RESOLUTION_OWNER, "erin", by="bob")
    assert [w.name for w in incident.warnings].count("distinct_lead_and_messenger") == 1


@pytest.mark.parametrize("action", [None, 123, "", "  "])
def test_an_action_name_must_be_a_string(flow: IncidentFlow, action: object) -> None:
    incident = declare(flow)
    with pytest.raises(InvalidFieldError):
        flow.requirements(incident.id, action)  # type: ignore[arg-type]
    with pytest.raises(InvalidFieldError):
        flow.transition(incident.id, action, by="alice")  # type: ignore[arg-type]


def test_a_plugin_filter_must_be_a_name(flow: IncidentFlow) -> None:
    with pytest.raises(InvalidFieldError):
        flow.deliveries(plugin=5)  # type: ignore[arg-type]


def test_a_guard_that_reads_an_argument_is_asked_by_a_command_that_leaves_it_out(
    clock: FakeClock,
) -> None:
    from incident_flow import HANDBOOK, Guard, Transition

    needs_ticket = Guard(
        "ticket_given",
        lambda incident, context: bool(context.payload.get("ticket")),
        "name the support ticket (ticket=...)",
        reads=("ticket",),
    )
    process = HANDBOOK.with_transition(Transition("link_ticket", Phase.IDENTIFIED)).with_guard(
        "link_ticket", needs_ticket
    )
    with IncidentFlow(process=process, clock=clock, entry_points=False, reminders=False) as flow:
        incident = declare(flow)
        # A question may leave the argument out: the action is available.
        assert "link_ticket" in flow.available_actions(incident.id)
        assert flow.requirements(incident.id, "link_ticket") == []
        # A command may not: the guard is asked, and refuses.
        with pytest.raises(TransitionRefused) as refused:
            flow.transition(incident.id, "link_ticket", by="alice")
        assert unmet_names(refused.value) == ["ticket_given"]
        linked = flow.transition(incident.id, "link_ticket", by="alice", ticket="ZD-1")
        assert linked.team_actions[-1].arguments == {"ticket": "ZD-1"}

"""Status-page posts through the flow: the communication rules refuse or record, per process."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest

from incident_flow import FakeClock, IncidentFlow, TransitionRefused
from incident_flow.comms import CommsPolicy, Rule, StatusPost
from incident_flow.errors import PluginError, ProcessDefinitionError, UnknownPhaseError
from incident_flow.events import StatusUpdatePosted
from incident_flow.hookspecs import hookimpl
from incident_flow.process import HANDBOOK, Process
from tests.conftest import declare, to_mitigating, to_postmortem

SUPPORT = "If you have any questions, email support@sourcegraph.com."
GOOD_FIRST = f"We are aware of an issue with search. {SUPPORT}"


def make_flow(clock: FakeClock, process: Process = HANDBOOK, **options: object) -> IncidentFlow:
    return IncidentFlow(
        process=process, clock=clock, entry_points=False, reminders=False, **options
    )


def refusal_names(error: TransitionRefused) -> list[str]:
    return [requirement.name for requirement in error.unmet]


def test_a_post_with_a_regional_time_zone_is_refused_and_writes_nothing(
    flow: IncidentFlow,
) -> None:
    incident = declare(flow)
    with pytest.raises(TransitionRefused) as refused:
        flow.post_status_update(
            incident.id, f"Search is slow since 9:00 EST. {SUPPORT}", phase="identified", by="c"
        )
    assert refusal_names(refused.value) == ["comms:utc_only"]
    [unmet] = refused.value.unmet
    assert "'EST' is a regional time zone" in unmet.reason
    assert unmet.handbook_ref == "Messenger roles and responsibilities"
    assert flow.get(incident.id).version == 1


def test_the_first_post_must_name_the_support_address(flow: IncidentFlow) -> None:
    incident = declare(flow)
    with pytest.raises(TransitionRefused) as refused:
        flow.post_status_update(incident.id, "We are investigating.", phase="identified", by="c")
    assert refusal_names(refused.value) == ["comms:first_post_names_support"]
    flow.post_status_update(incident.id, GOOD_FIRST, phase="identified", by="c")
    # Later posts need not repeat it.
    flow.post_status_update(incident.id, "We are still investigating.", phase="identified", by="c")
    assert len(flow.get(incident.id).status_updates) == 2


def test_every_refusing_rule_is_reported_together(flow: IncidentFlow) -> None:
    incident = declare(flow)
    with pytest.raises(TransitionRefused) as refused:
        flow.post_status_update(incident.id, "Back by 5pm PST.", phase="identified", by="c")
    assert refusal_names(refused.value) == [
        "comms:utc_only",
        "comms:first_post_names_support",
    ]


def test_a_recorded_finding_stays_on_the_post(flow: IncidentFlow) -> None:
    incident = declare(flow)
    text = f"We hope to have search back this afternoon. {SUPPORT}"
    posted = flow.post_status_update(incident.id, text, phase="identified", by="carol")
    [finding] = posted.status_updates[-1].findings
    assert (finding.rule, finding.excerpt, finding.refused) == (
        "no_regional_words",
        "this afternoon",
        False,
    )
    event = flow.history(incident.id)[-1]
    assert isinstance(event, StatusUpdatePosted)
    assert event.findings == (finding,)


def test_a_process_makes_a_recorded_rule_refuse(clock: FakeClock) -> None:
    process = HANDBOOK.with_comms(HANDBOOK.comms.with_decision("no_regional_words", "refuse"))
    with make_flow(clock, process) as flow:
        incident = declare(flow)
        with pytest.raises(TransitionRefused) as refused:
            flow.post_status_update(
                incident.id, f"Back tonight. {SUPPORT}", phase="identified", by="c"
            )
        assert refusal_names(refused.value) == ["comms:no_regional_words"]


def test_a_process_turns_a_rule_off(clock: FakeClock) -> None:
    process = HANDBOOK.with_comms(HANDBOOK.comms.with_decision("utc_only", "off"))
    with make_flow(clock, process) as flow:
        incident = declare(flow)
        posted = flow.post_status_update(
            incident.id, f"Since 9:00 EST. {SUPPORT}", phase="identified", by="c"
        )
        assert posted.status_updates[-1].findings == ()


def test_another_support_address(clock: FakeClock) -> None:
    comms = attrs.evolve(HANDBOOK.comms, support_address="help@example.com")
    with make_flow(clock, HANDBOOK.with_comms(comms)) as flow:
        incident = declare(flow)
        with pytest.raises(TransitionRefused):
            flow.post_status_update(incident.id, GOOD_FIRST, phase="identified", by="c")
        flow.post_status_update(
            incident.id, "Aware. Write to help@example.com.", phase="identified", by="c"
        )


def test_a_vendor_phase_is_refused_unless_mapped(clock: FakeClock) -> None:
    with make_flow(clock) as flow:
        incident = declare(flow)
        with pytest.raises(UnknownPhaseError) as unknown:
            flow.post_status_update(incident.id, GOOD_FIRST, phase="monitoring", by="c")
        assert "phase_aliases" in str(unknown.value)
    comms = attrs.evolve(HANDBOOK.comms, phase_aliases={"monitoring": "investigating"})
    with make_flow(clock, HANDBOOK.with_comms(comms)) as flow:
        incident = declare(flow)
        posted = flow.post_status_update(incident.id, GOOD_FIRST, phase="Monitoring", by="c")
        assert posted.status_updates[-1].phase == "investigating"


def test_an_alias_to_no_status_phase_is_refused_when_the_process_is_built() -> None:
    comms = attrs.evolve(HANDBOOK.comms, phase_aliases={"monitoring": "watching"})
    with pytest.raises(ProcessDefinitionError, match="watching"):
        HANDBOOK.with_comms(comms)


def test_requirements_reviews_a_draft_without_posting(flow: IncidentFlow) -> None:
    incident = declare(flow)
    unmet = flow.requirements(
        incident.id, "post_status_update", text="Fixed by EOD EST", phase="identified"
    )
    assert [r.name for r in unmet] == ["comms:utc_only", "comms:first_post_names_support"]
    assert flow.get(incident.id).version == 1


def test_review_status_post_lists_every_finding(flow: IncidentFlow) -> None:
    incident = declare(flow)
    findings = flow.review_status_post(incident.id, "Fixed by EOD", phase="investigating")
    assert [(f.rule, f.refused) for f in findings] == [
        ("no_regional_words", False),
        ("first_post_names_support", True),
    ]


# -- plugins add rules -----------------------------------------------------------------------------


def _no_blame(post: StatusPost, policy: CommsPolicy) -> Iterator[tuple[str, str]]:
    if "fault" in post.text.lower():
        yield ("customer posts do not assign blame; say what happened", "fault")


class NoBlame:
    @hookimpl
    def incident_flow_status_rules(self) -> list[Rule]:
        return [Rule("no_blame", "Posts assign no blame", _no_blame, refuses=True)]


def test_a_plugin_adds_a_refusing_rule(clock: FakeClock) -> None:
    with make_flow(clock, plugins=[NoBlame()]) as flow:
        incident = declare(flow)
        with pytest.raises(TransitionRefused) as refused:
            flow.post_status_update(
                incident.id, f"A vendor's fault. {SUPPORT}", phase="identified", by="c"
            )
        assert refusal_names(refused.value) == ["comms:no_blame"]


def test_the_process_overrides_a_plugin_rule(clock: FakeClock) -> None:
    process = HANDBOOK.with_comms(HANDBOOK.comms.with_decision("no_blame", "record"))
    with make_flow(clock, process, plugins=[NoBlame()]) as flow:
        incident = declare(flow)
        text = f"Our fault. {SUPPORT}"
        posted = flow.post_status_update(incident.id, text, phase="identified", by="c")
        assert [(f.rule, f.refused) for f in posted.status_updates[-1].findings] == [
            ("no_blame", False)
        ]


def test_a_plugin_rule_that_raises_fails_the_post_and_writes_nothing(clock: FakeClock) -> None:
    def broken(post: StatusPost, policy: CommsPolicy) -> Iterator[tuple[str, str]]:
        raise RuntimeError("rule bug")

    class Broken:
        @hookimpl
        def incident_flow_status_rules(self) -> list[Rule]:
            return [Rule("broken", "Broken", broken)]

    with make_flow(clock, plugins=[Broken()]) as flow:
        incident = declare(flow)
        with pytest.raises(PluginError, match="rule bug"):
            flow.post_status_update(incident.id, GOOD_FIRST, phase="identified", by="c")
        assert flow.get(incident.id).version == 1


def test_a_plugin_returning_something_else_is_an_error(clock: FakeClock) -> None:
    class Wrong:
        @hookimpl
        def incident_flow_status_rules(self) -> list[object]:
            return ["utc_only"]

    with make_flow(clock, plugins=[Wrong()]) as flow:
        incident = declare(flow)
        with pytest.raises(PluginError, match="not a Rule"):
            flow.post_status_update(incident.id, GOOD_FIRST, phase="identified", by="c")


def test_a_plugin_rule_may_not_take_a_handbook_rule_name(clock: FakeClock) -> None:
    class Clash:
        @hookimpl
        def incident_flow_status_rules(self) -> list[Rule]:
            return [Rule("utc_only", "Mine", _no_blame)]

    with make_flow(clock, plugins=[Clash()]) as flow:
        incident = declare(flow)
        with pytest.raises(ProcessDefinitionError, match="utc_only"):
            flow.post_status_update(incident.id, GOOD_FIRST, phase="identified", by="c")


# -- follow-ups and checklist links ----------------------------------------------------------------


def test_follow_ups_are_noted_with_an_owner(flow: IncidentFlow) -> None:
    incident = to_mitigating(flow)
    noted = flow.add_follow_up(incident.id, "Alert on search latency", owner="dave", by="bob")
    [follow_up] = noted.follow_ups
    assert (follow_up.id, follow_up.title, follow_up.owner, follow_up.by) == (
        f"followup-{noted.version}",
        "Alert on search latency",
        "dave",
        "bob",
    )


def test_completing_an_item_can_point_at_its_result(flow: IncidentFlow) -> None:
    incident = to_postmortem(flow)
    done = flow.complete_item(
        incident.id, "generate_postmortem_doc", link="https://docs.example.com/pm/1", by="bob"
    )
    item = done.item("generate_postmortem_doc")
    assert item is not None
    assert item.link == "https://docs.example.com/pm/1"

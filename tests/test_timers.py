"""Reminders: due from the log and the clock, recorded once, delivered like any event."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incident_flow import FakeClock, IncidentFlow, Role, Severity
from incident_flow.errors import InvalidFieldError, ProcessDefinitionError, TransitionRefused
from incident_flow.events import ReminderDue
from incident_flow.hookspecs import hookimpl
from incident_flow.model import Incident
from incident_flow.process import HANDBOOK, Process
from incident_flow.store.base import Store
from incident_flow.store.sqlite import SQLiteStore
from incident_flow.timers import (
    ANNOUNCEMENT_DAY,
    ENGINE,
    PAGE_UNACKNOWLEDGED,
    RELEASE_PAUSED_POST,
    STATUS_UPDATE_DUE,
    Due,
    TimerPolicy,
    due_reminders,
    next_reminder,
)
from tests.conftest import START, declare, to_mitigating

FIRST_POST = "We are aware of an issue with search. Questions: support@sourcegraph.com."


def reminders_of(flow: IncidentFlow, incident_id: str, name: str) -> list[ReminderDue]:
    return [
        event
        for event in flow.history(incident_id)
        if isinstance(event, ReminderDue) and event.reminder == name
    ]


# -- status updates every 30 minutes ------------------------------------------------------------


def test_a_status_update_is_due_30_minutes_after_declaring(
    flow: IncidentFlow, clock: FakeClock
) -> None:
    incident = to_mitigating(flow)
    clock.advance(minutes=29, seconds=59)
    assert flow.fire_reminders() == []
    clock.advance(seconds=1)
    [event] = flow.fire_reminders()
    assert event.reminder == STATUS_UPDATE_DUE
    assert event.due_at == START + timedelta(minutes=30)
    assert (event.recipient, event.person) == ("messenger", "carol")
    assert event.actor == ENGINE
    assert "30 minutes" in event.message
    assert flow.get(incident.id).reminders[-1].key == event.key


def test_the_status_reminder_repeats_every_30_minutes_and_fires_once_each(
    flow: IncidentFlow, clock: FakeClock
) -> None:
    incident = to_mitigating(flow)
    due_times = []
    for _ in range(3):
        clock.advance(minutes=30)
        due_times += [event.due_at for event in flow.fire_reminders()]
        assert flow.fire_reminders() == []  # asked again at the same moment: nothing new
    assert due_times == [START + timedelta(minutes=m) for m in (30, 60, 90)]
    assert len(reminders_of(flow, incident.id, STATUS_UPDATE_DUE)) == 3


def test_a_status_post_restarts_the_30_minutes(flow: IncidentFlow, clock: FakeClock) -> None:
    incident = to_mitigating(flow)
    clock.advance(minutes=20)
    flow.post_status_update(incident.id, FIRST_POST, phase="identified", by="carol")
    clock.advance(minutes=29)
    assert flow.fire_reminders() == []
    clock.advance(minutes=1)
    [event] = flow.fire_reminders()
    assert event.due_at == START + timedelta(minutes=50)


def test_a_long_absence_records_one_reminder_counting_the_missed_ones(
    flow: IncidentFlow, clock: FakeClock
) -> None:
    incident = to_mitigating(flow)
    clock.advance(hours=2, minutes=5)
    [event] = flow.fire_reminders()
    assert event.due_at == START + timedelta(hours=2)
    assert event.missed == 3
    clock.advance(minutes=25)
    [after] = flow.fire_reminders(incident.id)
    assert after.due_at == START + timedelta(hours=2, minutes=30)
    assert after.missed == 0


def test_no_status_reminder_without_customer_impact(flow: IncidentFlow, clock: FakeClock) -> None:
    to_mitigating(flow, customer_impact=False)
    clock.advance(hours=3)
    assert flow.fire_reminders() == []


def test_no_status_reminder_once_resolved(flow: IncidentFlow, clock: FakeClock) -> None:
    incident = to_mitigating(flow)
    flow.post_status_update(incident.id, FIRST_POST, phase="identified", by="carol")
    flow.resolve(incident.id, by="bob")
    clock.advance(hours=3)
    assert flow.fire_reminders() == []


def test_no_status_reminder_for_a_false_positive(flow: IncidentFlow, clock: FakeClock) -> None:
    incident = declare(flow)
    flow.mark_false_positive(incident.id, reason="a test alert", by="alice")
    clock.advance(hours=3)
    assert flow.fire_reminders() == []


def test_without_a_messenger_the_lead_is_reminded(flow: IncidentFlow, clock: FakeClock) -> None:
    incident = declare(flow)
    flow.assign(incident.id, Role.LEAD, "bob", by="alice")
    clock.advance(minutes=30)
    [event] = flow.fire_reminders()
    assert (event.recipient, event.person) == ("lead", "bob")


def test_without_anyone_the_reminder_names_the_role_and_no_person(
    flow: IncidentFlow, clock: FakeClock
) -> None:
    declare(flow)
    clock.advance(minutes=30)
    [event] = flow.fire_reminders()
    assert (event.recipient, event.person) == ("lead", None)


def test_the_interval_is_part_of_the_process(clock: FakeClock) -> None:
    process = HANDBOOK.with_timers(status_update_every=timedelta(minutes=15))
    with IncidentFlow(process=process, clock=clock, entry_points=False, reminders=False) as flow:
        declare(flow)
        clock.advance(minutes=15)
        [event] = flow.fire_reminders()
        assert event.due_at == START + timedelta(minutes=15)


@pytest.mark.parametrize(
    "interval", [timedelta(0), timedelta(minutes=-5), 30, "30m", None], ids=repr
)
def test_an_interval_must_be_a_positive_timedelta(interval: object) -> None:
    with pytest.raises(InvalidFieldError) as raised:
        TimerPolicy(status_update_every=interval)  # type: ignore[arg-type]
    assert raised.value.field == "status_update_every"


# -- pages escalate after 10 minutes -------------------------------------------------------------


def test_an_unacknowledged_page_escalates_after_10_minutes(
    flow: IncidentFlow, clock: FakeClock
) -> None:
    incident = declare(flow, customer_impact=False)
    paged = flow.page(incident.id, "delivery team", by="alice", message="search is down")
    [page] = paged.pages
    assert page.id == f"page-{paged.version}"
    clock.advance(minutes=9, seconds=59)
    assert flow.fire_reminders() == []
    clock.advance(seconds=1)
    [event] = flow.fire_reminders()
    assert (event.reminder, event.subject) == (PAGE_UNACKNOWLEDGED, page.id)
    assert event.due_at == START + timedelta(minutes=10)
    assert "delivery team" in event.message
    assert "escalate" in event.message
    clock.advance(minutes=10)
    [again] = flow.fire_reminders()
    assert again.due_at == START + timedelta(minutes=20)
    assert "escalation 2" in again.message


def test_an_acknowledged_page_does_not_escalate(flow: IncidentFlow, clock: FakeClock) -> None:
    incident = declare(flow, customer_impact=False)
    flow.page(incident.id, "dave@example.com", by="alice")
    clock.advance(minutes=4)
    answered = flow.acknowledge_page(incident.id, by="dave@example.com")
    assert answered.pages[0].acknowledged_by == "dave@example.com"
    assert answered.pages[0].acknowledged_at == START + timedelta(minutes=4)
    clock.advance(hours=1)
    assert flow.fire_reminders() == []


def test_the_paged_person_acknowledging_ownership_as_lead_answers_the_page(
    flow: IncidentFlow, clock: FakeClock
) -> None:
    incident = declare(flow, customer_impact=False)
    flow.page(incident.id, "bob", by="alice")
    flow.assign(incident.id, Role.LEAD, "bob", by="alice")
    clock.advance(minutes=3)
    acknowledged = flow.acknowledge(incident.id, by="bob")
    assert acknowledged.open_pages == ()
    clock.advance(minutes=30)
    assert flow.fire_reminders() == []


def test_each_page_escalates_on_its_own_clock(flow: IncidentFlow, clock: FakeClock) -> None:
    incident = declare(flow, customer_impact=False)
    first = flow.page(incident.id, "delivery team", by="alice").pages[0].id
    clock.advance(minutes=5)
    second = flow.page(incident.id, "search team", by="alice").pages[1].id
    clock.advance(minutes=5)
    assert [e.subject for e in flow.fire_reminders()] == [first]
    clock.advance(minutes=5)
    assert [e.subject for e in flow.fire_reminders()] == [second]


def test_acknowledging_a_page_twice_is_refused_with_the_reason(flow: IncidentFlow) -> None:
    incident = declare(flow, customer_impact=False)
    page_id = flow.page(incident.id, "delivery team", by="alice").pages[0].id
    flow.acknowledge_page(incident.id, page_id, by="dave")
    with pytest.raises(TransitionRefused) as refused:
        flow.acknowledge_page(incident.id, page_id, by="erin")
    [unmet] = refused.value.unmet
    assert unmet.name == "page_open"
    assert "already acknowledged by dave" in unmet.reason


def test_acknowledging_an_unknown_page_is_refused(flow: IncidentFlow) -> None:
    incident = declare(flow, customer_impact=False)
    flow.page(incident.id, "delivery team", by="alice")
    with pytest.raises(TransitionRefused) as refused:
        flow.acknowledge_page(incident.id, "page-99", by="dave")
    assert "no page 'page-99'" in refused.value.unmet[0].reason


def test_which_page_is_meant_must_be_said_when_several_are_open(flow: IncidentFlow) -> None:
    incident = declare(flow, customer_impact=False)
    flow.page(incident.id, "delivery team", by="alice")
    flow.page(incident.id, "search team", by="alice")
    before = flow.get(incident.id).version
    with pytest.raises(InvalidFieldError) as raised:
        flow.acknowledge_page(incident.id, by="dave")
    assert raised.value.field == "page"
    assert "delivery team" in str(raised.value)
    assert "search team" in str(raised.value)
    assert flow.get(incident.id).version == before


def test_acknowledging_when_no_page_is_open_is_refused_with_the_reason(
    flow: IncidentFlow,
) -> None:
    incident = declare(flow, customer_impact=False)
    with pytest.raises(TransitionRefused) as refused:
        flow.acknowledge_page(incident.id, by="dave")
    [unmet] = refused.value.unmet
    assert unmet.name == "page_open"
    assert "no page of this incident is waiting" in unmet.reason


def test_page_escalation_interval_is_part_of_the_process(clock: FakeClock) -> None:
    process = HANDBOOK.with_timers(page_ack_within=timedelta(minutes=5))
    with IncidentFlow(process=process, clock=clock, entry_points=False, reminders=False) as flow:
        incident = declare(flow, customer_impact=False)
        flow.page(incident.id, "delivery team", by="alice")
        clock.advance(minutes=5)
        assert [e.reminder for e in flow.fire_reminders()] == [PAGE_UNACKNOWLEDGED]


# -- announcement days and release pauses ----------------------------------------------------------


def announcement_process(day: date) -> Process:
    return HANDBOOK.with_comms(
        HANDBOOK.comms.with_announcement_day(day, "Series D announcement", "@dana")
    )


def test_an_incident_on_an_announcement_day_tells_marketing_at_once(clock: FakeClock) -> None:
    process = announcement_process(START.date())
    with IncidentFlow(process=process, clock=clock, entry_points=False, reminders=False) as flow:
        incident = declare(flow)
        [event] = reminders_of(flow, incident.id, ANNOUNCEMENT_DAY)
        assert event.version == 2  # committed with the declaration, in one transaction
        assert (event.recipient, event.person, event.due_at) == ("marketing", "@dana", START)
        assert "Series D announcement" in event.message
        clock.advance(hours=5)
        flow.fire_reminders()
        assert len(reminders_of(flow, incident.id, ANNOUNCEMENT_DAY)) == 1


def test_an_incident_still_open_when_the_announcement_day_begins_is_reported_then(
    clock: FakeClock,
) -> None:
    tomorrow = START.date() + timedelta(days=1)
    process = announcement_process(tomorrow)
    with IncidentFlow(process=process, clock=clock, entry_points=False, reminders=False) as flow:
        incident = declare(flow, customer_impact=False)
        assert reminders_of(flow, incident.id, ANNOUNCEMENT_DAY) == []
        clock.set(datetime.combine(tomorrow, datetime.min.time(), tzinfo=UTC))
        [event] = flow.fire_reminders()
        assert event.reminder == ANNOUNCEMENT_DAY
        assert event.due_at == datetime.combine(tomorrow, datetime.min.time(), tzinfo=UTC)


def test_an_incident_declared_on_another_day_does_not_tell_marketing(clock: FakeClock) -> None:
    process = announcement_process(START.date() - timedelta(days=1))
    with IncidentFlow(process=process, clock=clock, entry_points=False, reminders=False) as flow:
        incident = declare(flow)
        clock.advance(days=2)
        flow.fire_reminders()
        assert reminders_of(flow, incident.id, ANNOUNCEMENT_DAY) == []


def test_pausing_a_release_names_the_groups_and_reminds_the_messenger(flow: IncidentFlow) -> None:
    incident = to_mitigating(flow)
    flow.pause_release(incident.id, release="3.30", by="bob")
    events = flow.history(incident.id)
    paused, reminder = events[-2], events[-1]
    assert paused.type == "ReleasePaused"
    assert paused.alert == ("@delivery-support", "@cs", "@ce")  # type: ignore[attr-defined]
    assert isinstance(reminder, ReminderDue)
    assert (reminder.reminder, reminder.subject) == (RELEASE_PAUSED_POST, "3.30")
    assert (reminder.recipient, reminder.person) == ("messenger", "carol")
    assert "status page" in reminder.message


def test_release_pause_groups_come_from_the_process(clock: FakeClock) -> None:
    comms = attrs.evolve(HANDBOOK.comms, release_pause_groups=("@release-captains",))
    process = HANDBOOK.with_comms(comms)
    with IncidentFlow(process=process, clock=clock, entry_points=False, reminders=False) as flow:
        incident = declare(flow)
        flow.pause_release(incident.id, release="3.30", by="alice")
        paused = flow.history(incident.id)[-2]
        assert paused.alert == ("@release-captains",)  # type: ignore[attr-defined]


# -- exactly once, delivered like any event --------------------------------------------------------


def test_reminders_reach_plugins_like_any_other_event(clock: FakeClock) -> None:
    seen: list[str] = []

    class Recorder:
        @hookimpl
        def incident_flow_event(self, event: object) -> None:
            if isinstance(event, ReminderDue):
                seen.append(event.reminder)

    with IncidentFlow(
        clock=clock, plugins=[Recorder()], entry_points=False, reminders=False
    ) as flow:
        to_mitigating(flow)
        clock.advance(minutes=30)
        flow.fire_reminders()
        assert flow.drain(10)
    assert seen == [STATUS_UPDATE_DUE]


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_several_flows_on_one_store_record_each_reminder_once(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    clock = FakeClock(START)
    if engine == "sqlite":
        path = tmp_path / "incidents.db"

        def store() -> Store:
            return SQLiteStore(path)
    else:
        conninfo, schema = request.getfixturevalue("pg_schema")

        def store() -> Store:
            from incident_flow.store.postgres import PostgresStore

            return PostgresStore(conninfo, schema=schema, max_size=2)

    flows = [
        IncidentFlow(store=store(), clock=clock, entry_points=False, reminders=False)
        for _ in range(4)
    ]
    try:
        incident = to_mitigating(flows[0])
        barrier = threading.Barrier(len(flows))
        errors: list[BaseException] = []

        def fire(flow: IncidentFlow) -> None:
            try:
                for _ in range(4):
                    barrier.wait()
                    flow.fire_reminders()
            except BaseException as error:  # reported below
                errors.append(error)

        for _ in range(3):
            clock.advance(minutes=30)
            threads = [threading.Thread(target=fire, args=(flow,)) for flow in flows]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert errors == []
        keys = [event.key for event in reminders_of(flows[0], incident.id, STATUS_UPDATE_DUE)]
        assert len(keys) == len(set(keys)) == 3
    finally:
        for flow in flows:
            flow.shutdown()


def test_the_background_loop_records_due_reminders(clock: FakeClock) -> None:
    with IncidentFlow(clock=clock, entry_points=False, reminder_interval=0.01) as flow:
        incident = to_mitigating(flow)
        clock.advance(minutes=30)
        for _ in range(500):
            if reminders_of(flow, incident.id, STATUS_UPDATE_DUE):
                break
            threading.Event().wait(0.01)
        assert len(reminders_of(flow, incident.id, STATUS_UPDATE_DUE)) == 1


@pytest.mark.parametrize("interval", [0, -1, "5", True], ids=repr)
def test_the_reminder_interval_must_be_positive(interval: object) -> None:
    with pytest.raises(InvalidFieldError) as raised:
        IncidentFlow(entry_points=False, reminder_interval=interval)  # type: ignore[arg-type]
    assert raised.value.field == "reminder_interval"


def test_next_reminder_says_what_falls_due_next(flow: IncidentFlow, clock: FakeClock) -> None:
    incident = to_mitigating(flow)
    flow.page(incident.id, "delivery team", by="bob")
    upcoming = flow.next_reminder(incident.id)
    assert upcoming is not None
    assert (upcoming.reminder, upcoming.due_at) == (
        PAGE_UNACKNOWLEDGED,
        START + timedelta(minutes=10),
    )


# -- a team's own rule ---------------------------------------------------------------------------


@attrs.frozen
class Stuck:
    """A reminder one hour after declaring, once."""

    name: str = "one_hour_in"

    def next_due(self, incident: Incident, process: Process) -> Due | None:
        key = f"{self.name}:{incident.id}"
        if incident.reminded(key):
            return None
        return Due(self.name, key, incident.declared_at + timedelta(hours=1), "lead")


@attrs.frozen
class Broken:
    """Never moves on: a bug the library reports rather than looping forever."""

    name: str = "broken"

    def next_due(self, incident: Incident, process: Process) -> Due | None:
        return Due(self.name, "same", incident.declared_at, "lead")


def test_a_team_adds_its_own_reminder_rule(clock: FakeClock) -> None:
    process = HANDBOOK.with_reminder(Stuck())
    with IncidentFlow(process=process, clock=clock, entry_points=False, reminders=False) as flow:
        declare(flow, customer_impact=False)
        clock.advance(hours=2)
        assert [e.reminder for e in flow.fire_reminders()] == ["one_hour_in"]
        assert flow.fire_reminders() == []


def test_a_rule_that_never_moves_on_is_reported(clock: FakeClock) -> None:
    process = HANDBOOK.with_reminder(Broken())
    incident = Incident(
        id="inc-1",
        title="t",
        description="",
        severity=Severity.MAJOR,
        customer_impact=False,
        phase="identified",
        declared_at=START,
        updated_at=START,
        version=1,
    )
    with pytest.raises(ProcessDefinitionError, match="broken"):
        due_reminders(incident, process, START + timedelta(hours=1))


def test_two_rules_with_one_name_are_refused() -> None:
    with pytest.raises(ProcessDefinitionError, match="one_hour_in"):
        HANDBOOK.with_reminder(Stuck()).with_reminder(Stuck())


def test_a_rule_without_next_due_is_refused() -> None:
    with pytest.raises(ProcessDefinitionError):
        TimerPolicy(rules=(object(),))  # type: ignore[arg-type]


# -- properties ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=12),
    posts=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_status_reminders_fall_due_only_after_30_quiet_minutes(
    gaps: list[int], posts: list[bool]
) -> None:
    """Whenever the clock moves and reminders are fired, each recorded reminder is due no
    earlier than 30 minutes after the last post before it, no key repeats, and nothing due is
    left unrecorded."""
    clock = FakeClock(START)
    with IncidentFlow(clock=clock, entry_points=False, reminders=False, deliver=False) as flow:
        incident = declare(flow)
        for gap, post in zip(gaps, posts, strict=False):
            clock.advance(minutes=gap)
            flow.fire_reminders()
            if post:
                flow.post_status_update(incident.id, FIRST_POST, phase="identified", by="alice")
        current = flow.get(incident.id)
        assert due_reminders(current, HANDBOOK, clock.now()) == []
        keys = [r.key for r in current.reminders]
        assert len(keys) == len(set(keys))
        for reminder in current.reminders:
            before = [u.at for u in current.status_updates if u.at < reminder.at]
            anchor = max(before, default=current.declared_at)
            assert reminder.due_at >= anchor + timedelta(minutes=30)
            assert reminder.due_at <= reminder.at
        upcoming = next_reminder(current, HANDBOOK)
        assert upcoming is not None
        assert upcoming.due_at > clock.now()

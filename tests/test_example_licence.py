"""The temporary licence policy of ``examples/licence_policy.py``: its guards, its reminders and
its scenario, through the public API only."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incident_flow import FakeClock, Incident, IncidentFlow, Phase, Role, Severity
from incident_flow.errors import InvalidFieldError, TransitionRefused
from incident_flow.events import ActionTaken, ReminderDue
from incident_flow.store import MemoryStore, SQLiteStore
from incident_flow.testing import check_process

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "licence_policy.py"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("licence_policy", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


licence_policy = _load_example()
PROCESS = licence_policy.LICENCE_PROCESS
ISSUE = licence_policy.ISSUE_TEMPORARY_LICENCE
START = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def new_flow(clock: FakeClock, **options: object) -> IncidentFlow:
    return IncidentFlow(
        process=PROCESS,
        clock=clock,
        entry_points=False,
        reminders=False,
        deliver=False,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def flow(clock: FakeClock) -> Iterator[IncidentFlow]:
    with new_flow(clock) as flow:
        yield flow


def mitigating(flow: IncidentFlow) -> str:
    """A quiet incident (no customer impact: no status-post reminders), lead bob, mitigating."""
    incident = flow.declare(
        "Acme reports 'license expired'", severity=Severity.MAJOR, customer_impact=False, by="al"
    )
    flow.assign(incident.id, Role.LEAD, "bob", by="al")
    flow.acknowledge(incident.id, by="bob")
    flow.start_mitigation(incident.id, by="bob")
    return incident.id


def issue(flow: IncidentFlow, incident_id: str, **arguments: str) -> Incident:
    # (A type checker cannot tell that no argument is called ``at``.)
    return flow.transition(incident_id, ISSUE, by="carol", **arguments)  # type: ignore[arg-type]


def stages(events: list[ReminderDue]) -> list[str]:
    return [event.key.rsplit(":", 1)[1] for event in events]


# -- the guards -------------------------------------------------------------------------------


def test_a_seven_day_key_is_allowed_and_recorded_with_its_arguments(
    flow: IncidentFlow, clock: FakeClock
) -> None:
    incident_id = mitigating(flow)
    assert ISSUE in flow.available_actions(incident_id)  # asked without any arguments

    incident = issue(flow, incident_id, customer="acme", days="7", account="acme-admin")

    record = incident.team_actions[-1]
    assert record.action == ISSUE
    assert dict(record.arguments) == {"customer": "acme", "days": "7", "account": "acme-admin"}
    assert (record.at, record.by) == (clock.now(), "carol")
    event = flow.history(incident_id)[-1]
    assert isinstance(event, ActionTaken)
    assert event.arguments == {"customer": "acme", "days": "7", "account": "acme-admin"}
    assert incident.phase == Phase.MITIGATING


@pytest.mark.parametrize("days", ["0", "8", "30", "seven", "7.5", "-1", "1e1", "99999"])
def test_days_other_than_one_to_seven_are_refused_with_the_handbook_limit(
    flow: IncidentFlow, days: str
) -> None:
    incident_id = mitigating(flow)
    before = len(flow.history(incident_id))

    with pytest.raises(TransitionRefused) as refused:
        issue(flow, incident_id, customer="acme", days=days)

    assert [r.name for r in refused.value.unmet] == ["temporary_licence_valid_days"]
    reason = refused.value.unmet[0].reason
    assert "from 1 to 7" in reason
    assert repr(days) in reason
    assert "ask the go-to-market team" in reason
    assert refused.value.unmet[0].handbook_ref == licence_policy.GO_TO_MARKET
    assert len(flow.history(incident_id)) == before


def test_a_missing_customer_is_refused(flow: IncidentFlow) -> None:
    incident_id = mitigating(flow)

    with pytest.raises(TransitionRefused) as refused:
        issue(flow, incident_id, days="7")

    assert [r.name for r in refused.value.unmet] == ["temporary_licence_arguments"]
    assert "the customer the key is for (customer=...)" in refused.value.unmet[0].reason
    assert "days" not in refused.value.unmet[0].reason


def test_missing_days_are_refused(flow: IncidentFlow) -> None:
    incident_id = mitigating(flow)

    with pytest.raises(TransitionRefused) as refused:
        issue(flow, incident_id, customer="acme")

    assert [r.name for r in refused.value.unmet] == ["temporary_licence_arguments"]
    assert "how many days it is valid (days=1 to 7)" in refused.value.unmet[0].reason


def test_a_blank_customer_is_refused(flow: IncidentFlow) -> None:
    incident_id = mitigating(flow)
    # A command's blank argument never reaches the guards: the flow refuses it first.
    with pytest.raises(InvalidFieldError):
        issue(flow, incident_id, customer="  ", days="7")
    # Asked without trying, it reaches the guard.
    unmet = flow.requirements(incident_id, ISSUE, by="carol", customer="  ", days="7")
    assert [r.name for r in unmet] == ["temporary_licence_arguments"]


def test_the_action_is_open_until_the_postmortem_and_closed_after() -> None:
    for phase in (
        Phase.IDENTIFIED,
        Phase.TRIAGED,
        Phase.MITIGATING,
        Phase.RESOLVED,
        Phase.POSTMORTEM,
    ):
        assert ISSUE in PROCESS.actions_in(phase)
    assert ISSUE not in PROCESS.actions_in(Phase.CLOSED)
    assert ISSUE not in PROCESS.actions_in(Phase.FALSE_POSITIVE)


# -- the reminders ----------------------------------------------------------------------------


def test_the_reminders_fall_due_at_expiry_before_lockout_and_at_lockout_once_each(
    flow: IncidentFlow, clock: FakeClock
) -> None:
    incident_id = mitigating(flow)
    issued_at = issue(flow, incident_id, customer="acme", days="7").updated_at
    expiry = issued_at + timedelta(days=7)
    lockout = expiry + timedelta(hours=72)

    expected = [
        (expiry, "expired"),
        (lockout - timedelta(hours=24), "lockout_warning"),
        (lockout, "locked_out"),
    ]
    for due_at, stage in expected:
        clock.set(due_at - SECOND)
        assert flow.fire_reminders() == []
        clock.set(due_at)
        fired = flow.fire_reminders()
        assert stages(fired) == [stage]
        assert fired[0].due_at == due_at
        assert fired[0].reminder == "temporary_licence_expiry"
        assert (fired[0].recipient, fired[0].person) == ("lead", "bob")
        assert fired[0].missed == 0
        clock.set(due_at + SECOND)
        assert flow.fire_reminders() == []
        assert flow.fire_reminders(incident_id) == []

    reminders = flow.get(incident_id).reminders
    assert [r.due_at for r in reminders] == [due_at for due_at, _ in expected]
    assert len({r.key for r in reminders}) == 3
    assert "expired at 2024-03-08 09:00 UTC" in reminders[0].message
    assert "runs until 2024-03-11 09:00 UTC" in reminders[0].message
    assert "will be locked out at 2024-03-11 09:00 UTC" in reminders[1].message
    assert "are locked out since 2024-03-11 09:00 UTC" in reminders[2].message
    assert flow.next_reminder(incident_id) is None


def test_two_flows_on_one_store_record_each_reminder_once(tmp_path: Path, clock: FakeClock) -> None:
    database = tmp_path / "incidents.db"
    with (
        new_flow(clock, store=SQLiteStore(database)) as first,
        new_flow(clock, store=SQLiteStore(database)) as second,
    ):
        incident_id = mitigating(first)
        issue(second, incident_id, customer="acme", days="2")
        licence = next(licence_policy.temporary_licences(first.get(incident_id)))
        moments = [
            licence.expires_at,
            licence.lockout_at - timedelta(hours=24),
            licence.lockout_at,
        ]
        recorded: list[ReminderDue] = []
        with ThreadPoolExecutor(max_workers=2) as pool:
            for moment in moments:
                clock.set(moment)
                for _ in range(3):
                    batches = pool.map(lambda f: f.fire_reminders(), [first, second])
                    recorded.extend(event for batch in batches for event in batch)

        assert stages(recorded) == ["expired", "lockout_warning", "locked_out"]
        assert first.get(incident_id).reminders == second.get(incident_id).reminders
        assert len(first.get(incident_id).reminders) == 3


def test_a_shared_memory_store_records_each_reminder_once(clock: FakeClock) -> None:
    store = MemoryStore()
    first, second = new_flow(clock, store=store), new_flow(clock, store=store)
    incident_id = mitigating(first)
    issue(first, incident_id, customer="acme", days="1")
    clock.advance(days=1)
    assert stages(second.fire_reminders()) == ["expired"]
    assert first.fire_reminders() == []
    assert second.fire_reminders() == []
    assert len(first.get(incident_id).reminders) == 1


def test_two_keys_have_independent_reminders(flow: IncidentFlow, clock: FakeClock) -> None:
    incident_id = mitigating(flow)
    acme_at = issue(flow, incident_id, customer="acme", days="7").updated_at
    clock.advance(hours=1)
    globex_at = issue(flow, incident_id, customer="globex", days="2").updated_at
    # A second key for acme at the very same moment as globex's is a key of its own.
    issue(flow, incident_id, customer="acme", days="2")

    clock.set(globex_at + timedelta(days=2))
    fired = flow.fire_reminders()
    assert [(e.subject.split("@")[0], stages([e])[0]) for e in fired] == [
        ("globex", "expired"),
        ("acme", "expired"),
    ]
    assert fired[0].subject != fired[1].subject
    assert fired[0].key != fired[1].key

    clock.set(acme_at + timedelta(days=7))
    fired = flow.fire_reminders()
    # The two 2-day keys are past their lockout warnings and lockouts by now, each recorded
    # once as its latest overdue reminder; the 7-day key has just expired.
    assert sorted((e.subject.split("@")[0], stages([e])[0], e.missed) for e in fired) == [
        ("acme", "expired", 0),
        ("acme", "locked_out", 1),
        ("globex", "locked_out", 1),
    ]
    assert len({e.subject for e in fired}) == 3
    assert flow.fire_reminders() == []

    reminders = flow.get(incident_id).reminders
    assert len({r.key for r in reminders}) == len(reminders) == 5
    assert len({r.subject for r in reminders}) == 3


def test_overdue_reminders_of_a_key_are_recorded_as_the_latest(
    flow: IncidentFlow, clock: FakeClock
) -> None:
    incident_id = mitigating(flow)
    issued_at = issue(flow, incident_id, customer="acme", days="3").updated_at

    clock.set(issued_at + timedelta(days=30))
    fired = flow.fire_reminders()

    assert stages(fired) == ["locked_out"]
    assert fired[0].missed == 2
    assert flow.fire_reminders() == []
    assert flow.next_reminder(incident_id) is None


def test_the_reminders_go_on_after_resolution_and_stop_when_closed(
    flow: IncidentFlow, clock: FakeClock
) -> None:
    incident_id = mitigating(flow)
    issued_at = issue(flow, incident_id, customer="acme", days="1").updated_at
    assert flow.resolve(incident_id, by="bob").phase == Phase.RESOLVED

    clock.set(issued_at + timedelta(days=1))
    assert stages(flow.fire_reminders()) == ["expired"]

    assert flow.start_postmortem(incident_id, by="bob").phase == Phase.POSTMORTEM
    clock.set(issued_at + timedelta(days=1, hours=48))
    assert stages(flow.fire_reminders()) == ["lockout_warning"]

    for item in flow.get(incident_id).checklist:
        if item.is_open:
            flow.waive_item(incident_id, item.name, reason="example", by="bob")
    assert flow.close(incident_id, by="bob").phase == Phase.CLOSED
    clock.set(issued_at + timedelta(days=1, hours=72))
    assert flow.fire_reminders() == []
    assert flow.fire_reminders(incident_id) == []
    assert flow.next_reminder(incident_id) is None


def test_the_rule_moves_on_once_an_occurrence_is_recorded(
    flow: IncidentFlow, clock: FakeClock
) -> None:
    incident_id = mitigating(flow)
    issue(flow, incident_id, customer="acme", days="5")
    rule = licence_policy.LicenceExpiry()
    seen = []
    for _ in range(3):
        due = rule.next_due(flow.get(incident_id), PROCESS)
        assert due is not None
        assert rule.next_due(flow.get(incident_id), PROCESS) == due  # a pure function
        seen.append(due.key)
        clock.set(due.due_at)
        flow.fire_reminders()
    assert rule.next_due(flow.get(incident_id), PROCESS) is None
    assert len(set(seen)) == 3


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    days=st.integers(min_value=1, max_value=7),
    issued_at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_the_expiry_reminder_is_due_days_after_the_key_was_issued(
    days: int, issued_at: datetime
) -> None:
    clock = FakeClock(issued_at)
    with new_flow(clock) as flow:
        incident = flow.declare("Licence", severity=Severity.MAJOR, customer_impact=False, by="al")
        issue(flow, incident.id, customer="acme", days=str(days))

        due = licence_policy.LicenceExpiry().next_due(flow.get(incident.id), PROCESS)
        assert due is not None
        assert due.due_at == issued_at + timedelta(days=days)

        clock.set(issued_at + timedelta(days=days))
        fired = flow.fire_reminders()
        assert stages(fired) == ["expired"]
        assert fired[0].due_at == issued_at + timedelta(days=days)


# -- the example as a whole -------------------------------------------------------------------


def test_main_runs_and_prints_the_refused_reason(capsys: pytest.CaptureFixture[str]) -> None:
    licence_policy.main()
    out = capsys.readouterr().out
    assert "issue_temporary_licence available: yes" in out
    assert "refused, temporary_licence_valid_days:" in out
    assert "not '30'" in out
    assert "ask the go-to-market team" in out
    assert "expired at 2024-05-21 09:20 UTC" in out
    assert "will be locked out at 2024-05-24 09:20 UTC" in out
    assert "are locked out since 2024-05-24 09:20 UTC" in out
    assert "next reminder: none" in out


def test_check_process_finds_nothing_wrong_with_the_policy() -> None:
    # The walk tries a team's own action with no arguments unless told which to try. Without
    # them the days guard is never asked (it reads ``days``) and the arguments guard takes a
    # command with no arguments for a question, so both would be reported as
    # guard-never-refuses. With a key that is allowed, one with too many days and one without
    # a customer, each guard is seen both passing and refusing.
    arguments = {
        ISSUE: [
            {"customer": "acme", "days": "7"},
            {"customer": "acme", "days": "8"},
            {"days": "7"},
        ]
    }
    findings = check_process(PROCESS, arguments=arguments)

    ours = {ISSUE, *licence_policy.LICENCE_PROCESS.guards} - set(licence_policy.HANDBOOK.guards)
    about_the_policy = [str(f) for f in findings if any(name in str(f) for name in ours)]
    # Any other finding is the handbook's own (tests/test_stateful.py holds it to none).
    assert about_the_policy == []
    assert not any(f.kind == "walk-truncated" for f in findings)

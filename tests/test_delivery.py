"""Delivery from the outbox: retries with backoff, dead letters, order, idempotency keys,
timeouts, leases, plugins that are not installed, and workers outside the flow."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incident_flow import (
    DeliveryWorker,
    Event,
    FakeClock,
    Incident,
    IncidentFlow,
    RetryPolicy,
    hookimpl,
    retry_on_conflict,
)
from incident_flow.errors import (
    InvalidFieldError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from incident_flow.plugins import Notifier, PluginRegistry
from incident_flow.store.base import DeliveryStatus, Store
from incident_flow.store.memory import MemoryStore
from incident_flow.store.sqlite import SQLiteStore
from tests.conftest import declare, to_mitigating


class Flaky:
    """Fails the first ``failures`` calls for each event, then succeeds; records every call."""

    incident_flow_name = "flaky"

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or RuntimeError("HTTP 503 from the vendor")
        self.calls: list[tuple[str, int]] = []
        self.delivered: list[tuple[str, int, str]] = []
        self._lock = threading.Lock()

    @hookimpl
    def incident_flow_event(self, event: Event, incident: Incident, key: str) -> None:
        with self._lock:
            self.calls.append((key, event.version))
            if sum(1 for k, _ in self.calls if k == key) <= self.failures:
                raise self.error
            self.delivered.append((event.incident_id, event.version, key))


class Recorder:
    incident_flow_name = "recorder"

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str, str]] = []

    @hookimpl
    def incident_flow_event(self, event: Event, incident: Incident, key: str) -> None:
        self.seen.append((event.incident_id, event.version, incident.phase, key))


NO_JITTER = RetryPolicy(max_attempts=4, base=10.0, factor=2.0, cap=600.0)


@pytest.fixture
def make(clock: FakeClock) -> Iterator[Any]:
    flows: list[IncidentFlow] = []

    def make(*plugins: object, **options: Any) -> IncidentFlow:
        options.setdefault("retry", NO_JITTER)
        flow = IncidentFlow(clock=clock, plugins=plugins, entry_points=False, **options)
        flows.append(flow)
        return flow

    yield make
    for flow in flows:
        flow.shutdown()


def _notifier(plugin: object) -> Notifier:
    (notifier,) = PluginRegistry([plugin], entry_points=False).notifiers
    return notifier


def statuses(flow: IncidentFlow, plugin: str) -> list[tuple[int, str, int]]:
    return [(d.version, d.status.value, d.attempts) for d in flow.deliveries(plugin=plugin)]


def test_a_failed_delivery_is_retried_after_a_backoff_and_then_succeeds(
    make: Any, clock: FakeClock
) -> None:
    flaky = Flaky(failures=2)
    flow = make(flaky)
    incident = declare(flow)
    assert flow.drain(timeout=5)
    (row,) = flow.deliveries(status="failed")
    assert row.attempts == 1
    assert row.last_error == "RuntimeError: HTTP 503 from the vendor"
    assert row.next_attempt_at is not None
    # The first retry waits between half and all of `base`.
    assert clock.now() + timedelta(seconds=5) <= row.next_attempt_at
    assert row.next_attempt_at <= clock.now() + timedelta(seconds=10)

    clock.advance(timedelta(seconds=10))
    assert flow.drain(timeout=5)
    (row,) = flow.deliveries(status="failed")
    assert row.attempts == 2
    # The second waits between half and all of base * factor.
    assert clock.now() + timedelta(seconds=10) <= row.next_attempt_at
    assert row.next_attempt_at <= clock.now() + timedelta(seconds=20)

    clock.advance(timedelta(seconds=20))
    assert flow.drain(timeout=5)
    assert statuses(flow, "flaky") == [(1, "delivered", 3)]
    assert flaky.delivered == [(incident.id, 1, f"{incident.id}:1:flaky")]


def test_a_retry_is_not_made_before_it_is_due(make: Any, clock: FakeClock) -> None:
    flaky = Flaky(failures=1)
    flow = make(flaky)
    declare(flow)
    assert flow.drain(timeout=5)
    clock.advance(timedelta(seconds=4))
    assert flow.drain(timeout=5)
    assert len(flaky.calls) == 1


def test_every_redelivery_carries_the_same_idempotency_key(make: Any, clock: FakeClock) -> None:
    flaky = Flaky(failures=3)
    flow = make(flaky)
    incident = declare(flow)
    for _ in range(4):
        assert flow.drain(timeout=5)
        clock.advance(timedelta(minutes=10))
    assert flow.drain(timeout=5)
    assert [key for key, _ in flaky.calls] == [f"{incident.id}:1:flaky"] * 4


def test_a_delivery_is_dead_lettered_after_the_last_attempt(make: Any, clock: FakeClock) -> None:
    flaky = Flaky(failures=100)
    flow = make(flaky)
    declare(flow)
    for _ in range(NO_JITTER.max_attempts):
        assert flow.drain(timeout=5)
        clock.advance(timedelta(minutes=10))
    assert flow.drain(timeout=5)
    (dead,) = flow.deliveries(status="dead")
    assert dead.attempts == NO_JITTER.max_attempts == len(flaky.calls)
    assert dead.last_error == "RuntimeError: HTTP 503 from the vendor"


def test_a_permanent_error_is_dead_lettered_at_once(make: Any) -> None:
    flaky = Flaky(failures=1, error=PermanentDeliveryError("HTTP 404: channel_not_found"))
    flow = make(flaky)
    declare(flow)
    assert flow.drain(timeout=5)
    (dead,) = flow.deliveries(status="dead")
    assert dead.attempts == 1
    assert dead.last_error == "PermanentDeliveryError: HTTP 404: channel_not_found"


def test_a_retry_after_hint_is_honoured(make: Any, clock: FakeClock) -> None:
    flaky = Flaky(failures=1, error=RetryableDeliveryError("HTTP 429", retry_after=120))
    flow = make(flaky)
    declare(flow)
    assert flow.drain(timeout=5)
    (row,) = flow.deliveries(status="failed")
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= clock.now() + timedelta(seconds=120)


def test_a_failing_event_holds_back_later_events_of_its_incident_for_that_plugin_only(
    make: Any, clock: FakeClock
) -> None:
    flaky, recorder = Flaky(failures=1), Recorder()
    flow = make(flaky, recorder)
    first = declare(flow)
    other = declare(flow)
    flow.assign(first.id, "lead", "bob", by="alice")
    assert flow.drain(timeout=5)

    # The other plugin got everything; the failing one got the other incident's event only
    # after its own failure there, and nothing of `first` after v1.
    assert [(i, v) for i, v, _, _ in recorder.seen] == [(first.id, 1), (other.id, 1), (first.id, 2)]
    assert statuses(flow, "flaky") == [(1, "failed", 1), (1, "failed", 1), (2, "pending", 0)]

    clock.advance(timedelta(seconds=10))
    assert flow.drain(timeout=5)  # v1 goes through on its retry; v2 then fails its first try
    clock.advance(timedelta(seconds=10))
    assert flow.drain(timeout=5)
    first_calls = [v for key, v in flaky.calls if key.startswith(first.id)]
    assert first_calls == [1, 1, 2, 2]  # v2 was never tried before v1 got through
    assert [v for i, v, _ in flaky.delivered if i == first.id] == [1, 2]
    assert all(d.status is DeliveryStatus.DELIVERED for d in flow.deliveries())


def test_a_dead_letter_lets_the_events_behind_it_through(make: Any) -> None:
    class RefusesTheDeclaration:
        incident_flow_name = "picky"

        def __init__(self) -> None:
            self.versions: list[int] = []

        @hookimpl
        def incident_flow_event(self, event: Event) -> None:
            if event.version == 1:
                raise PermanentDeliveryError("HTTP 400: invalid_blocks")
            self.versions.append(event.version)

    picky = RefusesTheDeclaration()
    flow = make(picky)
    incident = declare(flow)
    flow.triage(incident.id, by="alice")
    assert flow.drain(timeout=5)
    assert picky.versions == [2]
    assert statuses(flow, "picky") == [(1, "dead", 1), (2, "delivered", 1)]


def test_dead_letters_can_be_requeued_and_are_delivered_again(make: Any) -> None:
    class Broken:
        incident_flow_name = "broken"
        fixed = False

        @hookimpl
        def incident_flow_event(self, event: Event) -> None:
            if not self.fixed:
                raise PermanentDeliveryError("missing scope chat:write")

    broken = Broken()
    flow = make(broken)
    declare(flow)
    assert flow.drain(timeout=5)
    assert [d.status for d in flow.deliveries()] == [DeliveryStatus.DEAD]

    broken.fixed = True
    assert flow.retry_deliveries(status="dead") == 1
    assert flow.drain(timeout=5)
    (row,) = flow.deliveries()
    assert (row.status, row.attempts) == (DeliveryStatus.DELIVERED, 1)
    assert row.last_error is None


def test_retry_deliveries_refuses_statuses_that_cannot_be_retried(make: Any) -> None:
    flow = make()
    with pytest.raises(InvalidFieldError, match="only failed and dead"):
        flow.retry_deliveries(status="delivered")
    with pytest.raises(InvalidFieldError, match="unknown delivery status"):
        flow.retry_deliveries(status="stuck")


def test_deliveries_can_be_listed_by_incident_and_limited(make: Any) -> None:
    flow = make(Recorder())
    first, second = declare(flow), declare(flow)
    flow.triage(first.id, by="alice")
    assert [d.version for d in flow.deliveries(incident_id=first.id)] == [1, 2]
    assert [d.incident_id for d in flow.deliveries(limit=1)] == [first.id]
    assert second.id not in {d.incident_id for d in flow.deliveries(incident_id=first.id)}
    with pytest.raises(InvalidFieldError, match="limit"):
        flow.deliveries(limit=0)


def test_a_delivery_to_a_plugin_that_is_not_installed_is_kept_and_reported(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "incidents.db"
    recorder = Recorder()
    with IncidentFlow(
        store=SQLiteStore(path), plugins=[recorder], clock=clock, entry_points=False, deliver=False
    ) as flow:
        incident = declare(flow)

    with IncidentFlow(store=SQLiteStore(path), clock=clock, entry_points=False) as flow:
        assert flow.drain(timeout=5)
        (stranded,) = flow.stranded_deliveries()
        assert stranded.key == f"{incident.id}:1:recorder"
        assert stranded.status is DeliveryStatus.PENDING

    later = Recorder()
    later.incident_flow_name = "recorder"
    with IncidentFlow(
        store=SQLiteStore(path), plugins=[later], clock=clock, entry_points=False
    ) as flow:
        assert flow.drain(timeout=5)
        assert flow.stranded_deliveries() == []
    assert [key for *_, key in later.seen] == [f"{incident.id}:1:recorder"]


def test_a_worker_outside_the_flow_delivers_what_the_flow_committed(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The events and incidents a separate worker passes on equal those the flow made."""
    path = tmp_path / "incidents.db"
    inline = Recorder()
    with IncidentFlow(
        store=SQLiteStore(path), plugins=[inline], clock=clock, entry_points=False
    ) as flow:
        incident = to_mitigating(flow)
        assert flow.drain(timeout=5)
        expected = list(inline.seen)

    outside = Recorder()
    with SQLiteStore(path) as store:
        # Make every row deliverable again, as if the first flow had never delivered.
        with store._locked() as conn:
            conn.execute("UPDATE outbox SET status = 'failed'")
        store.requeue(store.deliveries(), at=clock.now())
        outside.incident_flow_name = "recorder"
        worker = DeliveryWorker(store, [_notifier(outside)], clock=clock)
        while worker.run_once():
            pass
    assert outside.seen == expected
    assert expected[-1][2] == incident.phase


def test_a_hanging_plugin_is_timed_out_and_retried_while_others_go_on(
    make: Any, clock: FakeClock
) -> None:
    release = threading.Event()
    calls: list[int] = []

    class Hanging:
        incident_flow_name = "hanging"

        @hookimpl
        def incident_flow_event(self, event: Event) -> None:
            calls.append(event.version)
            if len(calls) == 1:
                release.wait(30)

    recorder = Recorder()
    flow = make(Hanging(), recorder, delivery_timeout=0.2)
    try:
        incident = declare(flow)
        started = time.monotonic()
        flow.triage(incident.id, by="alice")
        assert time.monotonic() - started < 0.5  # the command does not wait on the plugin
        assert flow.drain(timeout=5)
        assert [v for _, v, _, _ in recorder.seen] == [1, 2]
        assert statuses(flow, "hanging") == [(1, "failed", 1), (2, "pending", 0)]

        clock.advance(timedelta(seconds=10))  # the retry is due; the first call still hangs
        assert flow.drain(timeout=5)
        assert calls == [1, 1, 2]
        assert statuses(flow, "hanging") == [(1, "delivered", 2), (2, "delivered", 1)]
    finally:
        release.set()


def test_shutting_down_hands_back_rows_not_yet_tried(tmp_path: Path, clock: FakeClock) -> None:
    gate = threading.Event()

    class Slow:
        incident_flow_name = "slow"

        @hookimpl
        def incident_flow_event(self, event: Event) -> None:
            gate.wait(5)

    path = tmp_path / "incidents.db"
    flow = IncidentFlow(store=SQLiteStore(path), plugins=[Slow()], clock=clock, entry_points=False)
    incident = declare(flow)
    for _ in range(3):
        flow.assign(incident.id, "lead", "bob", by="alice")
    threading.Timer(0.3, gate.set).start()
    flow.shutdown(timeout=0.1)

    with SQLiteStore(path) as store:
        rows = store.deliveries()
    # The call in progress at the deadline keeps its lease (another worker takes the row when
    # it runs out); the rows behind it were handed back untried.
    assert [(row.version, row.claimed_by is not None) for row in rows] == [
        (1, True),
        (2, False),
        (3, False),
        (4, False),
    ]
    assert all(row.attempts == 0 for row in rows)


def test_a_worker_that_died_leaves_rows_another_takes_once_the_lease_runs_out(
    clock: FakeClock,
) -> None:
    store: Store = MemoryStore()
    recorder = Recorder()
    flow = IncidentFlow(
        store=store, plugins=[recorder], clock=clock, entry_points=False, deliver=False
    )
    incident = declare(flow)
    # A worker claims the row and dies before recording anything.
    (held,) = store.claim("dead-worker", plugins=["recorder"], now=clock.now(), lease=60)

    worker = DeliveryWorker(store, [_notifier(recorder)], clock=clock, lease=60)
    assert worker.run_once() == 0
    clock.advance(timedelta(seconds=60))
    assert worker.run_once() == 1
    assert [key for *_, key in recorder.seen] == [held.key]
    assert incident.id == held.incident_id


@given(
    attempts=st.integers(1, 40),
    base=st.floats(0, 100),
    factor=st.floats(1, 4),
    cap=st.floats(0, 10_000),
    hint=st.none() | st.floats(0, 1000),
)
def test_a_retry_waits_between_half_and_all_of_the_capped_backoff(
    attempts: int, base: float, factor: float, cap: float, hint: float | None
) -> None:
    policy = RetryPolicy(max_attempts=50, base=base, factor=factor, cap=cap)
    ceiling = min(cap, base * factor ** (attempts - 1))
    wait = policy.delay(attempts, retry_after=hint)
    assert ceiling / 2 <= wait or (hint is not None and wait == hint)
    assert wait <= max(ceiling, hint or 0)


@pytest.mark.parametrize(
    "options",
    [{"max_attempts": 0}, {"base": -1.0}, {"factor": 0.5}, {"cap": float("nan")}],
)
def test_a_malformed_retry_policy_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidFieldError, match=next(iter(options))) as refused:
        RetryPolicy(**options)
    assert refused.value.field == next(iter(options))


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [
        ("delivery_timeout", 0, "timeout"),
        ("delivery_lease", -1.0, "lease"),
        ("conflict_retries", -1, "conflict_retries"),
        ("snapshot_cache", "many", "snapshot_cache"),
    ],
)
def test_malformed_flow_options_are_refused_by_name(option: str, value: object, field: str) -> None:
    with pytest.raises(InvalidFieldError) as refused:
        IncidentFlow(entry_points=False, **{option: value})  # type: ignore[arg-type]
    assert refused.value.field == field


def test_retry_on_conflict_needs_an_attempt() -> None:
    with pytest.raises(InvalidFieldError, match="attempts"):
        retry_on_conflict(lambda: None, attempts=0)


def test_a_malformed_retry_after_is_refused() -> None:
    with pytest.raises(InvalidFieldError, match="retry_after"):
        RetryableDeliveryError("HTTP 429", retry_after=-1)


def test_a_row_whose_lease_ran_out_in_hand_is_not_delivered_twice(clock: FakeClock) -> None:
    """The clock jumps past the lease while the plugin works: the worker does not claim the
    row it holds again."""
    started, release = threading.Event(), threading.Event()
    keys: list[str] = []

    class Slow:
        incident_flow_name = "slow"

        @hookimpl
        def incident_flow_event(self, key: str) -> None:
            started.set()
            release.wait(5)
            keys.append(key)

    with IncidentFlow(plugins=[Slow()], clock=clock, entry_points=False, delivery_lease=60) as flow:
        incident = declare(flow)
        assert started.wait(5)
        clock.advance(timedelta(minutes=5))  # past the lease, with the call in progress
        flow.worker.wake()
        time.sleep(0.1)
        release.set()
        assert flow.drain(timeout=5)
    assert keys == [f"{incident.id}:1:slow"]


def test_a_delivery_of_an_event_that_cannot_be_read_is_dead_lettered_with_why(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "incidents.db"
    recorder = Recorder()
    with IncidentFlow(
        store=SQLiteStore(path), plugins=[recorder], clock=clock, entry_points=False, deliver=False
    ) as flow:
        incident = declare(flow)
    with SQLiteStore(path) as store:
        with store._locked() as conn:  # corrupt the stored event behind the store's back
            conn.execute('UPDATE events SET data = \'{"type": "NoSuchEvent"}\'')
        worker = DeliveryWorker(store, [_notifier(recorder)], clock=clock)
        assert worker.run_once() == 1
        (row,) = store.deliveries()
    assert recorder.seen == []
    assert row.status is DeliveryStatus.DEAD
    assert row.last_error is not None
    assert row.last_error.startswith("UnknownEventTypeError")
    assert f"incident {incident.id}, version 1" in row.last_error

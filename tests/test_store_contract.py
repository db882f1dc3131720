"""The contract every store keeps, checked once against each of them.

Each test is one rule of :class:`~incident_flow.store.base.Store`, named for it. The ``store``
fixture runs it against the :class:`MemoryStore`, an :class:`SQLiteStore` in a fresh file and a
``PostgresStore`` in a fresh schema of the test server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from incident_flow.errors import ConcurrencyConflict, UnknownIncidentError
from incident_flow.events import Event, IncidentDeclared, RoleAssigned, StatusUpdatePosted
from incident_flow.model import Severity
from incident_flow.store.base import Delivery, DeliveryStatus, Outcome, Store
from incident_flow.store.memory import MemoryStore
from incident_flow.store.sqlite import SQLiteStore
from tests.pg import fresh_postgres_store

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgres":
        with fresh_postgres_store(max_size=4) as postgres:
            yield postgres
        return
    made: Store = (
        MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "incidents.db")
    )
    with made:
        yield made


def declared(incident_id: str = "INC-1", *, minute: int = 0) -> IncidentDeclared:
    return IncidentDeclared(
        incident_id=incident_id,
        version=1,
        at=T0 + timedelta(minutes=minute),
        actor="alice",
        title="Checkout is down",
        description="Every payment fails with a 502",
        severity=Severity.CRITICAL,
        customer_impact=True,
        phase="identified",
        checklist=(("timeline", True), ("five-whys", False)),
    )


def lead(incident_id: str = "INC-1", version: int = 2) -> RoleAssigned:
    return RoleAssigned(
        incident_id=incident_id,
        version=version,
        at=T0 + timedelta(minutes=version),
        actor="alice",
        role="lead",
        person="bob",
    )


def update(incident_id: str = "INC-1", version: int = 2, *, actor: str = "bob") -> Event:
    return StatusUpdatePosted(
        incident_id=incident_id,
        version=version,
        at=T0 + timedelta(minutes=version),
        actor=actor,
        text=f"Update {version}: we are investigating",
        status_phase="identified",
    )


def declare(store: Store, incident_id: str = "INC-1", *, minute: int = 0) -> None:
    store.append(incident_id, 0, [declared(incident_id, minute=minute)], phase="identified")


# -- events ----------------------------------------------------------------------------------------


def test_load_returns_the_appended_events_equal_and_in_order(store: Store) -> None:
    events = [declared(), lead(version=2), update(version=3)]

    store.append("INC-1", 0, events, phase="identified")

    assert store.load("INC-1") == events


def test_appends_continue_the_log_from_the_expected_version(store: Store) -> None:
    declare(store)

    store.append("INC-1", 1, [lead(version=2)], phase="triaged")
    store.append("INC-1", 2, [update(version=3), update(version=4)], phase="triaged")

    assert [e.version for e in store.load("INC-1")] == [1, 2, 3, 4]
    assert [type(e) for e in store.load("INC-1")] == [
        IncidentDeclared,
        RoleAssigned,
        StatusUpdatePosted,
        StatusUpdatePosted,
    ]


def test_version_is_the_latest_event_version(store: Store) -> None:
    declare(store)
    store.append("INC-1", 1, [lead(version=2), update(version=3)], phase="identified")

    assert store.version("INC-1") == 3


def test_version_of_an_unknown_incident_is_zero(store: Store) -> None:
    assert store.version("INC-404") == 0


def test_loading_an_unknown_incident_raises_unknown_incident_error(store: Store) -> None:
    declare(store)

    with pytest.raises(UnknownIncidentError) as raised:
        store.load("INC-404")

    assert raised.value.incident_id == "INC-404"


def test_incidents_are_kept_apart(store: Store) -> None:
    declare(store, "INC-1")
    declare(store, "INC-2")
    store.append("INC-2", 1, [lead("INC-2", 2)], phase="identified")

    assert store.load("INC-1") == [declared("INC-1")]
    assert store.load("INC-2") == [declared("INC-2"), lead("INC-2", 2)]


# -- optimistic concurrency ---------------------------------------------------------------------


def test_a_stale_expected_version_raises_concurrency_conflict(store: Store) -> None:
    declare(store)
    store.append("INC-1", 1, [lead(version=2)], phase="identified")

    with pytest.raises(ConcurrencyConflict) as raised:
        store.append("INC-1", 1, [update(version=2)], phase="triaged")

    assert (raised.value.incident_id, raised.value.expected_version) == ("INC-1", 1)
    assert raised.value.actual_version == 2


def test_a_refused_append_writes_no_events_phase_or_deliveries(store: Store) -> None:
    declare(store)
    store.append("INC-1", 1, [lead(version=2)], phase="identified")

    with pytest.raises(ConcurrencyConflict):
        store.append(
            "INC-1",
            1,
            [update(version=2)],
            phase="triaged",
            deliveries=[Delivery("INC-1", 2, "slack")],
        )

    assert store.load("INC-1") == [declared(), lead(version=2)]
    assert store.version("INC-1") == 2
    assert store.incident_ids(phase="triaged") == []
    assert store.deliveries() == []


def test_declaring_an_existing_incident_again_raises_concurrency_conflict(store: Store) -> None:
    declare(store)

    with pytest.raises(ConcurrencyConflict) as raised:
        declare(store, minute=5)

    assert raised.value.actual_version == 1
    assert store.load("INC-1") == [declared()]


def test_expecting_a_version_of_an_unknown_incident_raises_concurrency_conflict(
    store: Store,
) -> None:
    with pytest.raises(ConcurrencyConflict) as raised:
        store.append("INC-1", 1, [lead(version=2)], phase="identified")

    assert raised.value.actual_version == 0
    assert store.version("INC-1") == 0


@pytest.mark.parametrize(
    ("expected_version", "batch"),
    [
        pytest.param(1, [lead(version=3)], id="skips-a-version"),
        pytest.param(1, [lead(version=1)], id="repeats-a-version"),
        pytest.param(1, [lead(version=2), update(version=2)], id="repeats-within-the-batch"),
        pytest.param(1, [lead(version=2), update(version=4)], id="gap-within-the-batch"),
        pytest.param(1, [lead("INC-2", 2)], id="another-incident"),
        pytest.param(1, [], id="empty"),
    ],
)
def test_a_batch_not_following_the_expected_version_raises_value_error_and_writes_nothing(
    store: Store, expected_version: int, batch: list[Event]
) -> None:
    declare(store)

    with pytest.raises(ValueError, match=r"append needs|does not follow"):
        store.append(
            "INC-1",
            expected_version,
            batch,
            phase="triaged",
            deliveries=[Delivery("INC-1", 1, "slack")],
        )

    assert store.load("INC-1") == [declared()]
    assert store.incident_ids(phase="triaged") == []
    assert store.deliveries() == []


def test_concurrent_writers_retrying_on_conflict_lose_no_update(store: Store) -> None:
    declare(store)
    per_writer = 50
    failures: list[BaseException] = []

    def writer(actor: str) -> None:
        try:
            written = 0
            while written < per_writer:
                current = store.version("INC-1")
                try:
                    store.append(
                        "INC-1", current, [update(version=current + 1, actor=actor)], phase="x"
                    )
                except ConcurrencyConflict:
                    continue
                written += 1
        except BaseException as error:  # surfaced by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("ann", "ben")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    events = store.load("INC-1")
    assert [e.version for e in events] == list(range(1, 2 * per_writer + 2))
    assert sum(e.actor == "ann" for e in events) == per_writer
    assert sum(e.actor == "ben" for e in events) == per_writer


# -- incident_ids --------------------------------------------------------------------------------


def test_incident_ids_are_listed_in_declaration_order(store: Store) -> None:
    for incident_id in ("INC-3", "INC-1", "INC-2"):
        declare(store, incident_id)

    assert store.incident_ids() == ["INC-3", "INC-1", "INC-2"]


def test_later_appends_do_not_change_the_declaration_order(store: Store) -> None:
    declare(store, "INC-1")
    declare(store, "INC-2")

    store.append("INC-1", 1, [lead("INC-1", 2)], phase="triaged")

    assert store.incident_ids() == ["INC-1", "INC-2"]


def test_incident_ids_are_filtered_by_their_latest_phase(store: Store) -> None:
    for incident_id in ("INC-1", "INC-2", "INC-3"):
        declare(store, incident_id)

    store.append("INC-3", 1, [lead("INC-3", 2)], phase="triaged")
    store.append("INC-1", 1, [lead("INC-1", 2)], phase="triaged")

    assert store.incident_ids(phase="triaged") == ["INC-1", "INC-3"]
    assert store.incident_ids(phase="identified") == ["INC-2"]
    assert store.incident_ids(phase="closed") == []


def test_an_empty_store_lists_no_incidents(store: Store) -> None:
    assert store.incident_ids() == []


# -- the outbox ----------------------------------------------------------------------------------


def test_deliveries_are_written_with_their_events(store: Store) -> None:
    declare(store)

    store.append(
        "INC-1",
        1,
        [lead(version=2)],
        phase="identified",
        deliveries=[Delivery("INC-1", 2, "slack"), Delivery("INC-1", 2, "pager")],
    )

    assert store.deliveries() == [Delivery("INC-1", 2, "slack"), Delivery("INC-1", 2, "pager")]
    assert all(d.status is DeliveryStatus.PENDING and d.attempts == 0 for d in store.deliveries())


def test_deliveries_are_listed_in_commit_order(store: Store) -> None:
    store.append(
        "INC-1", 0, [declared()], phase="identified", deliveries=[Delivery("INC-1", 1, "b")]
    )
    store.append(
        "INC-2",
        0,
        [declared("INC-2")],
        phase="identified",
        deliveries=[Delivery("INC-2", 1, "a")],
    )
    store.append(
        "INC-1", 1, [lead(version=2)], phase="identified", deliveries=[Delivery("INC-1", 2, "a")]
    )

    assert [d.key for d in store.deliveries()] == ["INC-1:1:b", "INC-2:1:a", "INC-1:2:a"]


WORKER = "w1"
LEASE = 60.0


def outbox(store: Store, incident_id: str, versions: int, plugins: tuple[str, ...]) -> None:
    """Declare ``incident_id`` with ``versions`` events, each delivered to every plugin."""
    store.append(
        incident_id,
        0,
        [declared(incident_id), *(update(incident_id, v) for v in range(2, versions + 1))],
        phase="identified",
        deliveries=[
            Delivery(incident_id, v, plugin) for v in range(1, versions + 1) for plugin in plugins
        ],
    )


def delivered(delivery: Delivery) -> Outcome:
    return Outcome(delivery, DeliveryStatus.DELIVERED)


def failed(delivery: Delivery, error: str = "HTTP 503", *, retry_in: float = 30) -> Outcome:
    return Outcome(
        delivery, DeliveryStatus.FAILED, error, next_attempt_at=T0 + timedelta(seconds=retry_in)
    )


def claim(store: Store, worker: str = WORKER, *, at: datetime = T0, **kwargs: object) -> list[str]:
    options: dict[str, object] = {"plugins": ("slack", "pager"), "lease": LEASE, **kwargs}
    return [d.key for d in store.claim(worker, now=at, **options)]  # type: ignore[arg-type]


def test_deliveries_are_filtered_by_status_plugin_and_incident(store: Store) -> None:
    outbox(store, "INC-1", 2, ("slack", "pager"))
    outbox(store, "INC-2", 1, ("slack",))
    (first,) = store.claim(WORKER, plugins=("slack",), now=T0, lease=LEASE, limit=1)
    store.record(WORKER, [delivered(first)], at=T0)

    pending = DeliveryStatus.PENDING
    assert [d.key for d in store.deliveries(status=pending, plugin="slack")] == [
        "INC-1:2:slack",
        "INC-2:1:slack",
    ]
    assert [d.key for d in store.deliveries(plugin="pager")] == ["INC-1:1:pager", "INC-1:2:pager"]
    assert [d.key for d in store.deliveries(incident_id="INC-2")] == ["INC-2:1:slack"]
    assert [d.key for d in store.deliveries(status=DeliveryStatus.DELIVERED)] == ["INC-1:1:slack"]
    assert [d.key for d in store.deliveries(limit=2)] == ["INC-1:1:slack", "INC-1:1:pager"]
    assert store.deliveries(plugin="email") == []


def test_a_claim_leases_rows_to_the_worker_in_commit_order(store: Store) -> None:
    outbox(store, "INC-1", 1, ("slack", "pager"))
    outbox(store, "INC-2", 1, ("slack",))

    claimed = store.claim(WORKER, plugins=("slack", "pager"), now=T0, lease=LEASE)

    assert [d.key for d in claimed] == ["INC-1:1:slack", "INC-1:1:pager", "INC-2:1:slack"]
    until = T0 + timedelta(seconds=LEASE)
    assert all(d.claimed_by == WORKER and d.claimed_until == until for d in claimed)
    assert all(d.claimed_by == WORKER for d in store.deliveries())


def test_a_leased_row_is_not_claimed_again_until_the_lease_runs_out(store: Store) -> None:
    outbox(store, "INC-1", 1, ("slack",))
    assert claim(store) == ["INC-1:1:slack"]

    assert claim(store, "w2", at=T0 + timedelta(seconds=LEASE - 1)) == []
    assert claim(store, "w2", at=T0 + timedelta(seconds=LEASE)) == ["INC-1:1:slack"]
    assert store.deliveries()[0].claimed_by == "w2"


def test_a_claim_takes_only_the_named_plugins_rows(store: Store) -> None:
    outbox(store, "INC-1", 1, ("slack", "pager", "email"))
    assert claim(store, plugins=("email",)) == ["INC-1:1:email"]
    assert claim(store, plugins=()) == []


def test_a_claim_takes_at_most_limit_rows(store: Store) -> None:
    outbox(store, "INC-1", 3, ("slack",))
    assert claim(store, limit=2) == ["INC-1:1:slack", "INC-1:2:slack"]
    assert claim(store, limit=2) == []  # INC-1:3 waits behind the two leased rows


def test_rows_behind_a_leased_row_of_the_same_incident_and_plugin_wait(store: Store) -> None:
    outbox(store, "INC-1", 1, ("slack",))
    assert claim(store) == ["INC-1:1:slack"]
    store.append(
        "INC-1",
        1,
        [update(version=2)],
        phase="identified",
        deliveries=[Delivery("INC-1", 2, "slack"), Delivery("INC-1", 2, "pager")],
    )

    assert claim(store, "w2") == ["INC-1:2:pager"]


def test_a_failed_row_holds_back_the_rows_behind_it_until_it_is_delivered(store: Store) -> None:
    outbox(store, "INC-1", 3, ("slack",))
    first, *_ = store.claim(WORKER, plugins=("slack",), now=T0, lease=LEASE, limit=1)
    store.record(WORKER, [failed(first, retry_in=30)], at=T0)

    assert claim(store, at=T0 + timedelta(seconds=29)) == []
    assert claim(store, at=T0 + timedelta(seconds=30)) == [
        "INC-1:1:slack",
        "INC-1:2:slack",
        "INC-1:3:slack",
    ]


def test_a_dead_letter_does_not_hold_back_the_rows_behind_it(store: Store) -> None:
    outbox(store, "INC-1", 2, ("slack",))
    (first,) = store.claim(WORKER, plugins=("slack",), now=T0, lease=LEASE, limit=1)
    store.record(WORKER, [Outcome(first, DeliveryStatus.DEAD, "HTTP 400: bad channel")], at=T0)

    assert claim(store) == ["INC-1:2:slack"]


def test_one_incidents_failure_does_not_hold_back_another_incident(store: Store) -> None:
    outbox(store, "INC-1", 2, ("slack",))
    outbox(store, "INC-2", 1, ("slack",))
    first = store.claim(WORKER, plugins=("slack",), now=T0, lease=LEASE, limit=1)
    store.record(WORKER, [failed(first[0])], at=T0)

    assert claim(store) == ["INC-2:1:slack"]


def test_a_delivered_outcome_records_the_status_attempt_and_time(store: Store) -> None:
    outbox(store, "INC-1", 1, ("slack",))
    (row,) = store.claim(WORKER, plugins=("slack",), now=T0, lease=LEASE)
    at = datetime(2024, 5, 1, 11, 30, tzinfo=timezone(timedelta(hours=2)))

    store.record(WORKER, [delivered(row)], at=at)

    (done,) = store.deliveries()
    assert (done.status, done.attempts, done.last_error) == (DeliveryStatus.DELIVERED, 1, None)
    assert done.updated_at == at
    assert done.updated_at.utcoffset() == timedelta(0)
    assert (done.claimed_by, done.claimed_until) == (None, None)


def test_failed_outcomes_count_attempts_keep_the_error_and_the_retry_time(store: Store) -> None:
    outbox(store, "INC-1", 1, ("slack",))
    (row,) = store.claim(WORKER, plugins=("slack",), now=T0, lease=LEASE)
    store.record(WORKER, [failed(row, "timeout", retry_in=10)], at=T0)
    (row,) = store.claim(WORKER, plugins=("slack",), now=T0 + timedelta(seconds=10), lease=LEASE)
    store.record(WORKER, [failed(row, "HTTP 503", retry_in=40)], at=T0 + timedelta(seconds=10))

    (row,) = store.deliveries()
    assert (row.status, row.attempts, row.last_error) == (DeliveryStatus.FAILED, 2, "HTTP 503")
    assert row.next_attempt_at == T0 + timedelta(seconds=40)
    assert row.claimed_by is None


def test_a_delivery_succeeding_after_failures_clears_the_error(store: Store) -> None:
    outbox(store, "INC-1", 1, ("slack",))
    (row,) = store.claim(WORKER, plugins=("slack",), now=T0, lease=LEASE)
    store.record(WORKER, [failed(row, retry_in=0)], at=T0)
    (row,) = store.claim(WORKER, plugins=("slack",), now=T0, lease=LEASE)
    store.record(WORKER, [delivered(row)], at=T0)

    (row,) = store.deliveries()
    assert (row.status, row.attempts, row.last_error) == (DeliveryStatus.DELIVERED, 2, None)
    assert row.next_attempt_at is None


def test_a_pending_outcome_hands_the_row_back_untried(store: Store) -> None:
    outbox(store, "INC-1", 1, ("slack",))
    (row,) = store.claim(WORKER, plugins=("slack",), now=T0, lease=LEASE)

    store.record(WORKER, [Outcome(row, DeliveryStatus.PENDING)], at=T0)

    assert store.deliveries() == [Delivery("INC-1", 1, "slack")]
    assert claim(store, "w2") == ["INC-1:1:slack"]


def test_a_worker_that_lost_its_lease_cannot_fail_or_release_the_row(store: Store) -> None:
    outbox(store, "INC-1", 1, ("slack",))
    (stale,) = store.claim(WORKER, plugins=("slack",), now=T0, lease=1)
    later = T0 + timedelta(seconds=2)
    (row,) = store.claim("w2", plugins=("slack",), now=later, lease=LEASE)

    store.record(WORKER, [failed(stale), Outcome(stale, DeliveryStatus.PENDING)], at=later)

    assert store.deliveries() == [row]


def test_a_late_success_counts_even_after_the_lease_was_lost(store: Store) -> None:
    outbox(store, "INC-1", 1, ("slack",))
    (stale,) = store.claim(WORKER, plugins=("slack",), now=T0, lease=1)
    later = T0 + timedelta(seconds=2)
    (row,) = store.claim("w2", plugins=("slack",), now=later, lease=LEASE)

    store.record(WORKER, [delivered(stale)], at=later)
    store.record("w2", [failed(row)], at=later)  # too late: it was delivered

    (row,) = store.deliveries()
    assert (row.status, row.attempts) == (DeliveryStatus.DELIVERED, 1)


def test_outcomes_for_rows_not_in_the_outbox_change_nothing(store: Store) -> None:
    outbox(store, "INC-1", 1, ("slack",))
    store.record(
        WORKER,
        [delivered(Delivery("INC-1", 1, "email")), failed(Delivery("INC-9", 1, "slack"))],
        at=T0,
    )
    assert store.deliveries() == [Delivery("INC-1", 1, "slack")]


def test_renew_extends_only_the_workers_own_leases(store: Store) -> None:
    outbox(store, "INC-1", 1, ("slack", "pager"))
    store.claim(WORKER, plugins=("slack",), now=T0, lease=LEASE)
    store.claim("w2", plugins=("pager",), now=T0, lease=LEASE)

    later = T0 + timedelta(seconds=50)
    assert store.renew(WORKER, now=later, lease=LEASE) == 1

    leases = {d.plugin: d.claimed_until for d in store.deliveries()}
    assert leases == {
        "slack": later + timedelta(seconds=LEASE),
        "pager": T0 + timedelta(seconds=LEASE),
    }


def test_requeue_makes_dead_and_failed_rows_pending_again(store: Store) -> None:
    outbox(store, "INC-1", 1, ("slack", "pager", "email"))
    rows = store.claim(WORKER, plugins=("slack", "pager", "email"), now=T0, lease=LEASE)
    slack, pager, email = rows
    store.record(
        WORKER,
        [Outcome(slack, DeliveryStatus.DEAD, "HTTP 404"), failed(pager), delivered(email)],
        at=T0,
    )

    assert store.requeue(store.deliveries(), at=T0) == 2

    by_plugin = {d.plugin: d for d in store.deliveries()}
    assert by_plugin["slack"].status is DeliveryStatus.PENDING
    assert (by_plugin["slack"].attempts, by_plugin["slack"].last_error) == (0, "HTTP 404")
    assert by_plugin["pager"].next_attempt_at is None
    assert by_plugin["email"].status is DeliveryStatus.DELIVERED
    assert claim(store, plugins=("slack", "pager")) == ["INC-1:1:slack", "INC-1:1:pager"]


def test_concurrent_claims_never_hand_out_a_row_twice_and_keep_version_order(
    store: Store,
) -> None:
    for number in range(20):
        outbox(store, f"INC-{number}", 4, ("slack", "pager"))
    handled: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    def work(worker: str) -> None:
        while True:
            rows = store.claim(worker, plugins=("slack", "pager"), now=T0, lease=LEASE, limit=7)
            if not rows:
                if not store.deliveries(status=DeliveryStatus.PENDING):
                    return
                continue
            with lock:
                handled.extend(d.ident for d in rows)
            store.record(worker, [delivered(d) for d in rows], at=T0)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(handled) == sorted(d.ident for d in store.deliveries())
    assert len(handled) == len(set(handled)) == 20 * 4 * 2
    for incident in range(20):
        for plugin in ("slack", "pager"):
            versions = [v for i, v, p in handled if i == f"INC-{incident}" and p == plugin]
            assert versions == [1, 2, 3, 4]


def test_load_after_a_version_returns_only_the_later_events(store: Store) -> None:
    events = [declared("inc-after"), *(update("inc-after", v) for v in range(2, 5))]
    store.append("inc-after", 0, events, phase="identified")
    assert store.load("inc-after", after_version=2) == events[2:]
    assert store.load("inc-after", after_version=4) == []
    with pytest.raises(UnknownIncidentError):
        store.load("inc-nope", after_version=3)


def test_the_same_delivery_twice_in_one_append_is_refused(store: Store) -> None:
    twice = [Delivery("INC-1", 1, "a"), Delivery("INC-1", 1, "a")]
    with pytest.raises(ValueError, match="twice"):
        store.append("INC-1", 0, [declared()], phase="identified", deliveries=twice)
    assert store.version("INC-1") == 0

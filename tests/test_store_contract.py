"""The contract every store keeps, checked once against each of them.

Each test is one rule of :class:`~incident_flow.store.base.Store`, named for it. The ``store``
fixture runs it against the :class:`MemoryStore` and against an :class:`SQLiteStore` in a fresh
file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from incident_flow.errors import ConcurrencyConflict, UnknownIncidentError
from incident_flow.events import Event, IncidentDeclared, RoleAssigned, StatusUpdatePosted
from incident_flow.model import Severity
from incident_flow.store.base import Delivery, DeliveryStatus, Store
from incident_flow.store.memory import MemoryStore
from incident_flow.store.sqlite import SQLiteStore

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
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


def test_deliveries_are_filtered_by_status_and_plugin(store: Store) -> None:
    store.append(
        "INC-1",
        0,
        [declared()],
        phase="identified",
        deliveries=[Delivery("INC-1", 1, "slack"), Delivery("INC-1", 1, "pager")],
    )
    store.append(
        "INC-1",
        1,
        [lead(version=2)],
        phase="identified",
        deliveries=[Delivery("INC-1", 2, "slack")],
    )
    store.mark_delivered(Delivery("INC-1", 1, "slack"), at=T0)

    pending = DeliveryStatus.PENDING
    assert [d.key for d in store.deliveries(status=pending)] == ["INC-1:1:pager", "INC-1:2:slack"]
    assert [d.key for d in store.deliveries(plugin="slack")] == ["INC-1:1:slack", "INC-1:2:slack"]
    assert [d.key for d in store.deliveries(status=pending, plugin="slack")] == ["INC-1:2:slack"]
    assert store.deliveries(plugin="email") == []


def test_mark_delivered_records_the_status_attempt_and_time(store: Store) -> None:
    store.append(
        "INC-1", 0, [declared()], phase="identified", deliveries=[Delivery("INC-1", 1, "slack")]
    )
    at = T0 + timedelta(seconds=5)

    store.mark_delivered(Delivery("INC-1", 1, "slack"), at=at)

    (delivery,) = store.deliveries()
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.attempts == 1
    assert delivery.last_error is None
    assert delivery.updated_at == at
    assert delivery.updated_at.tzinfo is not None
    assert store.deliveries(status=DeliveryStatus.PENDING) == []


def test_mark_failed_counts_each_attempt_and_keeps_the_last_error(store: Store) -> None:
    store.append(
        "INC-1", 0, [declared()], phase="identified", deliveries=[Delivery("INC-1", 1, "slack")]
    )
    (pending,) = store.deliveries()

    store.mark_failed(pending, error="timeout", at=T0 + timedelta(seconds=1))
    store.mark_failed(pending, error="HTTP 503", at=T0 + timedelta(seconds=2))

    (delivery,) = store.deliveries()
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.attempts == 2
    assert delivery.last_error == "HTTP 503"
    assert delivery.updated_at == T0 + timedelta(seconds=2)


def test_a_delivery_succeeding_after_failures_clears_the_error(store: Store) -> None:
    store.append(
        "INC-1", 0, [declared()], phase="identified", deliveries=[Delivery("INC-1", 1, "slack")]
    )
    (pending,) = store.deliveries()

    store.mark_failed(pending, error="timeout", at=T0)
    store.mark_delivered(pending, at=T0 + timedelta(seconds=30))

    (delivery,) = store.deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        DeliveryStatus.DELIVERED,
        2,
        None,
    )


def test_marking_one_delivery_leaves_the_others_alone(store: Store) -> None:
    store.append(
        "INC-1",
        0,
        [declared()],
        phase="identified",
        deliveries=[Delivery("INC-1", 1, "slack"), Delivery("INC-1", 1, "pager")],
    )

    store.mark_failed(Delivery("INC-1", 1, "slack"), error="boom", at=T0)

    assert store.deliveries(plugin="pager") == [Delivery("INC-1", 1, "pager")]


def test_a_delivery_key_is_stable_across_reads_and_attempts(store: Store) -> None:
    appended = Delivery("INC-1", 1, "slack")
    store.append("INC-1", 0, [declared()], phase="identified", deliveries=[appended])

    (read,) = store.deliveries()
    store.mark_failed(read, error="timeout", at=T0)
    (failed,) = store.deliveries()
    store.mark_delivered(failed, at=T0)
    (delivered,) = store.deliveries()

    assert appended.key == "INC-1:1:slack"
    assert read.key == failed.key == delivered.key == appended.key


def test_marking_a_delivery_that_is_not_in_the_outbox_changes_nothing(store: Store) -> None:
    store.append(
        "INC-1", 0, [declared()], phase="identified", deliveries=[Delivery("INC-1", 1, "slack")]
    )

    store.mark_delivered(Delivery("INC-1", 1, "email"), at=T0)
    store.mark_failed(Delivery("INC-9", 1, "slack"), error="boom", at=T0)

    assert store.deliveries() == [Delivery("INC-1", 1, "slack")]


def test_load_after_a_version_returns_only_the_later_events(store: Store) -> None:
    events = [declared("inc-after"), *(update("inc-after", v) for v in range(2, 5))]
    store.append("inc-after", 0, events, phase="identified")
    assert store.load("inc-after", after_version=2) == events[2:]
    assert store.load("inc-after", after_version=4) == []
    with pytest.raises(UnknownIncidentError):
        store.load("inc-nope", after_version=3)


def test_mark_delivered_many_records_each_delivery(store: Store) -> None:
    deliveries = [Delivery("INC-1", 1, name) for name in ("a", "b", "c")]
    store.append("INC-1", 0, [declared()], phase="identified", deliveries=deliveries)
    store.mark_delivered_many(deliveries[:2], at=datetime(2024, 1, 1, tzinfo=UTC))
    statuses = {d.plugin: (d.status, d.attempts) for d in store.deliveries()}
    assert statuses == {
        "a": (DeliveryStatus.DELIVERED, 1),
        "b": (DeliveryStatus.DELIVERED, 1),
        "c": (DeliveryStatus.PENDING, 0),
    }


def test_the_same_delivery_twice_in_one_append_is_refused(store: Store) -> None:
    twice = [Delivery("INC-1", 1, "a"), Delivery("INC-1", 1, "a")]
    with pytest.raises(ValueError, match="twice"):
        store.append("INC-1", 0, [declared()], phase="identified", deliveries=twice)
    assert store.version("INC-1") == 0

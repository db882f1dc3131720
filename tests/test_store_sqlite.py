"""What the SQLite store promises beyond the store contract: durability, its file and schema,
decoding errors that say where they are, safe writers across processes, and group commit."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from incident_flow.errors import (
    ConcurrencyConflict,
    CorruptEventError,
    StoreError,
    UnknownEventTypeError,
)
from incident_flow.events import IncidentDeclared, StatusUpdatePosted
from incident_flow.model import Severity
from incident_flow.serialization import dumps_event, event_to_dict
from incident_flow.store.base import Delivery, DeliveryStatus, Outcome
from incident_flow.store.sqlite import MIGRATIONS, SQLiteStore

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


def declared(incident_id: str = "INC-1") -> IncidentDeclared:
    return IncidentDeclared(
        incident_id=incident_id,
        version=1,
        at=T0,
        actor="alice",
        title="Checkout is down",
        description="Every payment fails with a 502",
        severity=Severity.CRITICAL,
        customer_impact=True,
        phase="identified",
    )


def update(version: int, *, actor: str = "bob", incident_id: str = "INC-1") -> StatusUpdatePosted:
    return StatusUpdatePosted(
        incident_id=incident_id,
        version=version,
        at=T0 + timedelta(seconds=version),
        actor=actor,
        text=f"Update {version}",
        status_phase="identified",
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "incidents.db"


@pytest.fixture
def store(path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(path)
    with opened:
        yield opened


def execute(path: Path, sql: str, parameters: tuple[Any, ...] = ()) -> None:
    """Change the file behind the store's back, as another program (or a bad disk) would."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(sql, parameters)


# -- the file ------------------------------------------------------------------------------------


def test_data_survives_closing_and_reopening_the_file(path: Path) -> None:
    with SQLiteStore(path) as store:
        store.append(
            "INC-1",
            0,
            [declared(), update(2)],
            phase="triaged",
            deliveries=[Delivery("INC-1", 2, "slack")],
        )
        (claimed,) = store.claim("w1", plugins=["slack"], now=T0, lease=60)
        store.record("w1", [Outcome(claimed, DeliveryStatus.FAILED, "timeout", T0)], at=T0)

    with SQLiteStore(path) as reopened:
        assert reopened.load("INC-1") == [declared(), update(2)]
        assert reopened.version("INC-1") == 2
        assert reopened.incident_ids(phase="triaged") == ["INC-1"]
        assert reopened.deliveries() == [
            Delivery("INC-1", 2, "slack", DeliveryStatus.FAILED, 1, "timeout", T0, T0)
        ]


def test_the_file_is_in_wal_mode(store: SQLiteStore, path: Path) -> None:
    with closing(sqlite3.connect(path)) as other:
        (mode,) = other.execute("PRAGMA journal_mode").fetchone()

    assert mode == "wal"


def test_the_connection_syncs_fully(store: SQLiteStore) -> None:
    # synchronous is a setting of the connection, not of the file: ask the store's own.
    (synchronous,) = store._conn.execute("PRAGMA synchronous").fetchone()

    assert synchronous == 2  # FULL


def test_the_connection_enforces_foreign_keys(store: SQLiteStore) -> None:
    (foreign_keys,) = store._conn.execute("PRAGMA foreign_keys").fetchone()

    assert foreign_keys == 1


def test_an_in_memory_database_works_too() -> None:
    with SQLiteStore(":memory:") as store:
        store.append("INC-1", 0, [declared()], phase="identified")

        assert store.load("INC-1") == [declared()]


def test_a_file_that_is_not_a_database_raises_store_error(path: Path) -> None:
    path.write_bytes(b"incident notes, not a database\n" * 100)

    with pytest.raises(StoreError, match="not an SQLite database"):
        SQLiteStore(path)


def test_a_closed_store_refuses_to_be_used(path: Path) -> None:
    store = SQLiteStore(path)
    store.close()
    store.close()  # closing twice is harmless

    with pytest.raises(StoreError, match="closed"):
        store.version("INC-1")


# -- the schema ----------------------------------------------------------------------------------


def test_a_new_file_records_every_migration(store: SQLiteStore, path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]

    assert versions == list(range(1, len(MIGRATIONS) + 1))


def test_reopening_applies_no_migration_twice(path: Path) -> None:
    SQLiteStore(path).close()
    SQLiteStore(path).close()

    with closing(sqlite3.connect(path)) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()

    assert count == len(MIGRATIONS)


def test_a_file_of_schema_1_is_upgraded_keeping_its_events_and_outbox(path: Path) -> None:
    """A file written before retries and leases existed opens, and its rows deliver."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        for statement in MIGRATIONS[0].split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (1, ?)", (T0.isoformat(),))
        conn.execute("INSERT INTO incidents VALUES ('INC-1', 1, 'identified', 1, NULL)")
        conn.execute(
            "INSERT INTO events VALUES ('INC-1', 1, 'IncidentDeclared', ?, 'alice', ?)",
            (T0.isoformat(), dumps_event(declared())),
        )
        conn.executemany(
            "INSERT INTO outbox (incident_id, version, plugin, status, attempts, last_error, "
            "updated_at) VALUES ('INC-1', 1, ?, ?, ?, ?, ?)",
            [
                ("slack", "failed", 2, "HTTP 503", T0.isoformat()),
                ("pager", "pending", 0, None, None),
            ],
        )

    with SQLiteStore(path) as store:
        assert store.load("INC-1") == [declared()]
        assert store.deliveries() == [
            Delivery("INC-1", 1, "slack", DeliveryStatus.FAILED, 2, "HTTP 503", T0),
            Delivery("INC-1", 1, "pager"),
        ]
        claimed = store.claim("w1", plugins=["slack", "pager"], now=T0, lease=60)
        assert [d.plugin for d in claimed] == ["slack", "pager"]


def test_a_file_with_a_newer_schema_raises_store_error(path: Path) -> None:
    SQLiteStore(path).close()
    newer = len(MIGRATIONS) + 1
    execute(path, "INSERT INTO schema_migrations VALUES (?, ?)", (newer, T0.isoformat()))

    with pytest.raises(StoreError, match=f"schema version {newer}, newer"):
        SQLiteStore(path)


# -- decoding ------------------------------------------------------------------------------------


def test_a_corrupt_event_raises_corrupt_event_error_naming_incident_and_version(
    store: SQLiteStore, path: Path
) -> None:
    store.append("INC-1", 0, [declared(), update(2), update(3)], phase="identified")
    execute(path, "UPDATE events SET data = '{\"type\": ' WHERE version = 2")

    with pytest.raises(CorruptEventError, match=r"incident INC-1, version 2") as raised:
        store.load("INC-1")

    assert (raised.value.incident_id, raised.value.version) == ("INC-1", 2)


def test_an_unknown_event_type_raises_unknown_event_type_error(
    store: SQLiteStore, path: Path
) -> None:
    store.append("INC-1", 0, [declared(), update(2)], phase="identified")
    execute(path, "UPDATE events SET data = ? WHERE version = 2", (json.dumps({"type": "Bogus"}),))

    with pytest.raises(UnknownEventTypeError, match="Bogus") as raised:
        store.load("INC-1")

    assert (raised.value.incident_id, raised.value.version) == ("INC-1", 2)


def test_an_event_stored_under_the_wrong_version_raises_corrupt_event_error(
    store: SQLiteStore, path: Path
) -> None:
    store.append("INC-1", 0, [declared(), update(2)], phase="identified")
    record = event_to_dict(update(2)) | {"version": 7}
    execute(path, "UPDATE events SET data = ? WHERE version = 2", (json.dumps(record),))

    with pytest.raises(CorruptEventError, match="version 7") as raised:
        store.load("INC-1")

    assert (raised.value.incident_id, raised.value.version) == ("INC-1", 2)


# -- writers -------------------------------------------------------------------------------------


def test_a_delivery_for_an_event_that_is_not_committed_is_refused(store: SQLiteStore) -> None:
    with pytest.raises(ValueError, match="INC-1:2:slack"):
        store.append(
            "INC-1", 0, [declared()], phase="identified", deliveries=[Delivery("INC-1", 2, "slack")]
        )

    assert store.version("INC-1") == 0
    assert store.deliveries() == []


def test_events_written_past_the_incident_row_surface_as_concurrency_conflict(
    store: SQLiteStore, path: Path
) -> None:
    store.append("INC-1", 0, [declared()], phase="identified")
    execute(
        path,
        "INSERT INTO events VALUES ('INC-1', 2, 'StatusUpdatePosted', ?, 'eve', ?)",
        (T0.isoformat(), "{}"),
    )

    with pytest.raises(ConcurrencyConflict) as raised:
        store.append("INC-1", 1, [update(2)], phase="triaged")

    assert raised.value.actual_version == 2
    assert store.incident_ids(phase="triaged") == []


def test_a_writer_blocked_past_the_timeout_raises_store_error_and_writes_nothing(
    path: Path,
) -> None:
    with (
        SQLiteStore(path, timeout=0.2) as store,
        closing(sqlite3.connect(path, isolation_level=None)) as other,
    ):
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(StoreError, match="locked"):
            store.append("INC-1", 0, [declared()], phase="identified")
        other.execute("ROLLBACK")

        assert store.version("INC-1") == 0


def _append_with_retries(path: str, actor: str, count: int, start: Any) -> None:
    """Append ``count`` updates to INC-1 as ``actor``, re-reading the version on every conflict.

    Runs in a child process (module level, so that the 'spawn' context can import it).
    """
    with SQLiteStore(path) as store:
        start.wait(timeout=60)  # both processes have opened the file: go
        written = 0
        while written < count:
            current = store.version("INC-1")
            try:
                store.append(
                    "INC-1",
                    current,
                    [update(current + 1, actor=actor)],
                    phase="identified",
                    deliveries=[Delivery("INC-1", current + 1, "slack")],
                )
            except ConcurrencyConflict:
                continue
            written += 1


def test_two_processes_appending_to_one_incident_lose_no_update(path: Path) -> None:
    per_process = 50
    with SQLiteStore(path) as store:
        store.append("INC-1", 0, [declared()], phase="identified")

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [
        context.Process(target=_append_with_retries, args=(str(path), actor, per_process, start))
        for actor in ("ann", "ben")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    exit_codes = [worker.exitcode for worker in workers]
    for worker in workers:
        if worker.is_alive():
            worker.kill()
            worker.join()
        worker.close()

    assert exit_codes == [0, 0]
    with SQLiteStore(path) as store:
        events = store.load("INC-1")
        deliveries = store.deliveries()
    assert [e.version for e in events] == list(range(1, 2 * per_process + 2))
    assert sum(e.actor == "ann" for e in events) == per_process
    assert sum(e.actor == "ben" for e in events) == per_process
    assert [d.version for d in deliveries] == list(range(2, 2 * per_process + 2))


def _open_and_declare(path: str, incident_id: str, start: Any) -> None:
    """Open the (new) file as soon as every process is ready, and declare one incident."""
    start.wait(timeout=60)
    with SQLiteStore(path) as store:
        store.append(incident_id, 0, [declared(incident_id)], phase="identified")


def test_processes_opening_one_new_file_at_once_migrate_it_once(path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    incident_ids = [f"INC-{n}" for n in range(4)]
    workers = [
        context.Process(target=_open_and_declare, args=(str(path), incident_id, start))
        for incident_id in incident_ids
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    exit_codes = [worker.exitcode for worker in workers]
    for worker in workers:
        if worker.is_alive():
            worker.kill()
            worker.join()
        worker.close()

    assert exit_codes == [0, 0, 0, 0]
    with closing(sqlite3.connect(path)) as conn:
        migrations = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]
    assert migrations == list(range(1, len(MIGRATIONS) + 1))
    with SQLiteStore(path) as store:
        assert sorted(store.incident_ids()) == incident_ids


# -- group commit --------------------------------------------------------------------------------
#
# To make appends share a transaction without relying on timing, another connection holds the
# file's write lock (as another process would) while the appends queue up: the first caller
# leads and waits in BEGIN IMMEDIATE, the others queue behind it. Once all are queued (the
# store's ``stats.queued`` says so) the lock is released and the leader commits them together.


@contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Hold the file's write lock from another connection for the body."""
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)


def in_one_group(
    store: SQLiteStore, path: Path, *appends: Callable[[], None]
) -> list[BaseException | None]:
    """Run each of ``appends`` in a thread of its own, queued in this order, and release them
    together; return what each raised (None: it returned)."""
    outcomes: list[BaseException | None] = [None] * len(appends)

    def run(index: int, append: Callable[[], None]) -> None:
        try:
            append()
        except BaseException as error:
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(appends)]
    with write_lock_held(path):
        for queued, thread in enumerate(threads, start=1):
            thread.start()
            wait_until(lambda n=queued: store.stats.queued == n, f"{queued} appends are queued")
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def declare(store: SQLiteStore, *incident_ids: str) -> None:
    for incident_id in incident_ids:
        store.append(incident_id, 0, [declared(incident_id)], phase="identified")


def test_an_append_alone_commits_its_own_transaction_at_once(store: SQLiteStore) -> None:
    declare(store, "INC-1")
    for version in range(2, 6):
        store.append("INC-1", version - 1, [update(version)], phase="identified")

    assert (store.stats.commits, store.stats.batches, store.stats.queued) == (5, 5, 0)


def test_threads_appending_at_once_share_transactions(store: SQLiteStore, path: Path) -> None:
    threads, per_thread = 8, 30
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def writer(incident_id: str) -> None:
        try:
            start.wait(timeout=30)
            declare(store, incident_id)
            for version in range(2, per_thread + 1):
                store.append(
                    incident_id,
                    version - 1,
                    [update(version, incident_id=incident_id)],
                    phase="identified",
                    deliveries=[Delivery(incident_id, version, "slack")],
                )
        except BaseException as error:  # surfaced by the assertion below
            failures.append(error)

    workers = [threading.Thread(target=writer, args=(f"INC-{n}",)) for n in range(threads)]
    with write_lock_held(path):  # the first appends of all threads queue up behind it
        for worker in workers:
            worker.start()
        wait_until(lambda: store.stats.queued == threads, "every thread's first append queued")
    for worker in workers:
        worker.join(timeout=120)

    assert failures == []
    for n in range(threads):
        events = store.load(f"INC-{n}")
        assert [e.version for e in events] == list(range(1, per_thread + 1))
    assert len(store.deliveries()) == threads * (per_thread - 1)
    stats = store.stats
    assert stats.batches == threads * per_thread
    assert stats.commits <= threads * per_thread - (threads - 1)  # the first group held all 8
    assert stats.queued == 0


def test_a_stale_batch_in_a_group_fails_alone(store: SQLiteStore, path: Path) -> None:
    declare(store, "INC-1", "INC-2", "INC-3")
    commits = store.stats.commits

    outcomes = in_one_group(
        store,
        path,
        lambda: store.append("INC-1", 1, [update(2, incident_id="INC-1")], phase="triaged"),
        lambda: store.append(
            "INC-2",
            0,
            [declared("INC-2")],
            phase="triaged",
            deliveries=[Delivery("INC-2", 1, "slack")],
        ),
        lambda: store.append("INC-3", 1, [update(2, incident_id="INC-3")], phase="triaged"),
        lambda: declare(store, "INC-4"),
    )

    first, stale, third, fourth = outcomes
    assert (first, third, fourth) == (None, None, None)
    assert isinstance(stale, ConcurrencyConflict)
    assert (stale.incident_id, stale.expected_version, stale.actual_version) == ("INC-2", 0, 1)
    assert store.stats.commits == commits + 1
    assert store.incident_ids(phase="triaged") == ["INC-1", "INC-3"]
    assert store.incident_ids() == ["INC-1", "INC-2", "INC-3", "INC-4"]
    assert store.load("INC-2") == [declared("INC-2")]
    assert store.deliveries() == []


def test_a_later_batch_of_a_group_sees_an_earlier_ones_version(
    store: SQLiteStore, path: Path
) -> None:
    declare(store, "INC-1")
    commits = store.stats.commits

    outcomes = in_one_group(
        store,
        path,
        lambda: store.append("INC-1", 1, [update(2, actor="ann")], phase="identified"),
        lambda: store.append("INC-1", 2, [update(3, actor="ben")], phase="triaged"),
    )

    assert outcomes == [None, None]
    assert store.stats.commits == commits + 1
    assert store.load("INC-1") == [declared(), update(2, actor="ann"), update(3, actor="ben")]
    assert store.incident_ids(phase="triaged") == ["INC-1"]


def test_two_batches_of_a_group_expecting_one_version_the_second_conflicts(
    store: SQLiteStore, path: Path
) -> None:
    declare(store, "INC-1")
    commits = store.stats.commits

    outcomes = in_one_group(
        store,
        path,
        lambda: store.append("INC-1", 1, [update(2, actor="ann")], phase="identified"),
        lambda: store.append(
            "INC-1",
            1,
            [update(2, actor="ben")],
            phase="triaged",
            deliveries=[Delivery("INC-1", 2, "slack")],
        ),
    )

    first, second = outcomes
    assert first is None
    assert isinstance(second, ConcurrencyConflict)
    assert (second.expected_version, second.actual_version) == (1, 2)
    assert store.stats.commits == commits + 1
    assert store.load("INC-1") == [declared(), update(2, actor="ann")]
    assert store.incident_ids(phase="triaged") == []
    assert store.deliveries() == []


def poison_commits(path: Path, incident_id: str) -> None:
    """Make every transaction that appends to ``incident_id`` fail at its COMMIT: a trigger
    leaves a deferred foreign key violation, which SQLite only checks when committing."""
    execute(path, "CREATE TABLE nowhere (id TEXT PRIMARY KEY)")
    execute(
        path,
        "CREATE TABLE poison (ref TEXT REFERENCES nowhere (id) DEFERRABLE INITIALLY DEFERRED)",
    )
    execute(
        path,
        "CREATE TRIGGER poison_commit AFTER INSERT ON events "
        f"WHEN NEW.incident_id = '{incident_id}' "
        "BEGIN INSERT INTO poison VALUES (NEW.incident_id); END",
    )


def test_a_failed_commit_fails_every_caller_of_its_group_and_writes_nothing(
    store: SQLiteStore, path: Path
) -> None:
    declare(store, "INC-1")
    poison_commits(path, "INC-X")
    commits = store.stats.commits

    outcomes = in_one_group(
        store,
        path,
        lambda: store.append(
            "INC-1",
            1,
            [update(2)],
            phase="triaged",
            deliveries=[Delivery("INC-1", 2, "slack")],
        ),
        lambda: declare(store, "INC-X"),
        lambda: declare(store, "INC-2"),
    )

    for outcome in outcomes:
        assert isinstance(outcome, StoreError)
        assert "FOREIGN KEY constraint failed" in str(outcome)
    assert len({id(outcome) for outcome in outcomes}) == 3  # each caller has its own
    assert store.stats.commits == commits
    assert store.load("INC-1") == [declared()]
    assert store.incident_ids() == ["INC-1"]
    assert store.deliveries() == []

    # The failed transaction was rolled back: the store goes on, and the poison fails alone.
    with pytest.raises(StoreError, match="FOREIGN KEY constraint failed"):
        declare(store, "INC-X")
    declare(store, "INC-2")
    assert store.incident_ids() == ["INC-1", "INC-2"]


def test_a_batch_that_rolls_back_the_whole_transaction_fails_alone(
    store: SQLiteStore, path: Path
) -> None:
    # RAISE(ROLLBACK) ends the whole transaction, as a full disk or an I/O error may: the
    # batches written before it in the group are written again in a new transaction.
    execute(
        path,
        "CREATE TRIGGER refuse AFTER INSERT ON events WHEN NEW.incident_id = 'INC-X' "
        "BEGIN SELECT RAISE(ROLLBACK, 'INC-X is refused'); END",
    )

    outcomes = in_one_group(
        store,
        path,
        lambda: declare(store, "INC-1"),
        lambda: declare(store, "INC-X"),
        lambda: declare(store, "INC-2"),
    )

    first, refused, third = outcomes
    assert (first, third) == (None, None)
    assert isinstance(refused, StoreError)
    assert "INC-X is refused" in str(refused)
    assert store.incident_ids() == ["INC-1", "INC-2"]
    assert (store.stats.commits, store.stats.batches) == (1, 2)


def test_a_group_takes_at_most_max_group_appends(
    store: SQLiteStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "MAX_GROUP", 2)
    incident_ids = [f"INC-{n}" for n in range(5)]

    outcomes = in_one_group(
        store, path, *(lambda i=incident_id: declare(store, i) for incident_id in incident_ids)
    )

    assert outcomes == [None] * 5
    assert store.incident_ids() == incident_ids
    assert (store.stats.commits, store.stats.batches) == (3, 5)


def test_callers_queued_behind_a_lock_held_too_long_each_get_store_error(path: Path) -> None:
    # Each leader in turn waits its own timeout, fails its own batch and hands over: none hangs.
    callers = 3
    start = threading.Barrier(callers)
    outcomes: list[BaseException | None] = [None] * callers

    def writer(n: int) -> None:
        start.wait(timeout=30)
        try:
            declare(store, f"INC-{n}")
        except BaseException as error:
            outcomes[n] = error

    with SQLiteStore(path, timeout=0.1) as store:
        workers = [threading.Thread(target=writer, args=(n,)) for n in range(callers)]
        with write_lock_held(path):
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(timeout=60)

        assert not any(worker.is_alive() for worker in workers)
        for outcome in outcomes:
            assert isinstance(outcome, StoreError)
            assert "stayed locked by another writer" in str(outcome)
        assert (store.stats.commits, store.stats.queued) == (0, 0)
        assert store.incident_ids() == []
        declare(store, "INC-9")  # the lock is free again: the store goes on
        assert store.incident_ids() == ["INC-9"]


def test_appending_to_a_closed_store_raises_store_error(path: Path) -> None:
    store = SQLiteStore(path)
    store.close()

    with pytest.raises(StoreError, match="closed"):
        declare(store, "INC-1")

"""What the SQLite store promises beyond the store contract: durability, its file and schema,
decoding errors that say where they are, and safe writers across processes."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from collections.abc import Iterator
from contextlib import closing
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
from incident_flow.serialization import event_to_dict
from incident_flow.store.base import Delivery, DeliveryStatus
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
        store.mark_failed(Delivery("INC-1", 2, "slack"), error="timeout", at=T0)

    with SQLiteStore(path) as reopened:
        assert reopened.load("INC-1") == [declared(), update(2)]
        assert reopened.version("INC-1") == 2
        assert reopened.incident_ids(phase="triaged") == ["INC-1"]
        assert reopened.deliveries() == [
            Delivery("INC-1", 2, "slack", DeliveryStatus.FAILED, 1, "timeout", T0)
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

"""A store in one SQLite file: the embedded default, safe for several threads and processes.

The file is opened in WAL mode with ``synchronous=FULL``, so a committed append survives a crash
or power loss. Every write runs in its own ``BEGIN IMMEDIATE`` transaction: writers (threads of
this process through the store's one connection, or other processes through their own) take the
database's write lock before they read the incident's version, so two writers appending to one
incident are serialized and the loser gets a
:class:`~incident_flow.errors.ConcurrencyConflict` instead of a lost update.

Appends made at once by several threads share transactions (*group commit*): a caller queues its
prepared batch; the first caller that finds no transaction under way becomes the *leader*, takes
every batch queued by the time it holds the write lock (at most :attr:`SQLiteStore.MAX_GROUP`),
writes each inside a ``SAVEPOINT`` of one ``BEGIN IMMEDIATE`` transaction, commits it with one
sync, and hands the leadership to the oldest batch still queued. Each caller returns once the
transaction holding its batch has committed, and raises what it would have raised alone: a batch
that fails (a stale version, a constraint) is rolled back to its savepoint and its error goes to
its caller only, the later batches of the group seeing the earlier ones' versions. A failed
``COMMIT`` fails every batch of its group, and writes none of them. A caller alone never waits
for company: its transaction starts at once, as it did before group commit.

The schema is versioned. :data:`MIGRATIONS` lists the SQL scripts in order; opening a store
applies those that the file's ``schema_migrations`` table does not record yet, inside one
``BEGIN IMMEDIATE`` transaction, so two processes opening the same new file at once do not both
apply them. A file written by a newer incident_flow (a migration this code does not know) is
refused with a :class:`~incident_flow.errors.StoreError` rather than misread.

Tables:

``incidents``
    One row per incident: its declaration order (``seq``), current ``phase`` and ``version``.
``events``
    One row per event, keyed by ``(incident_id, version)``; ``data`` is the JSON written by
    :func:`~incident_flow.serialization.dumps_event`, the other columns are for people and
    queries.
``outbox``
    One row per delivery of an event to a plugin, in commit order (``id``).

Datetimes are stored as ISO 8601 strings in UTC.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final

import attrs

from incident_flow.clock import ensure_utc
from incident_flow.errors import (
    ConcurrencyConflict,
    InvalidTimestampError,
    StoreError,
    UnknownIncidentError,
)
from incident_flow.events import Event
from incident_flow.serialization import dumps_event
from incident_flow.store.base import (
    Delivery,
    DeliveryStatus,
    Outcome,
    Store,
    decode_event,
    delivery_from_row,
)

__all__ = ["MIGRATIONS", "SQLiteStats", "SQLiteStore"]

MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: the incidents, their events and the outbox. No secondary indexes beyond the keys: each
    # is one more page for every command's transaction to write and sync.
    """
    CREATE TABLE incidents (
        id          TEXT PRIMARY KEY,
        seq         INTEGER NOT NULL UNIQUE,
        phase       TEXT NOT NULL,
        version     INTEGER NOT NULL CHECK (version >= 1),
        updated_at  TEXT
    );
    CREATE TABLE events (
        incident_id TEXT NOT NULL REFERENCES incidents (id),
        version     INTEGER NOT NULL CHECK (version >= 1),
        type        TEXT NOT NULL,
        at          TEXT NOT NULL,
        actor       TEXT NOT NULL,
        data        TEXT NOT NULL,
        PRIMARY KEY (incident_id, version)
    ) WITHOUT ROWID;
    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY,
        incident_id TEXT NOT NULL,
        version     INTEGER NOT NULL,
        plugin      TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        last_error  TEXT,
        updated_at  TEXT,
        UNIQUE (incident_id, version, plugin),
        FOREIGN KEY (incident_id, version) REFERENCES events (incident_id, version)
    );
    """,
    # 2: retries, dead letters and leases. SQLite cannot change a CHECK constraint in place, so
    # the outbox is rebuilt: ``dead`` status, when a failed row is next due, which worker holds
    # it and until when, and the unique key ordered for claims' "is this the oldest unfinished
    # row of its incident for its plugin" lookups. The partial index holds only unfinished rows,
    # so a claim never reads the delivered history.
    """
    CREATE TABLE outbox_v2 (
        id              INTEGER PRIMARY KEY,
        incident_id     TEXT NOT NULL,
        version         INTEGER NOT NULL,
        plugin          TEXT NOT NULL,
        status          TEXT NOT NULL
                        CHECK (status IN ('pending', 'delivered', 'failed', 'dead')),
        attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        last_error      TEXT,
        updated_at      TEXT,
        next_attempt_at TEXT,
        claimed_by      TEXT,
        claimed_until   TEXT,
        UNIQUE (incident_id, plugin, version),
        FOREIGN KEY (incident_id, version) REFERENCES events (incident_id, version)
    );
    INSERT INTO outbox_v2 (id, incident_id, version, plugin, status, attempts, last_error,
                           updated_at)
        SELECT id, incident_id, version, plugin, status, attempts, last_error, updated_at
        FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v2 RENAME TO outbox;
    CREATE INDEX outbox_unfinished ON outbox (id) WHERE status IN ('pending', 'failed');
    """,
)
"""The schema, one SQL script per version; ``MIGRATIONS[n - 1]`` takes the file to version ``n``.

Only ever append to this tuple: a released migration must never change.
"""

_SCHEMA_MIGRATIONS_TABLE: Final = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version     INTEGER PRIMARY KEY,
        applied_at  TEXT NOT NULL
    )
"""

_DELIVERY_COLUMNS: Final = (
    "incident_id, version, plugin, status, attempts, last_error, updated_at, next_attempt_at, "
    "claimed_by, claimed_until"
)


def _statements(script: str) -> Iterator[str]:
    """Split an SQL script into its statements (``executescript`` would commit our transaction)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                yield pending.strip()
            pending = ""
    if pending.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement in migration: {pending.strip()!r}")


def _to_text(moment: datetime) -> str:
    """Return an aware datetime as an ISO 8601 string in UTC."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidTimestampError(f"naive datetime {moment!r}; pass an aware UTC datetime")
    return moment.astimezone(UTC).isoformat()


def _optional_text(moment: datetime | None) -> str | None:
    return None if moment is None else _to_text(moment)


def _from_text(text: str | None) -> datetime | None:
    """Parse a datetime written by :func:`_to_text` (None stays None)."""
    if text is None:
        return None
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


_EventRow = tuple[str, int, str, str, str, str]
_OutboxRow = tuple[
    str, int, str, str, int, str | None, str | None, str | None, str | None, str | None
]


@attrs.frozen
class SQLiteStats:
    """Counters of one :class:`SQLiteStore`'s appends since it was opened, for tests and
    monitoring (not part of the :class:`~incident_flow.store.base.Store` interface).

    ``batches / commits`` is the mean size of a group commit.
    """

    commits: int
    """Transactions that committed appended batches (each one sync of the file)."""
    batches: int
    """Appends committed (one per successful :meth:`SQLiteStore.append`)."""
    queued: int
    """Appends waiting for a transaction right now."""


@attrs.define(eq=False)
class _Batch:
    """One caller's append, encoded before it is queued for a group commit.

    ``eq=False``: batches are compared by identity, so removing one from the queue removes it.
    """

    incident_id: str
    expected_version: int
    phase: str
    rows: list[_EventRow]
    outbox: list[_OutboxRow]
    wake: threading.Event | None = None
    """Set when the batch is done, or when its caller is to lead the next group. Only a caller
    that queues behind a leader waits, so only its batch has one (an Event costs microseconds)."""
    lead: bool = False
    done: bool = False
    error: BaseException | None = None

    @property
    def new_version(self) -> int:
        return self.expected_version + len(self.rows)

    def finish(self, error: BaseException | None = None) -> None:
        """Record the outcome (None: committed) and wake the caller."""
        self.error = error
        self.done = True
        if self.wake is not None:
            self.wake.set()


class SQLiteStore(Store):
    """Keeps incidents in one SQLite file (or ``":memory:"``). Thread- and process-safe.

    Args:
        path: the database file; created (with its schema) when it does not exist.
        timeout: seconds to wait for another writer's lock before giving up with a
            :class:`~incident_flow.errors.StoreError`.

    Raises:
        StoreError: the file is not an SQLite database, was written by a newer incident_flow, or
            cannot be opened.
    """

    MAX_GROUP: ClassVar[int] = 256
    """The most appends one group commit takes; the rest wait for the next transaction."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self._path = os.fspath(path)
        self._timeout = timeout
        self._lock = threading.Lock()
        """Guards the connection: held for every statement, and across every transaction."""
        self._closed = False
        # Group commit: appends waiting for a transaction, oldest first, and whether a caller
        # leads (runs or is about to run a transaction for them). Lock order: _lock, then
        # _queue_lock, never the other way round.
        self._queue_lock = threading.Lock()
        self._queue: deque[_Batch] = deque()
        self._leading = False
        self._commits = 0
        self._batches = 0
        try:
            self._conn = sqlite3.connect(
                self._path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise StoreError(f"cannot open SQLite database {self._path!r}: {error}") from error
        try:
            self._configure()
            self._migrate()
        except BaseException:
            self._conn.close()
            self._closed = True
            raise

    # -- opening -------------------------------------------------------------------------------

    def _configure(self) -> None:
        """Set the connection's pragmas; WAL is retried while another process holds a lock."""
        conn = self._conn
        deadline = time.monotonic() + self._timeout
        try:
            conn.execute(f"PRAGMA busy_timeout = {max(0, int(self._timeout * 1000))}")
            conn.execute("PRAGMA foreign_keys = ON")
            while True:
                try:
                    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                    break
                except sqlite3.OperationalError as error:
                    if not _is_busy(error) or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.01)
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.DatabaseError as error:
            raise self._open_error(error) from error
        if str(mode).lower() not in ("wal", "memory"):
            raise StoreError(f"cannot put {self._path!r} in WAL mode (journal mode is {mode})")

    def _migrate(self) -> None:
        """Bring the file's schema up to :data:`MIGRATIONS`, at most once across processes."""
        try:
            if self._schema_version_unlocked() == len(MIGRATIONS):
                return  # the usual case: nothing to do, no write lock taken
            with self._transaction() as conn:
                conn.execute(_SCHEMA_MIGRATIONS_TABLE)
                (current,) = conn.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
                ).fetchone()
                self._check_schema_version(current)
                for version in range(current + 1, len(MIGRATIONS) + 1):
                    for statement in _statements(MIGRATIONS[version - 1]):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                        (version, _to_text(datetime.now(UTC))),
                    )
        except sqlite3.DatabaseError as error:
            raise self._open_error(error) from error

    def _schema_version_unlocked(self) -> int:
        """The file's schema version, read without a transaction (0 for a new file)."""
        exists = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if exists is None:
            return 0
        (current,) = self._conn.execute(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
        ).fetchone()
        self._check_schema_version(current)
        return int(current)

    def _check_schema_version(self, current: object) -> None:
        if not isinstance(current, int):
            raise StoreError(
                f"{self._path!r} has a malformed schema_migrations table; "
                "it was not written by incident_flow"
            )
        if current > len(MIGRATIONS):
            raise StoreError(
                f"{self._path!r} has schema version {current}, newer than the {len(MIGRATIONS)} "
                "this version of incident_flow knows; upgrade incident_flow to open it"
            )

    def _open_error(self, error: sqlite3.DatabaseError) -> StoreError:
        if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
            return StoreError(f"{self._path!r} is not an SQLite database ({error})")
        return StoreError(f"cannot open incident store {self._path!r}: {error}")

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the body in ``BEGIN IMMEDIATE`` … ``COMMIT``; roll back on any exception, a
        failed ``COMMIT`` included (SQLite leaves the transaction open after some)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            self._rollback_quietly()
            raise

    def _rollback_quietly(self) -> None:
        """Roll back the open transaction, if any, keeping the error being handled."""
        if self._conn.in_transaction:
            # The error being handled says more than a failed ROLLBACK would.
            with suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _store_error(self, error: sqlite3.Error) -> StoreError:
        """The :class:`StoreError` an SQLite error becomes, caused by it."""
        if isinstance(error, sqlite3.OperationalError) and _is_busy(error):
            message = (
                f"{self._path!r} stayed locked by another writer for over "
                f"{self._timeout:g}s: {error}"
            )
        else:
            message = f"incident store {self._path!r}: {error}"
        store_error = StoreError(message)
        store_error.__cause__ = error
        return store_error

    def _closed_error(self) -> StoreError:
        return StoreError(f"the store for {self._path!r} is closed")

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        """Hold the connection's lock; turn SQLite's errors into :class:`StoreError`."""
        with self._lock:
            if self._closed:
                raise self._closed_error()
            try:
                yield self._conn
            except sqlite3.Error as error:
                raise self._store_error(error) from error

    # -- the Store interface -------------------------------------------------------------------

    def append(
        self,
        incident_id: str,
        expected_version: int,
        events: Sequence[Event],
        *,
        phase: str,
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        """Append ``events`` and ``deliveries`` in a ``BEGIN IMMEDIATE`` transaction, which
        appends made at the same time by other threads may share (see the module's docs).

        Returns once that transaction has committed. See :meth:`Store.append`. Also raises
        :class:`StoreError` when another writer holds the lock for longer than the store's
        ``timeout``, when the store is closed, or when SQLite fails the write or its commit.
        """
        self.check_batch(incident_id, expected_version, events, deliveries)
        # Encode before taking any lock: an event that cannot be encoded writes nothing.
        rows: list[_EventRow] = [
            (e.incident_id, e.version, e.type, _to_text(e.at), e.actor, dumps_event(e))
            for e in events
        ]
        outbox: list[_OutboxRow] = [
            (
                d.incident_id,
                d.version,
                d.plugin,
                DeliveryStatus(d.status).value,
                d.attempts,
                d.last_error,
                _optional_text(d.updated_at),
                _optional_text(d.next_attempt_at),
                d.claimed_by,
                _optional_text(d.claimed_until),
            )
            for d in deliveries
        ]
        batch = _Batch(incident_id, expected_version, phase, rows, outbox)
        with self._queue_lock:
            self._queue.append(batch)
            if self._leading:
                batch.wake = wake = threading.Event()
            else:
                self._leading = True
                wake = None
        if wake is not None:
            self._wait(batch, wake)
        if not batch.done:
            self._lead(batch)
        error = batch.error
        if error is not None:
            try:
                raise error
            finally:
                del error, batch  # no cycle through the traceback's frame

    @property
    def stats(self) -> SQLiteStats:
        """This store's group-commit counters so far (see :class:`SQLiteStats`)."""
        with self._queue_lock:
            return SQLiteStats(
                commits=self._commits, batches=self._batches, queued=len(self._queue)
            )

    # -- group commit --------------------------------------------------------------------------

    def _wait(self, batch: _Batch, wake: threading.Event) -> None:
        """Wait until ``batch`` is done or its caller is to lead the next group."""
        try:
            wake.wait()
        except BaseException:
            # Interrupted (a KeyboardInterrupt in the main thread): withdraw the batch unless a
            # group has taken it, and pass on the leadership if it had just been handed over.
            self._withdraw(batch)
            if batch.lead:
                self._hand_off()
            raise

    def _withdraw(self, batch: _Batch) -> None:
        with self._queue_lock:
            if batch in self._queue:
                self._queue.remove(batch)

    def _lead(self, own: _Batch) -> None:
        """Run group transactions until ``own`` is done, then hand the leadership on."""
        try:
            with self._lock:
                while not own.done:
                    self._commit_group(own)
        except BaseException:
            self._withdraw(own)
            raise
        finally:
            self._hand_off()

    def _hand_off(self) -> None:
        """Make the oldest queued batch's caller the next leader, or stop leading."""
        with self._queue_lock:
            if self._queue:
                # Not the leader's own batch (done, or withdrawn): one queued behind it, which
                # has a wake event that its caller waits on.
                successor = self._queue[0]
                successor.lead = True
                if successor.wake is not None:
                    successor.wake.set()
            else:
                self._leading = False

    def _commit_group(self, own: _Batch) -> None:
        """One transaction for the queued batches, ``own`` (the oldest) first.

        Every batch it takes is done when it returns, except those it sends back to the queue
        because SQLite rolled the whole transaction back. The connection's lock is held.
        """
        conn = self._conn
        try:
            if self._closed:
                raise self._closed_error()
            conn.execute("BEGIN IMMEDIATE")
        except (StoreError, sqlite3.Error) as error:
            # No transaction yet: the leader's batch fails as it would alone; the next caller
            # in the queue leads and tries on its own account.
            self._withdraw(own)
            own.finish(error if isinstance(error, StoreError) else self._store_error(error))
            return
        with self._queue_lock:
            size = min(len(self._queue), self.MAX_GROUP)
            group = [self._queue.popleft() for _ in range(size)]
        try:
            written, retry = self._write_group(conn, group)
            if conn.in_transaction:
                conn.execute("COMMIT" if written else "ROLLBACK")
        except BaseException as error:
            # The group's transaction failed as a whole (its COMMIT, say): nothing of it is
            # written, and every batch of it that has no outcome yet gets the error.
            self._rollback_quietly()
            for batch in group:
                if not batch.done:
                    batch.finish(self._group_error(error, leader=batch is own))
            if not isinstance(error, Exception):
                raise  # KeyboardInterrupt and the like: the others are told, the leader stops
            return
        with self._queue_lock:
            if written:
                self._commits += 1
                self._batches += len(written)
            self._queue.extendleft(reversed(retry))
        for batch in written:
            batch.finish()

    def _write_group(
        self, conn: sqlite3.Connection, group: list[_Batch]
    ) -> tuple[list[_Batch], list[_Batch]]:
        """Write ``group`` in the open transaction; return the batches written and those to
        retry in another transaction. Each failing batch is undone and finished with its error.

        A group of one batch is written without a savepoint, as an append alone always was.
        """
        nested = len(group) > 1
        written: list[_Batch] = []
        for index, batch in enumerate(group):
            if nested:
                conn.execute("SAVEPOINT batch")
            try:
                self._write(conn, batch)
            except Exception as error:
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back (a trigger's RAISE(ROLLBACK), a
                    # full disk…): this batch fails; the others, written or not, are retried.
                    batch.finish(self._batch_error(conn, batch, error))
                    return [], [*written, *group[index + 1 :]]
                if nested:
                    conn.execute("ROLLBACK TO batch")
                    conn.execute("RELEASE batch")
                else:
                    conn.execute("ROLLBACK")
                # Read after undoing the batch: the versions it conflicts with are those of the
                # file and of the group's earlier batches.
                batch.finish(self._batch_error(conn, batch, error))
            else:
                if nested:
                    conn.execute("RELEASE batch")
                written.append(batch)
        return written, []

    def _write(self, conn: sqlite3.Connection, batch: _Batch) -> None:
        """Write one batch's incident row, events and outbox rows, checking its version."""
        updated_at = batch.rows[-1][3]
        if batch.expected_version == 0:
            # An incident that exists already fails on the primary key: see _batch_error.
            conn.execute(
                "INSERT INTO incidents (id, seq, phase, version, updated_at) VALUES "
                "(?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM incidents), ?, ?, ?)",
                (batch.incident_id, batch.phase, batch.new_version, updated_at),
            )
        else:
            # The version check and the update in one statement.
            cursor = conn.execute(
                "UPDATE incidents SET phase = ?, version = ?, updated_at = ? "
                "WHERE id = ? AND version = ?",
                (
                    batch.phase,
                    batch.new_version,
                    updated_at,
                    batch.incident_id,
                    batch.expected_version,
                ),
            )
            if cursor.rowcount != 1:
                actual = self._current_version(conn, batch.incident_id)
                raise ConcurrencyConflict(batch.incident_id, batch.expected_version, actual)
        conn.executemany(
            "INSERT INTO events (incident_id, version, type, at, actor, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            batch.rows,
        )
        conn.executemany(
            f"INSERT INTO outbox ({_DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            batch.outbox,
        )

    def _batch_error(
        self, conn: sqlite3.Connection, batch: _Batch, error: Exception
    ) -> BaseException:
        """What the caller of a failed batch raises: what it would have raised alone."""
        code = getattr(error, "sqlite_errorcode", None)
        if isinstance(error, sqlite3.IntegrityError) and code in (
            sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY,
            sqlite3.SQLITE_CONSTRAINT_UNIQUE,
        ):
            # Someone wrote these versions without going through the incidents row's version
            # (or raced us): the incident has moved on, whatever the row says.
            actual = max(
                self._current_version(conn, batch.incident_id),
                self._current_version(conn, batch.incident_id, from_events=True),
            )
            conflict = ConcurrencyConflict(batch.incident_id, batch.expected_version, actual)
            conflict.__cause__ = error
            return conflict
        if isinstance(error, sqlite3.Error):
            return self._store_error(error)
        return error

    def _group_error(self, error: BaseException, *, leader: bool) -> BaseException:
        """What each caller of a group that failed as a whole raises: a fresh StoreError for an
        SQLite error; the error itself for the leader, a StoreError caused by it for the others."""
        if isinstance(error, sqlite3.Error):
            return self._store_error(error)
        if leader:
            return error
        wrapped = StoreError(f"incident store {self._path!r}: the group commit failed: {error!r}")
        wrapped.__cause__ = error
        return wrapped

    def load(self, incident_id: str, *, after_version: int = 0) -> list[Event]:
        """Return the incident's events in version order (see :meth:`Store.load`)."""
        with self._locked() as conn:
            rows = conn.execute(
                "SELECT version, data FROM events WHERE incident_id = ? AND version > ? "
                "ORDER BY version",
                (incident_id, after_version),
            ).fetchall()
            if not rows and self._current_version(conn, incident_id) == 0:
                raise UnknownIncidentError(incident_id)
        return [decode_event(incident_id, version, data) for version, data in rows]

    def version(self, incident_id: str) -> int:
        """The incident's latest version, or 0 when it does not exist."""
        with self._locked() as conn:
            return self._current_version(conn, incident_id)

    def incident_ids(self, *, phase: str | None = None) -> list[str]:
        """Ids of all incidents (or those now in ``phase``), oldest declaration first."""
        with self._locked() as conn:
            if phase is None:
                cursor = conn.execute("SELECT id FROM incidents ORDER BY seq")
            else:
                cursor = conn.execute(
                    "SELECT id FROM incidents WHERE phase = ? ORDER BY seq", (phase,)
                )
            return [str(incident_id) for (incident_id,) in cursor.fetchall()]

    def deliveries(
        self,
        *,
        status: DeliveryStatus | None = None,
        plugin: str | None = None,
        incident_id: str | None = None,
        limit: int | None = None,
    ) -> list[Delivery]:
        """Outbox rows in commit order; datetimes come back aware, in UTC."""
        conditions: list[str] = []
        parameters: list[object] = []
        if status is not None:
            conditions.append("status = ?")
            parameters.append(DeliveryStatus(status).value)
        if plugin is not None:
            conditions.append("plugin = ?")
            parameters.append(plugin)
        if incident_id is not None:
            conditions.append("incident_id = ?")
            parameters.append(incident_id)
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        tail = ""
        if limit is not None:
            tail = "LIMIT ?"
            parameters.append(limit)
        with self._locked() as conn:
            rows = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM outbox {where}ORDER BY id {tail}", parameters
            ).fetchall()
        return [self._delivery(row) for row in rows]

    def claim(
        self,
        worker: str,
        *,
        plugins: Collection[str],
        now: datetime,
        lease: float,
        limit: int = 100,
    ) -> list[Delivery]:
        """Lease due deliveries to ``worker`` (see :meth:`Store.claim`) in one transaction.

        Unfinished rows are read in commit order through the partial index, so the delivered
        history is never read. Within one incident and plugin, commit order is version order.
        """
        wanted = sorted(set(plugins))
        if not wanted or limit <= 0:
            return []
        moment = ensure_utc(now)
        until = _to_text(moment + timedelta(seconds=lease))
        marks = ", ".join("?" * len(wanted))
        claimed: list[tuple[Any, ...]] = []
        with self._locked() as conn, self._relaxed(conn), self._transaction():
            cursor = conn.execute(
                f"SELECT id, {_DELIVERY_COLUMNS} FROM outbox INDEXED BY outbox_unfinished "
                f"WHERE status IN ('pending', 'failed') AND plugin IN ({marks}) ORDER BY id",
                wanted,
            )
            # Per (incident, plugin): True while its rows are being claimed, False once one
            # could not be (the rows behind it wait). The first row seen of a key is its
            # oldest unfinished one, because ids follow versions.
            open_keys: dict[tuple[str, str], bool] = {}
            for row in cursor:
                key = (row[1], row[3])
                if not open_keys.get(key, True):
                    continue
                if not self._due(row, moment):
                    open_keys[key] = False
                    continue
                open_keys[key] = True
                claimed.append(row)
                if len(claimed) >= limit:
                    break
            cursor.close()
            conn.executemany(
                "UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id = ?",
                [(worker, until, row[0]) for row in claimed],
            )
        return [
            attrs.evolve(
                self._delivery(row[1:]), claimed_by=worker, claimed_until=_from_text(until)
            )
            for row in claimed
        ]

    @staticmethod
    def _due(row: tuple[Any, ...], now: datetime) -> bool:
        """Whether an unfinished row (id first, then the delivery columns) may be tried now."""
        claimed_until = _from_text(row[10])
        if claimed_until is not None and claimed_until > now:
            return False
        if row[4] == DeliveryStatus.PENDING.value:
            return True
        next_attempt_at = _from_text(row[8])
        return next_attempt_at is None or next_attempt_at <= now

    def record(self, worker: str, outcomes: Sequence[Outcome], *, at: datetime) -> None:
        """Write the outcomes of claimed deliveries in one transaction (see :meth:`Store.record`).

        Outcomes are committed without waiting for the disk (``synchronous=NORMAL`` for this
        transaction only): the next durable commit syncs them along. A crash can lose the
        latest outcomes, never an event or a delivery row, so at worst an event is delivered
        again, which at-least-once delivery allows; commands keep one sync each.
        """
        when = _to_text(at)
        delivered: list[tuple[object, ...]] = []
        attempted: list[tuple[object, ...]] = []
        released: list[tuple[object, ...]] = []
        for outcome in outcomes:
            d = outcome.delivery
            ident = (d.incident_id, d.plugin, d.version)
            if outcome.status is DeliveryStatus.DELIVERED:
                delivered.append((when, *ident))
            elif outcome.status is DeliveryStatus.PENDING:
                released.append((*ident, worker))
            else:
                retry_at = (
                    _optional_text(outcome.next_attempt_at)
                    if outcome.status is DeliveryStatus.FAILED
                    else None
                )
                status = DeliveryStatus(outcome.status).value
                attempted.append((status, outcome.error, when, retry_at, *ident, worker))
        if not (delivered or attempted or released):
            return
        key = "incident_id = ? AND plugin = ? AND version = ?"
        with self._locked() as conn, self._relaxed(conn), self._transaction():
            conn.executemany(
                "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, "
                "last_error = NULL, updated_at = ?, next_attempt_at = NULL, claimed_by = NULL, "
                f"claimed_until = NULL WHERE {key} AND status != 'delivered'",
                delivered,
            )
            conn.executemany(
                "UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?, "
                "updated_at = ?, next_attempt_at = ?, claimed_by = NULL, claimed_until = NULL "
                f"WHERE {key} AND claimed_by = ? AND status != 'delivered'",
                attempted,
            )
            conn.executemany(
                "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL "
                f"WHERE {key} AND claimed_by = ?",
                released,
            )

    def renew(self, worker: str, *, now: datetime, lease: float) -> int:
        """Extend ``worker``'s leases on unfinished rows (see :meth:`Store.renew`)."""
        until = _to_text(ensure_utc(now) + timedelta(seconds=lease))
        with self._locked() as conn, self._relaxed(conn), self._transaction():
            cursor = conn.execute(
                "UPDATE outbox INDEXED BY outbox_unfinished SET claimed_until = ? "
                "WHERE status IN ('pending', 'failed') AND claimed_by = ?",
                (until, worker),
            )
            return cursor.rowcount

    def requeue(self, deliveries: Sequence[Delivery], *, at: datetime) -> int:
        """Make failed and dead rows pending again (see :meth:`Store.requeue`)."""
        _to_text(at)
        rows = [(d.incident_id, d.plugin, d.version) for d in deliveries]
        with self._locked() as conn, self._transaction():
            before = conn.total_changes
            conn.executemany(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = NULL, "
                "claimed_by = NULL, claimed_until = NULL WHERE incident_id = ? AND plugin = ? "
                "AND version = ? AND status IN ('failed', 'dead')",
                rows,
            )
            return conn.total_changes - before

    def close(self) -> None:
        """Close the connection. Safe to call twice; the store must not be used afterwards."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r})"

    # -- helpers -------------------------------------------------------------------------------

    @contextmanager
    def _relaxed(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Run the body with ``synchronous=NORMAL``: for outbox bookkeeping, whose loss in a
        crash only means a delivery is tried again (see :meth:`record`)."""
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            conn.execute("PRAGMA synchronous=FULL")

    @staticmethod
    def _current_version(
        conn: sqlite3.Connection, incident_id: str, *, from_events: bool = False
    ) -> int:
        if from_events:
            row = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM events WHERE incident_id = ?",
                (incident_id,),
            ).fetchone()
        else:
            row = conn.execute(
                "SELECT version FROM incidents WHERE id = ?", (incident_id,)
            ).fetchone()
        return int(row[0]) if row is not None else 0

    @staticmethod
    def _delivery(row: tuple[Any, ...]) -> Delivery:
        return delivery_from_row(row, _from_text)

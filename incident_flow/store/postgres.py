"""A store in a PostgreSQL schema: for several processes and machines sharing one outbox.

Needs the ``postgres`` extra (``pip install incident-flow[postgres]``): psycopg 3 and
psycopg_pool. The store keeps a :class:`psycopg_pool.ConnectionPool`; every call borrows a
connection for the length of one transaction, so the store is safe to share between threads, and
any number of processes may open stores on the same schema.

Every write runs in one transaction at ``READ COMMITTED``, so it is written whole or not at all,
even when the connection is lost half way. :meth:`PostgresStore.append` checks the incident's
version in the same statement that moves it on (``UPDATE … WHERE version = expected``): of two
writers appending to one incident, the second waits for the first's row lock, finds the version
changed and raises :class:`~incident_flow.errors.ConcurrencyConflict`.

:meth:`PostgresStore.claim` takes the head of each (incident, plugin) queue with
``FOR UPDATE SKIP LOCKED``, so concurrent workers never wait for each other and never take the
same row; a row behind a head is only ever claimed together with its head, in the transaction
that holds the head's lock, so no two workers deliver one (incident, plugin)'s rows out of order.

The schema is versioned. :data:`MIGRATIONS` lists the SQL scripts in order; opening a store
applies those the schema's ``schema_migrations`` table does not record yet, in one transaction
under a transaction-level advisory lock, so two processes opening the same new schema at once
apply them once. A schema written by a newer incident_flow is refused with a
:class:`~incident_flow.errors.StoreError` rather than misread.

Tables (in the store's ``schema``):

``incidents``
    One row per incident: its declaration order (``seq``), current ``phase`` and ``version``.
``events``
    One row per event, keyed by ``(incident_id, version)``; ``data`` is the JSON written by
    :func:`~incident_flow.serialization.dumps_event`, kept as text exactly as written (cast it
    with ``data::jsonb`` to query it).
``outbox``
    One row per delivery of an event to a plugin, in commit order (``id``), with its status,
    attempts, retry time and lease.

Datetimes are ``timestamptz`` and come back as aware UTC datetimes.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import attrs

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    from psycopg_pool import ConnectionPool
except ImportError as _error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "PostgresStore needs psycopg 3 and psycopg_pool: install incident-flow[postgres] "
        f"({_error})"
    ) from _error

from incident_flow.clock import ensure_utc
from incident_flow.errors import (
    ConcurrencyConflict,
    InvalidFieldError,
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

__all__ = ["MIGRATIONS", "PostgresStore"]

MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: the incidents, their events and the outbox, with two partial indexes on the unfinished
    # rows: one to find them in commit order, one to find what is ahead of a row in its queue.
    """
    CREATE TABLE incidents (
        id          text PRIMARY KEY,
        seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        phase       text NOT NULL,
        version     integer NOT NULL CHECK (version >= 1),
        updated_at  timestamptz
    );
    CREATE TABLE events (
        incident_id text NOT NULL REFERENCES incidents (id),
        version     integer NOT NULL CHECK (version >= 1),
        type        text NOT NULL,
        at          timestamptz NOT NULL,
        actor       text NOT NULL,
        data        text NOT NULL,
        PRIMARY KEY (incident_id, version)
    );
    CREATE TABLE outbox (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        incident_id     text NOT NULL,
        version         integer NOT NULL,
        plugin          text NOT NULL,
        status          text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'delivered', 'failed', 'dead')),
        attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        last_error      text,
        updated_at      timestamptz,
        next_attempt_at timestamptz,
        claimed_by      text,
        claimed_until   timestamptz,
        UNIQUE (incident_id, plugin, version),
        FOREIGN KEY (incident_id, version) REFERENCES events (incident_id, version)
    );
    CREATE INDEX outbox_unfinished ON outbox (id) WHERE status IN ('pending', 'failed');
    CREATE INDEX outbox_unfinished_queue ON outbox (incident_id, plugin, version)
        WHERE status IN ('pending', 'failed');
    """,
)
"""The schema, one SQL script per version; ``MIGRATIONS[n - 1]`` takes a schema to version ``n``.

Only ever append to this tuple: a released migration must never change.
"""

_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_ADVISORY_CLASS: Final = b"incident_flow.migrations:"
_RETRIES: Final = 3
"""Attempts at a transaction that PostgreSQL aborted to break a deadlock."""

_DELIVERY_COLUMNS: Final = (
    "incident_id, version, plugin, status, attempts, last_error, updated_at, next_attempt_at, "
    "claimed_by, claimed_until"
)

# A row is due (apart from its place in its queue) when it is unfinished, not waiting for a
# retry and not leased past now. Written out in each query so the planner sees it whole.
_DUE: Final = """
    {o}.status IN ('pending', 'failed')
    AND ({o}.status = 'pending' OR {o}.next_attempt_at IS NULL
         OR {o}.next_attempt_at <= %(now)s)
    AND ({o}.claimed_until IS NULL OR {o}.claimed_until <= %(now)s)
"""

_CLAIM_HEADS: Final = f"""
    SELECT o.id, o.incident_id, o.plugin, o.version
    FROM outbox AS o
    WHERE o.plugin = ANY(%(plugins)s::text[])
      AND {_DUE.format(o="o")}
      AND NOT EXISTS (
          SELECT 1 FROM outbox AS ahead
          WHERE ahead.incident_id = o.incident_id AND ahead.plugin = o.plugin
            AND ahead.version < o.version AND ahead.status IN ('pending', 'failed')
      )
    ORDER BY o.id
    LIMIT %(limit)s
    FOR UPDATE OF o SKIP LOCKED
"""
"""The heads: due rows with nothing unfinished ahead of them in their (incident, plugin) queue,
locked; rows another claim has locked are skipped. A row whose lock we had to wait for is
rechecked by PostgreSQL against its newest version, so a head that was claimed or finished
meanwhile drops out."""

_CLAIM_FOLLOWERS: Final = f"""
    SELECT h.head, f.id, f.ready
    FROM unnest(%(heads)s::bigint[], %(incidents)s::text[], %(plugins)s::text[],
                %(versions)s::integer[]) AS h (head, incident_id, plugin, version)
    CROSS JOIN LATERAL (
        SELECT o.id, o.version, ({_DUE.format(o="o")}) AS ready
        FROM outbox AS o
        WHERE o.incident_id = h.incident_id AND o.plugin = h.plugin
          AND o.version > h.version AND o.status IN ('pending', 'failed')
        ORDER BY o.version
        LIMIT %(limit)s
    ) AS f
    ORDER BY h.head, f.version
"""
"""The unfinished rows right behind each locked head, in version order, with whether each is
due; a head's chain ends at the first that is not."""

_CLAIM_LOCK: Final = f"""
    SELECT o.id FROM outbox AS o
    WHERE o.id = ANY(%(ids)s::bigint[]) AND {_DUE.format(o="o")}
    ORDER BY o.id
    FOR UPDATE OF o SKIP LOCKED
"""
"""Lock the followers chosen; one locked elsewhere, or no longer due, ends its chain."""

_CLAIM_MARK: Final = f"""
    UPDATE outbox SET claimed_by = %(worker)s, claimed_until = %(until)s
    WHERE id = ANY(%(ids)s::bigint[])
    RETURNING id, {_DELIVERY_COLUMNS}
"""

_RECORD: Final = """
    UPDATE outbox SET
        claimed_by = NULL,
        claimed_until = NULL,
        status = CASE WHEN %(attempted)s THEN %(status)s::text ELSE status END,
        attempts = attempts + CASE WHEN %(attempted)s THEN 1 ELSE 0 END,
        updated_at = CASE WHEN %(attempted)s THEN %(at)s::timestamptz ELSE updated_at END,
        last_error = CASE WHEN %(attempted)s THEN %(error)s::text ELSE last_error END,
        next_attempt_at = CASE WHEN %(attempted)s THEN %(next)s::timestamptz
                          ELSE next_attempt_at END
    WHERE incident_id = %(incident_id)s AND version = %(version)s AND plugin = %(plugin)s
      AND status <> 'delivered'
      AND (%(delivered)s OR claimed_by = %(worker)s)
"""

_REQUEUE: Final = """
    UPDATE outbox AS o SET
        status = 'pending', attempts = 0, next_attempt_at = NULL,
        claimed_by = NULL, claimed_until = NULL
    FROM unnest(%(incidents)s::text[], %(versions)s::integer[], %(plugins)s::text[])
        AS r (incident_id, version, plugin)
    WHERE o.incident_id = r.incident_id AND o.version = r.version AND o.plugin = r.plugin
      AND o.status IN ('failed', 'dead')
"""

_T = TypeVar("_T")
_Connection = psycopg.Connection[tuple[Any, ...]]
_EventRow = tuple[str, int, str, datetime, str, str]
_OutboxRow = tuple[
    str, int, str, str, int, str | None, datetime | None, datetime | None, str | None,
    datetime | None,
]  # fmt: skip


def _optional_utc(moment: datetime | None, field: str) -> datetime | None:
    return None if moment is None else ensure_utc(moment, field=field)


def _from_db(value: object) -> datetime | None:
    """A ``timestamptz`` read back, as an aware UTC datetime (None stays None)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _redact(conninfo: str) -> str:
    """``conninfo`` without its password, for messages and ``repr``."""
    try:
        params: dict[str, Any] = dict(conninfo_to_dict(conninfo))
    except psycopg.Error:
        return "<malformed conninfo>"
    params.pop("password", None)
    return make_conninfo("", **params)


def _advisory_key(schema: str) -> int:
    """The advisory lock that migrations of ``schema`` take: the same in every process."""
    digest = hashlib.blake2b(_ADVISORY_CLASS + schema.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _password(conninfo: str) -> str | None:
    try:
        value = conninfo_to_dict(conninfo).get("password")
    except psycopg.Error:
        return None
    return str(value) if value else None


@attrs.frozen
class _Batch:
    """One append, encoded before any connection is taken."""

    incident_id: str
    expected_version: int
    phase: str
    rows: list[_EventRow]
    outbox: list[_OutboxRow]

    @property
    def new_version(self) -> int:
        return self.expected_version + len(self.rows)


class PostgresStore(Store):
    """Keeps incidents in a PostgreSQL schema. Thread- and process-safe.

    Args:
        conninfo: a libpq connection string or URL (``"host=db user=app dbname=incidents"``).
        schema: the schema holding the store's tables; created when missing. A plain lowercase
            identifier (letters, digits, ``_``).
        min_size: connections the pool keeps open.
        max_size: connections the pool opens at most (the most calls that run at once).
        timeout: seconds to wait for the server when opening, and for a free connection.

    Raises:
        InvalidFieldError: ``schema`` is not a plain identifier (``field="schema"``).
        StoreError: the server cannot be reached, or the schema was written by a newer
            incident_flow or is not ours.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "public",
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
    ) -> None:
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            raise InvalidFieldError(
                f"schema {schema!r} is not a plain identifier: use lowercase letters, digits and "
                "_ (at most 63, not starting with a digit)",
                field="schema",
            )
        if schema.startswith("pg_"):
            raise InvalidFieldError(
                f"schema {schema!r} is reserved: PostgreSQL keeps names starting with pg_",
                field="schema",
            )
        self._conninfo = conninfo
        self._safe_conninfo = _redact(conninfo)
        self._schema = schema
        self._timeout = timeout
        self._lock = threading.Lock()
        self._closed = False
        self._migrate()
        self._pool: ConnectionPool[_Connection] = ConnectionPool(
            conninfo,
            kwargs={"autocommit": True},
            min_size=min_size,
            max_size=max_size,
            open=False,
            configure=self._configure,
            # A connection the server dropped (a restart, a failover) is replaced when it is
            # lent out, instead of failing the next call.
            check=ConnectionPool.check_connection,
            timeout=timeout,
            name=f"incident_flow.{schema}",
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except psycopg.Error as error:
            self._pool.close()
            self._closed = True
            raise self._unreachable(error) from error

    # -- opening -------------------------------------------------------------------------------

    def _configure(self, conn: _Connection) -> None:
        """Set up each new connection of the pool: our schema, UTC, READ COMMITTED."""
        conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
        conn.execute("SET TIME ZONE 'UTC'")

    def _connect(self) -> _Connection:
        """One connection outside the pool, for migrations; a clear error when it fails."""
        try:
            return psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=max(1, round(self._timeout))
            )
        except psycopg.Error as error:
            raise self._unreachable(error) from error

    def _unreachable(self, error: BaseException) -> StoreError:
        reason = " ".join(str(error).split()) or type(error).__name__
        password = _password(self._conninfo)
        if password:
            reason = reason.replace(password, "***")
        return StoreError(
            f"cannot connect to PostgreSQL with {self._safe_conninfo!r}: {reason}; "
            "the server must be running and accept connections"
        )

    def _migrate(self) -> None:
        """Bring the schema up to :data:`MIGRATIONS`, at most once across processes."""
        conn = self._connect()
        try:
            with conn:
                if self._schema_version(conn) == len(MIGRATIONS):
                    return  # the usual case: no lock taken, nothing created
                schema = sql.Identifier(self._schema)
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_advisory_key(self._schema),))
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                    conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(schema))
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_migrations ("
                        " version integer PRIMARY KEY, applied_at timestamptz NOT NULL)"
                    )
                    current = self._schema_version(conn)
                    for version in range(current + 1, len(MIGRATIONS) + 1):
                        conn.execute(MIGRATIONS[version - 1].encode())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, applied_at) "
                            "VALUES (%s, now())",
                            (version,),
                        )
        except psycopg.Error as error:
            raise StoreError(
                f"cannot set up schema {self._schema!r} in {self._safe_conninfo!r}: {error}"
            ) from error

    def _schema_version(self, conn: _Connection) -> int:
        """The schema's version (0 when it has no ``schema_migrations`` table yet)."""
        table = f"{self._schema}.schema_migrations"
        (exists,) = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone() or (
            False,
        )
        if not exists:
            return 0
        row = conn.execute(
            sql.SQL("SELECT COALESCE(MAX(version), 0) FROM {}.schema_migrations").format(
                sql.Identifier(self._schema)
            )
        ).fetchone()
        current = row[0] if row is not None else None
        if not isinstance(current, int):
            raise StoreError(
                f"schema {self._schema!r} has a malformed schema_migrations table; "
                "it was not written by incident_flow"
            )
        if current > len(MIGRATIONS):
            raise StoreError(
                f"schema {self._schema!r} in {self._safe_conninfo!r} has version {current}, "
                f"newer than the {len(MIGRATIONS)} this version of incident_flow knows; "
                "upgrade incident_flow to open it"
            )
        return current

    # -- transactions --------------------------------------------------------------------------

    def _run(self, work: Callable[[_Connection], _T]) -> _T:
        """Run ``work`` on a pooled connection; psycopg's errors become :class:`StoreError`.

        ``work`` opens its own transaction. A transaction that PostgreSQL aborted to break a
        deadlock was rolled back whole, so it is run again, a few times at most.
        """
        if self._closed:
            raise StoreError(f"{self!r} is closed")
        for attempt in range(1, _RETRIES + 1):
            try:
                with self._pool.connection() as conn:
                    return work(conn)
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as error:
                if attempt == _RETRIES:
                    raise self._store_error(error) from error
            except psycopg.Error as error:
                raise self._store_error(error) from error
        raise AssertionError("unreachable")  # pragma: no cover

    def _store_error(self, error: psycopg.Error) -> StoreError:
        if self._closed:
            return StoreError(f"{self!r} is closed")
        if isinstance(error, psycopg.OperationalError):
            return StoreError(
                f"incident store {self!r}: the connection failed or timed out ({error}); "
                "the server rolls back any transaction it left uncommitted"
            )
        return StoreError(f"incident store {self!r}: {error}")

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
        """Append ``events`` and ``deliveries`` in one transaction (see :meth:`Store.append`).

        Also raises :class:`StoreError` when the server fails the write or its commit, or no
        connection is free within the store's ``timeout``; nothing is written then.
        """
        self.check_batch(incident_id, expected_version, events, deliveries)
        # Encode before taking a connection: an event that cannot be encoded writes nothing.
        batch = _Batch(
            incident_id,
            expected_version,
            phase,
            [
                (e.incident_id, e.version, e.type, ensure_utc(e.at), e.actor, dumps_event(e))
                for e in events
            ],
            [
                (
                    d.incident_id,
                    d.version,
                    d.plugin,
                    DeliveryStatus(d.status).value,
                    d.attempts,
                    d.last_error,
                    _optional_utc(d.updated_at, "updated_at"),
                    _optional_utc(d.next_attempt_at, "next_attempt_at"),
                    d.claimed_by,
                    _optional_utc(d.claimed_until, "claimed_until"),
                )
                for d in deliveries
            ],
        )

        def work(conn: _Connection) -> None:
            try:
                with conn.transaction():
                    self._write(conn, batch)
            except psycopg.errors.UniqueViolation as error:
                if error.diag.constraint_name != "events_pkey":
                    raise
                # Events at these versions exist without the incident row saying so: the
                # incident has moved on, whatever that row says.
                actual = max(
                    self._current_version(conn, incident_id),
                    self._current_version(conn, incident_id, from_events=True),
                )
                raise ConcurrencyConflict(incident_id, expected_version, actual) from error

        self._run(work)

    def _write(self, conn: _Connection, batch: _Batch) -> None:
        """Write one batch's incident row, events and outbox rows in the open transaction."""
        updated_at = batch.rows[-1][3]
        if batch.expected_version == 0:
            # A concurrent declaration of the same id waits for ours, then inserts nothing.
            cursor = conn.execute(
                "INSERT INTO incidents (id, phase, version, updated_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (id) DO NOTHING",
                (batch.incident_id, batch.phase, batch.new_version, updated_at),
            )
        else:
            # The version check and the update in one statement: a concurrent writer waits
            # for our row lock, then finds the version moved on.
            cursor = conn.execute(
                "UPDATE incidents SET phase = %s, version = %s, updated_at = %s "
                "WHERE id = %s AND version = %s",
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
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO events (incident_id, version, type, at, actor, data) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                batch.rows,
            )
            if batch.outbox:
                cur.executemany(
                    f"INSERT INTO outbox ({_DELIVERY_COLUMNS}) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    batch.outbox,
                )

    def load(self, incident_id: str, *, after_version: int = 0) -> list[Event]:
        """Return the incident's events in version order (see :meth:`Store.load`)."""

        def work(conn: _Connection) -> list[tuple[Any, ...]]:
            with conn.transaction():
                rows = conn.execute(
                    "SELECT version, data FROM events WHERE incident_id = %s AND version > %s "
                    "ORDER BY version",
                    (incident_id, after_version),
                ).fetchall()
                if not rows and self._current_version(conn, incident_id) == 0:
                    raise UnknownIncidentError(incident_id)
            return rows

        return [decode_event(incident_id, version, data) for version, data in self._run(work)]

    def version(self, incident_id: str) -> int:
        """The incident's latest version, or 0 when it does not exist."""
        return self._run(lambda conn: self._current_version(conn, incident_id))

    def incident_ids(self, *, phase: str | None = None) -> list[str]:
        """Ids of all incidents (or those now in ``phase``), oldest declaration first."""

        def work(conn: _Connection) -> list[str]:
            if phase is None:
                cursor = conn.execute("SELECT id FROM incidents ORDER BY seq")
            else:
                cursor = conn.execute(
                    "SELECT id FROM incidents WHERE phase = %s ORDER BY seq", (phase,)
                )
            return [str(incident_id) for (incident_id,) in cursor.fetchall()]

        return self._run(work)

    # -- the outbox ------------------------------------------------------------------------------

    def deliveries(
        self,
        *,
        status: DeliveryStatus | None = None,
        plugin: str | None = None,
        incident_id: str | None = None,
        limit: int | None = None,
    ) -> list[Delivery]:
        """Outbox rows in commit order (see :meth:`Store.deliveries`)."""
        conditions: list[str] = []
        parameters: list[object] = []
        if status is not None:
            conditions.append("status = %s")
            parameters.append(DeliveryStatus(status).value)
        if plugin is not None:
            conditions.append("plugin = %s")
            parameters.append(plugin)
        if incident_id is not None:
            conditions.append("incident_id = %s")
            parameters.append(incident_id)
        query = f"SELECT {_DELIVERY_COLUMNS} FROM outbox"
        if conditions:
            query += f" WHERE {' AND '.join(conditions)}"
        query += " ORDER BY id"
        if limit is not None:
            query += " LIMIT %s"
            parameters.append(max(0, limit))
        rows = self._run(lambda conn: conn.execute(query.encode(), parameters).fetchall())
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
        """Lease up to ``limit`` due deliveries to ``worker`` (see :meth:`Store.claim`).

        One transaction: lock the due heads of their queues (``FOR UPDATE SKIP LOCKED``), extend
        each with the due rows right behind it (locked the same way; a gap ends the chain), then
        write the lease on all of them.
        """
        now = ensure_utc(now, field="now")
        until = now + timedelta(seconds=lease)
        wanted = sorted(set(plugins))
        if limit <= 0 or not wanted:
            return []

        def work(conn: _Connection) -> list[tuple[Any, ...]]:
            with conn.transaction():
                heads = conn.execute(
                    _CLAIM_HEADS, {"plugins": wanted, "now": now, "limit": limit}
                ).fetchall()
                if not heads:
                    return []
                ids = self._chains(conn, heads, now=now, limit=limit)
                return conn.execute(
                    _CLAIM_MARK, {"worker": worker, "until": until, "ids": ids}
                ).fetchall()

        rows = sorted(self._run(work), key=lambda row: int(row[0]))
        return [self._delivery(row[1:]) for row in rows]

    @staticmethod
    def _chains(
        conn: _Connection, heads: list[tuple[Any, ...]], *, now: datetime, limit: int
    ) -> list[int]:
        """The ids to claim: the locked ``heads`` and, behind each, the due rows of its queue
        up to the first gap, locked too; at most ``limit``, the oldest first."""
        behind: dict[int, int] = {}  # follower id -> the id right ahead of it in its chain
        if limit > 1:
            followers = conn.execute(
                _CLAIM_FOLLOWERS,
                {
                    "heads": [row[0] for row in heads],
                    "incidents": [row[1] for row in heads],
                    "plugins": [row[2] for row in heads],
                    "versions": [row[3] for row in heads],
                    "now": now,
                    "limit": limit - 1,
                },
            ).fetchall()
            chains: dict[int, list[int]] = {}
            stopped: set[int] = set()
            for head, row_id, ready in followers:
                if head in stopped:
                    continue
                if not ready:
                    stopped.add(head)
                    continue
                chains.setdefault(head, []).append(row_id)
            candidates = [row_id for chain in chains.values() for row_id in chain]
            if candidates:
                locked = {
                    row_id
                    for (row_id,) in conn.execute(
                        _CLAIM_LOCK, {"ids": candidates, "now": now}
                    ).fetchall()
                }
                for head, chain in chains.items():
                    ahead = head
                    for row_id in chain:
                        if row_id not in locked:
                            break
                        behind[row_id] = ahead
                        ahead = row_id
        # The oldest first, a follower only after the row ahead of it: what is left out by the
        # limit stays due for the next claim (its locks end with this transaction).
        chosen: set[int] = set()
        for row_id in sorted([int(row[0]) for row in heads] + list(behind)):
            if len(chosen) >= limit:
                break
            if row_id not in behind or behind[row_id] in chosen:
                chosen.add(row_id)
        return sorted(chosen)

    def record(self, worker: str, outcomes: Sequence[Outcome], *, at: datetime) -> None:
        """Write the outcomes of ``worker``'s deliveries in one transaction
        (see :meth:`Store.record`)."""
        at = ensure_utc(at)
        parameters = [
            {
                "worker": worker,
                "incident_id": o.delivery.incident_id,
                "version": o.delivery.version,
                "plugin": o.delivery.plugin,
                "attempted": o.attempted,
                "delivered": o.status is DeliveryStatus.DELIVERED,
                "status": DeliveryStatus(o.status).value,
                "at": at,
                "error": None if o.status is DeliveryStatus.DELIVERED else o.error,
                "next": (
                    _optional_utc(o.next_attempt_at, "next_attempt_at")
                    if o.status is DeliveryStatus.FAILED
                    else None
                ),
            }
            for o in outcomes
        ]
        if not parameters:
            return

        def work(conn: _Connection) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(_RECORD, parameters)

        self._run(work)

    def renew(self, worker: str, *, now: datetime, lease: float) -> int:
        """Extend ``worker``'s leases on unfinished rows (see :meth:`Store.renew`)."""
        until = ensure_utc(now, field="now") + timedelta(seconds=lease)

        def work(conn: _Connection) -> int:
            cursor = conn.execute(
                "UPDATE outbox SET claimed_until = %s "
                "WHERE claimed_by = %s AND status IN ('pending', 'failed')",
                (until, worker),
            )
            return cursor.rowcount

        return self._run(work)

    def requeue(self, deliveries: Sequence[Delivery], *, at: datetime) -> int:
        """Make failed and dead rows pending again (see :meth:`Store.requeue`)."""
        ensure_utc(at)
        if not deliveries:
            return 0
        parameters = {
            "incidents": [d.incident_id for d in deliveries],
            "versions": [d.version for d in deliveries],
            "plugins": [d.plugin for d in deliveries],
        }
        return self._run(lambda conn: conn.execute(_REQUEUE, parameters).rowcount)

    # -- closing ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pool's connections. Safe to call twice; the store must not be used
        afterwards."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self._safe_conninfo!r}, schema={self._schema!r})"

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _current_version(conn: _Connection, incident_id: str, *, from_events: bool = False) -> int:
        if from_events:
            row = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM events WHERE incident_id = %s",
                (incident_id,),
            ).fetchone()
        else:
            row = conn.execute(
                "SELECT version FROM incidents WHERE id = %s", (incident_id,)
            ).fetchone()
        return int(row[0]) if row is not None else 0

    @staticmethod
    def _delivery(row: tuple[Any, ...]) -> Delivery:
        return delivery_from_row(row, _from_db)

"""A store in Python dicts: fast, for tests, demos and the property-based harness.

It is also the reference for the outbox rules of :class:`~incident_flow.store.base.Store`: the
other stores pass the same contract tests.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from incident_flow.clock import ensure_utc
from incident_flow.errors import ConcurrencyConflict, UnknownIncidentError
from incident_flow.events import Event
from incident_flow.store.base import Delivery, DeliveryStatus, Outcome, Store

__all__ = ["MemoryStore"]

_Ident = tuple[str, int, str]
_Key = tuple[str, str]

_PENDING = DeliveryStatus.PENDING
_FAILED = DeliveryStatus.FAILED
_DELIVERED = DeliveryStatus.DELIVERED


class _Row:
    """One outbox row's changing fields."""

    __slots__ = (
        "attempts",
        "claimed_by",
        "claimed_until",
        "last_error",
        "next_attempt_at",
        "seq",
        "status",
        "updated_at",
    )

    def __init__(self, seq: int, delivery: Delivery) -> None:
        self.seq = seq
        self.status = delivery.status
        self.attempts = delivery.attempts
        self.last_error = delivery.last_error
        self.updated_at = delivery.updated_at
        self.next_attempt_at = delivery.next_attempt_at
        self.claimed_by = delivery.claimed_by
        self.claimed_until = delivery.claimed_until

    def delivery(self, ident: _Ident) -> Delivery:
        return Delivery(
            ident[0],
            ident[1],
            ident[2],
            self.status,
            self.attempts,
            self.last_error,
            self.updated_at,
            self.next_attempt_at,
            self.claimed_by,
            self.claimed_until,
        )


class MemoryStore(Store):
    """Keeps everything in memory; lost when the process ends. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, list[Event]] = {}
        self._phases: dict[str, str] = {}
        self._seq = itertools.count(1)
        self._outbox: dict[_Ident, _Row] = {}
        # The unfinished rows (pending or failed), and each (incident, plugin)'s unfinished
        # versions in order, so that claims need not look at finished rows.
        self._unfinished: dict[_Ident, _Row] = {}
        self._versions: dict[_Key, list[int]] = {}

    def append(
        self,
        incident_id: str,
        expected_version: int,
        events: Sequence[Event],
        *,
        phase: str,
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        self.check_batch(incident_id, expected_version, events, deliveries)
        with self._lock:
            log = self._events.get(incident_id)
            actual = len(log) if log is not None else 0
            if actual != expected_version:
                raise ConcurrencyConflict(incident_id, expected_version, actual)
            if log is None:
                log = self._events[incident_id] = []
            log.extend(events)
            self._phases[incident_id] = phase
            for delivery in deliveries:
                ident = delivery.ident
                row = self._outbox[ident] = _Row(next(self._seq), delivery)
                if not row.status.finished:
                    self._track(ident, row)

    def load(self, incident_id: str, *, after_version: int = 0) -> list[Event]:
        with self._lock:
            log = self._events.get(incident_id)
            if log is None:
                raise UnknownIncidentError(incident_id)
            return log[after_version:]

    def version(self, incident_id: str) -> int:
        with self._lock:
            return len(self._events.get(incident_id, ()))

    def incident_ids(self, *, phase: str | None = None) -> list[str]:
        with self._lock:
            return [i for i, p in self._phases.items() if phase is None or p == phase]

    # -- the outbox ------------------------------------------------------------------------------

    def deliveries(
        self,
        *,
        status: DeliveryStatus | None = None,
        plugin: str | None = None,
        incident_id: str | None = None,
        limit: int | None = None,
    ) -> list[Delivery]:
        with self._lock:
            rows = self._unfinished if status in (_PENDING, _FAILED) else self._outbox
            found = [
                row.delivery(ident)
                for ident, row in rows.items()
                if (status is None or row.status == status)
                and (plugin is None or ident[2] == plugin)
                and (incident_id is None or ident[0] == incident_id)
            ]
        if rows is self._unfinished:
            found.sort(key=lambda d: self._outbox[d.ident].seq)
        return found if limit is None else found[:limit]

    def claim(
        self,
        worker: str,
        *,
        plugins: Collection[str],
        now: datetime,
        lease: float,
        limit: int = 100,
    ) -> list[Delivery]:
        now = ensure_utc(now)
        until = now + timedelta(seconds=lease)
        wanted = frozenset(plugins)
        claimed: list[Delivery] = []
        with self._lock:
            # Per (incident, plugin): the version that may be claimed next, or -1 when none may.
            nxt: dict[_Key, int] = {}
            for ident, row in sorted(self._unfinished.items(), key=lambda item: item[1].seq):
                if len(claimed) >= limit:
                    break
                if ident[2] not in wanted:
                    continue
                key = (ident[0], ident[2])
                expected = nxt.get(key)
                if expected is None:
                    expected = self._versions[key][0]  # the head: oldest unfinished
                if ident[1] != expected or not self._due(row, now):
                    nxt[key] = -1
                    continue
                row.claimed_by, row.claimed_until = worker, until
                claimed.append(row.delivery(ident))
                versions = self._versions[key]
                index = bisect.bisect_right(versions, ident[1])
                nxt[key] = versions[index] if index < len(versions) else -1
        return claimed

    @staticmethod
    def _due(row: _Row, now: datetime) -> bool:
        if row.claimed_until is not None and row.claimed_until > now:
            return False
        return row.status is _PENDING or (row.next_attempt_at is None or row.next_attempt_at <= now)

    def record(self, worker: str, outcomes: Sequence[Outcome], *, at: datetime) -> None:
        at = ensure_utc(at)
        with self._lock:
            for outcome in outcomes:
                ident = outcome.delivery.ident
                row = self._outbox.get(ident)
                if row is None or row.status is _DELIVERED:
                    continue
                if outcome.status is not _DELIVERED and row.claimed_by != worker:
                    continue  # the lease was lost: another worker owns the row now
                row.claimed_by = row.claimed_until = None
                if not outcome.attempted:
                    continue
                row.status = outcome.status
                row.attempts += 1
                row.updated_at = at
                row.last_error = None if outcome.status is _DELIVERED else outcome.error
                row.next_attempt_at = (
                    ensure_utc(outcome.next_attempt_at)
                    if outcome.status is _FAILED and outcome.next_attempt_at is not None
                    else None
                )
                if row.status.finished and ident in self._unfinished:
                    self._untrack(ident)

    def renew(self, worker: str, *, now: datetime, lease: float) -> int:
        until = ensure_utc(now) + timedelta(seconds=lease)
        renewed = 0
        with self._lock:
            for row in self._unfinished.values():
                if row.claimed_by == worker:
                    row.claimed_until = until
                    renewed += 1
        return renewed

    def requeue(self, deliveries: Sequence[Delivery], *, at: datetime) -> int:
        ensure_utc(at)
        requeued = 0
        with self._lock:
            for delivery in deliveries:
                ident = delivery.ident
                row = self._outbox.get(ident)
                if row is None or row.status not in (_FAILED, DeliveryStatus.DEAD):
                    continue
                row.status, row.attempts, row.next_attempt_at = _PENDING, 0, None
                row.claimed_by = row.claimed_until = None
                if ident not in self._unfinished:
                    self._track(ident, row)
                requeued += 1
        return requeued

    # -- bookkeeping ------------------------------------------------------------------------------

    def _track(self, ident: _Ident, row: _Row) -> None:
        self._unfinished[ident] = row
        bisect.insort(self._versions.setdefault((ident[0], ident[2]), []), ident[1])

    def _untrack(self, ident: _Ident) -> None:
        del self._unfinished[ident]
        key = (ident[0], ident[2])
        versions = self._versions[key]
        versions.remove(ident[1])
        if not versions:
            del self._versions[key]

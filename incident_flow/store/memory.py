"""A store in a Python dict: fast, for tests, demos and the property-based harness."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from incident_flow.clock import ensure_utc
from incident_flow.errors import ConcurrencyConflict, UnknownIncidentError
from incident_flow.events import Event
from incident_flow.store.base import Delivery, DeliveryStatus, Store

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    """Keeps everything in memory; lost when the process ends. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, list[Event]] = {}
        self._phases: dict[str, str] = {}
        # (incident id, version, plugin) -> [status, attempts, last error, updated at]
        self._outbox: dict[tuple[str, int, str], list[Any]] = {}

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
            for d in deliveries:
                self._outbox[(d.incident_id, d.version, d.plugin)] = [
                    d.status,
                    d.attempts,
                    d.last_error,
                    d.updated_at,
                ]

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

    def deliveries(
        self, *, status: DeliveryStatus | None = None, plugin: str | None = None
    ) -> list[Delivery]:
        with self._lock:
            return [
                Delivery(incident_id, version, name, *row)
                for (incident_id, version, name), row in self._outbox.items()
                if (status is None or row[0] == status) and (plugin is None or name == plugin)
            ]

    def mark_delivered(self, delivery: Delivery, *, at: datetime) -> None:
        self.mark_delivered_many((delivery,), at=at)

    def mark_delivered_many(self, deliveries: Sequence[Delivery], *, at: datetime) -> None:
        at = ensure_utc(at)
        delivered = DeliveryStatus.DELIVERED
        with self._lock:
            outbox = self._outbox
            for delivery in deliveries:
                row = outbox.get((delivery.incident_id, delivery.version, delivery.plugin))
                if row is not None:
                    row[0] = delivered
                    row[1] += 1
                    row[2] = None
                    row[3] = at

    def mark_failed(self, delivery: Delivery, *, error: str, at: datetime) -> None:
        at = ensure_utc(at)
        with self._lock:
            row = self._outbox.get((delivery.incident_id, delivery.version, delivery.plugin))
            if row is not None:
                row[0] = DeliveryStatus.FAILED
                row[1] += 1
                row[2] = error
                row[3] = at

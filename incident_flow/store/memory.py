"""A store in a Python dict: fast, for tests, demos and the property-based harness."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

import attrs

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
        self._outbox: dict[str, Delivery] = {}

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
                self._outbox[delivery.key] = delivery

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
                d
                for d in self._outbox.values()
                if (status is None or d.status == status) and (plugin is None or d.plugin == plugin)
            ]

    def mark_delivered(self, delivery: Delivery, *, at: datetime) -> None:
        self._update(delivery, DeliveryStatus.DELIVERED, None, at)

    def mark_failed(self, delivery: Delivery, *, error: str, at: datetime) -> None:
        self._update(delivery, DeliveryStatus.FAILED, error, at)

    def _update(
        self, delivery: Delivery, status: DeliveryStatus, error: str | None, at: datetime
    ) -> None:
        at = ensure_utc(at)
        with self._lock:
            current = self._outbox.get(delivery.key)
            if current is None:
                return
            self._outbox[delivery.key] = attrs.evolve(
                current,
                status=status,
                attempts=current.attempts + 1,
                last_error=error,
                updated_at=at,
            )

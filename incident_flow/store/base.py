"""The interface every store implements, and the outbox's delivery record.

A store keeps each incident's events, in version order, and an outbox of deliveries: one row per
(event, plugin that is notified of it). :meth:`Store.append` writes a command's events and their
deliveries in one transaction, or nothing: no event is committed without its deliveries, and no
delivery exists for an event that was not committed. The store checks the incident's version on
every append (optimistic concurrency), so two writers never both win.

The contract is tested once, against every store, in ``tests/test_store_contract.py``.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Self

import attrs

from incident_flow.events import Event

__all__ = ["Delivery", "DeliveryStatus", "Store"]


class DeliveryStatus(enum.StrEnum):
    """Where a delivery of one event to one plugin stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@attrs.frozen
class Delivery:
    """One event to be delivered to one plugin (a row of the outbox)."""

    incident_id: str
    version: int
    plugin: str
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    last_error: str | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        """The idempotency key: the same for every redelivery of this event to this plugin."""
        return f"{self.incident_id}:{self.version}:{self.plugin}"


class Store(abc.ABC):
    """Where incidents' events and their outbox live. Implementations must be thread-safe."""

    @abc.abstractmethod
    def append(
        self,
        incident_id: str,
        expected_version: int,
        events: Sequence[Event],
        *,
        phase: str,
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        """Append ``events`` (versions ``expected_version + 1`` on) and ``deliveries`` atomically.

        ``expected_version`` is 0 for a new incident. ``phase`` is the incident's phase after the
        events, kept so that :meth:`incident_ids` can filter without folding.

        Raises:
            ConcurrencyConflict: the incident is not at ``expected_version`` (nothing is written).
            ValueError: the events' ids or versions do not follow ``expected_version``.
        """

    @abc.abstractmethod
    def load(self, incident_id: str, *, after_version: int = 0) -> list[Event]:
        """Return the incident's events in version order, those after ``after_version`` only.

        Raises:
            UnknownIncidentError: no such incident.
            CorruptEventError: a stored event cannot be decoded (names incident and version).
        """

    @abc.abstractmethod
    def version(self, incident_id: str) -> int:
        """The incident's latest version, or 0 when it does not exist."""

    @abc.abstractmethod
    def incident_ids(self, *, phase: str | None = None) -> list[str]:
        """Ids of all incidents (or those in ``phase``), oldest declaration first."""

    @abc.abstractmethod
    def deliveries(
        self, *, status: DeliveryStatus | None = None, plugin: str | None = None
    ) -> list[Delivery]:
        """Outbox rows, optionally only those with ``status`` or for ``plugin``, in commit order."""

    @abc.abstractmethod
    def mark_delivered(self, delivery: Delivery, *, at: datetime) -> None:
        """Record that ``delivery`` succeeded."""

    def mark_delivered_many(self, deliveries: Sequence[Delivery], *, at: datetime) -> None:
        """Record that every one of ``deliveries`` succeeded (stores may do it in one write)."""
        for delivery in deliveries:
            self.mark_delivered(delivery, at=at)

    @abc.abstractmethod
    def mark_failed(self, delivery: Delivery, *, error: str, at: datetime) -> None:
        """Record that an attempt at ``delivery`` failed with ``error``."""

    def close(self) -> None:  # noqa: B027 - optional for stores with nothing to release
        """Release connections and files. The store must not be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @staticmethod
    def check_batch(
        incident_id: str,
        expected_version: int,
        events: Sequence[Event],
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        """Raise ``ValueError`` unless ``events`` belong to the incident and follow its version,
        and every delivery is for one of the incident's events."""
        if not events:
            raise ValueError("append needs at least one event")
        for offset, event in enumerate(events, start=1):
            if event.incident_id != incident_id or event.version != expected_version + offset:
                raise ValueError(
                    f"event {event.type} v{event.version} of {event.incident_id} does not follow "
                    f"{incident_id} v{expected_version + offset - 1}"
                )
        new_version = expected_version + len(events)
        for delivery in deliveries:
            if delivery.incident_id != incident_id or not 1 <= delivery.version <= new_version:
                raise ValueError(
                    f"delivery {delivery.key} is not for an event of {incident_id} "
                    f"v1..v{new_version}"
                )
        if len({(d.version, d.plugin) for d in deliveries}) != len(deliveries):
            raise ValueError("the same delivery is listed twice in one append")

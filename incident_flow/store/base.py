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
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, Final, Self

import attrs

from incident_flow.errors import CorruptEventError, StoreError
from incident_flow.events import Event
from incident_flow.serialization import loads_event

__all__ = [
    "UNFINISHED",
    "Delivery",
    "DeliveryStatus",
    "Outcome",
    "Store",
    "decode_event",
    "delivery_from_row",
]


class DeliveryStatus(enum.StrEnum):
    """Where a delivery of one event to one plugin stands.

    ``pending`` and ``failed`` rows are still to be delivered (a failed one after its
    ``next_attempt_at``); ``delivered`` and ``dead`` ones are finished. A dead letter is a row that
    failed permanently or too often; it stays in the outbox until someone requeues it.
    """

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    DEAD = "dead"

    @property
    def finished(self) -> bool:
        """True for ``delivered`` and ``dead``: no worker will try the row again by itself."""
        return self in (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD)


UNFINISHED: Final = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)
"""The statuses of rows that workers still deliver."""


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
    next_attempt_at: datetime | None = None
    """When a failed row may be tried again; None: as soon as a worker gets to it."""
    claimed_by: str | None = None
    """The worker holding the row's lease, if any (see :meth:`Store.claim`)."""
    claimed_until: datetime | None = None
    """When that lease runs out; after it, another worker may claim the row."""

    @property
    def key(self) -> str:
        """The idempotency key: the same for every redelivery of this event to this plugin."""
        return f"{self.incident_id}:{self.version}:{self.plugin}"

    @property
    def ident(self) -> tuple[str, int, str]:
        """``(incident_id, version, plugin)``: the row's identity in the outbox."""
        return (self.incident_id, self.version, self.plugin)


@attrs.frozen
class Outcome:
    """What became of one claimed delivery, for :meth:`Store.record`.

    ``status`` is ``delivered``; ``failed`` (to be retried at ``next_attempt_at``); ``dead``
    (given up); or ``pending``, which hands the row back untried (its lease is released and its
    attempts stay as they were).
    """

    delivery: Delivery
    status: DeliveryStatus
    error: str | None = None
    next_attempt_at: datetime | None = None

    @property
    def attempted(self) -> bool:
        """True when the plugin was called (every status but ``pending``)."""
        return self.status is not DeliveryStatus.PENDING


class Store(abc.ABC):
    """Where incidents' events and their outbox live. Implementations must be thread-safe.

    The outbox methods (:meth:`claim`, :meth:`record`, :meth:`renew`, :meth:`requeue`) are what
    delivery workers use; :meth:`deliveries` is for people and tests.
    """

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
        events, kept so that :meth:`incident_ids` can filter without folding. Deliveries are
        written as given (normally pending, never attempted, unclaimed).

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

    # -- the outbox ------------------------------------------------------------------------------

    @abc.abstractmethod
    def deliveries(
        self,
        *,
        status: DeliveryStatus | None = None,
        plugin: str | None = None,
        incident_id: str | None = None,
        limit: int | None = None,
    ) -> list[Delivery]:
        """Outbox rows in commit order, optionally only those with ``status``, for ``plugin``
        or of ``incident_id``, at most ``limit`` of them."""

    @abc.abstractmethod
    def claim(
        self,
        worker: str,
        *,
        plugins: Collection[str],
        now: datetime,
        lease: float,
        limit: int = 100,
    ) -> list[Delivery]:
        """Lease up to ``limit`` deliveries that are due to ``worker``, in commit order.

        A row is due when all of these hold:

        * its plugin is one of ``plugins`` (a worker never takes rows it cannot deliver);
        * it is ``pending``, or ``failed`` with ``next_attempt_at`` not after ``now``;
        * nobody holds a lease on it that runs past ``now``;
        * it is the oldest unfinished (pending or failed) row of its incident for its plugin, or
          it comes right behind such a row claimed in the same call, with nothing unfinished in
          between. So a plugin sees each incident's events in version order, and a row waiting
          for a retry holds back the rows behind it (a dead one does not).

        The returned rows carry ``claimed_by=worker`` and ``claimed_until=now + lease``
        seconds. Two concurrent calls, in this process or another, never return the same row
        while its lease runs.
        """

    @abc.abstractmethod
    def record(self, worker: str, outcomes: Sequence[Outcome], *, at: datetime) -> None:
        """Write the outcomes of deliveries that ``worker`` claimed, in one transaction.

        Every outcome releases the row's lease. ``delivered`` is written unless the row is
        delivered already (a late success counts even after the lease was lost); ``failed``,
        ``dead`` and ``pending`` are written only while ``worker`` still holds the row, so a
        worker that lost its lease cannot undo another's work. Attempted outcomes add one to
        ``attempts`` and set ``updated_at`` to ``at``; ``delivered`` clears ``last_error``.
        Outcomes for rows not in the outbox are ignored.
        """

    @abc.abstractmethod
    def renew(self, worker: str, *, now: datetime, lease: float) -> int:
        """Extend every lease ``worker`` holds on an unfinished row to ``now + lease``;
        return how many rows that was."""

    @abc.abstractmethod
    def requeue(self, deliveries: Sequence[Delivery], *, at: datetime) -> int:
        """Make failed and dead rows among ``deliveries`` pending again, due now, with their
        attempts reset to 0 (``last_error`` is kept). Rows that are pending or delivered are left
        as they are. Returns how many rows were requeued."""

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


def decode_event(incident_id: str, version: int, data: str | bytes) -> Event:
    """Decode one stored event; any failure names the incident and version it belongs to."""
    try:
        event = loads_event(data)
    except CorruptEventError as error:
        if error.incident_id == incident_id and error.version == version:
            raise
        message = str(error)
        if error.incident_id is not None:
            message = message.removesuffix(
                f" (incident {error.incident_id}, version {error.version})"
            )
        raise type(error)(message, incident_id=incident_id, version=version) from error
    if event.incident_id != incident_id or event.version != version:
        raise CorruptEventError(
            f"stored {event.type} says it is version {event.version} of {event.incident_id!r}",
            incident_id=incident_id,
            version=version,
        )
    return event


def delivery_from_row(row: Sequence[Any], moment: Callable[[Any], datetime | None]) -> Delivery:
    """A :class:`Delivery` from an outbox row's columns, in the order ``incident_id, version,
    plugin, status, attempts, last_error, updated_at, next_attempt_at, claimed_by,
    claimed_until``; ``moment`` turns a stored time into an aware UTC datetime (or None).

    Raises:
        StoreError: the row does not hold a delivery.
    """
    try:
        (
            incident_id,
            version,
            plugin,
            status,
            attempts,
            last_error,
            updated_at,
            next_attempt_at,
            claimed_by,
            claimed_until,
        ) = row
        return Delivery(
            incident_id=str(incident_id),
            version=int(version),
            plugin=str(plugin),
            status=DeliveryStatus(status),
            attempts=int(attempts),
            last_error=None if last_error is None else str(last_error),
            updated_at=moment(updated_at),
            next_attempt_at=moment(next_attempt_at),
            claimed_by=None if claimed_by is None else str(claimed_by),
            claimed_until=moment(claimed_until),
        )
    except (TypeError, ValueError) as error:
        raise StoreError(f"malformed outbox row {tuple(row)!r}: {error}") from error

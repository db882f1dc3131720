"""Delivering committed events to plugins, each plugin on its own lane.

After a command commits, its outbox rows are handed to :class:`InProcessDelivery`. Every plugin
has a lane: a queue and a thread of its own. Deliveries to one plugin keep commit order (and so
each incident's version order); a slow or hanging plugin holds up only its own lane, never the
caller of a command nor another plugin. The outcome of every call is recorded on its outbox row:
delivered, or failed with the error. Rows stay in the store, so a failed or never-attempted
delivery is visible with ``IncidentFlow.deliveries()`` rather than lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence

from incident_flow.clock import Clock
from incident_flow.events import Event
from incident_flow.model import Incident
from incident_flow.plugins import Notifier
from incident_flow.store.base import Delivery, Store

__all__ = ["InProcessDelivery"]

logger = logging.getLogger("incident_flow.delivery")

_Item = tuple[Delivery, Event, Incident] | None


class _Lane:
    """One plugin's queue and the thread that works through it."""

    def __init__(self, notifier: Notifier, store: Store, clock: Clock) -> None:
        self.notifier = notifier
        self._store = store
        self._clock = clock
        self.queue: queue.Queue[_Item] = queue.Queue()
        self._thread = threading.Thread(
            target=self._run, name=f"incident-flow-delivery-{notifier.plugin}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                self._deliver(*item)
            finally:
                self.queue.task_done()

    def _deliver(self, delivery: Delivery, event: Event, incident: Incident) -> None:
        try:
            self.notifier(event=event, incident=incident, key=delivery.key)
        except Exception as error:
            logger.warning("delivery %s failed: %r", delivery.key, error)
            self._record(delivery, error=f"{type(error).__name__}: {error}")
        else:
            self._record(delivery, error=None)

    def _record(self, delivery: Delivery, *, error: str | None) -> None:
        try:
            if error is None:
                self._store.mark_delivered(delivery, at=self._clock.now())
            else:
                self._store.mark_failed(delivery, error=error, at=self._clock.now())
        except Exception:
            logger.exception("could not record the outcome of delivery %s", delivery.key)

    def wait(self, deadline: float) -> bool:
        with self.queue.all_tasks_done:
            while self.queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # Condition.wait overflows on an infinite timeout; wait in bounded slices.
                self.queue.all_tasks_done.wait(min(remaining, threading.TIMEOUT_MAX))
        return True

    def stop(self, timeout: float) -> None:
        self.queue.put(None)
        self._thread.join(timeout)


class InProcessDelivery:
    """Delivers outbox rows to plugins in background threads, one lane per plugin."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}
        self._lock = threading.Lock()
        self._closed = False

    def submit(
        self,
        notifiers: Sequence[Notifier],
        deliveries: Sequence[Delivery],
        steps: Sequence[tuple[Event, Incident]],
    ) -> None:
        """Queue ``deliveries``; ``steps`` maps each event to the incident right after it."""
        by_version = {event.version: (event, incident) for event, incident in steps}
        by_plugin = {notifier.plugin: notifier for notifier in notifiers}
        for delivery in deliveries:
            lane = self._lane(by_plugin[delivery.plugin])
            if lane is None:
                return
            event, incident = by_version[delivery.version]
            lane.queue.put((delivery, event, incident))

    def _lane(self, notifier: Notifier) -> _Lane | None:
        with self._lock:
            if self._closed:
                return None
            lane = self._lanes.get(notifier.plugin)
            if lane is None:
                lane = self._lanes[notifier.plugin] = _Lane(notifier, self._store, self._clock)
            return lane

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued delivery was attempted; False if ``timeout`` ran out first."""
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        with self._lock:
            lanes = list(self._lanes.values())
        return all(lane.wait(deadline) for lane in lanes)

    def close(self, timeout: float = 5.0) -> None:
        """Finish what is queued (up to ``timeout`` per lane), then stop the lanes' threads."""
        with self._lock:
            self._closed = True
            lanes = list(self._lanes.values())
        for lane in lanes:
            lane.stop(timeout)

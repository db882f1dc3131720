"""Delivering committed events to plugins, away from the caller and isolated from each other.

After a command commits, its outbox rows are handed to :class:`InProcessDelivery`. A runner
thread calls the plugins for each event, event after event in commit order, so every plugin sees
each incident's events in version order. A plugin that raises has the failure recorded on its
row and the runner moves on to the next plugin. A plugin that has not returned within
``timeout`` seconds is quarantined: its row is recorded as failed (timed out), a new runner takes
over the remaining work, and from then on that plugin is called on a lane (thread) of its own,
where it can delay nobody but itself. The caller of a command never waits for any of this.

Outcomes are written to the store once per event (delivered rows in one call), so the cost of
one more plugin is little more than the call itself.
"""

from __future__ import annotations

import collections
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

__all__ = ["DEFAULT_TIMEOUT", "InProcessDelivery"]

logger = logging.getLogger("incident_flow.delivery")

DEFAULT_TIMEOUT = 30.0
"""Seconds a plugin may take over one event before it is quarantined on a lane of its own."""

MARK_BATCH = 256
"""At most this many events' outcomes are held back to be written together."""

MARK_DELAY = 0.05
"""Seconds outcomes may wait to be written with later ones (``drain`` writes them at once)."""

_Target = tuple[Delivery, Notifier]


class _Item:
    """One committed event and the plugins it goes to."""

    __slots__ = ("event", "incident", "targets")

    def __init__(self, event: Event, incident: Incident, targets: list[_Target]) -> None:
        self.event = event
        self.incident = incident
        self.targets = targets


_FLUSH = _Item.__new__(_Item)
"""Returned by ``_next`` when held-back outcomes should be written now."""


class _Runner:
    """A thread working through the shared queue, one item (event) at a time."""

    def __init__(self, owner: InProcessDelivery, item: _Item | None, start: int) -> None:
        self.owner = owner
        self.item = item
        self.position = start
        self.calls = 0
        self.abandoned = False
        self.thread = threading.Thread(target=self._run, name="incident-flow-delivery", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        owner = self.owner
        item, start = self.item, self.position
        # Outcomes are written together: those of up to MARK_BATCH events, or of the events
        # delivered within MARK_DELAY, or as soon as someone drains.
        delivered: list[Delivery] = []
        done = 0
        while True:
            if item is not None:
                self._deliver(item, start, delivered)
                if self.abandoned:
                    owner._record_delivered(delivered)
                    owner._finished(done)
                    return  # a new runner took over this item and the queue
                done += 1
            if done >= MARK_BATCH:
                owner._record_delivered(delivered)
                owner._finished(done)
                delivered, done = [], 0
            item = owner._next(self, linger=bool(done))
            if item is _FLUSH or item is None:
                owner._record_delivered(delivered)
                owner._finished(done)
                delivered, done = [], 0
                if item is None:
                    return
                item = owner._next(self, linger=False)
                if item is None:
                    return
            start = 0

    def _deliver(self, item: _Item, start: int, delivered: list[Delivery]) -> None:
        event, incident = item.event, item.incident
        quarantined = self.owner._quarantined
        for position in range(start, len(item.targets)):
            delivery, notifier = item.targets[position]
            lane = quarantined.get(notifier.plugin)
            if lane is not None:
                lane.put(delivery, notifier, event, incident)
                continue
            self.position = position
            self.calls += 1
            try:
                notifier.invoke(event, incident, delivery.key)
            except Exception as error:
                self.owner._record_failure(delivery, error)
            else:
                if self.abandoned:
                    # Too late: the watchdog recorded a timeout. Say it arrived after all.
                    self.owner._record_delivered([delivery])
                    return
                delivered.append(delivery)
            if self.abandoned:
                return
        self.position = len(item.targets)


class _Lane:
    """A quarantined plugin's own queue and thread: it can hold up nobody but itself."""

    def __init__(self, owner: InProcessDelivery, plugin: str) -> None:
        self.owner = owner
        self.queue: queue.Queue[tuple[Delivery, Notifier, Event, Incident] | None] = queue.Queue()
        self.thread = threading.Thread(
            target=self._run, name=f"incident-flow-delivery-{plugin}", daemon=True
        )
        self.thread.start()

    def put(self, delivery: Delivery, notifier: Notifier, event: Event, incident: Incident) -> None:
        self.queue.put((delivery, notifier, event, incident))

    def _run(self) -> None:
        while True:
            work = self.queue.get()
            try:
                if work is None:
                    return
                delivery, notifier, event, incident = work
                try:
                    notifier.invoke(event, incident, delivery.key)
                except Exception as error:
                    self.owner._record_failure(delivery, error)
                else:
                    self.owner._record_delivered([delivery])
            finally:
                self.queue.task_done()

    def wait(self, deadline: float) -> bool:
        with self.queue.all_tasks_done:
            while self.queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.queue.all_tasks_done.wait(min(remaining, threading.TIMEOUT_MAX))
        return True


class InProcessDelivery:
    """Calls plugins for committed events in the background; see the module docstring.

    Args:
        store: where outcomes are recorded.
        clock: the time of each outcome.
        timeout: seconds a plugin may take over one event before it is quarantined.
    """

    def __init__(self, store: Store, clock: Clock, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._store = store
        self._clock = clock
        self._timeout = timeout
        self._lock = threading.Lock()
        # Separate conditions, so a commit wakes the runner alone and progress wakes drainers.
        self._work = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._queue: collections.deque[_Item] = collections.deque()
        self._unfinished = 0
        self._runner: _Runner | None = None
        self._idle = True
        self._flush_requested = False
        self._napping = False
        self._quarantined: dict[str, _Lane] = {}
        self._watchdog: threading.Thread | None = None
        self._closed = False

    # -- the caller's side ------------------------------------------------------------------

    def submit(
        self,
        notifiers: Sequence[Notifier],
        deliveries: Sequence[Delivery],
        steps: Sequence[tuple[Event, Incident]],
    ) -> None:
        """Queue ``deliveries``; ``steps`` pairs each event with the incident right after it."""
        by_plugin = {notifier.plugin: notifier for notifier in notifiers}
        targets: dict[int, list[_Target]] = {}
        for delivery in deliveries:
            targets.setdefault(delivery.version, []).append((delivery, by_plugin[delivery.plugin]))
        items = [
            _Item(event, incident, targets[event.version])
            for event, incident in steps
            if event.version in targets
        ]
        with self._lock:
            if self._closed:
                return
            self._queue.extend(items)
            self._unfinished += len(items)
            if self._runner is None:
                self._runner = _Runner(self, None, 0)
            elif self._idle and not self._napping:
                self._work.notify()
            if self._watchdog is None:
                self._watchdog = threading.Thread(
                    target=self._watch, name="incident-flow-delivery-watchdog", daemon=True
                )
                self._watchdog.start()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every delivery queued so far was attempted; False if ``timeout`` ran out."""
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        with self._lock:
            if self._unfinished:
                self._flush_requested = True
                self._work.notify_all()
            while self._unfinished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._done.wait(min(remaining, threading.TIMEOUT_MAX))
            lanes = list(self._quarantined.values())
        return all(lane.wait(deadline) for lane in lanes)

    def close(self, timeout: float = 5.0) -> None:
        """Let queued deliveries finish (up to ``timeout``), then stop the threads."""
        self.drain(timeout)
        with self._lock:
            self._closed = True
            self._stopping.set()
            self._work.notify_all()
            runner, lanes = self._runner, list(self._quarantined.values())
        for lane in lanes:
            lane.queue.put(None)
        if runner is not None:
            runner.thread.join(timeout)

    # -- the runner's side ------------------------------------------------------------------

    def _next(self, runner: _Runner, *, linger: bool) -> _Item | None:
        """The next event to deliver; None when the runner should stop.

        With ``linger`` the runner holds outcomes not yet written. If nothing is queued, it naps
        until MARK_DELAY has passed (or someone drains) and returns _FLUSH, letting events
        queue up meanwhile, so that under load one wake-up and one write serve many commands.
        """
        deadline = time.monotonic() + MARK_DELAY
        with self._lock:
            if linger and not self._queue:
                self._idle = self._napping = True
                try:
                    while not (self._closed or runner.abandoned):
                        remaining = deadline - time.monotonic()
                        if self._flush_requested or remaining <= 0:
                            self._flush_requested = False
                            return _FLUSH
                        self._work.wait(remaining)
                    return None
                finally:
                    self._napping = False
            while not self._queue:
                if self._closed or runner.abandoned:
                    return None
                self._idle = True
                self._work.wait()
            self._idle = False
            if runner.abandoned:
                return None
            item = self._queue.popleft()
            runner.item = item
            runner.position = 0
            return item

    def _finished(self, count: int = 1) -> None:
        if not count:
            return
        with self._lock:
            self._unfinished -= count
            if not self._unfinished:
                self._done.notify_all()

    def _record_delivered(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        try:
            self._store.mark_delivered_many(deliveries, at=self._clock.now())
        except Exception:
            logger.exception("could not record %d deliveries", len(deliveries))

    def _record_failure(self, delivery: Delivery, error: BaseException | str) -> None:
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        logger.warning("delivery %s failed: %s", delivery.key, message)
        try:
            self._store.mark_failed(delivery, error=message, at=self._clock.now())
        except Exception:
            logger.exception("could not record the failure of delivery %s", delivery.key)

    # -- the watchdog -----------------------------------------------------------------------

    def _watch(self) -> None:
        """Quarantine a plugin that keeps the runner in one call for longer than the timeout."""
        seen: tuple[_Runner | None, int] = (None, -1)
        since = time.monotonic()
        interval = max(0.01, self._timeout / 4)
        while not self._stopping.wait(interval):
            with self._lock:
                runner = self._runner
                if runner is None or self._idle or runner.item is None:
                    seen, since = (runner, -1), time.monotonic()
                    continue
                progress = (runner, runner.calls)
                if progress != seen:
                    seen, since = progress, time.monotonic()
                    continue
                if time.monotonic() - since < self._timeout:
                    continue
                stuck = self._take_over(runner)
                seen, since = (self._runner, -1), time.monotonic()
            self._record_failure(
                stuck, f"TimeoutError: no answer within {self._timeout:g} s; quarantined"
            )

    def _take_over(self, runner: _Runner) -> Delivery:
        """With the lock held: ``runner`` is stuck in a plugin; route around it.

        Returns:
            The delivery the runner is stuck on.
        """
        item = runner.item
        assert item is not None
        delivery, notifier = item.targets[runner.position]
        runner.abandoned = True
        self._quarantined[notifier.plugin] = _Lane(self, notifier.plugin)
        self._runner = _Runner(self, item, runner.position + 1)
        logger.warning("plugin %s did not answer within %g s", notifier.plugin, self._timeout)
        return delivery

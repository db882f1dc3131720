"""Delivering committed events to plugins: at least once, in order, isolated, with retries.

A command writes its events and one outbox row per (event, plugin) in one transaction. A
:class:`DeliveryWorker` then works the outbox:

1. it *claims* due rows from the store (:meth:`~incident_flow.store.base.Store.claim`): a
   lease, so that no other worker, in this process or another, delivers them meanwhile, and only
   rows whose earlier rows (same incident, same plugin) are finished;
2. it hands each row to its plugin's *lane*, a thread of the plugin's own, which calls that one
   plugin's ``incident_flow_event`` with the event, the incident right after it and the row's
   idempotency key;
3. it *records* each outcome (:meth:`~incident_flow.store.base.Store.record`): delivered; failed,
   to be retried after an exponential backoff with jitter (:class:`RetryPolicy`); or dead, after
   :attr:`RetryPolicy.max_attempts` attempts or a
   :class:`~incident_flow.errors.PermanentDeliveryError`.

A plugin that has not answered within ``timeout`` seconds is recorded as failed (a retryable
``TimeoutError``) and its lane goes on in a new thread: a hanging plugin delays nobody but
itself, and holds back only the rows behind the stuck one (same incident, same plugin). Threads
cannot be killed, so the stuck call runs on; if it returns successfully after all, the row is
recorded as delivered. While ``max_stuck`` calls of one plugin hang, the worker claims no more
rows for it.

:class:`~incident_flow.flow.IncidentFlow` runs one worker in a background thread, woken by each
commit, so the caller of a command never waits on a plugin. ``incident-flow worker`` runs one in
a process of its own (:meth:`DeliveryWorker.run`); several may share one database.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

import attrs

from incident_flow.clock import Clock, SystemClock
from incident_flow.errors import (
    CorruptEventError,
    InvalidFieldError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    StoreError,
    UnknownIncidentError,
)
from incident_flow.events import Event
from incident_flow.model import Incident
from incident_flow.plugins import Notifier, PluginRegistry
from incident_flow.store.base import Delivery, DeliveryStatus, Outcome, Store

if TYPE_CHECKING:
    from incident_flow.flow import IncidentFlow

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_TIMEOUT",
    "DeliveryWorker",
    "RetryPolicy",
]

logger = logging.getLogger("incident_flow.delivery")

DEFAULT_TIMEOUT = 30.0
"""Seconds a plugin may take over one event before the attempt counts as failed."""

DEFAULT_LEASE = 60.0
"""Seconds a claim holds a row; a worker renews its leases while it works on them. A row held
by a worker that died is claimed by another once its lease runs out."""

HAND_BACK_GRACE = 1.0
"""Seconds :meth:`DeliveryWorker.stop` waits past its deadline for the untried rows to be
handed back."""

MAX_ERROR = 2000
"""Characters of an error message kept on the outbox row."""


@attrs.frozen
class RetryPolicy:
    """When a failed delivery is tried again, and when it is given up (dead-lettered).

    The n-th retry waits ``min(cap, base * factor ** (n - 1))`` seconds, of which the second half
    is random ("equal jitter"), so that rows failing together do not retry together. A
    :class:`~incident_flow.errors.RetryableDeliveryError` with ``retry_after`` waits at least
    that long.
    """

    max_attempts: int = attrs.field(default=8)
    """Attempts in all, the first included; the row is dead after the last one fails."""
    base: float = attrs.field(default=1.0)
    factor: float = attrs.field(default=2.0)
    cap: float = attrs.field(default=600.0)

    @max_attempts.validator
    def _check_attempts(self, _attribute: object, value: int) -> None:
        if not isinstance(value, int) or value < 1:
            raise InvalidFieldError(
                f"max_attempts must be a whole number >= 1, not {value!r}", field="max_attempts"
            )

    @base.validator
    @cap.validator
    def _check_seconds(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not value >= 0:
            raise InvalidFieldError(
                f"{attribute.name} must be a number of seconds >= 0, not {value!r}",
                field=attribute.name,
            )

    @factor.validator
    def _check_factor(self, _attribute: object, value: float) -> None:
        if not value >= 1:
            raise InvalidFieldError(
                f"factor must be a number >= 1 (2 doubles each wait), not {value!r}",
                field="factor",
            )

    def delay(
        self, attempts: int, *, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        ceiling = min(self.cap, self.base * self.factor ** min(max(attempts - 1, 0), 64))
        wait = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
        return max(wait, retry_after) if retry_after is not None else wait


def describe(error: BaseException) -> str:
    """How an error is recorded on an outbox row: its type and message, cut to MAX_ERROR."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def worker_name() -> str:
    """A name for a worker that no other worker, here or on another host, will have."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


_Subject = tuple[Event, Incident]


class _Job:
    """One claimed row on its way through a lane."""

    __slots__ = ("claim", "delivery")

    def __init__(self, delivery: Delivery, claim: int) -> None:
        self.delivery = delivery
        self.claim = claim
        """Which claim it came with: a failure holds back the rows behind it in that claim."""

    @property
    def block_key(self) -> tuple[int, str, str]:
        return (self.claim, self.delivery.incident_id, self.delivery.plugin)


class _Lane:
    """A plugin's queue of claimed rows and the thread calling the plugin for them in order."""

    def __init__(self, worker: DeliveryWorker, notifier: Notifier) -> None:
        self.worker = worker
        self.notifier = notifier
        self.jobs: collections.deque[_Job] = collections.deque()
        self.ready = threading.Condition(worker._lock)
        self.current: tuple[_Job, float] | None = None
        """The job being delivered and when its call started (monotonic)."""
        self.blocked: set[tuple[int, str, str]] = set()
        self.stuck = 0
        """Abandoned threads still inside a call of this plugin."""
        self.thread = self._start()

    def _start(self) -> threading.Thread:
        thread = threading.Thread(
            target=self._run, name=f"incident-flow-delivery-{self.notifier.plugin}", daemon=True
        )
        thread.start()
        return thread

    def _run(self) -> None:
        worker = self.worker
        me = threading.current_thread()
        while True:
            with worker._lock:
                if not self.jobs:
                    self.blocked.clear()  # the claims they were about are all done
                while not self.jobs and self.thread is me and not worker._stopping:
                    self.ready.wait()
                if self.thread is not me or not self.jobs:
                    return  # replaced by a new thread, or stopping
                job = self.jobs.popleft()
                if job.block_key in self.blocked:
                    # An earlier row of this incident failed: this one waits for it. Hand it
                    # back untried; the store holds it behind the failed row.
                    worker._finish(Outcome(job.delivery, DeliveryStatus.PENDING))
                    continue
                self.current = (job, time.monotonic())
            outcome = worker._attempt(self.notifier, job.delivery)
            with worker._lock:
                if self.thread is not me:
                    # The watchdog gave up on this call and recorded a timeout; only a late
                    # success is still worth recording.
                    self.stuck -= 1
                    if outcome.status is DeliveryStatus.DELIVERED:
                        logger.info("late delivery of %s succeeded", job.delivery.key)
                        worker._late(outcome)
                    return
                self.current = None
                if outcome.status is not DeliveryStatus.DELIVERED:
                    self.blocked.add(job.block_key)
                worker._finish(outcome)

    def abandon_if_stuck(self, now: float, timeout: float) -> None:
        """With the worker's lock held: give up on a call running past ``timeout``."""
        if self.current is None:
            return
        job, started = self.current
        if now - started < timeout:
            return
        self.current = None
        self.stuck += 1
        self.blocked.add(job.block_key)
        logger.warning(
            "plugin %s did not answer within %g s for %s",
            self.notifier.plugin,
            timeout,
            job.delivery.key,
        )
        error = RetryableDeliveryError(f"no answer within {timeout:g} s")
        self.worker._finish(self.worker._failure(job.delivery, TimeoutError(str(error)), None))
        self.thread = self._start()


class DeliveryWorker:
    """Works the outbox: claims due rows, calls the plugins, records what happened.

    Args:
        store: the store whose outbox to work.
        notifiers: the plugins to deliver to: a registry (whose plugins may change) or their
            implementations of ``incident_flow_event``. Rows of other plugins are left alone,
            for a worker that has them.
        clock: the time of outcomes, retries and leases.
        name: the worker's name on the rows it claims; unique by default.
        timeout: seconds a plugin may take over one event.
        retry: when failed rows are retried and when they are given up.
        lease: seconds a claim holds a row (renewed while the worker works on it).
        batch: the most rows claimed at once, and in flight at once.
        poll: seconds between looks at the outbox when nothing wakes the worker.
        max_stuck: hanging calls of one plugin after which no more rows are claimed for it.
        linger: seconds a woken worker waits for more commits and outcomes before it claims
            and records, so that one transaction serves many (0: none).
        flow: the flow over the same store that plugins are handed (the hook's ``flow``
            argument), to read incidents as they are now and record what they made outside.
            A flow's own worker has it; None hands them None.
    """

    def __init__(
        self,
        store: Store,
        notifiers: PluginRegistry | Iterable[Notifier],
        *,
        clock: Clock | None = None,
        name: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        lease: float = DEFAULT_LEASE,
        batch: int = 256,
        poll: float = 1.0,
        max_stuck: int = 4,
        linger: float = 0.005,
        flow: IncidentFlow | None = None,
    ) -> None:
        for field, seconds in (("timeout", timeout), ("lease", lease), ("poll", poll)):
            if not seconds > 0:
                raise InvalidFieldError(
                    f"{field} must be a number of seconds > 0, not {seconds!r}", field=field
                )
        if not linger >= 0:
            raise InvalidFieldError(
                f"linger must be a number of seconds >= 0, not {linger!r}", field="linger"
            )
        for field, count in (("batch", batch), ("max_stuck", max_stuck)):
            if not isinstance(count, int) or count < 1:
                raise InvalidFieldError(
                    f"{field} must be a whole number >= 1, not {count!r}", field=field
                )
        self.store = store
        self.flow = flow
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.name = name or worker_name()
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.lease = lease
        self.batch = batch
        self.poll = poll
        self.max_stuck = max_stuck
        self.linger = linger
        self._registry: PluginRegistry | None = None
        self._fixed: dict[str, Notifier] = {}
        if isinstance(notifiers, PluginRegistry):
            self._registry = notifiers
        else:
            self._fixed = {notifier.plugin: notifier for notifier in notifiers}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        self._lanes: dict[str, _Lane] = {}
        self._outcomes: list[Outcome] = []
        self._late_outcomes: list[Outcome] = []
        self._in_flight = 0
        self._held: set[tuple[str, int, str]] = set()
        """Rows dispatched to a lane whose outcome is not recorded yet."""
        self._claims = 0
        self._woken = False
        self._urgent = False
        self._draining = 0
        self._stopping = False
        self._rounds_started = 0
        self._idle_round = 0
        self._stop_deadline: float | None = None
        """The latest round that found nothing due and nothing in flight."""
        self._thread: threading.Thread | None = None
        self._renewed = time.monotonic()
        self._subjects: collections.OrderedDict[tuple[str, int], _Subject] = (
            collections.OrderedDict()
        )
        self._rng = random.Random()
        self.delivered = 0
        """Rows this worker recorded as delivered, for monitoring and the CLI."""
        self.failed = 0
        self.dead = 0

    @property
    def _notifiers(self) -> dict[str, Notifier]:
        if self._registry is None:
            return self._fixed
        notifiers = self._registry.notifiers
        if notifiers is not self._cached_source:
            self._cached = {notifier.plugin: notifier for notifier in notifiers}
            self._cached_source = notifiers
        return self._cached

    _cached: dict[str, Notifier] = {}  # noqa: RUF012 - replaced per instance on first use
    _cached_source: object = None

    @property
    def plugins(self) -> list[str]:
        """The plugins whose rows this worker delivers."""
        return list(self._notifiers)

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Work the outbox in a background thread until :meth:`stop`."""
        with self._lock:
            if self._thread is not None or self._stopping or not self._notifiers:
                return
            self._thread = threading.Thread(
                target=self._loop, name="incident-flow-delivery-worker", daemon=True
            )
            self._thread.start()

    def wake(self, subjects: Sequence[_Subject] = ()) -> None:
        """Say that rows were committed; ``subjects`` are their events with the incident right
        after each, which saves loading them from the store."""
        with self._lock:
            for event, incident in subjects:
                self._remember(event, incident)
            if not self._woken:
                self._woken = True
                self._wake.notify()
        if self._thread is None:
            self.start()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until no row is due and none is in flight: every row committed so far was
        delivered, dead-lettered, or waits for a retry. False if ``timeout`` ran out first.

        Without a background thread (see :meth:`start`) the rounds run in the caller's thread.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._thread is None:
            while self.run_once():
                if deadline is not None and time.monotonic() >= deadline:
                    return False
            return True
        with self._lock:
            # A round that starts after this call sees every row committed before it.
            wanted = self._rounds_started + 1
            self._woken = self._urgent = True
            self._wake.notify()
            self._draining += 1  # no lingering while someone waits
            try:
                while self._idle_round < wanted:
                    if self._stopping or self._thread is None:
                        return False
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._progress.wait(remaining)
            finally:
                self._draining -= 1
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the rows in hand (up to ``timeout``), hand back the rest, stop the threads."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stopping = True
            self._stop_deadline = deadline
            self._wake.notify_all()
            for lane in self._lanes.values():
                lane.ready.notify_all()
            thread = self._thread
        if thread is not None:
            # Past the deadline the loop still hands the untried rows back; give it a moment,
            # so that the store is not closed under it.
            thread.join(max(0.0, deadline - time.monotonic()) + HAND_BACK_GRACE)
        else:
            self._shut_down(deadline)

    def run(self, stop: threading.Event | None = None) -> None:
        """Work the outbox in this thread until ``stop`` is set (``incident-flow worker``)."""
        self._thread = threading.current_thread()
        watcher: threading.Thread | None = None
        if stop is not None:

            def watch() -> None:
                stop.wait()
                self.stop()

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
        self._loop()

    def run_once(self) -> int:
        """One round in the caller's thread: record outcomes, claim due rows, deliver them and
        record theirs. Returns how many rows were claimed (0 when nothing was due)."""
        claimed = self._round()
        deadline = time.monotonic() + self.timeout * max(claimed, 1) + 1
        with self._lock:
            while self._in_flight > len(self._outcomes) and not self._stopping:
                self._check_lanes()
                self._wake.wait(min(self.timeout / 4, 0.05))
                if time.monotonic() > deadline:
                    break
        self._record()
        return claimed

    # -- the loop ----------------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._stopping:
                        break
                try:
                    self._round()
                except Exception:
                    logger.exception("delivery worker %s: a round failed; retrying", self.name)
                    with self._lock:
                        self._wake.wait(self.poll)
                    continue
                with self._lock:
                    if self._stopping:
                        break
                    if not self._woken and not self._outcomes:
                        wait = self.poll
                        if self._in_flight:
                            wait = min(wait, self.timeout / 4, self.lease / 3, 0.05)
                        self._wake.wait(wait)
                    self._linger()
                    self._check_lanes()
        finally:
            self._shut_down(self._stop_deadline or time.monotonic() + 5.0)

    def _linger(self) -> None:
        """With the lock held, after a wake-up: let more commits and outcomes gather for up to
        ``linger`` seconds, so that one claim and one record serve many of them. Draining and
        stopping cut it short."""
        deadline = time.monotonic() + self.linger
        while not (self._urgent or self._draining or self._stopping):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or len(self._outcomes) >= self.batch:
                return
            self._wake.wait(remaining)

    def _round(self) -> int:
        """Record finished outcomes, renew leases, claim and dispatch due rows."""
        with self._lock:
            self._woken = self._urgent = False
            self._rounds_started += 1
            number = self._rounds_started
        self._record()
        now = self.clock.now()
        with self._lock:
            room = self.batch - self._in_flight
            plugins = [
                plugin
                for plugin in self._notifiers
                if plugin not in self._lanes or self._lanes[plugin].stuck < self.max_stuck
            ]
            in_flight = self._in_flight
        if in_flight and time.monotonic() - self._renewed > self.lease / 3:
            self.store.renew(self.name, now=now, lease=self.lease)
            self._renewed = time.monotonic()
        rows: list[Delivery] = []
        if room > 0 and plugins:
            rows = self.store.claim(
                self.name, plugins=plugins, now=now, lease=self.lease, limit=room
            )
            if rows:
                self._renewed = time.monotonic()
        with self._lock:
            self._claims += 1
            claim = self._claims
            # A row this worker still has in hand comes back when its lease ran out meanwhile
            # (a slow call, or a clock moved forward): it is being delivered already.
            rows = [row for row in rows if row.ident not in self._held]
            self._held.update(row.ident for row in rows)
            for row in rows:
                lane = self._lanes.get(row.plugin)
                if lane is None:
                    lane = self._lanes[row.plugin] = _Lane(self, self._notifiers[row.plugin])
                lane.jobs.append(_Job(row, claim))
                lane.ready.notify()
            self._in_flight += len(rows)
            if not rows and not self._in_flight and not self._outcomes:
                self._idle_round = number
                self._progress.notify_all()
        return len(rows)

    def _record(self) -> None:
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
            late, self._late_outcomes = self._late_outcomes, []
        if not outcomes and not late:
            return
        try:
            self.store.record(self.name, [*outcomes, *late], at=self.clock.now())
        except BaseException:
            with self._lock:
                self._outcomes[:0] = outcomes
                self._late_outcomes[:0] = late
            raise
        with self._lock:
            self._in_flight -= len(outcomes)
            self._held.difference_update(outcome.delivery.ident for outcome in outcomes)
            for outcome in outcomes:
                if outcome.status is DeliveryStatus.DELIVERED:
                    self.delivered += 1
                elif outcome.status is DeliveryStatus.FAILED:
                    self.failed += 1
                elif outcome.status is DeliveryStatus.DEAD:
                    self.dead += 1
            self._progress.notify_all()

    def _check_lanes(self) -> None:
        """With the lock held: the watchdog's look at every lane."""
        now = time.monotonic()
        for lane in self._lanes.values():
            lane.abandon_if_stuck(now, self.timeout)

    def _shut_down(self, deadline: float) -> None:
        """Hand back rows not yet attempted and record every outcome there is."""
        with self._lock:
            self._stopping = True
            for lane in self._lanes.values():
                while lane.jobs:
                    job = lane.jobs.popleft()
                    self._outcomes.append(Outcome(job.delivery, DeliveryStatus.PENDING))
                lane.ready.notify_all()
            while (
                self._in_flight > len(self._outcomes)
                or any(lane.stuck for lane in self._lanes.values())
            ) and time.monotonic() < deadline:
                self._check_lanes()
                self._wake.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        try:
            self._record()
        except Exception:
            logger.exception("delivery worker %s: could not record its last outcomes", self.name)
        with self._lock:
            self._thread = None
            self._progress.notify_all()

    # -- the lanes' side ---------------------------------------------------------------------------

    def _finish(self, outcome: Outcome) -> None:
        """With the lock held: keep a lane's outcome for the next record. The loop is woken
        once every row in hand has one (or a batch is full), so that one record serves all the
        plugins of an event; while a slow plugin holds a row, the loop comes by every 50 ms."""
        self._outcomes.append(outcome)
        outcomes = len(self._outcomes)
        if not self._woken and (outcomes >= self._in_flight or outcomes >= self.batch):
            self._woken = True
            self._wake.notify()

    def _late(self, outcome: Outcome) -> None:
        """With the lock held: a success that came after its timeout was recorded."""
        self._late_outcomes.append(outcome)
        self._wake.notify()

    def _attempt(self, notifier: Notifier, delivery: Delivery) -> Outcome:
        """Call the plugin for one row and say what became of it."""
        try:
            event, incident = self._subject(delivery)
        except (CorruptEventError, UnknownIncidentError) as error:
            # Retrying cannot mend a log that cannot be read: keep the row, dead, with why.
            logger.error("cannot deliver %s: %s", delivery.key, error)
            return Outcome(delivery, DeliveryStatus.DEAD, describe(error))
        except StoreError as error:
            return self._failure(delivery, error, None)
        try:
            notifier.invoke(event, incident, delivery.key, self.flow)
        except Exception as error:
            retry_after = error.retry_after if isinstance(error, RetryableDeliveryError) else None
            return self._failure(delivery, error, retry_after)
        return Outcome(delivery, DeliveryStatus.DELIVERED)

    def _failure(
        self, delivery: Delivery, error: BaseException, retry_after: float | None
    ) -> Outcome:
        attempts = delivery.attempts + 1
        message = describe(error)
        if isinstance(error, PermanentDeliveryError) or attempts >= self.retry.max_attempts:
            logger.warning(
                "delivery %s is dead after %d attempts: %s", delivery.key, attempts, message
            )
            return Outcome(delivery, DeliveryStatus.DEAD, message)
        wait = self.retry.delay(attempts, retry_after=retry_after, rng=self._rng)
        logger.warning(
            "delivery %s failed (attempt %d), retrying in %.1f s: %s",
            delivery.key,
            attempts,
            wait,
            message,
        )
        return Outcome(
            delivery,
            DeliveryStatus.FAILED,
            message,
            next_attempt_at=self.clock.now() + timedelta(seconds=wait),
        )

    # -- what the plugins are told ---------------------------------------------------------

    SUBJECTS = 4096
    """Events (with the incident after each) kept in memory for deliveries to come."""

    def _remember(self, event: Event, incident: Incident) -> None:
        subjects = self._subjects
        subjects[(event.incident_id, event.version)] = (event, incident)
        if len(subjects) > self.SUBJECTS:
            subjects.popitem(last=False)

    def _subject(self, delivery: Delivery) -> _Subject:
        """The event of ``delivery`` and the incident right after it."""
        key = (delivery.incident_id, delivery.version)
        with self._lock:
            found = self._subjects.get(key)
        if found is not None:
            return found
        events = self.store.load(delivery.incident_id)
        state: Incident | None = None
        subject: _Subject | None = None
        with self._lock:
            for event in events:
                state = event.apply(state)
                if event.version >= delivery.version:
                    self._remember(event, state)
                if event.version == delivery.version:
                    subject = (event, state)
        if subject is None:
            raise CorruptEventError(
                f"the outbox holds a delivery of version {delivery.version}, which the log of "
                f"{delivery.incident_id} does not have",
                incident_id=delivery.incident_id,
                version=delivery.version,
            )
        return subject

"""``check_plugin``: the contract every notification plugin should keep, checked in one call.

:func:`check_plugin` drives a plugin's ``incident_flow_event`` implementation directly and
synchronously (through :attr:`PluginRegistry.notifiers <incident_flow.plugins.PluginRegistry>`,
not through a delivery worker) with the events of:

- the shortest path to each transition of the process
  (:func:`~incident_flow.testing.paths.explore`), or the ``paths`` given;
- ``sequences`` random valid command sequences, drawn deterministically from ``seed``;

each followed by the reminders that fall due in the ``reminders_after`` (31 minutes) after it
(a status update due, an unanswered page), so that a plugin's reactions to ``ReminderDue`` are
checked too.

Each path is replayed on a scratch flow (memory store, no plugins, no delivery) under an
incident id of its own, ``check-<n>``; each of its events is delivered with the incident right
after it, the key a worker would use, ``"<incident id>:<version>:<plugin name>"``, and that
scratch flow as the hook's ``flow``, so a plugin can read the incident as it is now and record
what it made (:meth:`~incident_flow.IncidentFlow.record_external`) as it would in production.
The report
(:class:`PluginReport`) lists each :class:`Problem` with the check that found it, the event kind,
the key and the path (``str(path)``) that produced it. The checks, by :attr:`Problem.check`:

``events``
    every call must succeed while the vendor is healthy (raising, even a
    :class:`~incident_flow.errors.DeliveryError`, is a problem), and return within ``timeout``.
``idempotency``
    every event is delivered a second time, with the same key, right after its first delivery:
    the redelivery must succeed and make no external effect. Effects are counted by
    ``effects()`` when given (a number, or a collection whose length is taken), else by ``api``
    (recorded requests whose method is not GET or HEAD). Without either, this check is skipped.
``vendor-errors`` (only with ``api``)
    for each event kind whose first delivery made a mutating request, the first such event is
    delivered again while the vendor fails that request's operation (its method and path
    template): HTTP 429 with ``Retry-After: 7`` must raise
    :class:`~incident_flow.errors.RetryableDeliveryError` with ``retry_after >= 7``; HTTP 503
    must raise, and not :class:`~incident_flow.errors.PermanentDeliveryError`; HTTP 400 must
    raise :class:`~incident_flow.errors.PermanentDeliveryError`; an answer delayed by
    ``vendor_delay`` seconds (3 × ``timeout`` by default) must not hold the call beyond
    ``timeout`` seconds, and a raise then must not be permanent.

    So that the plugin cannot deduplicate these calls away, each fault is played on a **fresh
    incident**: the path is replayed on the scratch flow as ``<incident id>-fault-<n>``, the
    events up to the one checked are delivered (vendor healthy) with their own keys, then the
    checked event
    under ``<incident id>-fault-<n>:<version>:<plugin name>`` with the fault injected. The
    fault is injected for one request (``times=1``); if the plugin does not make that request
    (it is reported), the fault is cleared with ``api.reset()``, which also forgets answers
    configured with ``api.respond``.
``requests`` (only with ``api``)
    every request the plugin sent must be valid under the vendor's API description
    (:meth:`VendorAPI.invalid_requests <incident_flow.testing.vendor_api.VendorAPI>`);
    each invalid one is reported with the call that sent it.
``harness``
    the harness itself could not do something (a path that no longer replays, an ``effects``
    callable that raised). The harness never raises because of the plugin.

Every call runs in a daemon thread and is waited for at most ``timeout`` seconds: a plugin that
hangs is reported, never waited for. A problem seen many times (a plugin that raises on every
``RoleAssigned``) is reported once per check, event kind and kind of failure, with how many
times it happened.

Use it in a test, or from a fixture::

    def test_statuspage_contract(vendor_api):
        check_plugin(StatuspagePlugin(vendor_api.base_url), api=vendor_api).raise_for_problems()
"""

from __future__ import annotations

import gc
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence, Sized
from datetime import timedelta
from typing import TYPE_CHECKING

import attrs

from incident_flow.clock import FakeClock
from incident_flow.errors import (
    IncidentFlowError,
    InvalidFieldError,
    PermanentDeliveryError,
    PluginError,
    RetryableDeliveryError,
)
from incident_flow.events import Event
from incident_flow.flow import IncidentFlow
from incident_flow.model import Incident
from incident_flow.plugins import Notifier, PluginRegistry
from incident_flow.process import HANDBOOK, Process
from incident_flow.store.memory import MemoryStore
from incident_flow.testing.commands import PEOPLE, candidates
from incident_flow.testing.paths import DECLARATIONS, START, Path, Step, explore

if TYPE_CHECKING:
    from incident_flow.testing.vendor_api import RecordedRequest, VendorAPI

__all__ = [
    "CHECKS",
    "PluginContractError",
    "PluginReport",
    "Problem",
    "check_plugin",
    "random_paths",
]

CHECKS: tuple[str, ...] = ("events", "idempotency", "vendor-errors", "requests", "harness")
"""The values of :attr:`Problem.check`, in the order the checks run."""

RETRY_AFTER = 7
"""The ``Retry-After`` (seconds) of the injected HTTP 429."""

REMINDERS_AFTER = timedelta(minutes=31)
"""How long the clock moves on after each path by default, so that its reminders fall due."""

_READS = frozenset({"GET", "HEAD", "OPTIONS"})


@attrs.frozen
class Problem:
    """One breach of the contract: which check, for which event kind, key and path, and what."""

    check: str
    """One of :data:`CHECKS`."""
    event: str
    """The event kind (``StatusUpdatePosted``), or ``""`` when not about one event."""
    key: str
    """The idempotency key of the call, or ``""``."""
    message: str
    """What went wrong, in words."""
    path: str
    """``str(path)`` of the path whose events were delivered, or ``""``."""

    def __str__(self) -> str:
        where = f" {self.event}" if self.event else ""
        key = f" [{self.key}]" if self.key else ""
        after = f"\n      after: {self.path}" if self.path else ""
        return f"{self.check}:{where}{key}: {self.message}{after}"


class PluginContractError(AssertionError):
    """A plugin breaks its contract; :attr:`report` holds every problem."""

    def __init__(self, report: PluginReport) -> None:
        super().__init__(str(report))
        self.report = report


@attrs.frozen
class PluginReport:
    """What :func:`check_plugin` found about one plugin."""

    plugin: str
    """The plugin's registered name (the last part of each key)."""
    events_delivered: Mapping[str, int]
    """Per event kind, how many first deliveries succeeded (redeliveries and fault replays are
    not counted)."""
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def raise_for_problems(self) -> None:
        """Raise :class:`PluginContractError` (an ``AssertionError``) if there is a problem.

        Raises:
            PluginContractError: with the whole report as its message.
        """
        if self.problems:
            raise PluginContractError(self)

    def __str__(self) -> str:
        delivered = ", ".join(f"{kind} ×{n}" for kind, n in sorted(self.events_delivered.items()))
        lines = [
            f"plugin {self.plugin}: "
            + ("keeps its contract" if self.ok else f"{len(self.problems)} problem(s)"),
            f"  events delivered: {delivered or 'none'}",
        ]
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)


# ------------------------------------------------------------------------------ paths


def _scratch_flow(process: Process) -> IncidentFlow:
    return IncidentFlow(
        process=process,
        store=MemoryStore(),
        clock=FakeClock(START),
        entry_points=False,
        deliver=False,
        reminders=False,
    )


def random_paths(
    process: Process = HANDBOOK,
    count: int = 10,
    *,
    seed: int = 0,
    max_steps: int = 25,
    people: Sequence[str] = PEOPLE,
) -> list[Path]:
    """``count`` valid command sequences of ``process``, the same for the same ``seed``.

    Each starts from one of the walk's declarations and takes up to ``max_steps`` commands,
    each drawn uniformly among the candidates the process allows at that point (a candidate is
    tried on a scratch flow; a refusal writes nothing).
    """
    rng = random.Random(seed)
    found: list[Path] = []
    with _scratch_flow(process) as flow:
        for n in range(count):
            declaration = rng.choice(DECLARATIONS)
            incident = declaration.run(flow, f"random-{n}")
            path = Path(declaration)
            for _ in range(rng.randint(1, max_steps)):
                options = list(candidates(process, incident, people=people))
                rng.shuffle(options)
                for command in options:
                    try:
                        after = command.run(flow, incident.id)
                    except IncidentFlowError:  # refused, or arguments this process lacks
                        continue
                    path = path.then(Step(command, (incident.phase, command.action, after.phase)))
                    incident = after
                    break
                else:
                    break
            found.append(path)
    return found


# ------------------------------------------------------------------------------ calls


@attrs.define
class _Outcome:
    """How one call ended: returned, raised ``error``, or still running after the timeout."""

    finished: bool = False
    error: BaseException | None = None
    seconds: float = 0.0


def _call(
    notifier: Notifier,
    event: Event,
    incident: Incident,
    key: str,
    timeout: float,
    flow: IncidentFlow | None,
) -> _Outcome:
    """Call the plugin in a daemon thread; wait at most ``timeout`` seconds for it."""
    outcome = _Outcome()

    def run() -> None:
        try:
            notifier.invoke(event, incident, key, flow)
        except BaseException as error:  # the plugin's failure is the harness's finding
            outcome.error = error
        outcome.finished = True

    started = time.perf_counter()
    thread = threading.Thread(target=run, name=f"check-plugin {key}", daemon=True)
    thread.start()
    thread.join(timeout)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@attrs.frozen
class _Delivery:
    """One event of a path, the incident right after it, and where it came from."""

    path: Path
    index: int
    events: tuple[Event, ...]
    incidents: tuple[Incident, ...]

    @property
    def event(self) -> Event:
        return self.events[self.index]

    @property
    def incident(self) -> Incident:
        return self.incidents[self.index]


@attrs.frozen
class _Target:
    """An event whose first delivery made a mutating request, to replay under faults."""

    delivery: _Delivery
    method: str
    operation: str


class _Checker:
    def __init__(
        self,
        notifier: Notifier,
        *,
        api: VendorAPI | None,
        timeout: float,
        vendor_delay: float,
        effects: Callable[[], object] | None,
        flow: IncidentFlow,
        wait: timedelta | None,
    ) -> None:
        self.notifier = notifier
        self.flow = flow
        self.wait = wait
        self.name = notifier.plugin
        self.api = api
        self.timeout = timeout
        self.vendor_delay = vendor_delay
        self.effects = effects
        self.delivered: Counter[str] = Counter()
        self.problems: dict[tuple[str, str, str], Problem] = {}
        self.repeats: Counter[tuple[str, str, str]] = Counter()
        self.targets: dict[str, _Target] = {}
        self.reported_requests: set[int] = set()
        self.lost_invalid: list[RecordedRequest] = []
        self.faults = 0

    # -- bookkeeping ---------------------------------------------------------------------

    def problem(
        self, check: str, delivery: _Delivery | None, key: str, message: str, kind: str = ""
    ) -> None:
        """Record a problem, once per (check, event kind, ``kind`` or message)."""
        event = delivery.event.type if delivery is not None else ""
        dedupe = (check, event, kind or message)
        self.repeats[dedupe] += 1
        if dedupe not in self.problems:
            path = str(delivery.path) if delivery is not None else ""
            self.problems[dedupe] = Problem(check, event, key, message, path)

    def report(self) -> PluginReport:
        problems = []
        for dedupe, problem in self.problems.items():
            times = self.repeats[dedupe]
            if times > 1:
                problem = attrs.evolve(problem, message=f"{problem.message} ({times} times)")
            problems.append(problem)
        order = {check: n for n, check in enumerate(CHECKS)}
        problems.sort(key=lambda p: order.get(p.check, len(order)))
        return PluginReport(self.name, dict(self.delivered), tuple(problems))

    def requests(self) -> list[RecordedRequest]:
        return self.api.requests if self.api is not None else []

    def count_effects(self, delivery: _Delivery | None, key: str) -> int | None:
        if self.effects is not None:
            try:
                value = self.effects()
            except Exception as error:
                self.problem("harness", delivery, key, f"effects() raised {_describe(error)}")
                self.effects = None
                return None
            if isinstance(value, Sized):
                return len(value)
            if isinstance(value, int | float):
                return int(value)
            self.problem("harness", delivery, key, f"effects() returned {value!r}")
            self.effects = None
            return None
        if self.api is not None:
            return sum(request.method not in _READS for request in self.requests())
        return None

    def check_requests(self, delivery: _Delivery | None, key: str, since: int) -> None:
        """Report invalid requests recorded from index ``since`` on, as sent by this call."""
        for request in self.requests()[since:]:
            if not request.valid and id(request) not in self.reported_requests:
                self.reported_requests.add(id(request))
                self.problem(
                    "requests",
                    delivery,
                    key,
                    f"invalid request {request.describe()}",
                    kind=f"{request.method} {request.operation}",
                )

    def reset_api(self) -> None:
        """Clear a fault the plugin did not consume, keeping the invalid requests seen."""
        assert self.api is not None
        self.lost_invalid.extend(
            r for r in self.api.invalid_requests if id(r) not in self.reported_requests
        )
        self.api.reset()

    # -- first delivery and redelivery ---------------------------------------------------

    def deliver(self, delivery: _Delivery) -> None:
        event, incident = delivery.event, delivery.incident
        key = f"{event.incident_id}:{event.version}:{self.name}"
        since = len(self.requests())
        before = self.count_effects(delivery, key)
        outcome = _call(self.notifier, event, incident, key, self.timeout, self.flow)
        new = self.requests()[since:]
        self.check_requests(delivery, key, since)
        if not outcome.finished:
            self.problem(
                "events",
                delivery,
                key,
                f"still running after {self.timeout:g} s while the vendor is healthy",
                kind="blocked",
            )
            return
        if outcome.error is not None:
            self.problem(
                "events",
                delivery,
                key,
                f"raised {_describe(outcome.error)} while the vendor is healthy",
                kind=type(outcome.error).__name__,
            )
            return
        self.delivered[event.type] += 1
        mutating = [r for r in new if r.method not in _READS and r.operation is not None]
        if mutating and event.type not in self.targets:
            first = mutating[0]
            assert first.operation is not None
            self.targets[event.type] = _Target(delivery, first.method, first.operation)
        self.redeliver(delivery, key, before)

    def redeliver(self, delivery: _Delivery, key: str, before: int | None) -> None:
        middle = self.count_effects(delivery, key)
        since = len(self.requests())
        outcome = _call(
            self.notifier, delivery.event, delivery.incident, key, self.timeout, self.flow
        )
        self.check_requests(delivery, key, since)
        if not outcome.finished:
            self.problem(
                "idempotency",
                delivery,
                key,
                f"a redelivery was still running after {self.timeout:g} s",
                kind="blocked",
            )
            return
        if outcome.error is not None:
            self.problem(
                "idempotency",
                delivery,
                key,
                f"a redelivery with the same key raised {_describe(outcome.error)}",
                kind=type(outcome.error).__name__,
            )
        after = self.count_effects(delivery, key)
        if before is None or middle is None or after is None:
            return
        if after > middle:
            self.problem(
                "idempotency",
                delivery,
                key,
                f"a redelivery with the same key made {after - middle} more external "
                f"effect(s) (the first delivery made {middle - before})",
                kind="effects",
            )

    # -- vendor errors -------------------------------------------------------------------

    def check_faults(self) -> None:
        for target in self.targets.values():
            self.fault(
                target, "429", lambda api, m, o: api.fail(m, o, status=429, retry_after=RETRY_AFTER)
            )
            self.fault(target, "503", lambda api, m, o: api.fail(m, o, status=503))
            self.fault(target, "400", lambda api, m, o: api.fail(m, o, status=400))
            self.fault(
                target,
                "delay",
                lambda api, m, o: api.delay(m, o, seconds=self.vendor_delay),
            )

    def fault(
        self,
        target: _Target,
        fault: str,
        inject: Callable[[VendorAPI, str, str], None],
    ) -> None:
        api = self.api
        assert api is not None
        delivery = target.delivery
        self.faults += 1
        fresh = f"{delivery.event.incident_id}-fault-{self.faults}"
        try:
            events, incidents = _replay(self.flow, delivery.path, fresh, self.wait)
        except IncidentFlowError as error:
            self.problem("harness", delivery, "", f"path does not replay: {_describe(error)}")
            return
        for index in range(delivery.index + 1):
            event, incident = events[index], incidents[index]
            key = f"{fresh}:{event.version}:{self.name}"
            since = len(api.requests)
            if index < delivery.index:
                # The events before it, vendor healthy; a failure here was reported already,
                # on their first delivery.
                _call(self.notifier, event, incident, key, self.timeout, self.flow)
                self.check_requests(delivery, key, since)
                continue
            inject(api, target.method, target.operation)
            outcome = _call(self.notifier, event, incident, key, self.timeout, self.flow)
            hits = [
                r
                for r in api.requests[since:]
                if r.method == target.method and r.operation == target.operation
            ]
            self.check_requests(delivery, key, since)
            if not hits:
                self.problem(
                    "vendor-errors",
                    delivery,
                    key,
                    f"made no {target.method} {target.operation} request on a fresh incident, "
                    f"so the {fault} fault could not be checked",
                    kind=f"{fault} not sent",
                )
                self.reset_api()
                return
            self.judge(delivery, key, fault, target, outcome)

    def judge(
        self, delivery: _Delivery, key: str, fault: str, target: _Target, outcome: _Outcome
    ) -> None:
        operation = f"{target.method} {target.operation}"
        error = outcome.error
        if not outcome.finished:
            self.problem(
                "vendor-errors",
                delivery,
                key,
                f"blocked beyond its timeout: still running after {self.timeout:g} s while "
                f"the vendor answered {operation} after {self.vendor_delay:g} s"
                if fault == "delay"
                else f"blocked beyond its timeout ({self.timeout:g} s) on an HTTP {fault} "
                f"from {operation}",
                kind=f"{fault} blocked",
            )
            return
        message: str | None = None
        if fault == "429":
            if error is None:
                message = f"swallowed a 429 from {operation} (returned normally)"
            elif not isinstance(error, RetryableDeliveryError):
                message = (
                    f"429 not turned into RetryableDeliveryError(retry_after=...): raised "
                    f"{_describe(error)}"
                )
            elif error.retry_after is None or error.retry_after < RETRY_AFTER:
                message = (
                    f"429 with Retry-After: {RETRY_AFTER} not turned into "
                    f"RetryableDeliveryError(retry_after>={RETRY_AFTER}): retry_after="
                    f"{error.retry_after!r}"
                )
        elif fault == "503":
            if error is None:
                message = f"swallowed a 5xx: returned normally after a 503 from {operation}"
            elif isinstance(error, PermanentDeliveryError):
                message = f"turned a 503 from {operation} into {_describe(error)}"
        elif fault == "400":
            if error is None:
                message = f"swallowed a 400 from {operation} (returned normally)"
            elif not isinstance(error, PermanentDeliveryError):
                message = (
                    f"400 from {operation} not turned into PermanentDeliveryError: raised "
                    f"{_describe(error)}"
                )
        elif isinstance(error, PermanentDeliveryError):
            message = f"turned a timeout of {operation} into {_describe(error)}"
        if message is not None:
            self.problem("vendor-errors", delivery, key, message, kind=fault)

    def check_leftovers(self) -> None:
        """Invalid requests not tied to a call (sent late, by a thread left running)."""
        assert self.api is not None
        leftovers = self.lost_invalid + [
            r for r in self.api.invalid_requests if id(r) not in self.reported_requests
        ]
        for request in leftovers:
            self.reported_requests.add(id(request))
            self.problem("requests", None, "", f"invalid request {request.describe()}")


def _replay(
    flow: IncidentFlow, path: Path, incident_id: str, wait: timedelta | None
) -> tuple[tuple[Event, ...], tuple[Incident, ...]]:
    """Replay ``path`` as ``incident_id``, then let ``wait`` pass and record the reminders that
    fell due; its events, and the incident right after each."""
    path.replay(flow, incident_id=incident_id)
    if wait is not None:
        clock = flow.clock
        assert isinstance(clock, FakeClock)
        clock.advance(wait)
        flow.fire_reminders(incident_id)
    events = tuple(flow.history(incident_id))
    incidents: list[Incident] = []
    state: Incident | None = None
    for event in events:
        state = event.apply(state)
        incidents.append(state)
    return events, tuple(incidents)


def _deliveries(paths: Sequence[Path], flow: IncidentFlow, checker: _Checker) -> list[_Delivery]:
    """Replay each path on the scratch flow; one :class:`_Delivery` per event."""
    found: list[_Delivery] = []
    for n, path in enumerate(paths, start=1):
        try:
            events, incidents = _replay(flow, path, f"check-{n}", checker.wait)
        except IncidentFlowError as error:
            checker.problem("harness", None, "", f"path {path} does not replay: {_describe(error)}")
            continue
        found.extend(_Delivery(path, index, events, incidents) for index in range(len(events)))
    return found


def check_plugin(
    plugin: object,
    *,
    process: Process = HANDBOOK,
    api: VendorAPI | None = None,
    timeout: float = 5.0,
    sequences: int = 10,
    seed: int = 0,
    effects: Callable[[], object] | None = None,
    paths: Sequence[Path] | None = None,
    vendor_delay: float | None = None,
    max_steps: int = 25,
    reminders_after: timedelta | None = REMINDERS_AFTER,
) -> PluginReport:
    """Check that ``plugin`` keeps the notification contract; see the module docstring.

    Args:
        plugin: A plugin object (or module) implementing ``incident_flow_event``; it is
            registered in a registry of its own, without entry points, and named as it would
            be in a flow (its ``incident_flow_name``, say).
        process: The process whose events are delivered.
        api: The vendor the plugin talks to, if it is a
            :class:`~incident_flow.testing.vendor_api.VendorAPI`: enables the ``vendor-errors``
            and ``requests`` checks, and counts effects when ``effects`` is not given.
        timeout: How long each call may take, in seconds; a call still running then is a
            problem, and is left running in its daemon thread.
        sequences: How many random valid command sequences to deliver, besides the paths.
        seed: The seed of those sequences (:func:`random_paths`).
        effects: Counts the plugin's external effects so far: returns a number, or a
            collection (its length is taken).
        paths: The paths whose events are delivered; default: the shortest path to each
            transition of ``process`` (``explore(process)``, a few seconds for the handbook,
            cached per process).
        vendor_delay: How late the vendor answers in the timeout check; default
            ``3 * timeout``. It should exceed the plugin's own client timeout.
        max_steps: The longest random sequence.
        reminders_after: How long the clock moves on after each path, before the reminders
            that fell due by then are recorded and delivered with the path's events (31
            minutes: a status update due, an unanswered page); None delivers no reminder.

    Returns:
        The report; call :meth:`PluginReport.raise_for_problems` to fail a test with it.

    Raises:
        incident_flow.errors.PluginError: ``plugin`` cannot be registered, or does not
            implement ``incident_flow_event``.
        incident_flow.errors.InvalidFieldError: ``reminders_after`` is not a timedelta >= 0.
    """
    if reminders_after is not None and (
        not isinstance(reminders_after, timedelta) or reminders_after < timedelta(0)
    ):
        raise InvalidFieldError(
            f"reminders_after must be a timedelta >= 0 (or None for no reminder), not "
            f"{reminders_after!r}",
            field="reminders_after",
        )
    notifiers = PluginRegistry([plugin], entry_points=False).notifiers
    if not notifiers:
        raise PluginError(
            f"{plugin!r} does not implement incident_flow_event; there is nothing to check"
        )
    if paths is None:
        exploration = explore(process)
        chosen = list(exploration.shortest.values())
    else:
        chosen = list(paths)
    if sequences:
        chosen.extend(random_paths(process, sequences, seed=seed, max_steps=max_steps))
    # The walk leaves hundreds of thousands of objects behind (paths, events, incidents); a full
    # collection over them stops every thread, the local vendor's included, for long enough on
    # a busy machine that a plugin's client times out while the vendor is healthy. They live
    # until the check ends, so they are moved out of the collector's sight until then.
    gc.collect()
    gc.freeze()
    try:
        return _check(
            notifiers[0], chosen, process, api, timeout, vendor_delay, effects, reminders_after
        )
    finally:
        gc.unfreeze()


def _check(
    notifier: Notifier,
    chosen: Sequence[Path],
    process: Process,
    api: VendorAPI | None,
    timeout: float,
    vendor_delay: float | None,
    effects: Callable[[], object] | None,
    wait: timedelta | None,
) -> PluginReport:
    with _scratch_flow(process) as flow:
        checker = _Checker(
            notifier,
            api=api,
            timeout=timeout,
            vendor_delay=3 * timeout if vendor_delay is None else vendor_delay,
            effects=effects,
            flow=flow,
            wait=wait,
        )
        for delivery in _deliveries(chosen, flow, checker):
            checker.deliver(delivery)
        if api is not None:
            checker.check_faults()
            checker.check_leftovers()
        return checker.report()

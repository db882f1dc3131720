"""`IncidentFlow`: the commands of the incident process.

Every command goes one way: validate its arguments → load the incident's events and fold them →
let the process decide (guards, plus plugins' requirements) → append the new events and their
outbox rows in one transaction → hand the deliveries to the plugins in the background → return
the new incident. A refused or invalid command raises before anything is written.
"""

from __future__ import annotations

import builtins
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from incident_flow.clock import Clock, SystemClock, ensure_utc
from incident_flow.comms import StatusPost
from incident_flow.delivery import DEFAULT_LEASE, DEFAULT_TIMEOUT, DeliveryWorker, RetryPolicy
from incident_flow.errors import (
    ConcurrencyConflict,
    DuplicateIncidentError,
    IncidentFlowError,
    InvalidActorError,
    InvalidFieldError,
    InvalidTimestampError,
    PluginError,
    TimeWentBackwardsError,
    TransitionRefused,
    UnknownChecklistItemError,
    ValidationError,
)
from incident_flow.events import (
    ActionTaken,
    ChecklistItemCompleted,
    ChecklistItemWaived,
    Event,
    ExternalRefRecorded,
    FalsePositiveMarked,
    FollowUpAdded,
    IncidentDeclared,
    OwnershipAcknowledged,
    PageAcknowledged,
    PageSent,
    PhaseChanged,
    ReleasePaused,
    ReleaseResumed,
    ReminderDue,
    RoleAssigned,
    RollbackRecorded,
    SeverityChanged,
    StatusUpdatePosted,
    WarningRecorded,
    fold,
)
from incident_flow.model import Finding, Incident, Role, Severity
from incident_flow.plugins import PluginLoadFailure, PluginRegistry
from incident_flow.process import HANDBOOK, Decision, Process
from incident_flow.requirements import HANDBOOK_GUARDS, Context, Requirement
from incident_flow.store.base import Delivery, DeliveryStatus, Store
from incident_flow.store.memory import MemoryStore
from incident_flow.timers import ENGINE, RELEASE_PAUSED_POST, Due, due_reminders, next_reminder

__all__ = ["IncidentFlow", "retry_on_conflict"]

logger = logging.getLogger("incident_flow")

MAX_TITLE = 200
MAX_TEXT = 10_000
CONFLICT_RETRIES = 10
REMINDER_INTERVAL = 5.0
"""Seconds between two looks for due reminders, by default."""
CONFLICT_BACKOFF = 0.002
"""Seconds before the first retry after a conflict; doubled each time, with full jitter."""

# What each built-in action records besides the phase change; the payload was validated already.
_EventSpec = tuple[type[Event], dict[str, Any]]
_Effect = Callable[[Incident, Mapping[str, Any]], list[_EventSpec]]
_EFFECTS: dict[str, _Effect] = {
    "assign": lambda inc, p: [(RoleAssigned, {"role": p["role"], "person": p["person"]})],
    "acknowledge": lambda inc, p: [(OwnershipAcknowledged, {})],
    "record_rollback": lambda inc, p: [
        (RollbackRecorded, {"outcome": p["outcome"], "succeeded": p["succeeded"]})
    ],
    "page": lambda inc, p: [(PageSent, {"target": p["target"], "message": p["message"]})],
    "acknowledge_page": lambda inc, p: [(PageAcknowledged, {"page_id": p["page"]})],
    "pause_release": lambda inc, p: [
        (ReleasePaused, {"release": p["release"], "alert": p["alert"]})
    ],
    "resume_release": lambda inc, p: [(ReleaseResumed, {"release": p["release"]})],
    "post_status_update": lambda inc, p: [
        (
            StatusUpdatePosted,
            {
                "text": p["text"],
                "status_phase": p["phase"],
                "findings": tuple(f for f in p["findings"] if not f.refused),
            },
        )
    ],
    "change_severity": lambda inc, p: [
        (SeverityChanged, {"severity": p["severity"], "previous": inc.severity})
    ],
    "mark_false_positive": lambda inc, p: [(FalsePositiveMarked, {"reason": p["reason"]})],
    "complete_item": lambda inc, p: [
        (ChecklistItemCompleted, {"item": p["item"], "link": p.get("link")})
    ],
    "add_follow_up": lambda inc, p: [(FollowUpAdded, {"title": p["title"], "owner": p["owner"]})],
    "waive_item": lambda inc, p: [
        (ChecklistItemWaived, {"item": p["item"], "reason": p["reason"]})
    ],
}


def _text(value: object, field: str, *, limit: int = MAX_TEXT, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidFieldError(
            f"{field} must be a string, not {type(value).__name__}", field=field
        )
    text = value.strip()
    if not text and not empty_ok:
        raise InvalidFieldError(f"{field} must not be empty", field=field)
    if len(text) > limit:
        raise InvalidFieldError(
            f"{field} is {len(text)} characters; the limit is {limit}", field=field
        )
    return text


def _action(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidFieldError(f"action must be an action's name, not {value!r}", field="action")
    return value.strip()


def _actor(value: object, field: str = "by") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidActorError(
            f"{field} must be a non-empty string naming a person, not {value!r}", field=field
        )
    return value.strip()


def _delivery_status(status: object) -> DeliveryStatus | None:
    if status is None:
        return None
    try:
        return DeliveryStatus(str(status))
    except ValueError:
        choices = ", ".join(DeliveryStatus)
        raise InvalidFieldError(
            f"unknown delivery status {status!r}; use one of {choices}", field="status"
        ) from None


def _optional_name(value: object, field: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidFieldError(f"{field} must be a plugin's name, not {value!r}", field=field)
    return value


def _limit(value: object) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InvalidFieldError(f"limit must be a whole number >= 1, not {value!r}", field="limit")
    return value


_T = TypeVar("_T")


def retry_on_conflict(call: Callable[[], _T], *, attempts: int = 5, backoff: float = 0.01) -> _T:
    """Run ``call`` again while it raises :class:`~incident_flow.errors.ConcurrencyConflict`.

    A flow already retries each command on a conflict (``conflict_retries``), deciding again on
    the incident's new state; a conflict that reaches the caller means the incident kept
    changing under it. Wrap a command in this when the caller, too, would rather wait and try
    again: ``retry_on_conflict(lambda: flow.triage(incident_id, by="bob"))``. Each retry waits a
    random time of up to ``backoff * 2 ** n`` seconds, so competing writers spread out. A
    command that the new state refuses raises :class:`~incident_flow.errors.TransitionRefused`
    as usual; the last conflict is raised when ``attempts`` run out.
    """
    if attempts < 1:
        raise InvalidFieldError(
            f"attempts must be a whole number >= 1, not {attempts!r}", field="attempts"
        )
    for attempt in range(attempts):
        try:
            return call()
        except ConcurrencyConflict:
            if attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0, backoff * 2 ** min(attempt, 10)))
    raise AssertionError("unreachable")  # pragma: no cover


class IncidentFlow:
    """The incident process over a store, with plugins notified of every change.

    Args:
        process: the process to follow; the handbook's by default.
        store: where events live; a fresh :class:`~incident_flow.store.MemoryStore` by default.
        plugins: plugin objects or modules to register besides the entry points, or a
            :class:`~incident_flow.plugins.PluginRegistry` to use as it is.
        clock: where the time comes from; the system clock (UTC) by default.
        entry_points: load plugins from the ``incident_flow`` entry-point group.
        snapshot_cache: how many incidents' latest states to keep folded in memory (the least
            recently used are dropped first; 0 keeps none). A cached state is only a shortcut:
            commands are checked against the store's version, and reads catch up with the store.
        delivery_timeout: seconds a plugin may spend on one event before the attempt counts as
            failed (and is retried; see ``docs/delivery.md``).
        retry: when failed deliveries are retried and when they are dead-lettered.
        deliver: deliver in this process, in the background, right after each commit. Turn it
            off when ``incident-flow worker`` processes deliver instead.
        delivery_lease: seconds a claim holds an outbox row (see :class:`DeliveryWorker`).
        conflict_retries: times a command that lost a race to another writer is decided again
            on the new state before :class:`~incident_flow.errors.ConcurrencyConflict` reaches
            the caller (0: at once; see :func:`retry_on_conflict`).
        reminders: look for reminders that fell due (:meth:`fire_reminders`) in the
            background, every ``reminder_interval`` seconds. Turn it off where time is moved
            by hand (tests call :meth:`fire_reminders` themselves) or when ``incident-flow
            worker`` processes do it.
        reminder_interval: seconds between two looks for due reminders.

    A flow is thread-safe. Shut it down (or use it as a context manager) to let deliveries in
    hand finish and stop the delivery threads; the store is closed with it.
    """

    def __init__(
        self,
        *,
        process: Process = HANDBOOK,
        store: Store | None = None,
        plugins: Iterable[object] | PluginRegistry = (),
        clock: Clock | None = None,
        entry_points: bool = True,
        snapshot_cache: int = 10_000,
        delivery_timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        deliver: bool = True,
        delivery_lease: float = DEFAULT_LEASE,
        conflict_retries: int = CONFLICT_RETRIES,
        reminders: bool = True,
        reminder_interval: float = REMINDER_INTERVAL,
    ) -> None:
        self.process = process
        self.store: Store = store if store is not None else MemoryStore()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.plugins = (
            plugins
            if isinstance(plugins, PluginRegistry)
            else PluginRegistry(plugins, entry_points=entry_points)
        )
        self.worker = DeliveryWorker(
            self.store,
            self.plugins,
            clock=self.clock,
            timeout=delivery_timeout,
            retry=retry,
            lease=delivery_lease,
            flow=self,
        )
        """The in-process delivery worker (started with the flow when ``deliver`` is on)."""
        self._deliver = deliver
        if not isinstance(conflict_retries, int) or conflict_retries < 0:
            raise InvalidFieldError(
                f"conflict_retries must be a whole number >= 0, not {conflict_retries!r}",
                field="conflict_retries",
            )
        self._attempts = conflict_retries + 1
        self._checklist = tuple((item.name, item.required) for item in process.checklist)
        if deliver:
            self.worker.start()
        self._snapshots: dict[str, Incident] = {}
        if not isinstance(snapshot_cache, int) or snapshot_cache < 0:
            raise InvalidFieldError(
                f"snapshot_cache must be a whole number >= 0 (0 keeps none), not "
                f"{snapshot_cache!r}",
                field="snapshot_cache",
            )
        self._snapshot_limit = snapshot_cache
        self._snapshot_lock = threading.Lock()
        if (
            not isinstance(reminder_interval, int | float)
            or isinstance(reminder_interval, bool)
            or not reminder_interval > 0
        ):
            raise InvalidFieldError(
                f"reminder_interval must be a number of seconds > 0, not {reminder_interval!r}",
                field="reminder_interval",
            )
        self._reminder_interval = float(reminder_interval)
        self._stop_reminders = threading.Event()
        self._reminder_thread: threading.Thread | None = None
        if reminders:
            self._reminder_thread = threading.Thread(
                target=self._remind, name="incident-flow-reminders", daemon=True
            )
            self._reminder_thread.start()

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> IncidentFlow:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Deliver what is due (for up to ``timeout`` seconds in all), hand what is left back to
        the outbox for the next worker, and close the store."""
        deadline = time.monotonic() + timeout
        self._stop_reminders.set()  # the loop ends at its next look; joined before the close
        if self._deliver:
            self.worker.drain(timeout)
        self.worker.stop(max(0.0, deadline - time.monotonic()))
        if self._reminder_thread is not None:
            # A look in progress finishes its store calls (quick) before the store closes.
            self._reminder_thread.join(max(1.0, deadline - time.monotonic()))
        self.store.close()

    def drain(self, timeout: float | None = None) -> bool:
        """Deliver what is due and wait until nothing is: every delivery committed so far was
        delivered, dead-lettered, or waits for a retry. False if ``timeout`` ran out first."""
        return self.worker.drain(timeout)

    @property
    def plugin_failures(self) -> list[PluginLoadFailure]:
        """Entry-point plugins that could not be loaded, and why."""
        return list(self.plugins.failures)

    # -- queries ------------------------------------------------------------------------------

    def get(self, incident_id: str) -> Incident:
        """The incident as of its latest event.

        Raises:
            UnknownIncidentError: no such incident.
        """
        return self._latest(self._id(incident_id), trust_cache=False)

    def history(self, incident_id: str) -> list[Event]:
        """Every event of the incident, oldest first."""
        return self.store.load(self._id(incident_id))

    def list(self, *, phase: str | None = None) -> builtins.list[Incident]:
        """All incidents, or those in ``phase``, oldest declaration first."""
        if phase is not None:
            phase = self.process.phase(phase).name
        return [self.get(incident_id) for incident_id in self.store.incident_ids(phase=phase)]

    def deliveries(
        self,
        *,
        status: DeliveryStatus | str | None = None,
        plugin: str | None = None,
        incident_id: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[Delivery]:
        """Outbox rows in commit order: which event went (or failed to go) to which plugin.

        Raises:
            InvalidFieldError: ``status`` is not one of pending, delivered, failed, dead.
        """
        return self.store.deliveries(
            status=_delivery_status(status),
            plugin=_optional_name(plugin, "plugin"),
            incident_id=None if incident_id is None else self._id(incident_id),
            limit=_limit(limit),
        )

    def retry_deliveries(
        self,
        *,
        status: DeliveryStatus | str | None = None,
        plugin: str | None = None,
        incident_id: str | None = None,
    ) -> int:
        """Requeue failed and dead-lettered deliveries (or only those with ``status``, for
        ``plugin``, of ``incident_id``): they become pending, due now, with their attempts
        reset. Returns how many were requeued.

        Raises:
            InvalidFieldError: ``status`` is neither failed nor dead.
        """
        wanted = _delivery_status(status)
        if wanted is not None and wanted not in (DeliveryStatus.FAILED, DeliveryStatus.DEAD):
            raise InvalidFieldError(
                f"only failed and dead deliveries can be retried, not {wanted.value}",
                field="status",
            )
        statuses = [wanted] if wanted is not None else [DeliveryStatus.FAILED, DeliveryStatus.DEAD]
        rows = [
            row
            for each in statuses
            for row in self.deliveries(status=each, plugin=plugin, incident_id=incident_id)
        ]
        requeued = self.store.requeue(rows, at=self.clock.now())
        if requeued and self._deliver:
            self.worker.wake()
        return requeued

    def stranded_deliveries(self) -> builtins.list[Delivery]:
        """Unfinished deliveries to plugins that are not installed here: kept, not dropped, for
        a worker that has the plugin (or for someone to install it)."""
        installed = {notifier.plugin for notifier in self.plugins.notifiers}
        return [
            row
            for each in (DeliveryStatus.PENDING, DeliveryStatus.FAILED)
            for row in self.store.deliveries(status=each)
            if row.plugin not in installed
        ]

    def requirements(
        self, incident_id: str, action: str, *, by: str | None = None, **payload: Any
    ) -> builtins.list[Requirement]:
        """Every requirement of ``action`` not met now; empty when it would be allowed.

        Asks the same guards a command does, without trying it. ``by`` defaults to the incident
        lead (or the reporter); ``payload`` holds the command's arguments (``item=``,
        ``release=``, ``role=``/``person=``) where a guard depends on them; guards that depend on
        an argument that is not given are not asked.
        """
        action = _action(action)
        incident = self.get(incident_id)
        actor = by if by is not None else (incident.lead or incident.roles.get("reporter", ""))
        now = self.clock.now()
        if action == "post_status_update" and "text" in payload and "phase" in payload:
            payload = self._status_payload(payload["text"], payload["phase"])
            payload["findings"] = self._review(incident, payload, now)
        context = Context(action, actor, now, payload)
        return list(self._decide(incident, context).unmet)

    def available_actions(self, incident_id: str, *, by: str | None = None) -> builtins.list[str]:
        """The actions that would be allowed now, in process order (see :meth:`requirements`)."""
        incident = self.get(incident_id)
        actor = by if by is not None else (incident.lead or incident.roles.get("reporter", ""))
        now = self.clock.now()
        if not self.plugins.has_policies:
            return self.process.available_actions(incident, actor, now)
        return [
            action
            for action in self.process.actions_in(incident.phase)
            if self._decide(incident, Context(action, actor, now)).allowed
        ]

    def next_reminder(self, incident_id: str) -> Due | None:
        """The next reminder to fall due on the incident (it may be overdue already), or None
        when none will as things stand (see :mod:`incident_flow.timers`)."""
        return next_reminder(self.get(incident_id), self.process)

    def review_status_post(
        self, incident_id: str, text: str, *, phase: str
    ) -> builtins.list[Finding]:
        """Check a status-page post against the communication rules without posting it.

        Returns every finding, each marked ``refused`` when the process would refuse the post
        for it (see :mod:`incident_flow.comms`).
        """
        incident = self.get(incident_id)
        payload = self._status_payload(text, phase)
        return list(self._review(incident, payload, self.clock.now()))

    def who_is_on_call(self, schedule: str | None = None) -> str | None:
        """Ask the plugins who is on call for ``schedule`` (``/genie whoisoncall``)."""
        return self.plugins.who_is_on_call(schedule, self.clock.now())

    # -- commands -----------------------------------------------------------------------------

    def declare(
        self,
        title: str,
        *,
        severity: Severity | str,
        customer_impact: bool,
        by: str,
        description: str = "",
        incident_id: str | None = None,
        at: datetime | None = None,
    ) -> Incident:
        """Start an incident in the process's first phase; ``by`` becomes its reporter.

        Raises:
            MinorIssueError: ``severity`` is minor; those go through the support process.
            DuplicateIncidentError: ``incident_id`` is taken.
        """
        title = _text(title, "title", limit=MAX_TITLE)
        description = _text(description, "description", empty_ok=True)
        level = Severity.parse(severity)
        if not isinstance(customer_impact, bool):
            raise InvalidFieldError(
                "customer_impact must be True or False", field="customer_impact"
            )
        actor = _actor(by)
        given_id = incident_id is not None
        new_id = self._id(incident_id) if given_id else f"inc-{uuid.uuid4().hex[:12]}"
        now = self.clock.now()
        moment = now if at is None else self._past_or_present(at, now)
        event = IncidentDeclared(
            incident_id=new_id,
            version=1,
            at=moment,
            actor=actor,
            title=title,
            description=description,
            severity=level,
            customer_impact=customer_impact,
            phase=self.process.initial,
            checklist=self._checklist,
        )
        incident = event.apply(None)
        events: builtins.list[Event] = [event]
        steps = [incident]
        for reminder in self._reminder_events(
            incident, due_reminders(incident, self.process, moment), moment
        ):
            incident = reminder.apply(incident)
            events.append(reminder)
            steps.append(incident)
        try:
            self._commit(None, events, steps)
        except ConcurrencyConflict as conflict:
            raise DuplicateIncidentError(f"incident id {new_id!r} is already taken") from conflict
        self._remember(incident)
        return incident

    def assign(
        self, incident_id: str, role: str, person: str, *, by: str, at: datetime | None = None
    ) -> Incident:
        """Give ``role`` to ``person`` (replacing whoever had it).

        Records a warning when the lead and the messenger of a customer-impacting incident are
        one person, and when a resolution owner is picked before any rollback was tried.
        """
        payload = {"role": self.process.check_role(role), "person": _actor(person, "person")}
        return self._run(incident_id, "assign", by, at, payload)

    def acknowledge(self, incident_id: str, *, by: str, at: datetime | None = None) -> Incident:
        """The Incident Lead acknowledges ownership ("I'm on it")."""
        return self._run(incident_id, "acknowledge", by, at, {})

    def page(
        self,
        incident_id: str,
        target: str,
        *,
        by: str,
        message: str = "",
        at: datetime | None = None,
    ) -> Incident:
        """Page ``target``, a team, schedule or person on call (``/genie alert … for …``).

        The page gets the id ``page-<version>``; if nobody acknowledges it within the process's
        ``page_ack_within`` (10 minutes), a ``page_unacknowledged`` reminder escalates it.
        """
        payload = {
            "target": _text(target, "target", limit=MAX_TITLE),
            "message": _text(message, "message", empty_ok=True),
        }
        return self._run(incident_id, "page", by, at, payload)

    def acknowledge_page(
        self, incident_id: str, page: str | None = None, *, by: str, at: datetime | None = None
    ) -> Incident:
        """``by`` answers a page. ``page`` may be left out when ``by`` is the target of an
        open page, or when only one page is open.

        Raises:
            InvalidFieldError: ``page`` is left out and it is not clear which page is meant.
        """
        actor = _actor(by)
        if page is None:
            page = self._page_for(self.get(incident_id), actor)
        payload = {"page": _text(page, "page", limit=MAX_TITLE)}
        return self._run(incident_id, "acknowledge_page", actor, at, payload)

    def triage(self, incident_id: str, *, by: str, at: datetime | None = None) -> Incident:
        """Mark the incident triaged."""
        return self.transition(incident_id, "triage", by=by, at=at)

    def start_mitigation(
        self, incident_id: str, *, by: str, at: datetime | None = None
    ) -> Incident:
        """Start mitigating (needs a lead who acknowledged; a messenger if customers are hit)."""
        return self.transition(incident_id, "start_mitigation", by=by, at=at)

    def record_rollback(
        self,
        incident_id: str,
        *,
        by: str,
        outcome: str,
        succeeded: bool | None = None,
        at: datetime | None = None,
    ) -> Incident:
        """Record an attempt to roll back to a known good state (the handbook's first move)."""
        if succeeded is not None and not isinstance(succeeded, bool):
            raise InvalidFieldError("succeeded must be True, False or None", field="succeeded")
        payload = {"outcome": _text(outcome, "outcome"), "succeeded": succeeded}
        return self._run(incident_id, "record_rollback", by, at, payload)

    def pause_release(
        self, incident_id: str, *, release: str, by: str, at: datetime | None = None
    ) -> Incident:
        """Pause ``release`` because of this incident.

        The event names the groups to alert (the process's ``comms.release_pause_groups``:
        delivery, customer support and customer engineering), and a
        ``release_paused_status_post`` reminder asks the messenger to post on the status page.
        """
        payload = {
            "release": _text(release, "release", limit=MAX_TITLE),
            "alert": self.process.comms.release_pause_groups,
        }
        return self._run(incident_id, "pause_release", by, at, payload)

    def resume_release(
        self, incident_id: str, *, release: str, by: str, at: datetime | None = None
    ) -> Incident:
        """Let a release paused by this incident go ahead."""
        payload = {"release": _text(release, "release", limit=MAX_TITLE)}
        return self._run(incident_id, "resume_release", by, at, payload)

    def post_status_update(
        self, incident_id: str, text: str, *, phase: str, by: str, at: datetime | None = None
    ) -> Incident:
        """Post a status-page update for customers, with its status phase (``identified``…).

        The post is checked against the process's communication rules (and plugins'): a rule
        the process makes refusing refuses the post with :class:`TransitionRefused` (one
        requirement ``comms:<rule>`` per finding); the others are recorded on the post as
        findings. See :mod:`incident_flow.comms`.

        Raises:
            UnknownPhaseError: ``phase`` is not a status phase of the process, nor mapped to one.
        """
        return self._run(
            incident_id, "post_status_update", by, at, self._status_payload(text, phase)
        )

    def change_severity(
        self, incident_id: str, severity: Severity | str, *, by: str, at: datetime | None = None
    ) -> Incident:
        """Raise or lower the severity (never to minor: that leaves the process)."""
        return self._run(
            incident_id, "change_severity", by, at, {"severity": Severity.parse(severity)}
        )

    def resolve(self, incident_id: str, *, by: str, at: datetime | None = None) -> Incident:
        """Mark the incident resolved."""
        return self.transition(incident_id, "resolve", by=by, at=at)

    def reopen(self, incident_id: str, *, by: str, at: datetime | None = None) -> Incident:
        """Go back to mitigating: the resolution did not hold."""
        return self.transition(incident_id, "reopen", by=by, at=at)

    def mark_false_positive(
        self, incident_id: str, *, reason: str, by: str, at: datetime | None = None
    ) -> Incident:
        """There was no incident after all. It stays on record, with ``reason``."""
        payload = {"reason": _text(reason, "reason")}
        return self._run(incident_id, "mark_false_positive", by, at, payload)

    def start_postmortem(
        self, incident_id: str, *, by: str, at: datetime | None = None
    ) -> Incident:
        """Begin the post-mortem checklist."""
        return self.transition(incident_id, "start_postmortem", by=by, at=at)

    def complete_item(
        self,
        incident_id: str,
        item: str,
        *,
        by: str,
        link: str | None = None,
        at: datetime | None = None,
    ) -> Incident:
        """Mark a post-mortem checklist item done; ``link`` says where its result is (the
        post-mortem document, an issue)."""
        payload: dict[str, Any] = {"item": item}
        if link is not None:
            payload["link"] = _text(link, "link", limit=MAX_TITLE * 10)
        return self._run(incident_id, "complete_item", by, at, payload, check_item=True)

    def add_follow_up(
        self,
        incident_id: str,
        title: str,
        *,
        by: str,
        owner: str | None = None,
        at: datetime | None = None,
    ) -> Incident:
        """Note follow-up work for after the incident (it becomes a follow-up issue); its id is
        ``followup-<version>``."""
        payload = {
            "title": _text(title, "title", limit=MAX_TITLE),
            "owner": None if owner is None else _actor(owner, "owner"),
        }
        return self._run(incident_id, "add_follow_up", by, at, payload)

    def record_external(
        self,
        incident_id: str,
        *,
        system: str,
        kind: str,
        external_id: str,
        by: str,
        source: str = "",
        url: str | None = None,
    ) -> Incident:
        """Record that an adapter made something outside for this incident, and its id there.

        Adapters call this right after making a channel, an alert, a status-page incident or an
        issue, and look for it with :meth:`Incident.external_ref
        <incident_flow.model.Incident.external_ref>` before making one, so that a redelivered
        event makes nothing twice. It is an :class:`~incident_flow.events.ExternalRefRecorded`
        event, allowed in every phase (a closed incident's channel is archived after it closed)
        and asked of no guard. Recording the same reference again (same ``system``, ``kind``,
        ``source`` and ``external_id``) writes nothing and returns the incident as it is.

        The event is bookkeeping of the plugins, not a change of the incident: it is not
        delivered to plugins (no outbox row), so recording never sets off more deliveries. A
        plugin that needs another's reference (the Slack channel, say) reads it from
        ``flow.get(incident_id).external_refs``.

        Args:
            incident_id: The incident.
            system: The adapter or vendor (``slack``).
            kind: What was made (``channel``).
            external_id: Its id at the vendor.
            by: Who made it: the plugin's name.
            source: What it was made for (an idempotency key, a page or follow-up id), or
                ``""`` when there is one per incident.
            url: Where people can see it, if it has an address.

        Raises:
            InvalidFieldError: a name or id is empty or too long.
            UnknownIncidentError: there is no such incident.
        """
        incident_id = self._id(incident_id)
        actor = _actor(by)
        fields: dict[str, Any] = {
            "system": _text(system, "system", limit=MAX_TITLE),
            "kind": _text(kind, "kind", limit=MAX_TITLE),
            "external_id": _text(external_id, "external_id", limit=MAX_TITLE),
            "source": _text(source, "source", limit=MAX_TITLE, empty_ok=True),
            "url": None if url is None else _text(url, "url"),
        }

        def build(incident: Incident) -> builtins.list[Event]:
            if any(
                ref.system == fields["system"]
                and ref.kind == fields["kind"]
                and ref.source == fields["source"]
                and ref.external_id == fields["external_id"]
                for ref in incident.external_refs
            ):
                return []  # recorded already: by an earlier call, or by the one we raced
            return [
                ExternalRefRecorded(
                    incident_id=incident_id,
                    version=incident.version + 1,
                    at=max(self.clock.now(), incident.updated_at),
                    actor=actor,
                    **fields,
                )
            ]

        incident, _ = self._append(incident_id, build, notify=False)
        return incident

    def waive_item(
        self, incident_id: str, item: str, *, reason: str, by: str, at: datetime | None = None
    ) -> Incident:
        """Skip a post-mortem checklist item, for ``reason``."""
        payload = {"item": item, "reason": _text(reason, "reason")}
        return self._run(incident_id, "waive_item", by, at, payload, check_item=True)

    def close(self, incident_id: str, *, by: str, at: datetime | None = None) -> Incident:
        """Close the incident (needs every required post-mortem checklist item done or waived).

        To release the flow's own resources, use :meth:`shutdown`.
        """
        return self.transition(incident_id, "close", by=by, at=at)

    def transition(
        self,
        incident_id: str,
        action: str,
        *,
        by: str,
        at: datetime | None = None,
        **arguments: str,
    ) -> Incident:
        """Run an action by name, such as one a team added (``monitor``).

        ``arguments`` (strings) reach the guards as ``context.payload`` and are recorded on an
        :class:`~incident_flow.events.ActionTaken` event for a team's own action.

        Raises:
            ValidationError: ``action`` is one of the handbook's actions that take arguments;
                call its own method (``flow.assign(...)``) instead.
        """
        action = _action(action)
        if action in _EFFECTS and action != "acknowledge":
            raise ValidationError(
                f"{action} takes arguments; call flow.{action}(...) instead", field="action"
            )
        payload = {name: _text(value, name) for name, value in arguments.items()}
        return self._run(incident_id, action, by, at, payload)

    # -- the path of one command ----------------------------------------------------------------

    def _run(
        self,
        incident_id: str,
        action: str,
        by: object,
        at: datetime | None,
        payload: dict[str, Any],
        *,
        check_item: bool = False,
    ) -> Incident:
        incident_id = self._id(incident_id)
        actor = _actor(by)

        def build(incident: Incident) -> builtins.list[Event]:
            if check_item and incident.item(payload["item"]) is None:
                names = ", ".join(item.name for item in incident.checklist) or "none"
                raise UnknownChecklistItemError(
                    f"no checklist item {payload['item']!r} on {incident_id}; items: {names}",
                    field="item",
                )
            moment = self._moment(incident, at)
            arguments = payload
            if action == "post_status_update":
                arguments = {**payload, "findings": self._review(incident, payload, moment)}
            context = Context(action, actor, moment, arguments, command=True)
            decision = self._decide(incident, context)
            if not decision.allowed:
                raise TransitionRefused(incident_id, action, incident.phase, decision.unmet)
            return self._events_for(incident, decision, context)

        incident, _ = self._append(incident_id, build)
        return incident

    def _append(
        self,
        incident_id: str,
        build: Callable[[Incident], builtins.list[Event]],
        *,
        trust_cache: bool = True,
        notify: bool = True,
    ) -> tuple[Incident, builtins.list[Event]]:
        """Load the incident, ``build`` its new events from it, append them with its version
        checked; the incident after them, and the events.

        Every write but a declaration goes this way. When someone else appended first, the
        incident is loaded again and ``build`` asked again, on the new state (a command's
        guards are decided again), after a random, growing pause; the last
        :class:`ConcurrencyConflict` is raised when the attempts run out. ``build`` returning
        no event writes nothing; ``build`` raising (a refusal) writes nothing either.

        Args:
            trust_cache: Let the first attempt use the cached incident (a stale one costs a
                conflict and a reload, never a lost update).
            notify: Queue a delivery of the events to every plugin.
        """
        lost: ConcurrencyConflict | None = None
        for attempt in range(self._attempts):
            if attempt:
                # Writers that keep colliding step aside for a random, growing while.
                time.sleep(random.uniform(0, CONFLICT_BACKOFF * 2 ** min(attempt, 6)))
            incident = self._latest(incident_id, trust_cache=trust_cache and attempt == 0)
            events = build(incident)
            if not events:
                return incident, events
            steps: builtins.list[Incident] = []
            current = incident
            for event in events:
                current = event.apply(current)
                steps.append(current)
            try:
                self._commit(incident, events, steps, notify=notify)
            except ConcurrencyConflict as conflict:
                lost = conflict
                self._forget(incident_id)  # stale: whoever tries next decides on the new state
                continue
            self._remember(current)
            return current, events
        assert lost is not None
        raise lost

    def _decide(self, incident: Incident, context: Context) -> Decision:
        decision = self.process.decide(incident, context)
        if decision.unmet and decision.unmet[0].name == "phase":
            return decision
        extra = self.plugins.requirements(incident, context.action, context)
        findings: Sequence[Finding] = context.payload.get("findings", ())
        if context.action == "post_status_update" and findings:
            extra = [
                *(
                    Requirement(f"comms:{finding.rule}", finding.message, finding.handbook_ref)
                    for finding in findings
                    if finding.refused
                ),
                *extra,
            ]
        if extra:
            return Decision(
                decision.action,
                decision.source,
                decision.dest,
                (*decision.unmet, *extra),
                decision.warnings,
            )
        return decision

    def _events_for(
        self, incident: Incident, decision: Decision, context: Context
    ) -> builtins.list[Event]:
        effect = _EFFECTS.get(decision.action)
        changes_phase = decision.dest is not None and decision.dest != incident.phase
        if effect is not None:
            specs = effect(incident, context.payload)
            if decision.action == "pause_release":
                specs.append(self._release_reminder(incident, context))
        elif context.payload or not changes_phase:
            # A team's own action leaves a trace even when the phase stays the same.
            specs = [(ActionTaken, {"action": decision.action, "arguments": dict(context.payload)})]
        else:
            specs = []
        if decision.dest is not None and changes_phase:
            dest = self.process.phase(decision.dest)
            specs.append(
                (
                    PhaseChanged,
                    {
                        "action": decision.action,
                        "source": incident.phase,
                        "dest": dest.name,
                        "resolves": self.process.is_active(incident.phase) and not dest.active,
                        "closes": dest.terminal,
                    },
                )
            )
        for warning in decision.warnings:
            specs.append(
                (
                    WarningRecorded,
                    {
                        "name": warning.name,
                        "reason": warning.reason,
                        "handbook_ref": warning.handbook_ref,
                    },
                )
            )
        return [
            cls(
                incident_id=incident.id,
                version=incident.version + offset,
                at=context.at,
                actor=context.actor,
                **fields,
            )
            for offset, (cls, fields) in enumerate(specs, start=1)
        ]

    def _commit(
        self,
        before: Incident | None,
        events: Sequence[Event],
        steps: Sequence[Incident],
        *,
        notify: bool = True,
    ) -> None:
        notifiers = self.plugins.notifiers if notify else ()
        deliveries = [
            Delivery(event.incident_id, event.version, notifier.plugin)
            for event in events
            for notifier in notifiers
        ]
        expected = before.version if before is not None else 0
        self.store.append(
            events[0].incident_id, expected, events, phase=steps[-1].phase, deliveries=deliveries
        )
        if deliveries and self._deliver:
            self.worker.wake(list(zip(events, steps, strict=True)))

    # -- reminders ------------------------------------------------------------------------------

    def fire_reminders(self, incident_id: str | None = None) -> builtins.list[ReminderDue]:
        """Record the reminders that fell due by now on one incident, or on every incident that
        is not in a terminal phase, and return the events recorded.

        Each occurrence is recorded once, however many flows or workers call this at the same
        moment: the append checks the incident's version, and a loser of that race decides
        again on the new state, where the reminder is already recorded. The background loop
        of the flow (``reminders=True``) and ``incident-flow worker`` call this; with a
        :class:`~incident_flow.clock.FakeClock`, call it after moving the clock.
        """
        if incident_id is not None:
            ids: Iterable[str] = [self._id(incident_id)]
        else:
            ids = [
                found
                for phase in self.process.phases
                if not phase.terminal
                for found in self.store.incident_ids(phase=phase.name)
            ]
        recorded: builtins.list[ReminderDue] = []
        for each in ids:
            recorded.extend(self._fire(each))
        return recorded

    def _fire(self, incident_id: str) -> builtins.list[ReminderDue]:
        def build(incident: Incident) -> builtins.list[Event]:
            now = max(self.clock.now(), incident.updated_at)
            dues = due_reminders(incident, self.process, now)
            return list(self._reminder_events(incident, dues, now)) if dues else []

        try:
            # Always the stored state: another worker may have recorded these very reminders.
            _, events = self._append(incident_id, build, trust_cache=False)
        except ConcurrencyConflict:
            logger.warning("reminders of %s not recorded: the incident kept changing", incident_id)
            return []
        return [event for event in events if isinstance(event, ReminderDue)]

    def _remind(self) -> None:
        failing = False
        while not self._stop_reminders.wait(self._reminder_interval):
            try:
                self.fire_reminders()
            except Exception:  # the loop must outlive a store outage; it tries again later
                # Said once per outage, not at every look.
                log = logger.debug if failing else logger.exception
                log(
                    "looking for due reminders failed; trying again every %ss",
                    self._reminder_interval,
                )
                failing = True
            else:
                if failing:
                    logger.warning("looking for due reminders works again")
                failing = False

    @staticmethod
    def _reminder_events(
        incident: Incident, dues: Sequence[Due], at: datetime
    ) -> builtins.list[ReminderDue]:
        return [
            ReminderDue(
                incident_id=incident.id,
                version=incident.version + offset,
                at=at,
                actor=ENGINE,
                reminder=due.reminder,
                key=due.key,
                due_at=due.due_at,
                recipient=due.recipient,
                person=due.person,
                subject=due.subject,
                message=due.message,
                missed=due.missed,
            )
            for offset, due in enumerate(dues, start=1)
        ]

    def _release_reminder(self, incident: Incident, context: Context) -> _EventSpec:
        release = context.payload["release"]
        paused_at_version = incident.version + 1  # the ReleasePaused event comes first
        groups = ", ".join(context.payload["alert"]) or "the teams that plan releases"
        return (
            ReminderDue,
            {
                "reminder": RELEASE_PAUSED_POST,
                "key": f"{RELEASE_PAUSED_POST}:{release}:v{paused_at_version}",
                "due_at": context.at,
                "recipient": str(Role.MESSENGER),
                "person": incident.messenger,
                "subject": release,
                "message": (
                    f"release {release} is paused: post on the status page for customers; the "
                    f"lead alerts {groups}"
                ),
            },
        )

    # -- status posts ---------------------------------------------------------------------------

    def _status_payload(self, text: object, phase: object) -> dict[str, Any]:
        if not isinstance(phase, str):
            raise InvalidFieldError(
                f"phase must be a status phase's name, not {phase!r}", field="phase"
            )
        return {"text": _text(text, "text"), "phase": self.process.check_status_phase(phase)}

    def _review(
        self, incident: Incident, payload: Mapping[str, Any], at: datetime
    ) -> tuple[Finding, ...]:
        post = StatusPost(payload["text"], payload["phase"], not incident.status_updates, at)
        rules = self.plugins.status_rules()
        try:
            return self.process.comms.review(post, rules)
        except IncidentFlowError:
            raise
        except Exception as error:
            raise PluginError(f"a status-post rule raised: {error!r}") from error

    @staticmethod
    def _page_for(incident: Incident, actor: str) -> str:
        open_pages = incident.open_pages
        if not open_pages:
            guard = HANDBOOK_GUARDS["page_open"]
            raise TransitionRefused(
                incident.id,
                "acknowledge_page",
                incident.phase,
                (Requirement(guard.name, guard.impossible_reason, guard.handbook_ref),),
            )
        for page in open_pages:
            if page.target == actor:
                return page.id
        if len(open_pages) == 1:
            return open_pages[0].id
        listed = ", ".join(f"{p.id} ({p.target})" for p in open_pages) or "none"
        raise InvalidFieldError(
            f"say which page {actor} acknowledges: open pages of {incident.id}: {listed}",
            field="page",
        )

    # -- the snapshot cache ---------------------------------------------------------------------

    def _latest(self, incident_id: str, *, trust_cache: bool) -> Incident:
        """The incident's state: the cached fold, caught up with the store unless trusted as is.

        The cache only saves folding; every append still checks the version in the store, so a
        stale snapshot costs a conflict and a reload, never a lost update.
        """
        cached = self._snapshots.get(incident_id)
        if cached is not None and trust_cache:
            return cached
        events = self.store.load(incident_id, after_version=cached.version if cached else 0)
        if not events and cached is not None:
            return cached
        incident = fold(events, cached)
        assert incident is not None  # a stored incident has at least its declaration
        self._remember(incident)
        return incident

    def _remember(self, incident: Incident) -> None:
        if not self._snapshot_limit:
            return
        with self._snapshot_lock:
            snapshots = self._snapshots
            known = snapshots.pop(incident.id, None)
            if known is not None and known.version > incident.version:
                incident = known  # another thread already cached a newer state
            elif known is None and len(snapshots) >= self._snapshot_limit:
                del snapshots[next(iter(snapshots))]  # the least recently cached
            snapshots[incident.id] = incident

    def _forget(self, incident_id: str) -> None:
        with self._snapshot_lock:
            self._snapshots.pop(incident_id, None)

    # -- argument checks ------------------------------------------------------------------------

    @staticmethod
    def _id(incident_id: object) -> str:
        if not isinstance(incident_id, str) or not incident_id.strip():
            raise InvalidFieldError(
                f"incident_id must be a non-empty string, not {incident_id!r}", field="incident_id"
            )
        return incident_id.strip()

    def _past_or_present(self, at: object, now: datetime) -> datetime:
        moment = ensure_utc(at)
        if moment > now:
            raise InvalidTimestampError(
                f"at={moment.isoformat()} is in the future (now is {now.isoformat()}); "
                "commands record what happened, so leave at= out for now",
                field="at",
            )
        return moment

    def _moment(self, incident: Incident, at: datetime | None) -> datetime:
        now = self.clock.now()
        if at is None:
            # Never before the last event, even if this host's clock is behind another's.
            return max(now, incident.updated_at)
        moment = self._past_or_present(at, now)
        if moment < incident.updated_at:
            raise TimeWentBackwardsError(
                f"at={moment.isoformat()} is before the incident's last event "
                f"({incident.updated_at.isoformat()}); enter a timeline in order",
                field="at",
            )
        return moment

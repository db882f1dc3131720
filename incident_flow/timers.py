"""Reminders: computed from an incident's log and the clock, recorded once when they fall due.

Nothing here keeps a timer running. A reminder rule looks at an incident (its status posts, its
pages, the reminders already recorded on it) and says when its next reminder falls due;
:func:`due_reminders` asks every rule of the process what is due at a given moment, and
:meth:`IncidentFlow.fire_reminders <incident_flow.IncidentFlow.fire_reminders>` records those as
:class:`~incident_flow.events.ReminderDue` events, which reach plugins like any other event.
Because each occurrence has a unique ``key`` and is appended with the incident's version checked,
a reminder is recorded exactly once, however many workers look for it at the same moment.

The handbook's reminders:

* ``status_update_due``: a customer-impacting incident that is not resolved needs a status-page
  post 30 minutes after the last one (or after it was declared), and every 30 minutes after
  that; the messenger is reminded (the lead when there is no messenger yet).
* ``page_unacknowledged``: a page nobody acknowledged within 10 minutes escalates, and again
  every 10 minutes while it stays unanswered and the incident is not resolved.
* ``announcement_day``: an incident that is open on a big announcement day (see
  :class:`~incident_flow.comms.CommsPolicy`) is brought to the marketing contact at once.
* ``release_paused_status_post``: recorded with every paused release, to remind the messenger
  to post on the status page (see :meth:`IncidentFlow.pause_release
  <incident_flow.IncidentFlow.pause_release>`).

When a worker was away and several occurrences of one reminder are overdue, one event records
the latest of them, with ``missed`` counting the others: nobody needs four reminders at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from incident_flow.errors import InvalidFieldError, ProcessDefinitionError
from incident_flow.model import Incident, Reminder, Role

if TYPE_CHECKING:
    from incident_flow.process import Process

__all__ = [
    "ANNOUNCEMENT_DAY",
    "ENGINE",
    "PAGE_UNACKNOWLEDGED",
    "RELEASE_PAUSED_POST",
    "STATUS_UPDATE_DUE",
    "AnnouncementDayRule",
    "Due",
    "PageEscalation",
    "ReminderRule",
    "StatusUpdateCadence",
    "TimerPolicy",
    "due_reminders",
    "next_reminder",
]

ENGINE = "incident-flow"
"""The actor of the events the library records on its own, such as reminders."""

STATUS_UPDATE_DUE = "status_update_due"
PAGE_UNACKNOWLEDGED = "page_unacknowledged"
ANNOUNCEMENT_DAY = "announcement_day"
RELEASE_PAUSED_POST = "release_paused_status_post"

MESSENGER_SECTION = "Messenger roles and responsibilities"
ROLES_SECTION = "How to identify folks to serve in incident lead and messenger roles"

_MAX_OCCURRENCES = 10_000
"""Occurrences of one rule looked at in one call; a rule that never moves on is a bug."""


@attrs.frozen
class Due:
    """One occurrence of a reminder: when it falls due, whom it is for, and its unique key."""

    reminder: str
    key: str
    """Unique per occurrence; a rule builds it from the reminder's name, subject and time."""
    due_at: datetime
    recipient: str
    """The role to remind (``messenger``, ``lead``), or a team or contact."""
    person: str | None = None
    """Who holds that role now, if anyone."""
    subject: str = ""
    """What it is about when there can be several at once (a page's id, a release)."""
    message: str = ""
    missed: int = 0
    """Earlier overdue occurrences this one stands for (see :func:`due_reminders`)."""


@runtime_checkable
class ReminderRule(Protocol):
    """A kind of reminder. Implement it for a team's own and add it with
    :meth:`TimerPolicy.with_rule` (or :meth:`Process.with_reminder
    <incident_flow.process.Process.with_reminder>`).

    ``next_due`` must be a pure function of the incident: the same incident gives the same
    answer, and once the returned occurrence is recorded on the incident (its key appears in
    ``incident.reminders``) the rule must move on to a later one or answer None. When several
    occurrences about one ``subject`` are overdue at once, only the latest is recorded (with
    ``missed`` counting the others), so a rule must treat every occurrence up to a recorded
    one as done: count from the latest recorded ``due_at``, as the handbook's rules do.
    """

    @property
    def name(self) -> str:
        """The reminder's name, unique within the process (``ReminderDue.reminder``)."""
        ...

    def next_due(self, incident: Incident, process: Process) -> Due | None:
        """The earliest occurrence not yet recorded on ``incident`` (its time may have passed),
        or None when nothing more will fall due as things stand."""
        ...


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _readable(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _minutes(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    return f"{minutes:g} minute{'s' if minutes != 1 else ''}"


def _recorded(incident: Incident, name: str, subject: str = "") -> list[Reminder]:
    return [r for r in incident.reminders if r.name == name and r.subject == subject]


def _is_open(incident: Incident, process: Process) -> bool:
    return not incident.false_positive and process.is_active(incident.phase)


def _positive(name: str) -> Callable[[object, attrs.Attribute[timedelta], timedelta], None]:
    def check(instance: object, attribute: attrs.Attribute[timedelta], value: object) -> None:
        if not isinstance(value, timedelta) or value <= timedelta(0):
            raise InvalidFieldError(
                f"{name} must be a positive timedelta, not {value!r}", field=name
            )

    return check


@attrs.frozen
class StatusUpdateCadence:
    """``status_update_due``: a status-page post every ``every`` while customers are hit and the
    incident is open, counted from the last post (or from the declaration)."""

    every: timedelta = attrs.field(
        default=timedelta(minutes=30), validator=_positive("status_update_every")
    )
    name: str = STATUS_UPDATE_DUE

    def next_due(self, incident: Incident, process: Process) -> Due | None:
        if not incident.customer_impact or not _is_open(incident, process):
            return None
        updates = incident.status_updates
        anchor = updates[-1].at if updates else incident.declared_at
        since = [r.due_at for r in _recorded(incident, self.name) if r.due_at > anchor]
        due_at = max(since, default=anchor) + self.every
        recipient = Role.MESSENGER if incident.messenger else Role.LEAD
        last = f"the last status-page post ({_readable(anchor)})" if updates else "declaring"
        return Due(
            self.name,
            f"{self.name}:{_stamp(due_at)}",
            due_at,
            str(recipient),
            incident.roles.get(recipient),
            message=(
                f"{_minutes(due_at - anchor)} since {last}: post a status update for "
                f"customers (the handbook asks for one at least every {_minutes(self.every)})"
            ),
        )


@attrs.frozen
class PageEscalation:
    """``page_unacknowledged``: a page nobody answered within ``within`` escalates, and again
    every ``within`` while it stays unanswered and the incident is open."""

    within: timedelta = attrs.field(
        default=timedelta(minutes=10), validator=_positive("page_ack_within")
    )
    name: str = PAGE_UNACKNOWLEDGED

    def next_due(self, incident: Incident, process: Process) -> Due | None:
        if not _is_open(incident, process):
            return None
        earliest: Due | None = None
        for page in incident.open_pages:
            recorded = [r.due_at for r in _recorded(incident, self.name, page.id)]
            due_at = max(recorded, default=page.at) + self.within
            if earliest is not None and earliest.due_at <= due_at:
                continue
            level = len(recorded) + 1
            earliest = Due(
                self.name,
                f"{self.name}:{page.id}:{_stamp(due_at)}",
                due_at,
                str(Role.LEAD),
                incident.lead or page.by,
                subject=page.id,
                message=(
                    f"the page to {page.target} ({page.id}, sent {_readable(page.at)}) is not "
                    f"acknowledged after {_minutes(due_at - page.at)}: escalate to the next "
                    f"responder (escalation {level})"
                ),
            )
        return earliest


@attrs.frozen
class AnnouncementDayRule:
    """``announcement_day``: an incident open on a big announcement day is brought to the
    marketing contact at once (when it is declared that day, or when the day begins)."""

    name: str = ANNOUNCEMENT_DAY

    def next_due(self, incident: Incident, process: Process) -> Due | None:
        for day in process.comms.announcement_days:
            key = f"{self.name}:{day.day.isoformat()}"
            if incident.reminded(key):
                continue
            start = datetime.combine(day.day, time(0), tzinfo=UTC)
            due_at = max(start, incident.declared_at)
            if due_at >= start + timedelta(days=1):
                continue  # declared after that day
            if incident.resolved_at is not None and incident.resolved_at <= due_at:
                continue  # over before the day began
            if incident.false_positive or process.is_terminal(incident.phase):
                continue
            return Due(
                self.name,
                key,
                due_at,
                "marketing",
                day.contact,
                subject=day.day.isoformat(),
                message=(
                    f"{day.day.isoformat()} is a big announcement day ({day.name}): tell "
                    f"{day.contact} about this {incident.severity} incident now"
                ),
            )
        return None


def _tuple_of_rules(rules: Iterable[ReminderRule]) -> tuple[ReminderRule, ...]:
    return tuple(rules)


@attrs.frozen
class TimerPolicy:
    """The reminders of a process and their intervals.

    Raises:
        InvalidFieldError: an interval is not a positive timedelta.
        ProcessDefinitionError: two rules share a name, or a rule is not a
            :class:`ReminderRule`.
    """

    status_update_every: timedelta = attrs.field(
        default=timedelta(minutes=30), validator=_positive("status_update_every")
    )
    """The longest a customer-impacting incident may go without a status-page post (the
    handbook: 30 minutes)."""
    page_ack_within: timedelta = attrs.field(
        default=timedelta(minutes=10), validator=_positive("page_ack_within")
    )
    """How long a page may stay unacknowledged before it escalates (the handbook's on-call
    rule: 10 minutes)."""
    rules: tuple[ReminderRule, ...] = attrs.field(default=(), converter=_tuple_of_rules)
    """A team's own reminder rules, asked after the handbook's."""

    def __attrs_post_init__(self) -> None:
        for rule in self.rules:
            if not isinstance(rule, ReminderRule):
                raise ProcessDefinitionError(
                    f"reminder rule {rule!r} needs a name and a next_due(incident, process) "
                    "method (see incident_flow.timers.ReminderRule)"
                )
        names = [rule.name for rule in self.all_rules()]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ProcessDefinitionError(
                f"reminder rule name(s) {', '.join(duplicates)} used twice; give each rule its "
                "own name"
            )

    def all_rules(self) -> tuple[ReminderRule, ...]:
        """The handbook's rules with this policy's intervals, then the team's own."""
        return (
            StatusUpdateCadence(self.status_update_every),
            PageEscalation(self.page_ack_within),
            AnnouncementDayRule(),
            *self.rules,
        )

    def with_rule(self, rule: ReminderRule) -> TimerPolicy:
        """Add a team's own reminder rule."""
        return attrs.evolve(self, rules=(*self.rules, rule))


def _record(incident: Incident, due: Due) -> Incident:
    """``incident`` as if ``due`` had been recorded (to ask a rule for the one after)."""
    reminder = Reminder(
        due.reminder,
        due.key,
        due.due_at,
        due.due_at,
        due.recipient,
        due.person,
        due.subject,
        due.message,
    )
    return attrs.evolve(incident, reminders=(*incident.reminders, reminder))


def _occurrences(
    rule: ReminderRule, incident: Incident, process: Process, until: datetime
) -> Iterable[Due]:
    """Every occurrence of ``rule`` due by ``until``, in order, as if each were recorded."""
    seen: set[str] = set()
    for _ in range(_MAX_OCCURRENCES):
        due = rule.next_due(incident, process)
        if due is None or due.due_at > until:
            return
        if due.key in seen or incident.reminded(due.key):
            raise ProcessDefinitionError(
                f"reminder rule {rule.name!r} returned {due.key!r} again after it was recorded; "
                "next_due must move on once an occurrence is on the incident"
            )
        seen.add(due.key)
        yield due
        incident = _record(incident, due)


def due_reminders(incident: Incident, process: Process, now: datetime) -> list[Due]:
    """The reminders due on ``incident`` at ``now`` and not recorded yet, oldest first.

    Several overdue occurrences of one reminder about one subject come back as the latest of
    them, with ``missed`` counting the others.
    """
    result: list[Due] = []
    for rule in process.timers.all_rules():
        latest: dict[str, tuple[Due, int]] = {}
        for due in _occurrences(rule, incident, process, now):
            before = latest.get(due.subject)
            latest[due.subject] = (due, 0 if before is None else before[1] + 1)
        result.extend(attrs.evolve(due, missed=missed) for due, missed in latest.values())
    result.sort(key=lambda due: due.due_at)
    return result


def next_reminder(incident: Incident, process: Process) -> Due | None:
    """The next reminder to fall due on ``incident`` (possibly overdue already), or None."""
    upcoming: Sequence[Due] = [
        due
        for due in (rule.next_due(incident, process) for rule in process.timers.all_rules())
        if due is not None
    ]
    return min(upcoming, key=lambda due: due.due_at, default=None)

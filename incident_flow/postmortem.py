"""The post-mortem document of an incident, written from its event log.

The handbook's post-mortem asks the incident lead to "generate a postmortem, document details
and publish" it. :func:`render_postmortem` writes that document as Markdown (as GitHub renders
it, with a Mermaid chart and footnotes) from the incident's whole log, oldest event first::

    from incident_flow.postmortem import render_postmortem

    markdown = render_postmortem(flow.history(incident_id), flow.process)

:func:`build_postmortem` returns the :class:`PostMortem` behind the document, whose properties
hold the figures (phase spans, key times, role holders, pages) for other uses. The log is the
only source: the document is the same whenever it is written from the same events, and it
works for any process (a team's own phases, roles, actions and checklist), for an incident
that is still open (what has not happened yet says "not yet") and for a false positive.

**Key times**, each from the moment the incident was declared:

* *time to acknowledge*: to the first "I'm on it" (``acknowledge``) of the person who was the
  Incident Lead at that moment;
* *time to mitigate*: to the first rollback recorded as successful (the handbook's first move
  is to roll back to a known good state), or to the resolution when it came before any
  successful rollback. A false positive that no successful rollback preceded had nothing to
  mitigate: None. The document says which of the two it measured;
* *time to resolve*: to the first time the incident left the process's active phases
  (``incident.resolved_at``; a reopened incident keeps its first resolution);
* per page: from the page to its acknowledgement.

All times are UTC, written like ``2024-05-14 09:02 UTC``; durations like ``1 h 12 min``,
``4 min`` or, under a minute, ``40 s`` (whole minutes, rounded down).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import attrs

from incident_flow.console import format_utc
from incident_flow.errors import InvalidFieldError, UnknownPhaseError
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
from incident_flow.model import ChecklistItem, Incident, ItemState, Page, Role, Severity
from incident_flow.process import HANDBOOK, Process
from incident_flow.timers import PAGE_UNACKNOWLEDGED

__all__ = [
    "PageTiming",
    "PhaseSpan",
    "PostMortem",
    "ReleaseHold",
    "RoleHolding",
    "build_postmortem",
    "format_duration",
    "render_postmortem",
]

MitigationBasis = Literal["rollback", "resolution"]
"""What :attr:`PostMortem.time_to_mitigate` measured to: the first successful rollback, or the
resolution."""

NOT_YET = "not yet"
NEVER = "never"
_DASH = "—"


def format_duration(delta: timedelta) -> str:
    """Return ``delta`` as people read it: ``1 h 12 min``, ``4 min``, ``2 d 3 h``, ``40 s``.

    Whole minutes, rounded down; seconds only under a minute.
    """
    if delta < timedelta(0):
        return "-" + format_duration(-delta)
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    days, rest = divmod(seconds // 60, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes:
        parts.append(f"{minutes} min")
    return " ".join(parts)


# -- the figures -----------------------------------------------------------------------------


@attrs.frozen
class PhaseSpan:
    """A stretch of time the incident spent in one phase, from entering it to leaving it."""

    phase: str
    title: str
    """The phase's title in the process (its name, readably, when the process has none)."""
    start: datetime
    end: datetime | None
    """When the incident left the phase; None while it is still in it."""
    terminal: bool = False
    """True for a terminal phase (closed, false positive): the incident never leaves it."""

    def duration(self, until: datetime) -> timedelta:
        """How long the span lasted; a span still open is taken to end at ``until``."""
        return (self.end if self.end is not None else until) - self.start


@attrs.frozen
class RoleHolding:
    """One person holding one role, from being assigned it until someone else was."""

    role: str
    title: str
    """The role's title in the process (``Incident Lead``)."""
    person: str
    since: datetime
    by: str
    """Who assigned the role (for the reporter: the reporter, by declaring)."""
    until: datetime | None = None
    """When the role went to someone (or was given again); None while it is held."""
    acknowledged_at: datetime | None = None
    """For the Incident Lead: the first "I'm on it" while holding the role."""


@attrs.frozen
class PageTiming:
    """A page, how long until someone acknowledged it, and how often it escalated."""

    page: Page
    time_to_acknowledge: timedelta | None
    """From the page to its acknowledgement; None while nobody acknowledged it."""
    escalations: int
    """``page_unacknowledged`` reminders recorded for it."""


@attrs.frozen
class ReleaseHold:
    """A release paused because of the incident, and when it was let go again."""

    release: str
    paused_at: datetime
    paused_by: str
    alert: tuple[str, ...]
    """The groups the pause was to be announced to (``@delivery-support``…)."""
    resumed_at: datetime | None = None
    resumed_by: str | None = None


@attrs.frozen
class _Facts:
    """What one pass over the log finds; :class:`PostMortem` exposes it."""

    spans: tuple[PhaseSpan, ...]
    holdings: tuple[RoleHolding, ...]
    acknowledged: OwnershipAcknowledged | None
    first_good_rollback: RollbackRecorded | None
    resolution: PhaseChanged | None
    resolved_as_false_positive: bool
    false_positive: FalsePositiveMarked | None
    escalations: Mapping[str, int]
    holds: tuple[ReleaseHold, ...]
    severity_changes: tuple[SeverityChanged, ...]


def _analyse(events: Sequence[Event], process: Process) -> _Facts:
    declared = events[0]
    assert isinstance(declared, IncidentDeclared)
    naming = _Naming(process)
    spans = [
        PhaseSpan(
            declared.phase,
            naming.phase(declared.phase),
            declared.at,
            None,
            naming.is_terminal(declared.phase, closes=False),
        )
    ]
    holdings = [
        RoleHolding(
            str(Role.REPORTER),
            naming.role(Role.REPORTER),
            declared.actor,
            declared.at,
            declared.actor,
        )
    ]
    current: dict[str, int] = {str(Role.REPORTER): 0}
    acknowledged: OwnershipAcknowledged | None = None
    good_rollback: RollbackRecorded | None = None
    resolution: PhaseChanged | None = None
    as_false_positive = False
    false_positive: FalsePositiveMarked | None = None
    escalations: dict[str, int] = {}
    holds: list[ReleaseHold] = []
    severity_changes: list[SeverityChanged] = []
    previous: Event = declared
    for event in events[1:]:
        match event:
            case PhaseChanged():
                spans[-1] = attrs.evolve(spans[-1], end=event.at)
                spans.append(
                    PhaseSpan(
                        event.dest,
                        naming.phase(event.dest),
                        event.at,
                        None,
                        naming.is_terminal(event.dest, closes=event.closes),
                    )
                )
                if event.resolves and resolution is None:
                    resolution = event
                    as_false_positive = isinstance(previous, FalsePositiveMarked)
            case RoleAssigned():
                held = current.get(event.role)
                if held is not None:
                    holdings[held] = attrs.evolve(holdings[held], until=event.at)
                current[event.role] = len(holdings)
                holdings.append(
                    RoleHolding(
                        event.role, naming.role(event.role), event.person, event.at, event.actor
                    )
                )
            case OwnershipAcknowledged():
                lead = current.get(str(Role.LEAD))
                if lead is not None and holdings[lead].person == event.actor:
                    if holdings[lead].acknowledged_at is None:
                        holdings[lead] = attrs.evolve(holdings[lead], acknowledged_at=event.at)
                    if acknowledged is None:
                        acknowledged = event
            case RollbackRecorded():
                if event.succeeded and good_rollback is None:
                    good_rollback = event
            case FalsePositiveMarked():
                false_positive = event
            case ReminderDue():
                if event.reminder == PAGE_UNACKNOWLEDGED:
                    escalations[event.subject] = escalations.get(event.subject, 0) + 1
            case ReleasePaused():
                holds.append(ReleaseHold(event.release, event.at, event.actor, event.alert))
            case ReleaseResumed():
                for index in range(len(holds) - 1, -1, -1):
                    hold = holds[index]
                    if hold.release == event.release and hold.resumed_at is None:
                        holds[index] = attrs.evolve(
                            hold, resumed_at=event.at, resumed_by=event.actor
                        )
                        break
            case SeverityChanged():
                severity_changes.append(event)
            case _:
                pass
        previous = event
    return _Facts(
        spans=tuple(spans),
        holdings=tuple(holdings),
        acknowledged=acknowledged,
        first_good_rollback=good_rollback,
        resolution=resolution,
        resolved_as_false_positive=as_false_positive,
        false_positive=false_positive,
        escalations=escalations,
        holds=tuple(holds),
        severity_changes=tuple(severity_changes),
    )


@attrs.frozen
class PostMortem:
    """An incident's post-mortem: the incident, its log, and the figures read from the log.

    Build it with :func:`build_postmortem`, which checks the log and folds the incident from
    it; :meth:`to_markdown` writes the document. ``process`` names the phases, roles and
    checklist items (a team's own process, or :data:`~incident_flow.process.HANDBOOK`).
    """

    incident: Incident
    """The incident as of the last event, folded from ``events``."""
    events: tuple[Event, ...] = attrs.field(repr=False)
    """The whole log, oldest first (starting with the declaration)."""
    process: Process = attrs.field(default=HANDBOOK, repr=False)
    _facts: _Facts = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        log = _checked_log(self.events)
        object.__setattr__(self, "events", log)
        object.__setattr__(self, "_facts", _analyse(log, self.process))

    # -- times ------------------------------------------------------------------------------

    @property
    def declared_at(self) -> datetime:
        """When the incident was declared: where every key time starts."""
        return self.incident.declared_at

    @property
    def last_event_at(self) -> datetime:
        """When the last event of the log happened: where a span still open is taken to end."""
        return self.events[-1].at

    @property
    def phase_spans(self) -> tuple[PhaseSpan, ...]:
        """Every stay in a phase, in order, from the declaration and each phase change. A
        phase entered twice (a reopened incident back in mitigating) has two spans; the last
        span has ``end`` None. Their durations add up to the time from the declaration to the
        last event."""
        return self._facts.spans

    @property
    def time_in_phase(self) -> Mapping[str, timedelta]:
        """Phase name → the time spent in it over all its spans (an open span ends at the
        last event), in the order the phases were first entered."""
        totals: dict[str, timedelta] = {}
        for span in self.phase_spans:
            totals[span.phase] = totals.get(span.phase, timedelta(0)) + span.duration(
                self.last_event_at
            )
        return totals

    @property
    def acknowledged_at(self) -> datetime | None:
        """The first "I'm on it" of whoever was the Incident Lead at that moment, or None."""
        event = self._facts.acknowledged
        return event.at if event is not None else None

    @property
    def acknowledged_by(self) -> str | None:
        """The lead who acknowledged ownership first, or None."""
        event = self._facts.acknowledged
        return event.actor if event is not None else None

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        """From the declaration to :attr:`acknowledged_at`; None while no lead said "I'm on
        it"."""
        at = self.acknowledged_at
        return at - self.declared_at if at is not None else None

    @property
    def mitigation_basis(self) -> MitigationBasis | None:
        """``"rollback"`` when :attr:`time_to_mitigate` runs to the first successful rollback,
        ``"resolution"`` when it runs to the resolution (it came before any successful
        rollback, or none succeeded), None when it is not known (yet)."""
        facts = self._facts
        rollback = facts.first_good_rollback
        resolved = self.incident.resolved_at
        if rollback is not None and (resolved is None or rollback.at <= resolved):
            return "rollback"
        if resolved is not None and not facts.resolved_as_false_positive:
            return "resolution"
        return None

    @property
    def mitigated_at(self) -> datetime | None:
        """When the impact was mitigated (see :attr:`mitigation_basis`), or None."""
        basis = self.mitigation_basis
        if basis == "rollback":
            assert self._facts.first_good_rollback is not None
            return self._facts.first_good_rollback.at
        if basis == "resolution":
            return self.incident.resolved_at
        return None

    @property
    def time_to_mitigate(self) -> timedelta | None:
        """From the declaration to the first rollback recorded as successful (the handbook's
        first move: back to a known good state), or to the resolution if that came first or
        no rollback succeeded. None while neither happened, and for a false positive that no
        successful rollback preceded (there was nothing to mitigate)."""
        at = self.mitigated_at
        return at - self.declared_at if at is not None else None

    @property
    def time_to_resolve(self) -> timedelta | None:
        """From the declaration to the first time the incident left the active phases
        (``incident.resolved_at``; for a false positive, when it was marked one); None while
        it is unresolved."""
        resolved = self.incident.resolved_at
        return resolved - self.declared_at if resolved is not None else None

    @property
    def resolved_as_false_positive(self) -> bool:
        """True when the resolution was marking the incident a false positive."""
        return self._facts.resolved_as_false_positive

    # -- people and pages -------------------------------------------------------------------

    @property
    def role_holdings(self) -> tuple[RoleHolding, ...]:
        """Every holder of every role over time, in the process's order of roles (a team's
        other roles after them), earlier holders first; the reporter is the declarer."""
        order = {role: index for index, role in enumerate(self.process.roles)}
        return tuple(
            sorted(
                self._facts.holdings,
                key=lambda holding: (order.get(holding.role, len(order)), holding.since),
            )
        )

    @property
    def page_timings(self) -> tuple[PageTiming, ...]:
        """Each page with the time to its acknowledgement and its escalations, in order."""
        return tuple(
            PageTiming(
                page,
                page.acknowledged_at - page.at if page.acknowledged_at is not None else None,
                self._facts.escalations.get(page.id, 0),
            )
            for page in self.incident.pages
        )

    @property
    def release_holds(self) -> tuple[ReleaseHold, ...]:
        """Each release pause, with its resumption when there was one, in order."""
        return self._facts.holds

    @property
    def severity_changes(self) -> tuple[SeverityChanged, ...]:
        """Every change of severity, in order."""
        return self._facts.severity_changes

    @property
    def is_over(self) -> bool:
        """True once the incident is in a terminal phase: what did not happen, never will."""
        return bool(self.phase_spans[-1].terminal)

    # -- the document -----------------------------------------------------------------------

    def to_markdown(self) -> str:
        """The post-mortem document, in Markdown (see the module's docstring)."""
        return _Writer(self).document()


_HINT = "pass the incident's whole log, oldest first: flow.history(incident_id)"


def _checked_log(events: object) -> tuple[Event, ...]:
    """``events`` as a tuple, if it can be an incident's log (see :func:`build_postmortem`)."""
    if isinstance(events, str | bytes) or not isinstance(events, Iterable):
        raise InvalidFieldError(
            f"events must be a sequence of events, not {type(events).__name__}; {_HINT}",
            field="events",
        )
    log = tuple(events)
    if not log:
        raise InvalidFieldError(f"events is empty; {_HINT}", field="events")
    for item in log:
        if not isinstance(item, Event):
            raise InvalidFieldError(
                f"events holds a {type(item).__name__}, not an event; {_HINT}", field="events"
            )
    first = log[0]
    if not isinstance(first, IncidentDeclared):
        raise InvalidFieldError(
            f"events starts with {first.type} (version {first.version}), not IncidentDeclared; "
            f"{_HINT}",
            field="events",
        )
    others = sorted({event.incident_id for event in log} - {first.incident_id})
    if others:
        raise InvalidFieldError(
            f"events mixes incidents ({first.incident_id}, {', '.join(others)}); {_HINT}",
            field="events",
        )
    return log


def build_postmortem(events: Sequence[Event], process: Process = HANDBOOK) -> PostMortem:
    """Read an incident's post-mortem from its whole log, oldest event first.

    Args:
        events: every event of one incident, starting with its declaration:
            ``flow.history(incident_id)``.
        process: the process the incident follows, for the titles of phases, roles and
            checklist items; the handbook's by default.

    Raises:
        InvalidFieldError: ``events`` is empty, holds something that is not an event, does not
            start with the incident's declaration, or mixes incidents (``field="events"``);
            ``process`` is not a :class:`~incident_flow.process.Process`
            (``field="process"``).
        CorruptEventError: the events skip or repeat a version.
    """
    log = _checked_log(events)
    if not isinstance(process, Process):
        raise InvalidFieldError(
            f"process must be a Process, not {type(process).__name__}", field="process"
        )
    incident = fold(list(log))
    assert incident is not None
    return PostMortem(incident, log, process)


def render_postmortem(events: Sequence[Event], process: Process = HANDBOOK) -> str:
    """The post-mortem document of the incident whose whole log is ``events``, in Markdown:
    ``build_postmortem(events, process).to_markdown()`` (see :func:`build_postmortem` for the
    errors)."""
    return build_postmortem(events, process).to_markdown()


# -- Markdown --------------------------------------------------------------------------------

_SPECIAL = re.compile(r"([\\`*\[\]<>~|])")
_LOOSE_UNDERSCORE = re.compile(r"(?<!\w)_|_(?!\w)")
_ENTITY = re.compile(r"&(?=#?\w+;)")
_BLOCK_START = re.compile(r"^([#>+=-])")
_ORDERED_START = re.compile(r"^(\d+)([.)])")


def _escape(text: str) -> str:
    """``text`` with the characters Markdown would read as markup escaped (one line)."""
    text = _SPECIAL.sub(r"\\\1", text)
    text = _LOOSE_UNDERSCORE.sub(r"\\_", text)
    return _ENTITY.sub("&amp;", text)


def _inline(text: str) -> str:
    """``text`` as inline Markdown: on one line, markup escaped."""
    return _escape(" ".join(text.split()))


def _cell(text: str) -> str:
    """``text`` for a table cell (pipes escaped), a dash when empty."""
    return _inline(text) or _DASH


def _line_start(text: str) -> str:
    """``text`` (already escaped) safe at the start of a line: no heading, quote, list…"""
    text = _BLOCK_START.sub(r"\\\1", text)
    return _ORDERED_START.sub(r"\1\\\2", text)


def _blockquote(text: str) -> list[str]:
    """``text`` as a blockquote: every line prefixed with ``> ``, markup escaped."""
    lines = text.strip().splitlines() or [""]
    return [f"> {_line_start(_escape(line.strip()))}".rstrip() for line in lines]


def _link(target: str) -> str:
    """``target`` as a Markdown link that shows it."""
    flat = " ".join(target.split())
    destination = flat.replace("\\", "%5C").replace("<", "%3C").replace(">", "%3E")
    return f"[{_inline(flat)}](<{destination}>)"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A GitHub table; cells must be escaped already."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _humanize(name: str) -> str:
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else name


def _quoted(text: str, limit: int = 100) -> str:
    """``text`` flattened and cut at a word near ``limit`` characters, escaped, in quotes."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        cut = flat[:limit].rsplit(" ", 1)[0] if " " in flat[:limit] else flat[:limit]
        flat = cut.rstrip(",;:.") + "…"
    return f"“{_escape(flat)}”"


_MERMAID_KEYWORD = re.compile(
    r"^(?:gantt|dateformat|inclusiveenddates|topaxis|axisformat|tickinterval|includes|excludes"
    r"|todaymarker|weekday|weekend|title|acctitle|accdescr|section|click|call|href"
    r"|\d{4}-\d{2}-\d{2})",
    re.IGNORECASE,
)


def _mermaid_name(title: str) -> str:
    """A phase title as a Mermaid gantt task name: no ``:``, ``#``, ``;`` or ``%``, one line,
    and never read as one of the chart's keywords."""
    name = " ".join(re.sub(r"[:#;%]", " ", title).split()) or "Phase"
    return f"Phase {name}" if _MERMAID_KEYWORD.match(name) else name


def _mermaid_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M")


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


class _Naming:
    """Titles from the process, with readable fallbacks for names it does not know."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.items = {item.name: item.title for item in process.checklist}

    def phase(self, name: str) -> str:
        try:
            return self.process.phase(name).title or _humanize(name)
        except UnknownPhaseError:
            return _humanize(name)

    def is_terminal(self, name: str, *, closes: bool) -> bool:
        try:
            return self.process.is_terminal(name)
        except UnknownPhaseError:
            return closes

    def role(self, name: str) -> str:
        return self.process.roles.get(name) or _humanize(name)

    def item(self, name: str) -> str:
        return self.items.get(name) or name


class _Writer:
    """Writes one post-mortem as Markdown, section by section."""

    def __init__(self, postmortem: PostMortem) -> None:
        self.pm = postmortem
        self.incident = postmortem.incident
        self.naming = _Naming(postmortem.process)
        self.lead_title = self.naming.role(Role.LEAD)

    def document(self) -> str:
        sections = [
            self.summary(),
            self.severity(),
            self.roles(),
            self.key_times(),
            self.timeline(),
            self.status_posts(),
            self.rollbacks_and_releases(),
            self.reminders(),
            self.warnings(),
            self.checklist(),
            self.follow_ups(),
            self.outside(),
            self.other_actions(),
            self.phases(),
            self.footnotes(),
        ]
        return "\n\n".join("\n".join(lines) for lines in sections if lines) + "\n"

    # -- helpers --------------------------------------------------------------------------

    def pending(self) -> str:
        """What to say of something that has not happened: "never" once the incident is over."""
        return NEVER if self.pm.is_over else NOT_YET

    def since_declared(self, moment: datetime) -> str:
        return format_duration(moment - self.incident.declared_at)

    def resolver(self) -> str:
        """`` by <who>`` for whoever resolved the incident, if known."""
        resolution = self.pm._facts.resolution
        return f" by {_inline(resolution.actor)}" if resolution is not None else ""

    def false_positive_reason(self) -> str:
        return _inline(self.incident.false_positive_reason or "") or "no reason given"

    # -- 1. title and summary ------------------------------------------------------------------

    def summary(self) -> list[str]:
        incident = self.incident
        pm = self.pm
        sentences = [
            f"Incident {_inline(incident.id)}: severity **{incident.severity}**, customer impact "
            f"**{'yes' if incident.customer_impact else 'no'}**.",
            f"Declared by {_inline(pm.events[0].actor)} at {format_utc(incident.declared_at)}.",
        ]
        resolved = incident.resolved_at
        marked = pm._facts.false_positive
        if pm.resolved_as_false_positive and resolved is not None:
            who = f" by {_inline(marked.actor)}" if marked is not None else ""
            sentences.append(
                f"Marked a **false positive**{who} at {format_utc(resolved)}, "
                f"{self.since_declared(resolved)} after it was declared: "
                f"{self.false_positive_reason()}."
            )
        else:
            if resolved is not None:
                sentences.append(
                    f"Resolved at {format_utc(resolved)}, {self.since_declared(resolved)} after "
                    "it was declared."
                )
            else:
                sentences.append("Not yet resolved.")
            if incident.false_positive:
                who = (
                    f" by {_inline(marked.actor)} at {format_utc(marked.at)}"
                    if marked is not None
                    else ""
                )
                sentences.append(
                    f"Marked a **false positive**{who}: {self.false_positive_reason()}."
                )
        phase = _inline(self.naming.phase(incident.phase))
        if pm.is_over:
            if not incident.false_positive:
                ended = incident.closed_at or pm.phase_spans[-1].start
                sentences.append(f"{phase} at {format_utc(ended)}.")
        else:
            sentences.append(f"Not yet closed: the incident is in the {phase} phase.")
        lines = [f"# Post-mortem: {_inline(incident.title) or _inline(incident.id)}", ""]
        lines.append(" ".join(sentences))
        lines.append("")
        if incident.description.strip():
            lines += _blockquote(incident.description)
        else:
            lines.append("No description was given.")
        count = len(self.pm.events)
        lines += [
            "",
            f"_Written from the incident's event log: {count} event{'s' * (count != 1)}, the "
            f"last at {format_utc(self.pm.last_event_at)}. All times are UTC._",
        ]
        return lines

    # -- 2. severity ---------------------------------------------------------------------------

    def severity(self) -> list[str]:
        incident = self.incident
        changes = self.pm.severity_changes
        declared = changes[0].previous if changes else incident.severity
        lines = ["## Severity and impact", ""]
        if changes:
            lines.append(f"Severity: **{incident.severity}** (declared {declared}).")
            lines.append("")
            for change in changes:
                raised = change.severity is Severity.CRITICAL
                lines.append(
                    f"- {format_utc(change.at)}: {_inline(change.actor)} "
                    f"{'raised' if raised else 'lowered'} the severity from {change.previous} "
                    f"to {change.severity}"
                )
        else:
            lines.append(f"Severity: **{incident.severity}**, unchanged since the declaration.")
        lines += [
            "",
            "Customer impact: "
            + (
                "**yes**: customers were affected."
                if incident.customer_impact
                else "**no**: customers were not affected."
            ),
        ]
        return lines

    # -- 3. roles --------------------------------------------------------------------------------

    def roles(self) -> list[str]:
        holdings = self.pm.role_holdings
        held = {holding.role for holding in holdings}
        rows: list[list[str]] = []
        missing = [role for role in self.pm.process.roles if role not in held]
        for holding in holdings:
            notes: list[str] = []
            if holding is self.pm._facts.holdings[0]:
                notes.append("declared the incident")
            if holding.role == Role.LEAD:
                if holding.acknowledged_at is not None:
                    notes.append(f"acknowledged ownership at {format_utc(holding.acknowledged_at)}")
                elif holding.until is not None or self.pm.is_over:
                    notes.append("never acknowledged ownership")
                else:
                    notes.append("has not yet acknowledged ownership")
            if holding.until is not None:
                notes.append(f"until {format_utc(holding.until)}")
            rows.append(
                [
                    _cell(holding.title),
                    _cell(holding.person),
                    format_utc(holding.since),
                    _cell(holding.by),
                    _cell("; ".join(notes)),
                ]
            )
        for role in missing:
            rows.append([_cell(self.naming.role(role)), "not assigned", _DASH, _DASH, _DASH])
        return [
            "## Roles",
            "",
            *_table(["Role", "Person", "Assigned at", "By", "Notes"], rows),
        ]

    # -- 4. key times ----------------------------------------------------------------------------

    def key_times(self) -> list[str]:
        pm = self.pm
        rows: list[list[str]] = []
        at = pm.acknowledged_at
        rows.append(
            [
                "Time to acknowledge[^acknowledge]",
                format_duration(at - pm.declared_at) if at is not None else self.pending(),
                f"{format_utc(at)}: {_inline(pm.acknowledged_by or '')} acknowledged ownership "
                f"as {_inline(self.lead_title)}"
                if at is not None
                else _DASH,
            ]
        )
        basis = pm.mitigation_basis
        rollback = pm._facts.first_good_rollback
        if basis == "rollback" and rollback is not None:
            rows.append(
                [
                    "Time to mitigate (first successful rollback)[^mitigate]",
                    format_duration(rollback.at - pm.declared_at),
                    f"{format_utc(rollback.at)}: rollback by {_inline(rollback.actor)} "
                    f"succeeded ({_inline(rollback.outcome)})",
                ]
            )
        elif basis == "resolution" and self.incident.resolved_at is not None:
            resolved = self.incident.resolved_at
            rows.append(
                [
                    "Time to mitigate (resolution: no successful rollback before it)[^mitigate]",
                    format_duration(resolved - pm.declared_at),
                    f"{format_utc(resolved)}: resolved{self.resolver()}",
                ]
            )
        elif pm.resolved_as_false_positive:
            rows.append(["Time to mitigate[^mitigate]", "not applicable: a false positive", _DASH])
        else:
            rows.append(
                [
                    "Time to mitigate (first successful rollback, else resolution)[^mitigate]",
                    NOT_YET,
                    _DASH,
                ]
            )
        resolved_at = self.incident.resolved_at
        if resolved_at is not None:
            what = "marked a false positive" if pm.resolved_as_false_positive else "resolved"
            who = self.resolver()
            rows.append(
                [
                    "Time to resolve[^resolve]",
                    format_duration(resolved_at - pm.declared_at),
                    f"{format_utc(resolved_at)}: {what}{who}",
                ]
            )
        else:
            rows.append(["Time to resolve[^resolve]", NOT_YET, _DASH])
        lines = [
            "## Key times",
            "",
            f"From the declaration at {format_utc(pm.declared_at)}.",
            "",
            *_table(["Measure", "Duration", "Reached"], rows),
            "",
            "### Pages",
            "",
        ]
        timings = pm.page_timings
        if not timings:
            lines.append("No page was sent.")
            return lines
        page_rows = []
        for timing in timings:
            page = timing.page
            if page.acknowledged_at is not None:
                answered = (
                    f"{_inline(page.acknowledged_by or '')} at {format_utc(page.acknowledged_at)}"
                )
                waited = format_duration(timing.time_to_acknowledge or timedelta(0))
            else:
                answered = waited = self.pending()
            page_rows.append(
                [
                    _cell(page.id),
                    _cell(page.target),
                    format_utc(page.at),
                    _cell(page.by),
                    answered,
                    waited,
                    str(timing.escalations),
                ]
            )
        lines += _table(
            ["Page", "Target", "Sent", "By", "Acknowledged", "Time to acknowledge", "Escalations"],
            page_rows,
        )
        return lines

    # -- 5. timeline -----------------------------------------------------------------------------

    def timeline(self) -> list[str]:
        events = self.pm.events
        days = sorted({_day(event.at) for event in events})
        lines = ["## Timeline (UTC)"]
        if len(days) == 1:
            lines += ["", f"All on {days[0].isoformat()}.", ""]
        pages: dict[str, str] = {}
        current: date | None = None
        for event in events:
            if isinstance(event, ExternalRefRecorded):
                continue  # bookkeeping of the adapters: listed in its own section
            if isinstance(event, PageSent):
                pages[event.page_id] = event.target
            if len(days) > 1 and _day(event.at) != current:
                current = _day(event.at)
                lines += ["", f"### {current.isoformat()}", ""]
            lines.append(f"- {_clock(event.at)} {self.sentence(event, pages)}")
        return lines

    def sentence(self, event: Event, pages: Mapping[str, str]) -> str:
        """One event as a sentence of the timeline (without its time)."""
        actor = _inline(event.actor)
        match event:
            case IncidentDeclared():
                impact = "customer impact" if event.customer_impact else "no customer impact"
                return f"{actor} declared the incident ({event.severity}, {impact})"
            case RoleAssigned():
                title = _inline(self.naming.role(event.role))
                if event.person == event.actor:
                    return f"{actor} took the role of {title}"
                return f"{actor} assigned {_inline(event.person)} as {title}"
            case OwnershipAcknowledged():
                return f"{actor} acknowledged ownership as {_inline(self.lead_title)} (“I'm on it”)"
            case PageSent():
                text = f"{actor} paged {_inline(event.target)} ({_inline(event.page_id)})"
                return text + (f": {_quoted(event.message)}" if event.message.strip() else "")
            case PageAcknowledged():
                target = pages.get(event.page_id)
                to = f" (to {_inline(target)})" if target else ""
                return f"{actor} acknowledged {_inline(event.page_id)}{to}"
            case PhaseChanged():
                text = (
                    f"{actor} moved the incident from {_inline(self.naming.phase(event.source))} "
                    f"to {_inline(self.naming.phase(event.dest))} ({_inline(event.action)})"
                )
                if event.closes:
                    return text + "; the incident is closed"
                if event.resolves:
                    return text + "; the incident is resolved"
                return text
            case ActionTaken():
                return f"{actor} took the action {_inline(event.action)}" + _arguments(
                    event.arguments
                )
            case RollbackRecorded():
                return (
                    f"{actor} recorded a rollback ({_succeeded(event.succeeded, long=True)}): "
                    f"{_quoted(event.outcome)}"
                )
            case ReleasePaused():
                groups = ", ".join(_inline(group) for group in event.alert)
                alert = f"; groups to alert: {groups}" if groups else ""
                return f"{actor} paused release {_inline(event.release)}{alert}"
            case ReleaseResumed():
                return f"{actor} resumed release {_inline(event.release)}"
            case StatusUpdatePosted():
                count = len(event.findings)
                findings = f" ({count} finding{'s' * (count != 1)})" if count else ""
                return (
                    f"{actor} posted a status update "
                    f"({_inline(_status_phase(event.status_phase))}): "
                    f"{_quoted(event.text)}{findings}"
                )
            case SeverityChanged():
                verb = "raised" if event.severity is Severity.CRITICAL else "lowered"
                return f"{actor} {verb} the severity from {event.previous} to {event.severity}"
            case FalsePositiveMarked():
                return f"{actor} marked the incident a false positive: {_quoted(event.reason)}"
            case ChecklistItemCompleted():
                link = f" ({_link(event.link)})" if event.link else ""
                return f"{actor} completed “{_inline(self.naming.item(event.item))}”{link}"
            case ChecklistItemWaived():
                return (
                    f"{actor} waived “{_inline(self.naming.item(event.item))}”: "
                    f"{_quoted(event.reason)}"
                )
            case WarningRecorded():
                return f"warning: {_inline(event.reason)} (handbook: {_inline(event.handbook_ref)})"
            case ReminderDue():
                subject = f" for {_inline(event.subject)}" if event.subject else ""
                missed = f", {event.missed} missed before it" if event.missed else ""
                return (
                    f"reminder: {_inline(event.reminder.replace('_', ' '))}{subject} "
                    f"({self.recipient(event.recipient, event.person)}{missed})"
                )
            case FollowUpAdded():
                owner = f" (owner {_inline(event.owner)})" if event.owner else ""
                return (
                    f"{actor} added the follow-up {_inline(event.follow_up_id)}: "
                    f"{_quoted(event.title)}{owner}"
                )
            case _:
                return f"{actor}: {_inline(event.type)}"

    def recipient(self, recipient: str, person: str | None) -> str:
        who = _inline(recipient.replace("_", " "))
        return f"{who} {_inline(person)}" if person else f"{who}, nobody assigned"

    # -- 6. status posts -------------------------------------------------------------------------

    def status_posts(self) -> list[str]:
        lines = ["## Status posts", ""]
        updates = self.incident.status_updates
        if not updates:
            lines.append("None.")
            return lines
        for number, update in enumerate(updates, start=1):
            if number > 1:
                lines.append("")
            lines += [
                f"**{number}. {format_utc(update.at)}**, "
                f"{_inline(_status_phase(update.phase))}, by {_inline(update.by)}:",
                "",
                *_blockquote(update.text),
            ]
            if update.findings:
                lines += ["", "Findings:", ""]
                for finding in update.findings:
                    excerpt = f" ({_quoted(finding.excerpt)})" if finding.excerpt.strip() else ""
                    lines.append(f"- {_inline(finding.rule)}: {_inline(finding.message)}{excerpt}")
        return lines

    # -- 7. rollbacks and releases ---------------------------------------------------------------

    def rollbacks_and_releases(self) -> list[str]:
        lines = ["## Rollbacks and releases", ""]
        rollbacks = self.incident.rollbacks
        if rollbacks:
            lines += _table(
                ["When", "By", "Outcome", "Succeeded"],
                (
                    [
                        format_utc(rollback.at),
                        _cell(rollback.by),
                        _cell(rollback.outcome),
                        _succeeded(rollback.succeeded),
                    ]
                    for rollback in rollbacks
                ),
            )
        else:
            lines.append("No rollback was recorded.")
        lines.append("")
        holds = self.pm.release_holds
        if holds:
            lines += _table(
                ["Release", "Paused at", "By", "Groups alerted", "Resumed at", "By"],
                (
                    [
                        _cell(hold.release),
                        format_utc(hold.paused_at),
                        _cell(hold.paused_by),
                        _cell(", ".join(hold.alert)),
                        format_utc(hold.resumed_at)
                        if hold.resumed_at is not None
                        else self.pending(),
                        _cell(hold.resumed_by or ""),
                    ]
                    for hold in holds
                ),
            )
        else:
            lines.append("No release was paused.")
        return lines

    # -- 8. reminders ----------------------------------------------------------------------------

    def reminders(self) -> list[str]:
        lines = ["## Reminders", ""]
        reminders = self.incident.reminders
        if not reminders:
            lines.append("None fell due.")
            return lines
        lines += _table(
            ["Reminder", "About", "Due", "Recorded", "For", "Missed"],
            (
                [
                    _cell(reminder.name.replace("_", " ")),
                    _cell(reminder.subject),
                    format_utc(reminder.due_at),
                    format_utc(reminder.at),
                    self.recipient(reminder.recipient, reminder.person),
                    str(reminder.missed),
                ]
                for reminder in reminders
            ),
        )
        return lines

    # -- warnings --------------------------------------------------------------------------------

    def warnings(self) -> list[str]:
        warnings = self.incident.warnings
        if not warnings:
            return []
        lines = ["## Warnings", "", "Advice of the handbook that a command went against:", ""]
        lines += [
            f"- {format_utc(warning.at)}: {_inline(warning.reason)} "
            f"(handbook: {_inline(warning.handbook_ref)})"
            for warning in warnings
        ]
        return lines

    # -- 9. checklist ----------------------------------------------------------------------------

    def checklist(self) -> list[str]:
        lines = ["## Post-mortem checklist", ""]
        items = self.incident.checklist
        if not items:
            lines.append("The process has no post-mortem checklist.")
            return lines
        if self.incident.resolved_at is None:
            lines += ["Not yet started: the checklist follows the resolution.", ""]
        lines += [self.item(item) for item in items]
        return lines

    def item(self, item: ChecklistItem) -> str:
        title = _inline(self.naming.item(item.name))
        optional = "" if item.required else " (optional)"
        who = (
            f"{_inline(item.by or '')}, {format_utc(item.at)}"
            if item.at is not None
            else _inline(item.by or "")
        )
        if item.state is ItemState.DONE:
            link = f", {_link(item.link)}" if item.link else ""
            return f"- [x] {title}{optional} — {who}{link}"
        if item.state is ItemState.WAIVED:
            reason = _inline(item.reason or "") or "no reason given"
            return f"- [~] {title}{optional} — waived: {reason} ({who})"
        return f"- [ ] {title}{optional}"

    # -- 10. follow-ups and other actions --------------------------------------------------------

    def follow_ups(self) -> list[str]:
        lines = ["## Follow-ups", ""]
        follow_ups = self.incident.follow_ups
        if not follow_ups:
            lines.append("None recorded.")
            return lines
        for follow_up in follow_ups:
            owner = f"owner {_inline(follow_up.owner)}" if follow_up.owner else "no owner yet"
            lines.append(
                f"- {_inline(follow_up.id)}: {_inline(follow_up.title)} ({owner}; added by "
                f"{_inline(follow_up.by)} at {format_utc(follow_up.at)})"
            )
        return lines

    def outside(self) -> list[str]:
        """What the adapters made outside: channels, alerts, status-page incidents, issues.
        Messages are counted, not listed."""
        refs = self.incident.external_refs
        if not refs:
            return []
        lines = ["## Outside incident_flow", ""]
        messages: dict[str, int] = {}
        for ref in refs:
            if ref.kind == "message":
                messages[ref.system] = messages.get(ref.system, 0) + 1
                continue
            where = f": {_link(ref.url)}" if ref.url else ""
            lines.append(
                f"- {_inline(ref.system)} {_inline(ref.kind)} {_inline(ref.external_id)}{where} "
                f"({format_utc(ref.at)})"
            )
        lines += [
            f"- {_inline(system)}: {count} message{'s' * (count != 1)} posted"
            for system, count in messages.items()
        ]
        return lines

    def other_actions(self) -> list[str]:
        actions = self.incident.team_actions
        if not actions:
            return []
        lines = ["## Other actions", ""]
        lines += [
            f"- {format_utc(record.at)}: {_inline(record.by)} took the action "
            f"{_inline(record.action)}{_arguments(record.arguments)}"
            for record in actions
        ]
        return lines

    # -- 11. time in each phase ------------------------------------------------------------------

    def phases(self) -> list[str]:
        pm = self.pm
        spans = pm.phase_spans
        last = pm.last_event_at
        several_days = _day(spans[0].start) != _day(last)
        lines = [
            "## Time in each phase",
            "",
            "```mermaid",
            "gantt",
            "    dateFormat YYYY-MM-DDTHH:mm:ss",
            "    axisFormat " + ("%d %b %H:%M" if several_days else "%H:%M"),
            "    todayMarker off",
            "    section Phases",
        ]
        for number, span in enumerate(spans, start=1):
            end = span.end if span.end is not None else last
            tags = "milestone, " if span.terminal and end == span.start else ""
            lines.append(
                f"    {_mermaid_name(span.title)} :{tags}p{number}, "
                f"{_mermaid_time(span.start)}, {_mermaid_time(end)}"
            )
        lines += ["```", ""]
        entered: dict[str, list[datetime]] = {}
        titles: dict[str, str] = {}
        for span in spans:
            entered.setdefault(span.phase, []).append(span.start)
            titles.setdefault(span.phase, span.title)
        current = spans[-1]
        rows = []
        for phase, spent in pm.time_in_phase.items():
            if phase == current.phase and current.terminal and spent == timedelta(0):
                shown = f"{_DASH} (final phase)"
            elif phase == current.phase and not current.terminal:
                shown = f"{format_duration(spent)} (still in it)"
            else:
                shown = format_duration(spent)
            rows.append(
                [
                    _cell(titles[phase]),
                    shown,
                    ", ".join(format_utc(moment) for moment in entered[phase]),
                ]
            )
        rows.append(
            ["**Total**", f"**{format_duration(last - pm.declared_at)}**", "declared → last event"]
        )
        lines += _table(["Phase", "Time spent", "Entered at"], rows)
        return lines

    # -- footnotes -------------------------------------------------------------------------------

    def footnotes(self) -> list[str]:
        active = [
            _inline(phase.title or _humanize(phase.name))
            for phase in self.pm.process.phases
            if phase.active
        ]
        # One definition a paragraph: each is its own block wherever it is rendered.
        return [
            f"[^acknowledge]: From the declaration to the first “I'm on it” (acknowledge) of "
            f"the person who was the {_inline(self.lead_title)} at that moment.",
            "",
            "[^mitigate]: From the declaration to the first rollback recorded as successful "
            "(the handbook's first move is to roll back to a known good state), or to the "
            "resolution when it came first or no rollback succeeded. A false positive that no "
            "successful rollback preceded had nothing to mitigate.",
            "",
            "[^resolve]: From the declaration to the first time the incident left the active "
            f"phases ({', '.join(active) or 'none'}); a reopened incident keeps its first "
            "resolution.",
        ]


def _status_phase(phase: str) -> str:
    return string.capwords(phase.replace("_", " "))


def _succeeded(value: bool | None, *, long: bool = False) -> str:
    if value is None:
        return "result unknown" if long else "unknown"
    if long:
        return "succeeded" if value else "did not succeed"
    return "yes" if value else "no"


def _arguments(arguments: Mapping[str, str]) -> str:
    if not arguments:
        return ""
    return " (" + ", ".join(f"{_inline(k)}={_inline(v)}" for k, v in arguments.items()) + ")"

"""Audit a past incident: replay its timeline through the process and report every departure.

A timeline file (JSON or YAML, described in ``docs/audit.md``) holds an incident's declaration
and the steps people took, each with the time it happened. :func:`audit` replays the steps in
time order on a fresh :class:`~incident_flow.IncidentFlow` whose clock is moved to each step's
own time, and reports where the incident departed from the process, as :class:`Departure`
values of these kinds (:data:`KINDS`):

``refused``
    the process refuses the step: one departure per unmet requirement (a status post a
    refusing communication rule stops comes as ``comms:<rule>``). The replayed incident is left
    as it was, as if the step had not happened, and the replay goes on.
``warning``
    the step went ahead with a warning recorded (the lead and the messenger are one person, a
    resolution owner before any rollback...).
``reminder``
    a reminder fell due between two steps (a status post overdue, a page unacknowledged),
    reported at its own due time.
``finding``
    a status post went out with a finding of a recording communication rule.
``out_of_order``
    the entry comes after a later one in the file (it is replayed in time order).
``backdated``
    the entry was recorded (``recorded_at``) more than the tolerance after it happened.
``before_declaration``
    the entry happened before the incident was declared (it is replayed at the declaration).
``unknown_action``, ``unknown_role``, ``unknown_phase``, ``unknown_item``
    the entry names an action, role, status phase or checklist item the process does not
    know; the departure lists what it knows, and the replay goes on without the step.
``invalid``
    the flow rejects one of the step's values (an empty status text, a page that cannot be
    told apart, a downgrade to minor); the step does not count and the replay goes on.

A malformed file (not JSON or YAML, a missing or mistyped field, a time without a zone, too
big) raises :class:`~incident_flow.errors.TimelineError` naming the line and the field.

For the command line::

    report = audit_file(path, process)
    print(json.dumps(report.to_dict(), indent=2) if as_json else report.to_text())
    exit_status = 0 if report.ok else 1
"""

from __future__ import annotations

import bisect
import difflib
import json
import json.decoder
import json.scanner
import os
import re
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import attrs
import yaml
import yaml.nodes

from incident_flow.clock import FakeClock
from incident_flow.errors import (
    InvalidFieldError,
    InvalidSeverityError,
    TimelineError,
    TransitionRefused,
    UnknownChecklistItemError,
    UnknownPhaseError,
    UnknownRoleError,
    ValidationError,
)
from incident_flow.events import Event, ReminderDue, StatusUpdatePosted, WarningRecorded
from incident_flow.flow import IncidentFlow
from incident_flow.model import Incident, Severity
from incident_flow.process import HANDBOOK, Process
from incident_flow.store.memory import MemoryStore
from incident_flow.timers import (
    ANNOUNCEMENT_DAY,
    ENGINE,
    PAGE_UNACKNOWLEDGED,
    RELEASE_PAUSED_POST,
    STATUS_UPDATE_DUE,
    next_reminder,
)

__all__ = [
    "DEFAULT_BACKDATE_TOLERANCE",
    "DEFAULT_INCIDENT_ID",
    "KINDS",
    "MAX_BYTES",
    "MAX_ENTRIES",
    "PROMPTS",
    "AuditReport",
    "Departure",
    "Timeline",
    "TimelineEntry",
    "TimelineIncident",
    "audit",
    "audit_file",
    "load_timeline",
    "parse_timeline",
]

KINDS: Final[tuple[str, ...]] = (
    "refused",
    "warning",
    "reminder",
    "finding",
    "out_of_order",
    "backdated",
    "before_declaration",
    "unknown_action",
    "unknown_role",
    "unknown_phase",
    "unknown_item",
    "invalid",
)
"""Every kind of :class:`Departure`, in the order a report's summary counts them."""

DEFAULT_BACKDATE_TOLERANCE: Final = timedelta(minutes=15)
"""How long after a step its entry may be recorded before it counts as backdated."""

DEFAULT_INCIDENT_ID: Final = "inc-replay"
"""The replayed incident's id when the file's ``incident:`` gives none."""

MAX_BYTES: Final = 10 * 1024 * 1024
"""The largest timeline file read (10 MiB)."""

MAX_ENTRIES: Final = 10_000
"""The most timeline entries a file may hold."""

PROMPTS: Final[frozenset[str]] = frozenset({RELEASE_PAUSED_POST, ANNOUNCEMENT_DAY})
"""Reminders that ask for something at once rather than say something is late: the status
post every paused release calls for, and telling marketing on a big announcement day. They are
among the report's events but are not departures."""

_REMINDER_SECTIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        STATUS_UPDATE_DUE: "Messenger roles and responsibilities",
        PAGE_UNACKNOWLEDGED: "How to identify folks to serve in incident lead and messenger roles",
    }
)


def _read_only(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


# -- the timeline ----------------------------------------------------------------------------------


@attrs.frozen
class TimelineIncident:
    """The ``incident:`` mapping of a timeline file: how the incident was declared."""

    title: str
    severity: Severity
    customer_impact: bool
    declared_at: datetime
    """Aware, in UTC."""
    declared_by: str
    description: str = ""
    id: str | None = None
    """The replayed incident's id; :data:`DEFAULT_INCIDENT_ID` when None."""
    line: int | None = None
    """The line of ``incident:`` in the file."""


@attrs.frozen
class TimelineEntry:
    """One step of a timeline: ``by`` did ``action`` ``at``, with the action's arguments."""

    index: int
    """The entry's position in the file's ``timeline:`` list, from 0."""
    at: datetime
    """When it happened (aware, in UTC)."""
    by: str
    action: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict, converter=_read_only)
    """The action's arguments by their flow parameter names (``role``, ``text``...): strings,
    and for ``record_rollback`` ``succeeded`` True, False or None."""
    recorded_at: datetime | None = None
    """When the entry was written down, if the file says."""
    note: str = ""
    """Free text for readers; the replay ignores it."""
    line: int | None = None
    """The entry's first line in the file."""


@attrs.frozen
class Timeline:
    """A past incident as a timeline file describes it (see :func:`parse_timeline`)."""

    incident: TimelineIncident
    entries: tuple[TimelineEntry, ...]
    """In file order (the replay sorts them by time)."""
    audit_until: datetime | None = None
    """Look for reminders up to this time after the last entry (default: the last entry's
    time, or the declaration's when there is no entry)."""
    source: str = "<string>"
    """Where the timeline was read from (a path), for reports."""


# -- the report ------------------------------------------------------------------------------------


@attrs.frozen
class Departure:
    """One place where the incident departed from the process."""

    kind: str
    """One of :data:`KINDS`."""
    at: datetime
    """When: the entry's time, a warning's time, a reminder's due time."""
    message: str
    """What went wrong and, where the process says, what it asks for instead."""
    line: int | None = None
    """The line of the entry in the file, when the departure comes from an entry."""
    entry: int | None = None
    """The entry's index in the file's ``timeline:`` list (from 0)."""
    action: str | None = None
    """The entry's action."""
    name: str | None = None
    """The requirement, warning, rule (``comms:<rule>``) or reminder name, or the field at
    fault."""
    handbook_ref: str = ""
    """The handbook section it comes from, when known."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields by name, ``at`` as ISO 8601 with ``Z``."""
        return {
            "kind": self.kind,
            "at": _iso(self.at),
            "message": self.message,
            "line": self.line,
            "entry": self.entry,
            "action": self.action,
            "name": self.name,
            "handbook_ref": self.handbook_ref,
        }


@attrs.frozen
class AuditReport:
    """What :func:`audit` found: the replayed incident, its events and every departure."""

    source: str
    """Where the timeline came from."""
    incident: Incident
    """The incident as the replay left it."""
    events: tuple[Event, ...]
    """Every event the replay recorded, oldest first."""
    departures: tuple[Departure, ...]
    """In time order (stable: departures of one moment in the order they were found)."""
    entries: int
    """How many timeline entries were replayed (refused ones included)."""

    @property
    def ok(self) -> bool:
        """True when the incident followed the process: no departure at all."""
        return not self.departures

    def of_kind(self, kind: str) -> tuple[Departure, ...]:
        """The departures of one kind, in time order."""
        return tuple(departure for departure in self.departures if departure.kind == kind)

    @property
    def counts(self) -> dict[str, int]:
        """How many departures of each kind, for every kind of :data:`KINDS` (zeros too)."""
        counted = dict.fromkeys(KINDS, 0)
        for departure in self.departures:
            counted[departure.kind] = counted.get(departure.kind, 0) + 1
        return counted

    def to_text(self) -> str:
        """A report to read: the incident, the verdict, the departures by day in time order,
        and a count by kind."""
        incident = self.incident
        impact = "customer impact" if incident.customer_impact else "no customer impact"
        lines = [
            f"Audit of {self.source}",
            f"Incident {incident.id}: {incident.title}",
            f"  {incident.severity}, {impact}; declared {_when(incident.declared_at)}; "
            f"now {incident.phase}",
            f"  {self.entries} timeline entr{'y' if self.entries == 1 else 'ies'} replayed",
        ]
        if self.ok:
            lines.append("Verdict: the incident followed the process (no departures)")
            return "\n".join(lines) + "\n"
        count = len(self.departures)
        lines.append(f"Verdict: {count} departure{'s' if count != 1 else ''} from the process")
        day = None
        for departure in self.departures:
            moment = departure.at.astimezone(UTC)
            if moment.date() != day:
                day = moment.date()
                lines += ["", day.isoformat()]
            lines.extend(_describe(departure))
        summary = ", ".join(f"{n} {kind}" for kind, n in self.counts.items() if n)
        lines += ["", f"Summary: {summary}"]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with stable keys and times as ISO 8601 with ``Z``:
        ``source``, ``ok``, ``entries``, ``events``, ``incident``, ``summary`` (a count for every
        kind) and ``departures``."""
        incident = self.incident
        return {
            "source": self.source,
            "ok": self.ok,
            "entries": self.entries,
            "events": len(self.events),
            "incident": {
                "id": incident.id,
                "title": incident.title,
                "severity": str(incident.severity),
                "customer_impact": incident.customer_impact,
                "phase": incident.phase,
                "declared_at": _iso(incident.declared_at),
                "resolved_at": _iso(incident.resolved_at),
                "closed_at": _iso(incident.closed_at),
            },
            "summary": self.counts,
            "departures": [departure.to_dict() for departure in self.departures],
        }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _describe(departure: Departure) -> list[str]:
    where = []
    if departure.entry is not None:
        where.append(f"timeline[{departure.entry}]")
    if departure.line is not None:
        where.append(f"line {departure.line}")
    head = f"  {departure.at.astimezone(UTC):%H:%M} UTC  [{departure.kind}]"
    if departure.action:
        head += f" {departure.action}"
    if where:
        head += f" ({', '.join(where)})"
    if departure.name and departure.name != departure.action:
        head += f": {departure.name}" if departure.action else f" {departure.name}"
    lines = [head]
    lines += textwrap.wrap(
        departure.message,
        width=_WIDTH,
        initial_indent=_INDENT,
        subsequent_indent=_INDENT,
        break_long_words=False,
        break_on_hyphens=False,
    )
    if departure.handbook_ref:
        lines.append(f"{_INDENT}handbook: {departure.handbook_ref}")
    return lines


_WIDTH = 100
_INDENT = " " * 13


# -- reading a file --------------------------------------------------------------------------------


class _Map(dict[Any, Any]):
    """A mapping read from a file, with the line of the mapping and of each value."""

    line: int | None = None
    lines: dict[str, int]

    def __init__(self, line: int | None = None) -> None:
        super().__init__()
        self.line = line
        self.lines = {}


class _Seq(list[Any]):
    """A list read from a file, with the line of each element."""

    line: int | None = None
    lines: list[int]

    def __init__(self, line: int | None = None) -> None:
        super().__init__()
        self.line = line
        self.lines = []


def _duplicate(key: object, line: int | None) -> TimelineError:
    return TimelineError(
        f"{key!r} appears twice in one mapping; keep one", field=str(key), line=line
    )


# YAML: a safe loader whose mappings and lists remember their lines. Times stay strings (no
# implicit timestamps), so a naive time is caught the same way as in JSON.

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"


try:  # libyaml's parser when PyYAML was built with it: many times faster
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class _YAMLLoader(_SafeLoader):
    pass


_YAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _TIMESTAMP]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}


def _yaml_map(loader: _YAMLLoader, node: yaml.nodes.MappingNode) -> Iterator[_Map]:
    data = _Map(node.start_mark.line + 1)
    yield data
    seen: set[str] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.nodes.ScalarNode) and key_node.tag != _MERGE:
            if key_node.value in seen:
                raise _duplicate(key_node.value, key_node.start_mark.line + 1)
            seen.add(key_node.value)
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise TimelineError(
                f"keys must be names, not {key!r}", line=key_node.start_mark.line + 1
            )
        data[key] = loader.construct_object(value_node, deep=True)
        data.lines[key] = value_node.start_mark.line + 1


def _yaml_seq(loader: _YAMLLoader, node: yaml.nodes.SequenceNode) -> Iterator[_Seq]:
    data = _Seq(node.start_mark.line + 1)
    yield data
    for child in node.value:
        data.append(loader.construct_object(child, deep=True))
        data.lines.append(child.start_mark.line + 1)


_YAMLLoader.add_constructor("tag:yaml.org,2002:map", _yaml_map)
_YAMLLoader.add_constructor("tag:yaml.org,2002:seq", _yaml_seq)


def _read_yaml(text: str) -> object:
    try:
        return yaml.load(text, Loader=_YAMLLoader)  # a safe loader: plain data only
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = error.problem or error.context or "malformed YAML"
        raise TimelineError(f"not valid YAML: {problem}", line=line) from None
    except yaml.YAMLError as error:
        raise TimelineError(f"not valid YAML: {error}") from None
    except RecursionError:
        raise TimelineError("not a timeline: nested too deeply") from None


# JSON: the standard decoder's pure-Python scanner, with its object and array parsers wrapped
# to note where each value starts.

_py_make_scanner: Callable[[Any], Any] = vars(json.scanner)["py_make_scanner"]
_json_object: Callable[..., tuple[Any, int]] = vars(json.decoder)["JSONObject"]
_json_array: Callable[..., tuple[Any, int]] = vars(json.decoder)["JSONArray"]


class _JSONReader(json.JSONDecoder):
    def __init__(self, text: str) -> None:
        super().__init__()
        self._newlines = [found.start() for found in re.finditer("\n", text)]
        self.parse_object = self._object
        self.parse_array = self._array
        self.memo: dict[str, str] = {}
        self.scan_once = _py_make_scanner(self)

    def line(self, index: int) -> int:
        return bisect.bisect_left(self._newlines, index) + 1

    def _object(
        self,
        s_and_end: tuple[str, int],
        strict: bool,
        scan_once: Callable[[str, int], tuple[Any, int]],
        object_hook: object,
        object_pairs_hook: object,
        memo: dict[str, str] | None = None,
    ) -> tuple[_Map, int]:
        starts: list[int] = []

        def noting(text: str, index: int) -> tuple[Any, int]:
            starts.append(index)
            return scan_once(text, index)

        pairs, end = _json_object(s_and_end, strict, noting, None, list, memo)
        data = _Map(self.line(s_and_end[1] - 1))
        for (key, value), start in zip(pairs, starts, strict=True):
            if key in data:
                raise _duplicate(key, self.line(start))
            data[key] = value
            data.lines[key] = self.line(start)
        return data, end

    def _array(
        self, s_and_end: tuple[str, int], scan_once: Callable[[str, int], tuple[Any, int]]
    ) -> tuple[_Seq, int]:
        starts: list[int] = []

        def noting(text: str, index: int) -> tuple[Any, int]:
            starts.append(index)
            return scan_once(text, index)

        values, end = _json_array(s_and_end, noting)
        data = _Seq(self.line(s_and_end[1] - 1))
        data.extend(values)
        data.lines.extend(self.line(start) for start in starts)
        return data, end


def _read_json(text: str) -> object:
    try:
        return _JSONReader(text).decode(text)
    except json.JSONDecodeError as error:
        raise TimelineError(
            f"not valid JSON: {error.msg} (column {error.colno})", line=error.lineno
        ) from None
    except RecursionError:
        raise TimelineError("not a timeline: nested too deeply") from None


# -- checking what was read ------------------------------------------------------------------------

_TOP = ("incident", "timeline", "audit_until")
_INCIDENT = (
    "id",
    "title",
    "severity",
    "customer_impact",
    "description",
    "declared_at",
    "declared_by",
)
_ENTRY = ("at", "by", "action", "recorded_at", "note")

# The arguments of the flow's own commands: (required, optional) by flow parameter name.
_ARGUMENTS: Final[Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = MappingProxyType(
    {
        "assign": (("role", "person"), ()),
        "acknowledge": ((), ()),
        "page": (("target",), ("message",)),
        "acknowledge_page": ((), ("page",)),
        "triage": ((), ()),
        "start_mitigation": ((), ()),
        "record_rollback": (("outcome",), ("succeeded",)),
        "pause_release": (("release",), ()),
        "resume_release": (("release",), ()),
        "post_status_update": (("text", "phase"), ()),
        "change_severity": (("severity",), ()),
        "resolve": ((), ()),
        "reopen": ((), ()),
        "mark_false_positive": (("reason",), ()),
        "start_postmortem": ((), ()),
        "add_follow_up": (("title",), ("owner",)),
        "complete_item": (("item",), ("link",)),
        "waive_item": (("item", "reason"), ()),
        "close": ((), ()),
    }
)

_PHASE_ONLY: Final = frozenset(
    name for name, (required, optional) in _ARGUMENTS.items() if not required and not optional
) - {"acknowledge"}
"""The flow's own commands that take no argument and only move the phase."""

_EXAMPLE_TIME = "2024-05-14T09:05:00Z"


class _Where:
    """A path in the file (``timeline[3]``) and the mapping there, to name fields in errors."""

    def __init__(self, path: str, data: Mapping[str, Any], line: int | None) -> None:
        self.path = path
        self.data = data
        self.line = line

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def line_of(self, key: str) -> int | None:
        lines: Mapping[str, int] = getattr(self.data, "lines", {})
        return lines.get(key, self.line)

    def error(self, key: str, message: str) -> TimelineError:
        return TimelineError(
            f"{self.field(key)}: {message}", field=self.field(key), line=self.line_of(key)
        )

    def check_keys(self, known: Sequence[str], what: str) -> None:
        for key in self.data:
            if key not in known:
                hint = difflib.get_close_matches(str(key), known, n=1)
                also = f"did you mean {hint[0]!r}? " if hint else ""
                raise self.error(
                    str(key), f"unknown field of {what}; {also}fields: {', '.join(known)}"
                )

    def required(self, key: str) -> Any:
        if key not in self.data or self.data[key] is None:
            raise self.error(key, "is missing")
        return self.data[key]

    def text(self, key: str, *, empty_ok: bool = False, required: bool = True) -> str | None:
        if not required and self.data.get(key) is None:
            return None
        value = self.required(key)
        if not isinstance(value, str):
            quote = " (quote it)" if isinstance(value, int | float | bool) else ""
            raise self.error(key, f"must be a string{quote}, not {_shown(value)}")
        if not empty_ok and not value.strip():
            raise self.error(key, "must not be empty")
        return value

    def time(self, key: str, *, required: bool = True) -> datetime | None:
        if not required and self.data.get(key) is None:
            return None
        value = self.required(key)
        if not isinstance(value, str):
            raise self.error(
                key,
                f"must be an ISO 8601 time with a zone, such as {_EXAMPLE_TIME}, not "
                f"{_shown(value)}",
            )
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise self.error(
                key,
                f"{value!r} is not an ISO 8601 time; write it like {_EXAMPLE_TIME}",
            ) from None
        if moment.tzinfo is None or moment.utcoffset() is None:
            if len(value.strip()) <= len("2024-05-14"):
                raise self.error(
                    key, f"{value!r} is a date; give the time and its zone, like {_EXAMPLE_TIME}"
                )
            raise self.error(
                key,
                f"{value!r} has no time zone; add Z or +00:00 (for UTC), like {value.strip()}Z",
            )
        return moment.astimezone(UTC)


def _shown(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _mapping(value: object, path: str, line: int | None, what: str) -> _Where:
    if not isinstance(value, dict):
        raise TimelineError(
            f"{path or 'the file'} must be a mapping ({what}), not {_shown(value)}",
            field=path or None,
            line=line,
        )
    return _Where(path, value, getattr(value, "line", None) or line)


def _incident(where: _Where) -> TimelineIncident:
    where.check_keys(_INCIDENT, "incident")
    incident_id = where.text("id", required=False)
    title = str(where.text("title"))
    try:
        severity = Severity.parse(where.text("severity"))
    except InvalidSeverityError as error:
        raise where.error("severity", str(error)) from None
    impact = where.required("customer_impact")
    if not isinstance(impact, bool):
        raise where.error("customer_impact", f"must be true or false, not {_shown(impact)}")
    description = where.text("description", required=False, empty_ok=True) or ""
    return TimelineIncident(
        id=incident_id,
        title=title,
        severity=severity,
        customer_impact=impact,
        description=description,
        declared_at=_aware(where.time("declared_at")),
        declared_by=str(where.text("declared_by")),
        line=where.line,
    )


def _aware(moment: datetime | None) -> datetime:
    assert moment is not None  # a required time
    return moment


def _entry(index: int, value: object, line: int | None) -> TimelineEntry:
    where = _mapping(value, f"timeline[{index}]", line, "at:, by:, action: and arguments")
    at = _aware(where.time("at"))
    by = str(where.text("by"))
    action = str(where.text("action")).strip()
    recorded_at = where.time("recorded_at", required=False)
    if recorded_at is not None and recorded_at < at:
        raise where.error(
            "recorded_at",
            f"{_iso(recorded_at)} is before the entry's at ({_iso(at)}); an entry is recorded "
            "when or after it happens",
        )
    note = where.text("note", required=False, empty_ok=True) or ""
    names = [key for key in where.data if key not in _ENTRY]
    arguments: dict[str, Any] = {}
    spec = _ARGUMENTS.get(action)
    if spec is not None:
        required, optional = spec
        where.check_keys((*_ENTRY, *required, *optional), f"a {action} entry")
        for name in required:
            arguments[name] = where.text(name, empty_ok=True)
        for name in optional:
            if name == "succeeded":
                flag = where.data.get(name)
                if flag is not None and not isinstance(flag, bool):
                    raise where.error(name, f"must be true, false or null, not {_shown(flag)}")
                arguments[name] = flag
            else:
                text = where.text(name, required=False, empty_ok=True)
                if text is not None:
                    arguments[name] = text
    else:
        # A team's own action (or one the process does not know): string arguments by name.
        for name in names:
            if not name.isidentifier():
                raise where.error(name, "an argument's name must be an identifier")
            arguments[name] = where.text(name, empty_ok=True)
    return TimelineEntry(
        index=index,
        at=at,
        by=by,
        action=action,
        arguments=arguments,
        recorded_at=recorded_at,
        note=note,
        line=where.line,
    )


def _timeline(data: object, source: str) -> Timeline:
    top = _mapping(data, "", 1, "incident:, timeline: and optionally audit_until:")
    top.check_keys(_TOP, "a timeline file")
    incident_value = top.required("incident")
    incident = _incident(
        _mapping(incident_value, "incident", top.line_of("incident"), "title, severity...")
    )
    entries_value = top.required("timeline")
    if not isinstance(entries_value, list):
        raise top.error("timeline", f"must be a list of entries, not {_shown(entries_value)}")
    if len(entries_value) > MAX_ENTRIES:
        raise top.error(
            "timeline",
            f"has {len(entries_value)} entries; an audit reads at most {MAX_ENTRIES}: split the "
            "timeline",
        )
    lines: Sequence[int] = getattr(entries_value, "lines", ())
    entries = tuple(
        _entry(index, value, lines[index] if index < len(lines) else top.line_of("timeline"))
        for index, value in enumerate(entries_value)
    )
    until = top.time("audit_until", required=False)
    if until is not None:
        last = max((entry.at for entry in entries), default=incident.declared_at)
        last = max(last, incident.declared_at)
        if until < last:
            raise top.error(
                "audit_until",
                f"{_iso(until)} is before the timeline's last moment ({_iso(last)})",
            )
    return Timeline(incident=incident, entries=entries, audit_until=until, source=source)


def _size(limit: int) -> str:
    mebibyte = 1024 * 1024
    if limit % mebibyte == 0:
        return f"{limit // mebibyte} MiB"
    return f"{limit} bytes"


def _format_of(text: str, format: str | None, source: str) -> str:
    if format is None:
        suffix = Path(source).suffix.lower()
        if suffix == ".json":
            return "json"
        if suffix in (".yaml", ".yml"):
            return "yaml"
        return "json" if text.lstrip()[:1] in ("{", "[") else "yaml"
    chosen = str(format).lower()
    if chosen == "yml":
        chosen = "yaml"
    if chosen not in ("json", "yaml"):
        raise InvalidFieldError(
            f"format must be 'json', 'yaml' or None (by the source's suffix), not {format!r}",
            field="format",
        )
    return chosen


def parse_timeline(text: str, *, source: str = "<string>", format: str | None = None) -> Timeline:
    """Read a timeline from ``text``.

    Args:
        text: the file's content.
        source: where it comes from (a path), for messages and reports.
        format: ``"json"`` or ``"yaml"``; by default, from ``source``'s suffix (``.json``,
            ``.yaml``, ``.yml``), else JSON when the text starts with ``{`` or ``[`` and YAML
            otherwise.

    Raises:
        TimelineError: the text is not JSON or YAML, is larger than :data:`MAX_BYTES`, has
            more than :data:`MAX_ENTRIES` entries, or a field is missing or malformed (the
            error's ``line`` and ``field`` say where).
        InvalidFieldError: ``format`` is not one of json, yaml, None.
    """
    if not isinstance(text, str):
        raise InvalidFieldError(f"text must be a string, not {_shown(text)}", field="text")
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise TimelineError(
            f"{source} is larger than {_size(MAX_BYTES)}; an audit reads one incident's "
            "timeline: split the file"
        )
    chosen = _format_of(text, format, source)
    data = _read_json(text) if chosen == "json" else _read_yaml(text)
    return _timeline(data, source)


def load_timeline(path: str | os.PathLike[str]) -> Timeline:
    """Read the timeline file at ``path``: JSON for ``.json``, YAML for ``.yaml`` and ``.yml``,
    and by its first character otherwise (see :func:`parse_timeline`).

    Raises:
        TimelineError: the file cannot be read, is not UTF-8, is too large or malformed.
    """
    file = Path(path)
    source = str(path)
    try:
        size = file.stat().st_size
        if size > MAX_BYTES:
            raise TimelineError(
                f"{source} is {size} bytes; an audit reads at most {_size(MAX_BYTES)}: split "
                "the file"
            )
        raw = file.read_bytes()
    except OSError as error:
        raise TimelineError(f"cannot read {source}: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise TimelineError(f"{source} is not UTF-8 text (byte {error.start})") from None
    return parse_timeline(text, source=source)


# -- the replay ------------------------------------------------------------------------------------


class _Replay:
    """One audit: the flow, its clock, and the departures found so far."""

    def __init__(self, timeline: Timeline, process: Process, tolerance: timedelta) -> None:
        self.timeline = timeline
        self.process = process
        self.tolerance = tolerance
        self.departures: list[Departure] = []
        self.owner: dict[int, TimelineEntry] = {}
        """Which entry recorded each event version."""
        declared = timeline.incident
        self.clock = FakeClock(declared.declared_at)
        self.flow = IncidentFlow(
            process=process,
            store=MemoryStore(),
            clock=self.clock,
            entry_points=False,
            deliver=False,
            reminders=False,
        )
        self.incident_id = declared.id or DEFAULT_INCIDENT_ID

    def depart(self, kind: str, entry: TimelineEntry | None, message: str, **fields: Any) -> None:
        if entry is not None:
            fields.setdefault("at", entry.at)
            fields.setdefault("entry", entry.index)
            fields.setdefault("line", entry.line)
            fields.setdefault("action", entry.action)
        self.departures.append(Departure(kind=kind, message=message, **fields))

    # -- before replaying: the file itself

    def check_file(self) -> None:
        declared_at = self.timeline.incident.declared_at
        latest: TimelineEntry | None = None
        for entry in self.timeline.entries:
            if latest is not None and entry.at < latest.at:
                self.depart(
                    "out_of_order",
                    entry,
                    f"the entry ({_when(entry.at)}) comes after timeline[{latest.index}] "
                    f"({_when(latest.at)}) in the file; replayed in time order",
                )
            elif latest is None or entry.at > latest.at:
                latest = entry
            if entry.recorded_at is not None and entry.recorded_at - entry.at > self.tolerance:
                late = entry.recorded_at - entry.at
                self.depart(
                    "backdated",
                    entry,
                    f"recorded {_duration(late)} after it happened (at {_when(entry.recorded_at)});"
                    f" entries are expected within {_duration(self.tolerance)}",
                    name="recorded_at",
                )
            if entry.at < declared_at:
                self.depart(
                    "before_declaration",
                    entry,
                    f"the entry ({_when(entry.at)}) is before the declaration "
                    f"({_when(declared_at)}); replayed at the declaration's time",
                )

    # -- replaying

    def declare(self) -> Incident:
        declared = self.timeline.incident
        try:
            return self.flow.declare(
                declared.title,
                severity=declared.severity,
                customer_impact=declared.customer_impact,
                by=declared.declared_by,
                description=declared.description,
                incident_id=self.incident_id,
                at=declared.declared_at,
            )
        except ValidationError as error:
            field = f"incident.{error.field}" if error.field else "incident"
            raise TimelineError(f"{field}: {error}", field=field, line=declared.line) from None

    def remind_until(self, moment: datetime) -> None:
        """Record every reminder falling due up to ``moment``, each at its own due time."""
        while True:
            due = next_reminder(self.flow.get(self.incident_id), self.process)
            if due is None or due.due_at > moment:
                return
            self.clock.set(max(self.clock.now(), due.due_at))
            if not self.flow.fire_reminders(self.incident_id):
                return  # nothing recorded: the rule does not move on; stop looking

    def replay(self, entry: TimelineEntry) -> None:
        moment = max(entry.at, self.timeline.incident.declared_at)
        self.remind_until(moment)
        self.clock.set(max(self.clock.now(), moment))
        if entry.action not in self.process.actions:
            self.unknown_action(entry)
            return
        before = self.flow.get(self.incident_id).version
        try:
            after = self.run(entry, moment)
        except TransitionRefused as refused:
            for requirement in refused.unmet:
                self.depart(
                    "refused",
                    entry,
                    f"{entry.action} by {entry.by} refused: {requirement.reason}",
                    name=requirement.name,
                    handbook_ref=requirement.handbook_ref,
                )
            return
        except UnknownRoleError as error:
            self.depart("unknown_role", entry, str(error), name=error.field)
            return
        except UnknownPhaseError as error:
            self.depart("unknown_phase", entry, str(error), name=error.field)
            return
        except UnknownChecklistItemError as error:
            self.depart("unknown_item", entry, str(error), name=error.field)
            return
        except ValidationError as error:
            self.depart(
                "invalid", entry, f"{entry.action} by {entry.by}: {error}", name=error.field
            )
            return
        for version in range(before + 1, after.version + 1):
            self.owner[version] = entry

    def unknown_action(self, entry: TimelineEntry) -> None:
        actions = self.process.actions
        hint = difflib.get_close_matches(entry.action, actions, n=1)
        also = f"did you mean {hint[0]!r}? " if hint else ""
        if entry.action == "declare":
            also = "the declaration goes in incident:, not in the timeline; "
        self.depart(
            "unknown_action",
            entry,
            f"{entry.action!r} is not an action of the process {self.process.name!r}; {also}"
            f"actions: {', '.join(actions)}",
            name=entry.action,
        )

    def run(self, entry: TimelineEntry, at: datetime) -> Incident:
        flow, incident_id, by = self.flow, self.incident_id, entry.by
        arguments = dict(entry.arguments)
        if entry.action in _PHASE_ONLY:
            return flow.transition(incident_id, entry.action, by=by, at=at)
        match entry.action:
            case "assign":
                return flow.assign(
                    incident_id, arguments["role"], arguments["person"], by=by, at=at
                )
            case "acknowledge":
                return flow.acknowledge(incident_id, by=by, at=at)
            case "page":
                message = arguments.get("message", "")
                return flow.page(incident_id, arguments["target"], by=by, message=message, at=at)
            case "acknowledge_page":
                page = self.page_id(arguments.get("page"))
                return flow.acknowledge_page(incident_id, page, by=by, at=at)
            case "record_rollback":
                return flow.record_rollback(
                    incident_id,
                    by=by,
                    outcome=arguments["outcome"],
                    succeeded=arguments.get("succeeded"),
                    at=at,
                )
            case "pause_release":
                return flow.pause_release(incident_id, release=arguments["release"], by=by, at=at)
            case "resume_release":
                return flow.resume_release(incident_id, release=arguments["release"], by=by, at=at)
            case "post_status_update":
                return flow.post_status_update(
                    incident_id, arguments["text"], phase=arguments["phase"], by=by, at=at
                )
            case "change_severity":
                return flow.change_severity(incident_id, arguments["severity"], by=by, at=at)
            case "mark_false_positive":
                return flow.mark_false_positive(
                    incident_id, reason=arguments["reason"], by=by, at=at
                )
            case "add_follow_up":
                return flow.add_follow_up(
                    incident_id, arguments["title"], owner=arguments.get("owner"), by=by, at=at
                )
            case "complete_item":
                return flow.complete_item(
                    incident_id, arguments["item"], link=arguments.get("link"), by=by, at=at
                )
            case "waive_item":
                return flow.waive_item(
                    incident_id, arguments["item"], reason=arguments["reason"], by=by, at=at
                )
            case _:
                # A team's own action: its string arguments reach the guards and the log.
                return flow.transition(incident_id, entry.action, by=by, at=at, **arguments)

    def page_id(self, value: str | None) -> str | None:
        """The page an ``acknowledge_page`` entry means: a page's id, or the paged target (its
        open page first); None lets the flow pick (the actor's page, or the only open one)."""
        if value is None:
            return None
        incident = self.flow.get(self.incident_id)
        if incident.page(value) is not None:
            return value
        for page in (*incident.open_pages, *incident.pages):
            if page.target == value:
                return page.id
        return value  # no such page: the process refuses it, naming the pages there are

    # -- after replaying: what the events say

    def collect(self, events: Sequence[Event]) -> None:
        for event in events:
            entry = self.owner.get(event.version)
            if isinstance(event, WarningRecorded):
                self.depart(
                    "warning",
                    entry,
                    event.reason,
                    at=event.at,
                    name=event.name,
                    handbook_ref=event.handbook_ref,
                )
            elif isinstance(event, StatusUpdatePosted):
                for finding in event.findings:
                    message = finding.message
                    if finding.excerpt and finding.excerpt not in message:
                        message += f" ({finding.excerpt!r})"
                    self.depart(
                        "finding",
                        entry,
                        message,
                        at=event.at,
                        name=f"comms:{finding.rule}",
                        handbook_ref=finding.handbook_ref,
                    )
            elif (
                isinstance(event, ReminderDue)
                and event.actor == ENGINE
                and event.reminder not in PROMPTS
            ):
                message = event.message or f"{event.reminder} fell due"
                if event.person:
                    message += f"; reminds the {event.recipient}, {event.person}"
                self.depart(
                    "reminder",
                    None,
                    message,
                    at=event.due_at,
                    name=event.reminder,
                    handbook_ref=_REMINDER_SECTIONS.get(event.reminder, ""),
                )


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest:02d} min"


def audit(
    timeline: Timeline,
    process: Process = HANDBOOK,
    *,
    backdate_tolerance: timedelta = DEFAULT_BACKDATE_TOLERANCE,
) -> AuditReport:
    """Replay ``timeline`` through ``process`` and report every departure from it.

    The incident is declared at its ``declared_at``; the entries are replayed in time order
    (a stable sort: entries of one moment keep their file order), each at its own time, with
    the reminders that fall due before it recorded first at their due times, and the reminders
    up to ``timeline.audit_until`` (or the last entry's time) after the last one. A refused or
    invalid entry leaves the incident as it was, and the replay goes on.

    Args:
        timeline: from :func:`load_timeline` or :func:`parse_timeline`.
        process: the process to hold the incident to; the handbook's by default.
        backdate_tolerance: an entry recorded longer than this after it happened is
            ``backdated``.

    Raises:
        InvalidFieldError: ``backdate_tolerance`` is not a timedelta of zero or more.
        TimelineError: the process refuses the declaration itself (a title over the limit).
    """
    if not isinstance(timeline, Timeline):
        raise InvalidFieldError(
            f"timeline must be a Timeline (see load_timeline), not {_shown(timeline)}",
            field="timeline",
        )
    if not isinstance(backdate_tolerance, timedelta) or backdate_tolerance < timedelta(0):
        raise InvalidFieldError(
            f"backdate_tolerance must be a timedelta of zero or more, not {backdate_tolerance!r}",
            field="backdate_tolerance",
        )
    replay = _Replay(timeline, process, backdate_tolerance)
    try:
        replay.check_file()
        replay.declare()
        ordered = sorted(timeline.entries, key=lambda entry: entry.at)
        for entry in ordered:
            replay.replay(entry)
        if timeline.audit_until is not None:
            until = timeline.audit_until
        else:
            until = max((entry.at for entry in ordered), default=timeline.incident.declared_at)
        replay.remind_until(max(until, timeline.incident.declared_at))
        events = tuple(replay.flow.history(replay.incident_id))
        incident = replay.flow.get(replay.incident_id)
    finally:
        replay.flow.shutdown()
    replay.collect(events)
    departures = sorted(replay.departures, key=lambda departure: departure.at)
    return AuditReport(
        source=timeline.source,
        incident=incident,
        events=events,
        departures=tuple(departures),
        entries=len(timeline.entries),
    )


def audit_file(
    path: str | os.PathLike[str],
    process: Process = HANDBOOK,
    *,
    backdate_tolerance: timedelta = DEFAULT_BACKDATE_TOLERANCE,
) -> AuditReport:
    """:func:`load_timeline` then :func:`audit`: the command line's ``incident-flow audit``.

    Raises:
        TimelineError: the file cannot be read or is malformed.
    """
    return audit(load_timeline(path), process, backdate_tolerance=backdate_tolerance)

"""Hypothesis strategies for incident_flow: people, severities, roles, status-update texts,
commands, whole valid command sequences for a process, and stored events.

Use them in a team's own property tests::

    from hypothesis import given
    from incident_flow.testing import strategies as ifst

    @given(ifst.command_sequences(TEAM_PROCESS))
    def test_sequences_replay(sequence):
        with IncidentFlow(process=TEAM_PROCESS, entry_points=False) as flow:
            sequence.replay(flow)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from incident_flow import events as ev
from incident_flow.clock import FakeClock
from incident_flow.flow import IncidentFlow
from incident_flow.model import Finding, Incident, Phase, Role, Severity
from incident_flow.process import HANDBOOK, Process
from incident_flow.requirements import Context
from incident_flow.store.memory import MemoryStore
from incident_flow.testing.commands import PEOPLE, STATUS_TEXTS, Command, Declaration, candidates
from incident_flow.testing.paths import START, Path, Step

__all__ = [
    "EVENT_STRATEGIES",
    "aware_times",
    "command_sequences",
    "commands",
    "declarations",
    "findings",
    "incident_ids",
    "offsets",
    "people",
    "phases",
    "roles",
    "rule_breaking_status_texts",
    "severities",
    "status_texts",
    "stored_events",
    "texts",
]

people = st.sampled_from(["alice", "bob", "carol", "dave", "erin", "Zoë Ångström"])
severities = st.sampled_from(list(Severity))
roles = st.sampled_from(list(Role))
phases = st.sampled_from(list(Phase))
texts = st.text(min_size=1, max_size=60).filter(lambda t: t.strip() == t and bool(t))
offsets = st.integers(min_value=-12 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
"""Aware UTC datetimes, as stored."""

findings: st.SearchStrategy[Finding] = st.builds(
    Finding,
    rule=st.sampled_from(("utc_only", "no_regional_words", "succinct", "team_rule")),
    message=texts,
    excerpt=st.text(max_size=20),
    refused=st.booleans(),
    handbook_ref=texts,
)
"""Communication-rule findings, as recorded on a status post."""

incident_ids = st.from_regex(r"inc-[0-9a-f]{12}", fullmatch=True)


def _event(cls: type[ev.Event], **fields: st.SearchStrategy[object]) -> st.SearchStrategy[ev.Event]:
    return st.builds(
        cls,
        incident_id=incident_ids,
        version=st.integers(min_value=1, max_value=10_000),
        at=aware_times,
        actor=people,
        **fields,
    )


_FIELDS: list[tuple[type[ev.Event], dict[str, st.SearchStrategy[Any]]]] = [
    (
        ev.IncidentDeclared,
        {
            "title": texts,
            "description": st.text(max_size=100),
            "severity": severities,
            "customer_impact": st.booleans(),
            "phase": phases,
            "checklist": st.lists(st.tuples(texts, st.booleans()), max_size=6).map(tuple),
        },
    ),
    (ev.RoleAssigned, {"role": roles, "person": people}),
    (ev.ActionTaken, {"action": texts, "arguments": st.dictionaries(texts, texts, max_size=3)}),
    (ev.OwnershipAcknowledged, {}),
    (
        ev.PhaseChanged,
        {
            "action": texts,
            "source": phases,
            "dest": phases,
            "resolves": st.booleans(),
            "closes": st.booleans(),
        },
    ),
    (ev.RollbackRecorded, {"outcome": texts, "succeeded": st.none() | st.booleans()}),
    (
        ev.ReleasePaused,
        {"release": texts, "alert": st.lists(texts, max_size=3).map(tuple)},
    ),
    (ev.ReleaseResumed, {"release": texts}),
    (
        ev.StatusUpdatePosted,
        {
            "text": texts,
            "status_phase": texts,
            "findings": st.lists(findings, max_size=3).map(tuple),
        },
    ),
    (ev.SeverityChanged, {"severity": severities, "previous": severities}),
    (ev.FalsePositiveMarked, {"reason": texts}),
    (ev.ChecklistItemCompleted, {"item": texts, "link": st.none() | texts}),
    (ev.ChecklistItemWaived, {"item": texts, "reason": texts}),
    (ev.WarningRecorded, {"name": texts, "reason": texts, "handbook_ref": texts}),
    (ev.PageSent, {"target": texts, "message": st.text(max_size=100)}),
    (ev.PageAcknowledged, {"page_id": texts}),
    (ev.FollowUpAdded, {"title": texts, "owner": st.none() | people}),
    (
        ev.ExternalRefRecorded,
        {
            "system": texts,
            "kind": texts,
            "external_id": texts,
            "source": st.just("") | texts,
            "url": st.none() | texts,
        },
    ),
    (
        ev.ReminderDue,
        {
            "reminder": texts,
            "key": texts,
            "due_at": aware_times,
            "recipient": texts,
            "person": st.none() | people,
            "subject": st.text(max_size=30),
            "message": st.text(max_size=100),
            "missed": st.integers(min_value=0, max_value=1000),
        },
    ),
]

EVENT_STRATEGIES: dict[type[ev.Event], st.SearchStrategy[ev.Event]] = {
    cls: _event(cls, **fields) for cls, fields in _FIELDS
}
"""One strategy per event class, with arbitrary field values."""

stored_events: st.SearchStrategy[ev.Event] = st.one_of(list(EVENT_STRATEGIES.values()))
"""Any event: for fuzzing the serializer and stores."""


status_texts: st.SearchStrategy[str] = st.sampled_from(sorted(STATUS_TEXTS.values()))
"""Status-page posts that keep the handbook's advice: UTC only, no words that assume a region
or a time of day, succinct, the support address named."""

_RULE_BREAKERS = (
    "Identified: search has been down since 9am EST; we are on it.",
    "Investigating: we expect a fix by end of day PT.",
    "Identified: this morning's deploy broke search; more tonight.",
    "Investigating: still looking into it, update after the weekend (+02:00).",
    "Resolved: fixed yesterday around 3pm central.",
)

rule_breaking_status_texts: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(_RULE_BREAKERS),
    st.text(alphabet="abcdefgh ", min_size=2001, max_size=2100).map(
        lambda t: "Investigating: " + t
    ),
)
"""Posts that break one of the handbook's rules: a time zone other than UTC, a word that
assumes a region or a time of day, or far too long."""

declarations: st.SearchStrategy[Declaration] = st.builds(
    Declaration,
    severity=severities,
    customer_impact=st.booleans(),
    by=people,
)
"""How an incident starts."""


def commands(
    process: Process,
    incident: Incident,
    *,
    people: Sequence[str] = PEOPLE,
    arguments: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
) -> st.SearchStrategy[Command]:
    """A command worth trying on ``incident`` (allowed or not): an action of its phase with
    arguments that fit, by a role holder or someone else."""
    choices = list(candidates(process, incident, people=people, arguments=arguments))
    if not choices:
        return st.nothing()
    return st.sampled_from(choices)


@st.composite
def command_sequences(
    draw: st.DrawFn,
    process: Process = HANDBOOK,
    *,
    max_steps: int = 25,
    people: Sequence[str] = PEOPLE,
    arguments: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
) -> Path:
    """A declaration and commands that ``process`` allows one after the other, as a
    :class:`~incident_flow.testing.paths.Path` (``path.replay(flow)`` runs it).

    Each step is drawn among the allowed candidates (the process's guards decide; plugins'
    policies are not asked), all at one moment of time.
    """
    declaration = draw(declarations)
    with IncidentFlow(
        process=process,
        store=MemoryStore(),
        clock=FakeClock(START),
        entry_points=False,
        deliver=False,
        reminders=False,
    ) as flow:
        incident = declaration.run(flow, "inc-sequence")
        path = Path(declaration)
        for _ in range(draw(st.integers(min_value=0, max_value=max_steps), label="length")):
            at = flow.clock.now()
            allowed = [
                command
                for command in candidates(process, incident, people=people, arguments=arguments)
                if process.decide(
                    incident,
                    Context(
                        command.action, command.by, at, _payload(process, command), command=True
                    ),
                ).allowed
            ]
            if not allowed:
                break
            command = draw(st.sampled_from(allowed), label="command")
            after = command.run(flow, incident.id)
            path = path.then(Step(command, (incident.phase, command.action, after.phase)))
            incident = after
    return path


def _payload(process: Process, command: Command) -> dict[str, object]:
    """The arguments as the flow hands them to the guards."""
    payload = command.kwargs
    if command.action == "change_severity":
        payload["severity"] = Severity.parse(payload["severity"])
    elif command.action == "assign":
        payload["role"] = process.check_role(payload["role"])
    elif command.action in ("record_rollback",):
        payload.setdefault("succeeded", None)
    elif command.action in ("mark_false_positive", "waive_item"):
        payload.setdefault("reason", "x")
    return payload

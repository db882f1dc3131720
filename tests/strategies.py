"""Hypothesis strategies for incident_flow's records; every new event kind adds to them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from incident_flow import events as ev
from incident_flow.model import Phase, Role, Severity

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


EVENT_STRATEGIES: dict[type[ev.Event], st.SearchStrategy[ev.Event]] = {
    cls: _event(cls, **fields)
    for cls, fields in [
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
        (ev.ReleasePaused, {"release": texts}),
        (ev.ReleaseResumed, {"release": texts}),
        (ev.StatusUpdatePosted, {"text": texts, "status_phase": texts}),
        (ev.SeverityChanged, {"severity": severities, "previous": severities}),
        (ev.FalsePositiveMarked, {"reason": texts}),
        (ev.ChecklistItemCompleted, {"item": texts}),
        (ev.ChecklistItemWaived, {"item": texts, "reason": texts}),
        (ev.WarningRecorded, {"name": texts, "reason": texts, "handbook_ref": texts}),
    ]
}
"""One strategy per event class, with arbitrary field values."""

stored_events: st.SearchStrategy[ev.Event] = st.one_of(list(EVENT_STRATEGIES.values()))
"""Any event: for fuzzing the serializer and stores."""

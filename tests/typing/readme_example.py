"""The README's example and the public API, type-checked with mypy --strict (not run by pytest)."""

from __future__ import annotations

from datetime import UTC, datetime

from incident_flow import (
    Event,
    Incident,
    IncidentFlow,
    Requirement,
    Role,
    Severity,
    TransitionRefused,
    hookimpl,
)
from incident_flow.store import MemoryStore, SQLiteStore


class Announcer:
    @hookimpl
    def incident_flow_event(self, event: Event, incident: Incident) -> None:
        print(f"[slack] {event.type}: {incident.title} is {incident.phase}")


def walkthrough(path: str) -> str:
    with IncidentFlow(plugins=[Announcer()], store=SQLiteStore(path)) as flow:
        inc = flow.declare("Down", severity=Severity.CRITICAL, customer_impact=True, by="a")
        try:
            flow.start_mitigation(inc.id, by="alice")
        except TransitionRefused as refused:
            unmet: tuple[Requirement, ...] = refused.unmet
            print([r.name for r in unmet])
        flow.assign(inc.id, Role.LEAD, "bob", by="alice")
        flow.acknowledge(inc.id, by="bob", at=datetime.now(UTC))
        flow.assign(inc.id, Role.MESSENGER, "carol", by="bob")
        phase: str = flow.start_mitigation(inc.id, by="bob").phase
        actions: list[str] = flow.available_actions(inc.id)
        print(actions, flow.requirements(inc.id, "resolve"))
        return phase


def in_memory() -> list[Incident]:
    with IncidentFlow(store=MemoryStore()) as flow:
        return flow.list(phase="identified")

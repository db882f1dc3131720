"""What the Statuspage adapter's tests share besides fixtures: constants and a driver."""

from __future__ import annotations

from datetime import UTC, datetime

from incident_flow import Event, Incident, IncidentFlow, Role, Severity

START = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
API_KEY = "sp-key-0123456789abcdef"
PAGE_ID = "pg1"
FIRST_POST = (
    "We are aware there is an issue with search on sourcegraph.com. We are investigating a "
    "resolution. If you have any questions, email support@sourcegraph.com."
)


class Driver:
    """Moves an incident of a flow through the handbook, as the people in it would."""

    def __init__(self, flow: IncidentFlow) -> None:
        self.flow = flow

    def declare(self, *, customer_impact: bool = True) -> Incident:
        return self.flow.declare(
            "Search is down",
            severity=Severity.CRITICAL,
            customer_impact=customer_impact,
            by="alice",
        )

    def mitigating(self, *, customer_impact: bool = True) -> Incident:
        """An incident with lead bob (acknowledged), messenger carol, mitigation started."""
        incident = self.declare(customer_impact=customer_impact)
        self.flow.assign(incident.id, Role.LEAD, "bob", by="alice")
        self.flow.acknowledge(incident.id, by="bob")
        self.flow.assign(incident.id, Role.MESSENGER, "carol", by="bob")
        self.flow.triage(incident.id, by="bob")
        return self.flow.start_mitigation(incident.id, by="bob")

    def post(self, incident_id: str, text: str = FIRST_POST, phase: str = "identified") -> Incident:
        return self.flow.post_status_update(incident_id, text, phase=phase, by="carol")

    def resolve(self, incident_id: str) -> Incident:
        self.flow.record_rollback(incident_id, outcome="rolled back to 3.29", by="bob")
        return self.flow.resolve(incident_id, by="bob")


def key_of(event: Event) -> str:
    """The idempotency key a delivery worker gives ``event`` for this plugin."""
    return f"{event.incident_id}:{event.version}:statuspage"


def last_event(flow: IncidentFlow, incident_id: str, kind: type[Event]) -> Event:
    """The latest event of class ``kind`` of the incident."""
    return [event for event in flow.history(incident_id) if isinstance(event, kind)][-1]

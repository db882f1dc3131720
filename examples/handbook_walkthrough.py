"""A walk through the handbook's incident process with the Python API.

Run it with ``python examples/handbook_walkthrough.py``. Everything stays in memory and the
clock is a fake one, so the output is the same on every run (apart from the incidents' ids).

It shows, in order: a whole incident from declaration to a closed post-mortem; a command the
process refuses, with every reason; the warnings the handbook's advice leaves on record; and an
incident that turns out to be a false positive.
"""

from __future__ import annotations

from incident_flow import (
    Event,
    FakeClock,
    Incident,
    IncidentFlow,
    Role,
    Severity,
    TransitionRefused,
    hookimpl,
)
from incident_flow.store import MemoryStore

# Commands return at once and plugins hear of events in the background; waiting this long at
# most for them keeps their lines next to the command that caused them.
DRAIN_TIMEOUT = 10.0


class EventPrinter:
    """A plugin: prints one line per committed event, as an adapter would react to it."""

    incident_flow_name = "walkthrough-printer"

    @hookimpl
    def incident_flow_event(self, event: Event, incident: Incident) -> None:
        """Print the event and the phase it left the incident in."""
        print(f"    v{event.version:<2} {event.type:<22} by {event.actor:<6} -> {incident.phase}")


def section(title: str) -> None:
    """Print a heading."""
    print(f"\n== {title}")


def whole_incident(flow: IncidentFlow, clock: FakeClock) -> None:
    """From declaration to a closed post-mortem, in the handbook's order."""
    section("A whole incident")
    incident = flow.declare(
        "Search is down", severity=Severity.CRITICAL, customer_impact=True, by="alice"
    )
    incident_id = incident.id
    flow.drain(DRAIN_TIMEOUT)

    # Nobody leads the incident yet, so starting mitigation is refused. The refusal lists every
    # unmet requirement at once, each with the handbook section it comes from.
    try:
        flow.start_mitigation(incident_id, by="alice")
    except TransitionRefused as refused:
        print(f"  start_mitigation refused in phase {refused.phase}:")
        for requirement in refused.unmet:
            print(f"    - {requirement.name}: {requirement.reason}")
            print(f"      (handbook: {requirement.handbook_ref})")
    # The same question can be asked without trying: what is allowed now?
    print(f"  allowed now: {', '.join(flow.available_actions(incident_id))}")

    clock.advance(minutes=2)
    flow.assign(incident_id, Role.LEAD, "bob", by="alice")
    flow.acknowledge(incident_id, by="bob")
    flow.assign(incident_id, Role.MESSENGER, "carol", by="bob")
    flow.triage(incident_id, by="bob")
    flow.start_mitigation(incident_id, by="bob")

    # The handbook's first move: roll back to a known good state.
    clock.advance(minutes=3)
    flow.record_rollback(incident_id, outcome="rolled back to 3.29", succeeded=True, by="bob")
    flow.post_status_update(
        incident_id,
        "Identified: We are aware there is an issue with search. We are investigating a "
        "resolution. If you have any questions, email support@sourcegraph.com.",
        phase="identified",
        by="carol",
    )

    # A customer-impacting incident resolves only after a status-page post, which was made.
    clock.advance(minutes=20)
    flow.resolve(incident_id, by="bob")
    flow.start_postmortem(incident_id, by="bob")
    for item in ("update_status", "confirm_messenger_updates", "generate_postmortem_doc"):
        flow.complete_item(incident_id, item, by="bob")
    flow.waive_item(
        incident_id, "close_github_issues", reason="no public issue was opened", by="bob"
    )
    flow.complete_item(incident_id, "create_followup_issues", by="bob")
    # The retrospective is optional ("if you think it would be valuable"): close leaves it open.
    incident = flow.close(incident_id, by="bob")
    flow.drain(DRAIN_TIMEOUT)
    print(f"  {incident.id} is {incident.phase}, {incident.version} events on record")


def warnings_on_record(flow: IncidentFlow) -> None:
    """Advice the handbook gives is not a refusal: the command goes ahead with a warning."""
    section("Warnings")

    # One person as lead and messenger of a customer-impacting incident.
    first = flow.declare("Sign-in fails", severity=Severity.MAJOR, customer_impact=True, by="dave")
    flow.assign(first.id, Role.LEAD, "erin", by="dave")
    first = flow.assign(first.id, Role.MESSENGER, "erin", by="erin")

    # A resolution owner picked before any rollback was tried.
    second = flow.declare(
        "Code intel is slow", severity=Severity.MAJOR, customer_impact=False, by="dave"
    )
    flow.assign(second.id, Role.LEAD, "frank", by="dave")
    second = flow.assign(second.id, Role.RESOLUTION_OWNER, "grace", by="frank")
    flow.drain(DRAIN_TIMEOUT)

    for incident in (first, second):
        print(f"  {incident.title}:")
        for warning in incident.warnings:
            print(f"    - {warning.name}: {warning.reason} (handbook: {warning.handbook_ref})")


def false_positive(flow: IncidentFlow) -> None:
    """Not an incident after all: it stays on record, with the reason."""
    section("A false positive")
    incident = flow.declare(
        "Search may be down", severity=Severity.MAJOR, customer_impact=False, by="heidi"
    )
    incident = flow.mark_false_positive(
        incident.id, reason="a local network problem; search was up", by="heidi"
    )
    flow.drain(DRAIN_TIMEOUT)
    print(f"  {incident.title}: {incident.phase} ({incident.false_positive_reason})")


def main() -> None:
    """Run the walkthrough."""
    clock = FakeClock()
    with IncidentFlow(
        store=MemoryStore(), plugins=[EventPrinter()], clock=clock, entry_points=False
    ) as flow:
        whole_incident(flow, clock)
        warnings_on_record(flow)
        false_positive(flow)
        print(f"\nIncidents on record: {len(flow.list())}")


if __name__ == "__main__":
    main()

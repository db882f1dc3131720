"""A team's own incident process, derived from the handbook's.

Run it with ``python examples/custom_process.py``; draw the process with
``incident-flow diagram --process custom_process:TEAM_PROCESS`` from this directory.

The team's changes to :data:`~incident_flow.HANDBOOK`:

- a ``monitoring`` phase between ``mitigating`` and ``resolved``: a fix is watched before the
  incident is called resolved, and ``relapse`` goes back to mitigating if it does not hold;
- the lead is called "Incident Commander";
- resolving no longer waits for a status-page post (the team posts from another tool);
- a guarded action of its own, ``issue_temporary_licence``, for the handbook's go-to-market
  issues: a temporary licence key is valid for at most 7 days.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from incident_flow import (
    HANDBOOK,
    Context,
    FakeClock,
    Guard,
    IncidentFlow,
    PhaseSpec,
    Process,
    Role,
    Severity,
    Transition,
    TransitionRefused,
)
from incident_flow.console import ConsoleSlack
from incident_flow.errors import ProcessDefinitionError
from incident_flow.store import MemoryStore

MONITORING = "monitoring"
TEMPORARY_LICENCE_DAYS = 7
GO_TO_MARKET = "Go-to-market (license and subscription) issues"
DRAIN_TIMEOUT = 10.0


def _valid_days(context: Context) -> int:
    return int(context.payload.get("valid_days", "0"))


# The key's validity comes with the command (`flow.transition(..., valid_days="7")`); the guard
# reads it from the context, and the event records it.
LICENCE_GUARD = Guard(
    "licence_valid_at_most_7_days",
    lambda incident, context: 0 < _valid_days(context) <= TEMPORARY_LICENCE_DAYS,
    lambda incident, context: (
        f"a temporary licence key is valid for at most {TEMPORARY_LICENCE_DAYS} days, not "
        f"{_valid_days(context)}; ask the go-to-market team to validate the customer's "
        "subscription for anything longer"
    ),
    GO_TO_MARKET,
    reads=("valid_days",),
)


def build_team_process() -> Process:
    """Derive the team's process from the handbook's, one change at a time."""
    # The new phase comes with the transitions into and out of it: a process is validated each
    # time it is built, and a phase nothing leaves would be refused.
    process = HANDBOOK.with_phase(
        PhaseSpec(MONITORING, "Monitoring", active=True),
        Transition("monitor", "mitigating", MONITORING),
        Transition("relapse", MONITORING, "mitigating"),
    )
    # Resolving now starts from monitoring; the actions open while mitigating stay open while
    # monitoring (status posts, rollbacks, roles, false positive…).
    transitions = []
    for transition in process.transitions:
        if transition.action == "resolve":
            transition = attrs.evolve(transition, sources=(MONITORING,))
        elif "mitigating" in transition.sources and transition.dest != MONITORING:
            transition = attrs.evolve(transition, sources=(*transition.sources, MONITORING))
        transitions.append(transition)
    process = process.evolve(name="search-team", transitions=transitions)

    process = process.with_roles(lead="Incident Commander")
    process = process.without_guard("resolve", "status_update_posted")

    # The team's own action; it keeps the phase and is recorded as an ActionTaken event.
    process = process.with_transition(
        Transition("issue_temporary_licence", ("mitigating", MONITORING))
    )
    return process.with_guard("issue_temporary_licence", LICENCE_GUARD)


TEAM_PROCESS = build_team_process()
"""The team's process; ``incident-flow diagram --process custom_process:TEAM_PROCESS`` draws it."""


def run_incidents(flow: IncidentFlow, clock: FakeClock) -> None:
    """Take incidents through the team's process."""

    def start(title: str, *, customer_impact: bool) -> str:
        incident = flow.declare(
            title, severity=Severity.MAJOR, customer_impact=customer_impact, by="alice"
        )
        flow.assign(incident.id, Role.LEAD, "bob", by="alice")
        flow.acknowledge(incident.id, by="bob")
        if customer_impact:
            flow.assign(incident.id, Role.MESSENGER, "carol", by="bob")
        flow.start_mitigation(incident.id, by="bob")
        flow.drain(DRAIN_TIMEOUT)
        return incident.id

    print("\n== A fix, monitored, then resolved (no status-page post needed by this team)")
    fixed = start("Search is slow", customer_impact=True)
    clock.advance(minutes=10)
    flow.transition(fixed, "monitor", by="bob")
    clock.advance(minutes=30)
    incident = flow.resolve(fixed, by="bob")
    flow.drain(DRAIN_TIMEOUT)
    print(f"  {incident.title}: {incident.phase}")

    # Without customer impact these need no messenger and make no announcements: shorter output.
    print("\n== A customer's licence expired: a temporary key, valid for 7 days")
    licence = start("Customer licence expired", customer_impact=False)
    clock.advance(minutes=20)
    flow.transition(licence, "issue_temporary_licence", by="bob", valid_days="7")
    flow.drain(DRAIN_TIMEOUT)
    last = flow.history(licence)[-1]
    print(f"  recorded: {last.type} {getattr(last, 'arguments', {})}")

    print("\n== A key for 30 days: refused")
    try:
        flow.transition(licence, "issue_temporary_licence", by="bob", valid_days="30")
    except TransitionRefused as refused:
        for requirement in refused.unmet:
            print(f"  refused, {requirement.name}: {requirement.reason}")
            print(f"    (handbook: {requirement.handbook_ref})")
    flow.drain(DRAIN_TIMEOUT)


def show_malformed_processes() -> None:
    """A malformed process is refused when it is built, never when an incident hits it."""
    print("\n== Malformed processes")
    attempts: dict[str, Callable[[], Process]] = {
        "a phase nothing leaves": lambda: TEAM_PROCESS.with_phase(
            PhaseSpec("verifying", "Verifying", active=True),
            Transition("verify", MONITORING, "verifying"),
        ),
        "a guard that does not exist": lambda: TEAM_PROCESS.with_transition(
            Transition("escalate", MONITORING, "mitigating", guards="exec_approved")
        ),
    }
    for label, build in attempts.items():
        try:
            build()
        except ProcessDefinitionError as error:
            print(f"  {label}: {error}")


def main() -> None:
    """Run the example."""
    clock = FakeClock()
    # The console adapter names roles the way the team's process does.
    slack = ConsoleSlack(roles=TEAM_PROCESS.roles)
    with IncidentFlow(
        process=TEAM_PROCESS, store=MemoryStore(), plugins=[slack], clock=clock, entry_points=False
    ) as flow:
        run_incidents(flow, clock)
    show_malformed_processes()


if __name__ == "__main__":
    main()

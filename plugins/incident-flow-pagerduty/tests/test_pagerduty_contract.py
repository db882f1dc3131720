"""The plugin contract, checked by the harness against both PagerDuty APIs.

The harness injects faults into one API at a time, so it runs twice: against the Events API
(every transition of the handbook, a few random sequences, and paths that page), and against
the REST API (the paths that page and then post status updates). Effects are counted on both
servers in both runs, so a redelivery that repeats a request to either one is caught.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from incident_flow_pagerduty import PagerDutyPlugin

from incident_flow import HANDBOOK, IncidentFlow
from incident_flow.store.memory import MemoryStore
from incident_flow.testing.commands import STATUS_TEXTS, Command, Declaration
from incident_flow.testing.paths import Path, Step, shortest_paths
from incident_flow.testing.plugins import check_plugin
from incident_flow.testing.vendor_api import VendorAPI


def path_of(declaration: Declaration, *commands: Command) -> Path:
    """A path of these commands, each allowed in turn (checked by running it)."""
    path = Path(declaration)
    with IncidentFlow(
        store=MemoryStore(), entry_points=False, deliver=False, reminders=False
    ) as flow:
        incident = declaration.run(flow)
        for command in commands:
            after = command.run(flow, incident.id)
            path = path.then(Step(command, (incident.phase, command.action, after.phase)))
            incident = after
    return path


def status(phase: str, by: str = "bob") -> Command:
    return Command("post_status_update", by, (("text", STATUS_TEXTS[phase]), ("phase", phase)))


PAGING_PATHS = [
    # Paged, answered, paged again, posted on, resolved.
    path_of(
        Declaration(),
        Command("page", "alice", (("target", "delivery team"),)),
        Command("assign", "alice", (("role", "lead"), ("person", "alice"))),
        Command("acknowledge", "alice"),
        Command("assign", "alice", (("role", "messenger"), ("person", "bob"))),
        Command("start_mitigation", "alice"),
        status("identified"),
        Command("acknowledge_page", "sam", (("page", "page-2"),)),
        Command("page", "alice", (("target", "search-team"),)),
        status("investigating"),
        Command("resolve", "alice"),
        status("resolved"),
    ),
    # The paged person takes the lead: their "I'm on it" answers the page.
    path_of(
        Declaration(),
        Command("page", "alice", (("target", "sam"),)),
        Command("assign", "alice", (("role", "lead"), ("person", "sam"))),
        Command("acknowledge", "sam"),
        status("identified", by="sam"),
    ),
    # A false alarm, paged before anyone knew.
    path_of(
        Declaration(customer_impact=False),
        Command("page", "alice", (("target", "delivery team"),)),
        Command("mark_false_positive", "alice", (("reason", "a monitoring glitch"),)),
    ),
]


def test_the_paths_page_post_and_resolve() -> None:
    assert [len(path) for path in PAGING_PATHS] == [11, 4, 2]


def test_the_contract_holds_against_the_events_api(
    make_plugin: Callable[..., PagerDutyPlugin],
    events_api: VendorAPI,
    rest_api: VendorAPI,
    known: Any,
) -> None:
    plugin = make_plugin(escalation_routing_key=known.escalation_key)

    report = check_plugin(
        plugin,
        api=events_api,
        paths=[*shortest_paths(HANDBOOK), *PAGING_PATHS],
        sequences=3,
        timeout=3,
        effects=lambda: known.mutating(events_api, rest_api),
    )

    report.raise_for_problems()
    for kind in ("PageSent", "PageAcknowledged", "OwnershipAcknowledged", "FalsePositiveMarked"):
        assert report.events_delivered[kind] > 0
    # The harness lets 31 minutes pass after each path: a page still open then escalates, a
    # trigger on the escalation routing key.
    assert report.events_delivered["ReminderDue"] > 0
    escalations = [
        r
        for r in events_api.requests_to("POST", "/enqueue")
        if r.body.get("routing_key") == known.escalation_key
    ]
    assert escalations
    assert {r.body["event_action"] for r in escalations} >= {"trigger"}
    assert rest_api.invalid_requests == []


def test_the_contract_holds_against_the_rest_api(
    plugin: PagerDutyPlugin,
    events_api: VendorAPI,
    rest_api: VendorAPI,
    known: Any,
) -> None:
    report = check_plugin(
        plugin,
        api=rest_api,
        paths=PAGING_PATHS,
        sequences=0,
        timeout=3,
        effects=lambda: known.mutating(events_api, rest_api),
    )

    report.raise_for_problems()
    assert report.events_delivered["StatusUpdatePosted"] == 4
    assert rest_api.requests_to("POST", "/incidents/{id}/status_updates")
    assert events_api.invalid_requests == []

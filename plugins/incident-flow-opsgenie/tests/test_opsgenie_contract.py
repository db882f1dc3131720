"""The adapter keeps incident_flow's plugin contract (``check_plugin``) against a local Opsgenie.

Besides the shortest path to every transition of the handbook and a few random sequences, it
replays paths that page and then acknowledge, resolve or dismiss the incident, so that every
alert operation is sent, redelivered and failed (429, 503, 400, a slow answer); the reminder
the harness lets fall due after a path whose page is still open escalates it.
"""

from __future__ import annotations

from collections.abc import Callable

from incident_flow_opsgenie import OpsgeniePlugin

from incident_flow import HANDBOOK, Role
from incident_flow.testing.commands import Command, Declaration
from incident_flow.testing.paths import Path, Step, explore
from incident_flow.testing.plugins import check_plugin
from incident_flow.testing.vendor_api import VendorAPI


def _path(declaration: Declaration, *commands: Command) -> Path:
    return Path(declaration, tuple(Step(c, ("?", c.action, "?")) for c in commands))


QUIET = Declaration(customer_impact=False)
LEAD = (
    Command("assign", "alice", (("role", Role.LEAD), ("person", "bob"))),
    Command("acknowledge", "bob"),
)
PAGE = Command("page", "bob", (("target", "Search"), ("message", "search is down")))
PAGE_CAROL = Command("page", "alice", (("target", "carol"),))
RESOLVE = (Command("triage", "bob"), Command("start_mitigation", "bob"), Command("resolve", "bob"))

PAGING_PATHS = (
    # A page answered, then the incident resolved: acknowledge, then close.
    _path(
        QUIET,
        *LEAD,
        PAGE,
        Command("acknowledge_page", "dana", (("page", "page-4"),)),
        *RESOLVE,
    ),
    # The paged person takes the lead: their "I'm on it" acknowledges the page.
    _path(
        QUIET,
        PAGE_CAROL,
        Command("assign", "alice", (("role", Role.LEAD), ("person", "carol"))),
        Command("acknowledge", "carol"),
    ),
    # A false positive closes the open alert.
    _path(QUIET, PAGE, Command("mark_false_positive", "alice", (("reason", "a flaky probe"),))),
)


def test_the_adapter_keeps_the_plugin_contract(
    opsgenie_api: VendorAPI, make_plugin: Callable[..., OpsgeniePlugin]
) -> None:
    paths = [*explore(HANDBOOK).shortest.values(), *PAGING_PATHS]
    plugin = make_plugin(timeout=1.0)  # well under the check's own timeout

    report = check_plugin(plugin, api=opsgenie_api, paths=paths, sequences=3, timeout=3.0)

    report.raise_for_problems()
    operations = {(r.method, r.operation) for r in opsgenie_api.requests}
    assert {
        ("POST", "/v2/alerts"),
        ("POST", "/v2/alerts/{identifier}/acknowledge"),
        ("POST", "/v2/alerts/{identifier}/close"),
        # The harness lets 31 minutes pass after each path: a page still open then escalates.
        ("POST", "/v2/alerts/{identifier}/responders"),
    } <= operations

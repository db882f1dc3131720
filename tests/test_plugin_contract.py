"""check_plugin passes a well-behaved adapter and catches each way a broken one fails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from incident_flow import HANDBOOK, Event, Role, hookimpl
from incident_flow.errors import InvalidFieldError, PluginError
from incident_flow.events import ReminderDue
from incident_flow.testing.commands import Command, Declaration
from incident_flow.testing.paths import Path, Step
from incident_flow.testing.plugins import (
    PluginContractError,
    PluginReport,
    check_plugin,
    random_paths,
)
from incident_flow.testing.vendor_api import VendorAPI
from tests.example_adapters import (
    DoublePostingAdapter,
    FragileAdapter,
    NoTimeoutAdapter,
    PlainRateLimitAdapter,
    StatuspageAdapter,
    SwallowingAdapter,
)

STATUSPAGE = "statuspage_openapi.json"

COMMANDS = (
    Command("assign", "alice", (("role", Role.LEAD), ("person", "bob"))),
    Command("acknowledge", "bob"),
    Command("assign", "bob", (("role", Role.MESSENGER), ("person", "carol"))),
    Command("triage", "bob"),
    Command("start_mitigation", "bob"),
    Command("record_rollback", "bob", (("outcome", "rolled back to 3.29"), ("succeeded", True))),
    Command(
        "post_status_update",
        "carol",
        (
            ("text", "Identified: search. Questions: support@sourcegraph.com."),
            ("phase", "identified"),
        ),
    ),
    Command(
        "post_status_update",
        "carol",
        (("text", "Investigating: still on it."), ("phase", "investigating")),
    ),
    Command("resolve", "bob"),
    Command(
        "post_status_update", "carol", (("text", "Resolved: all good."), ("phase", "resolved"))
    ),
)


def _path(commands: tuple[Command, ...]) -> Path:
    """A path through the handbook made of ``commands`` (transitions only label the steps)."""
    return Path(Declaration(), tuple(Step(c, ("?", c.action, "?")) for c in commands))


STATUS_PATH = _path(COMMANDS)
"""Declare, mitigate, post identified and investigating, resolve, post resolved: with two
random sequences, enough for most tests (the default explores the whole handbook)."""


@pytest.fixture
def api() -> Iterator[VendorAPI]:
    with VendorAPI.from_spec(STATUSPAGE) as api:
        yield api


def test_well_behaved_adapter_keeps_the_contract(api: VendorAPI) -> None:
    adapter = StatuspageAdapter(api.base_url)

    report = check_plugin(adapter, api=api, paths=[STATUS_PATH], sequences=2)

    assert report.ok, str(report)
    report.raise_for_problems()
    assert report.plugin == "statuspage"
    assert report.events_delivered["StatusUpdatePosted"] >= 3
    assert report.events_delivered["IncidentDeclared"] >= 1
    assert api.requests_to("POST", "/pages/{page_id}/incidents")
    assert api.requests_to("PATCH", "/pages/{page_id}/incidents/{incident_id}")
    # The faults were played: a 429, a 503 and a 400 were answered.
    assert {429, 503, 400} <= {request.status for request in api.requests}
    assert "keeps its contract" in str(report)


def test_well_behaved_adapter_on_every_transition_of_the_handbook(api: VendorAPI) -> None:
    """The default: the shortest path to each transition, plus ten random sequences."""
    report = check_plugin(StatuspageAdapter(api.base_url), api=api)

    assert report.ok, str(report)
    assert report.events_delivered["StatusUpdatePosted"] > 0
    assert len(report.events_delivered) >= 8


def test_double_posting_on_redelivery_is_caught(api: VendorAPI) -> None:
    report = check_plugin(
        DoublePostingAdapter(api.base_url), api=api, paths=[STATUS_PATH], sequences=2
    )

    problems = [p for p in report.problems if p.check == "idempotency"]
    assert problems, str(report)
    (problem,) = problems
    assert problem.event == "StatusUpdatePosted"
    assert problem.key.endswith(":statuspage-double-post")
    assert problem.key.startswith("check-1:")
    assert "more external effect" in problem.message
    assert "post_status_update" in problem.path
    with pytest.raises(PluginContractError, match="idempotency") as raised:
        report.raise_for_problems()
    assert raised.value.report is report


def test_idempotency_counted_by_effects_without_api(api: VendorAPI) -> None:
    """``effects=`` counts effects when no VendorAPI is given (here the adapter's own log)."""
    posts: list[str] = []

    class Logging(DoublePostingAdapter):
        def handle(self, event: object, incident: object) -> None:
            posts.append(type(event).__name__)

    report = check_plugin(
        Logging(api.base_url), effects=lambda: posts, paths=[STATUS_PATH], sequences=0
    )

    assert {p.check for p in report.problems} == {"idempotency"}
    assert report.events_delivered["RoleAssigned"] == 2


def test_swallowed_5xx_is_caught(api: VendorAPI) -> None:
    report = check_plugin(
        SwallowingAdapter(api.base_url), api=api, paths=[STATUS_PATH], sequences=2
    )

    (problem,) = report.problems
    assert problem.check == "vendor-errors"
    assert "swallowed a 5xx" in problem.message
    assert problem.event == "StatusUpdatePosted"
    assert "-fault-" in problem.key


def test_429_as_plain_error_is_caught(api: VendorAPI) -> None:
    report = check_plugin(
        PlainRateLimitAdapter(api.base_url), api=api, paths=[STATUS_PATH], sequences=2
    )

    (problem,) = report.problems
    assert problem.check == "vendor-errors"
    assert "429 not turned into RetryableDeliveryError(retry_after=...)" in problem.message
    assert "RuntimeError" in problem.message


def test_ignoring_its_own_timeout_is_caught(api: VendorAPI) -> None:
    started = time.perf_counter()

    report = check_plugin(
        NoTimeoutAdapter(api.base_url), api=api, timeout=1.0, paths=[STATUS_PATH], sequences=0
    )

    assert time.perf_counter() - started < 6  # the blocked call was not waited for
    (problem,) = report.problems
    assert problem.check == "vendor-errors"
    assert "blocked beyond its timeout" in problem.message
    assert problem.event == "StatusUpdatePosted"


def test_raising_on_an_event_kind_is_caught(api: VendorAPI) -> None:
    report = check_plugin(FragileAdapter(api.base_url), api=api, paths=[STATUS_PATH], sequences=2)

    (problem,) = report.problems  # the status updates are still checked under faults
    assert problem.check == "events"
    assert problem.event == "RoleAssigned"
    assert "KeyError" in problem.message
    assert "while the vendor is healthy" in problem.message
    assert problem.key.endswith(":statuspage-fragile")
    assert "RoleAssigned" not in report.events_delivered
    assert "RoleAssigned" in str(report)


def test_invalid_requests_are_problems() -> None:
    with VendorAPI.from_spec(STATUSPAGE, strict=False) as api:

        class Nameless(StatuspageAdapter):
            def send(self, method: str, path: str, body: object) -> dict[str, object] | None:
                assert isinstance(body, dict)
                del body["incident"]["name"]
                return super().send(method, path, body)

        report = check_plugin(Nameless(api.base_url), api=api, paths=[STATUS_PATH], sequences=0)

    checks = {p.check for p in report.problems}
    assert "requests" in checks
    assert any("name" in p.message for p in report.problems if p.check == "requests")


def test_random_paths_are_deterministic_and_valid() -> None:
    first = random_paths(HANDBOOK, 3, seed=4)
    assert [str(p) for p in first] == [str(p) for p in random_paths(HANDBOOK, 3, seed=4)]
    assert [str(p) for p in first] != [str(p) for p in random_paths(HANDBOOK, 3, seed=5)]
    assert all(len(path) >= 1 for path in first)


def test_report_is_readable() -> None:
    report = PluginReport("p", {"IncidentDeclared": 2})
    assert report.ok
    report.raise_for_problems()
    assert "IncidentDeclared ×2" in str(report)


def test_a_plugin_without_the_hook_is_refused() -> None:
    class Nothing:
        incident_flow_name = "nothing"

    with pytest.raises(PluginError, match="incident_flow_event"):
        check_plugin(Nothing(), paths=[], sequences=0)


def test_reminders_that_fall_due_after_a_path_are_delivered() -> None:
    """Each path is followed by 31 minutes: the unanswered page and the status update due are
    delivered too, so a plugin's reactions to reminders are checked."""
    paged = _path((Command("page", "alice", (("target", "search-oncall"), ("message", "down"))),))
    seen: list[tuple[str, str, int]] = []

    class ReminderRecorder:
        incident_flow_name = "reminder-recorder"

        @hookimpl
        def incident_flow_event(self, event: Event, key: str) -> None:
            if isinstance(event, ReminderDue):
                seen.append((key, event.reminder, event.missed))

    report = check_plugin(ReminderRecorder(), paths=[paged], sequences=0)

    assert report.ok, str(report)
    assert report.events_delivered["ReminderDue"] == 2
    first = [(reminder, missed) for key, reminder, missed in seen if key.startswith("check-1:")]
    # Delivered, then redelivered with the same key: each twice.
    assert sorted(first) == sorted(2 * [("page_unacknowledged", 2), ("status_update_due", 0)])


def test_reminders_after_none_delivers_no_reminder(api: VendorAPI) -> None:
    report = check_plugin(
        StatuspageAdapter(api.base_url),
        api=api,
        paths=[STATUS_PATH],
        sequences=0,
        reminders_after=None,
    )

    assert report.ok, str(report)
    assert "ReminderDue" not in report.events_delivered


@pytest.mark.parametrize("wait", [timedelta(minutes=-1), 31])
def test_reminders_after_must_be_a_duration(wait: object) -> None:
    with pytest.raises(InvalidFieldError, match="reminders_after"):
        check_plugin(StatuspageAdapter("http://127.0.0.1:9"), reminders_after=wait)  # type: ignore[arg-type]

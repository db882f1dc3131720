"""GitHub's failures become delivery errors: rate limits, 5xx, timeouts and lost connections
are retried (what was done stays done), any other refusal is permanent with GitHub's words, and
the token never shows."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
from incident_flow_github import GitHubPlugin, link_issue

from incident_flow import FakeClock, IncidentFlow, ItemState
from incident_flow.errors import PermanentDeliveryError, RetryableDeliveryError
from incident_flow.events import Event, PhaseChanged
from incident_flow.model import Incident
from incident_flow.store.base import DeliveryStatus
from incident_flow.testing.vendor_api import VendorAPI

TOKEN = "ghp_test0123456789abcdefTOKEN"
COMMENTS = "/repos/{owner}/{repo}/issues/{issue_number}/comments"
ISSUE = "/repos/{owner}/{repo}/issues/{issue_number}"


def _resolution(flow: IncidentFlow, drive: Callable[[IncidentFlow], str], *issues: str) -> Event:
    """Resolve an incident with ``issues`` linked, in a flow without plugins; the event."""
    incident_id = drive(flow)
    for issue in issues:
        link_issue(flow, incident_id, issue, by="bob")
    flow.resolve(incident_id, by="bob")
    return next(e for e in flow.history(incident_id) if isinstance(e, PhaseChanged) and e.resolves)


def _deliver(plugin: GitHubPlugin, flow: IncidentFlow, event: Event) -> None:
    incident = _as_of(flow, event)
    plugin.incident_flow_event(event, incident, f"{event.incident_id}:{event.version}:github", flow)


def _as_of(flow: IncidentFlow, event: Event) -> Incident:
    state: Incident | None = None
    for each in flow.history(event.incident_id)[: event.version]:
        state = each.apply(state)
    assert state is not None
    return state


@pytest.fixture
def quiet_flow(make_flow: Callable[..., IncidentFlow]) -> IncidentFlow:
    """A flow without plugins: the tests call the hook themselves and catch what it raises."""
    return make_flow()


def test_a_rate_limit_is_retried_after_the_time_github_gives(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    quiet_flow: IncidentFlow,
    drive: Callable[[IncidentFlow], str],
) -> None:
    event = _resolution(quiet_flow, drive, "acme/web#12")
    github_api.fail("POST", COMMENTS, status=429, retry_after=7)

    with pytest.raises(RetryableDeliveryError, match="HTTP 429") as raised:
        _deliver(plugin, quiet_flow, event)

    assert raised.value.retry_after == 7
    assert quiet_flow.get(event.incident_id).external_ref("github", "issue_comment") is None


def test_a_403_rate_limit_is_retried_at_the_reset_time(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    quiet_flow: IncidentFlow,
    drive: Callable[[IncidentFlow], str],
) -> None:
    event = _resolution(quiet_flow, drive, "acme/web#12")
    reset = int(time.time()) + 120
    github_api.fail(
        "POST",
        COMMENTS,
        status=403,
        json={"message": "API rate limit exceeded for installation ID 1."},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )

    with pytest.raises(RetryableDeliveryError, match="rate limit") as raised:
        _deliver(plugin, quiet_flow, event)

    assert raised.value.retry_after is not None
    assert 100 < raised.value.retry_after <= 120


def test_a_5xx_is_retried_and_the_retry_does_only_what_is_left(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    quiet_flow: IncidentFlow,
    drive: Callable[[IncidentFlow], str],
) -> None:
    event = _resolution(quiet_flow, drive, "acme/web#12")
    github_api.fail("PATCH", ISSUE, status=503)

    with pytest.raises(RetryableDeliveryError, match="HTTP 503") as raised:
        _deliver(plugin, quiet_flow, event)
    assert not isinstance(raised.value, PermanentDeliveryError)
    _deliver(plugin, quiet_flow, event)

    assert len(github_api.requests_to("POST", COMMENTS)) == 1  # commented once in all
    assert [r.status for r in github_api.requests_to("PATCH", ISSUE)] == [503, 200]
    item = quiet_flow.get(event.incident_id).item("close_github_issues")
    assert item is not None
    assert item.state is ItemState.DONE


def test_a_slow_answer_is_a_retriable_timeout(
    github_api: VendorAPI,
    make_plugin: Callable[..., GitHubPlugin],
    quiet_flow: IncidentFlow,
    drive: Callable[[IncidentFlow], str],
) -> None:
    plugin = make_plugin(timeout=0.5)
    event = _resolution(quiet_flow, drive, "acme/web#12")
    github_api.delay("POST", COMMENTS, seconds=2)  # the client gives up after 0.5 s

    with pytest.raises(RetryableDeliveryError, match=r"no answer within 0\.5 s"):
        _deliver(plugin, quiet_flow, event)


def test_an_unreachable_github_is_retriable(
    make_plugin: Callable[..., GitHubPlugin],
    quiet_flow: IncidentFlow,
    drive: Callable[[IncidentFlow], str],
) -> None:
    with socket.socket() as free:  # a port nobody listens on once this closes
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    plugin = make_plugin(api_url=f"http://127.0.0.1:{port}")
    event = _resolution(quiet_flow, drive, "acme/web#12")

    with pytest.raises(RetryableDeliveryError, match="ConnectError"):
        _deliver(plugin, quiet_flow, event)


def test_a_refusal_is_permanent_with_githubs_message(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    quiet_flow: IncidentFlow,
    drive: Callable[[IncidentFlow], str],
) -> None:
    event = _resolution(quiet_flow, drive, "acme/web#12")
    github_api.fail(
        "POST",
        COMMENTS,
        status=403,
        json={"message": "Unable to create comment because issue is locked."},
    )

    with pytest.raises(PermanentDeliveryError, match="issue is locked") as raised:
        _deliver(plugin, quiet_flow, event)

    assert "comment on acme/web#12" in str(raised.value)
    assert "HTTP 403" in str(raised.value)


def test_one_refused_issue_does_not_keep_the_others_open(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    quiet_flow: IncidentFlow,
    drive: Callable[[IncidentFlow], str],
) -> None:
    event = _resolution(quiet_flow, drive, "acme/gone#1", "acme/web#2")
    github_api.fail("POST", "/repos/acme/gone/issues/1/comments", status=410, json={})

    with pytest.raises(PermanentDeliveryError, match="HTTP 410"):
        _deliver(plugin, quiet_flow, event)

    assert [r.path for r in github_api.requests_to("PATCH", ISSUE)] == ["/repos/acme/web/issues/2"]
    item = quiet_flow.get(event.incident_id).item("close_github_issues")
    assert item is not None
    assert item.state is ItemState.OPEN  # one issue is still open: a person decides


def test_the_token_never_shows_in_an_error(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    quiet_flow: IncidentFlow,
    drive: Callable[[IncidentFlow], str],
) -> None:
    event = _resolution(quiet_flow, drive, "acme/web#12")
    github_api.fail(
        "POST",
        COMMENTS,
        status=401,
        json={"message": f"Bad credentials: Bearer {TOKEN} is not valid ({TOKEN})"},
    )

    with pytest.raises(PermanentDeliveryError) as raised:
        _deliver(plugin, quiet_flow, event)

    assert "Bad credentials" in str(raised.value)
    assert TOKEN not in str(raised.value)
    assert TOKEN not in repr(raised.value)


def test_a_flow_dead_letters_a_refusal_and_retries_a_5xx(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
    drive: Callable[[IncidentFlow], str],
    clock: FakeClock,
) -> None:
    flow = make_flow(plugin)
    incident_id = drive(flow)
    link_issue(flow, incident_id, "acme/web#12", by="bob")
    assert flow.drain(timeout=10)
    github_api.fail("POST", COMMENTS, status=503)

    flow.resolve(incident_id, by="bob")
    assert flow.drain(timeout=10)
    (failed,) = flow.deliveries(status=DeliveryStatus.FAILED)
    assert failed.last_error is not None
    assert "HTTP 503" in failed.last_error

    clock.advance(seconds=60)
    assert flow.drain(timeout=10)

    assert flow.deliveries(status=DeliveryStatus.FAILED) == []
    assert [r.status for r in github_api.requests_to("POST", COMMENTS)] == [503, 201]
    assert len(github_api.requests_to("PATCH", ISSUE)) == 1

    github_api.fail("POST", "/repos/{owner}/{repo}/issues", status=422, json={"message": "nope"})
    flow.add_follow_up(incident_id, "Add a canary", by="bob")
    flow.start_postmortem(incident_id, by="bob")
    assert flow.drain(timeout=10)
    (dead,) = flow.deliveries(status=DeliveryStatus.DEAD)
    assert dead.last_error is not None
    assert "PermanentDeliveryError" in dead.last_error
    assert "nope" in dead.last_error


def test_an_issue_of_a_renamed_repository_is_closed_at_its_new_address(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    quiet_flow: IncidentFlow,
    drive: Callable[[IncidentFlow], str],
) -> None:
    event = _resolution(quiet_flow, drive, "acme/old-name#12")
    github_api.respond(
        "PATCH",
        "/repos/acme/old-name/issues/12",
        status=301,
        json={"message": "Moved Permanently"},
        headers={"Location": github_api.base_url + "/repos/acme/new-name/issues/12"},
    )

    _deliver(plugin, quiet_flow, event)

    closes = github_api.requests_to("PATCH", ISSUE)
    assert [(r.path, r.status) for r in closes] == [
        ("/repos/acme/old-name/issues/12", 301),
        ("/repos/acme/new-name/issues/12", 200),
    ]
    assert closes[1].body == {"state": "closed", "state_reason": "completed"}
    assert closes[1].headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_redirect_loop_is_permanent(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    quiet_flow: IncidentFlow,
    drive: Callable[[IncidentFlow], str],
) -> None:
    event = _resolution(quiet_flow, drive, "acme/web#12")
    github_api.respond(
        "PATCH",
        "/repos/acme/web/issues/12",
        status=301,
        json={"message": "Moved Permanently"},
        headers={"Location": github_api.base_url + "/repos/acme/web/issues/12"},
    )

    with pytest.raises(PermanentDeliveryError, match="redirected too often"):
        _deliver(plugin, quiet_flow, event)


def test_without_the_flow_there_is_nothing_to_look_up_so_it_is_permanent(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    quiet_flow: IncidentFlow,
    drive: Callable[[IncidentFlow], str],
) -> None:
    event = _resolution(quiet_flow, drive, "acme/web#12")

    with pytest.raises(PermanentDeliveryError, match="flow="):
        plugin.incident_flow_event(event, _as_of(quiet_flow, event), "k", None)

    assert github_api.requests == []

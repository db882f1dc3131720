"""On resolution, each linked public issue gets one comment and is closed once; then the
checklist item ``close_github_issues`` is completed, when the process allows it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from incident_flow_github import GitHubPlugin, link_issue

from incident_flow import IncidentFlow, ItemState, Phase, Transition
from incident_flow.events import ChecklistItemCompleted, PhaseChanged
from incident_flow.process import HANDBOOK
from incident_flow.store.base import DeliveryStatus
from incident_flow.testing.vendor_api import VendorAPI

COMMENTS = "/repos/{owner}/{repo}/issues/{issue_number}/comments"
ISSUE = "/repos/{owner}/{repo}/issues/{issue_number}"


def _answer_issue(api: VendorAPI, owner: str, repo: str, number: int) -> None:
    """Answer the PATCH of one issue as GitHub would: with that issue, now closed."""
    body = api.example_response("PATCH", ISSUE)
    body.update(
        number=number,
        state="closed",
        html_url=f"https://github.com/{owner}/{repo}/issues/{number}",
    )
    api.respond("PATCH", f"/repos/{owner}/{repo}/issues/{number}", json=body)


def test_resolving_comments_on_and_closes_each_linked_issue(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
    drive: Callable[[IncidentFlow], str],
) -> None:
    _answer_issue(github_api, "acme", "web", 12)
    flow = make_flow(plugin, deliver=True)
    incident_id = drive(flow)
    link_issue(flow, incident_id, "acme/web#12", by="bob")
    link_issue(flow, incident_id, "https://github.com/acme/api/issues/3#issuecomment-9", by="bob")

    flow.resolve(incident_id, by="bob")
    assert flow.drain(timeout=10)

    comments = github_api.requests_to("POST", COMMENTS)
    assert [r.path for r in comments] == [
        "/repos/acme/web/issues/12/comments",
        "/repos/acme/api/issues/3/comments",
    ]
    note = comments[0].body["body"]
    assert incident_id in note
    assert "resolved" in note
    assert f"https://incidents.example.com/{incident_id}" in note
    closes = github_api.requests_to("PATCH", ISSUE)
    assert [r.path for r in closes] == ["/repos/acme/web/issues/12", "/repos/acme/api/issues/3"]
    assert all(r.body == {"state": "closed", "state_reason": "completed"} for r in closes)

    incident = flow.get(incident_id)
    closed = {ref.source for ref in incident.external_refs if ref.kind == "issue_closed"}
    commented = {ref.source for ref in incident.external_refs if ref.kind == "issue_comment"}
    assert closed == commented == {"acme/web#12", "acme/api#3"}
    item = incident.item("close_github_issues")
    assert item is not None
    assert item.state is ItemState.DONE
    assert item.by == "github"
    assert item.link == "https://github.com/acme/web/issues/12"


def test_every_request_carries_the_token_and_the_api_version(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
    drive: Callable[[IncidentFlow], str],
) -> None:
    flow = make_flow(plugin)
    incident_id = drive(flow)
    link_issue(flow, incident_id, "acme/web#12", by="bob")

    flow.resolve(incident_id, by="bob")
    assert flow.drain(timeout=10)

    assert len(github_api.requests) == 2
    for request in github_api.requests:
        assert request.headers["Authorization"] == "Bearer ghp_test0123456789abcdefTOKEN"
        assert request.headers["Accept"] == "application/vnd.github+json"
        assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"


def test_a_redelivered_resolution_makes_nothing_twice(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
    drive: Callable[[IncidentFlow], str],
) -> None:
    flow = make_flow(plugin)
    incident_id = drive(flow)
    link_issue(flow, incident_id, "acme/web#12", by="bob")
    flow.resolve(incident_id, by="bob")
    assert flow.drain(timeout=10)
    sent = len(github_api.requests)
    history = flow.history(incident_id)
    resolution = next(e for e in history if isinstance(e, PhaseChanged) and e.resolves)
    as_of = flow.get(incident_id)  # later than the event: what the first delivery recorded

    plugin.incident_flow_event(
        resolution, as_of, f"{incident_id}:{resolution.version}:github", flow
    )

    assert len(github_api.requests) == sent == 2
    assert len(flow.history(incident_id)) == len(history)


def test_the_completed_item_coming_back_does_not_loop(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
    drive: Callable[[IncidentFlow], str],
) -> None:
    flow = make_flow(plugin)
    incident_id = drive(flow)
    link_issue(flow, incident_id, "acme/web#12", by="bob")

    flow.resolve(incident_id, by="bob")
    assert flow.drain(timeout=10)
    flow.start_postmortem(incident_id, by="bob")  # asks again: the item is done already
    assert flow.drain(timeout=10)

    completions = [e for e in flow.history(incident_id) if isinstance(e, ChecklistItemCompleted)]
    assert [e.item for e in completions] == ["close_github_issues"]
    assert len(github_api.requests) == 2
    assert {row.status for row in flow.deliveries()} == {DeliveryStatus.DELIVERED}


def test_a_false_positive_closes_linked_issues_as_not_planned(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
) -> None:
    flow = make_flow(plugin)
    incident = flow.declare("Search is slow", severity="major", customer_impact=False, by="al")
    link_issue(flow, incident.id, "acme/web#40", by="al")

    flow.mark_false_positive(incident.id, reason="a load test, announced", by="al")
    assert flow.drain(timeout=10)

    (comment,) = github_api.requests_to("POST", COMMENTS)
    assert "false positive" in comment.body["body"]
    assert "a load test, announced" in comment.body["body"]
    (close,) = github_api.requests_to("PATCH", ISSUE)
    assert close.body == {"state": "closed", "state_reason": "not_planned"}
    # A false positive is a terminal phase: no checklist item can be completed there.
    item = flow.get(incident.id).item("close_github_issues")
    assert item is not None
    assert item.state is ItemState.OPEN
    assert {row.status for row in flow.deliveries()} == {DeliveryStatus.DELIVERED}


def test_an_incident_without_linked_issues_leaves_the_item_to_a_person(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
    drive: Callable[[IncidentFlow], str],
) -> None:
    flow = make_flow(plugin)
    incident_id = drive(flow)

    flow.resolve(incident_id, by="bob")
    flow.start_postmortem(incident_id, by="bob")
    assert flow.drain(timeout=10)

    assert github_api.requests == []
    item = flow.get(incident_id).item("close_github_issues")
    assert item is not None
    assert item.state is ItemState.OPEN


def test_a_waived_item_is_not_completed(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
    drive: Callable[[IncidentFlow], str],
) -> None:
    flow = make_flow(plugin)
    incident_id = drive(flow)
    link_issue(flow, incident_id, "acme/web#12", by="bob")
    flow.resolve(incident_id, by="bob")
    flow.waive_item(incident_id, "close_github_issues", reason="handled by support", by="bob")
    assert flow.drain(timeout=10)

    item = flow.get(incident_id).item("close_github_issues")
    assert item is not None
    assert item.state is ItemState.WAIVED
    assert len(github_api.requests_to("PATCH", ISSUE)) == 1


POSTMORTEM_ONLY = HANDBOOK.evolve(
    transitions=[
        Transition("complete_item", Phase.POSTMORTEM, guards="item_open")
        if t.action == "complete_item"
        else t
        for t in HANDBOOK.transitions
    ]
)
"""The handbook, but checklist items are completed only once the post-mortem started."""


def test_the_item_waits_for_the_postmortem_when_the_process_says_so(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
    drive: Callable[[IncidentFlow], str],
) -> None:
    flow = make_flow(plugin, process=POSTMORTEM_ONLY)
    incident_id = drive(flow)
    link_issue(flow, incident_id, "acme/web#12", by="bob")

    flow.resolve(incident_id, by="bob")
    assert flow.drain(timeout=10)
    item = flow.get(incident_id).item("close_github_issues")
    assert item is not None
    assert item.state is ItemState.OPEN
    assert len(github_api.requests_to("PATCH", ISSUE)) == 1

    flow.start_postmortem(incident_id, by="bob")
    assert flow.drain(timeout=10)

    item = flow.get(incident_id).item("close_github_issues")
    assert item is not None
    assert item.state is ItemState.DONE
    assert item.by == "github"
    assert len(github_api.requests) == 2  # nothing sent again
    assert {row.status for row in flow.deliveries()} == {DeliveryStatus.DELIVERED}


def test_an_issue_linked_after_resolution_is_closed_when_the_postmortem_starts(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
    drive: Callable[[IncidentFlow], str],
) -> None:
    flow = make_flow(plugin, process=POSTMORTEM_ONLY)
    incident_id = drive(flow)
    flow.resolve(incident_id, by="bob")
    assert flow.drain(timeout=10)
    link_issue(flow, incident_id, "acme/web#77", by="bob")

    flow.start_postmortem(incident_id, by="bob")
    assert flow.drain(timeout=10)

    assert [r.path for r in github_api.requests_to("PATCH", ISSUE)] == ["/repos/acme/web/issues/77"]
    item = flow.get(incident_id).item("close_github_issues")
    assert item is not None
    assert item.state is ItemState.DONE


@pytest.mark.parametrize("phase_changes", [["triage"], ["start_mitigation"]])
def test_phase_changes_before_resolution_send_nothing(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
    phase_changes: list[str],
) -> None:
    flow = make_flow(plugin)
    incident = flow.declare("Search is down", severity="critical", customer_impact=True, by="al")
    link_issue(flow, incident.id, "acme/web#12", by="al")
    flow.assign(incident.id, "lead", "al", by="al")
    flow.acknowledge(incident.id, by="al")
    flow.assign(incident.id, "messenger", "cy", by="al")
    for action in phase_changes:
        flow.transition(incident.id, action, by="al")
    assert flow.drain(timeout=10)

    assert github_api.requests == []

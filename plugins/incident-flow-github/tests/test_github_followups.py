"""When the post-mortem starts, and for each follow-up added after, a follow-up issue is filed
once; when every follow-up has its issue, ``create_followup_issues`` is completed once."""

from __future__ import annotations

from collections.abc import Callable

from incident_flow_github import GitHubPlugin

from incident_flow import IncidentFlow, ItemState
from incident_flow.events import ChecklistItemCompleted, FollowUpAdded
from incident_flow.store.base import DeliveryStatus
from incident_flow.testing.vendor_api import Answer, VendorAPI

ISSUES = "/repos/{owner}/{repo}/issues"


def _issues(api: VendorAPI, *numbers: int) -> None:
    """Answer the next issue creations with these numbers, as GitHub would."""
    answers = []
    for number in numbers:
        body = api.example_response("POST", ISSUES)
        body.update(
            number=number,
            state="open",
            html_url=f"https://github.com/acme/incidents/issues/{number}",
        )
        answers.append(Answer(201, body))
    api.respond_sequence("POST", ISSUES, answers)


def _resolved(flow: IncidentFlow, drive: Callable[[IncidentFlow], str]) -> str:
    incident_id = drive(flow)
    flow.resolve(incident_id, by="bob")
    return incident_id


def test_starting_the_postmortem_files_an_issue_per_follow_up(
    github_api: VendorAPI,
    make_plugin: Callable[..., GitHubPlugin],
    make_flow: Callable[..., IncidentFlow],
    drive: Callable[[IncidentFlow], str],
) -> None:
    plugin = make_plugin(owner_logins="bob=bob-gh", followup_labels="incident-follow-up,sev1")
    _issues(github_api, 101, 102)
    flow = make_flow(plugin)
    incident_id = drive(flow)
    flow.add_follow_up(incident_id, "Alert on index lag", owner="bob", by="bob")
    flow.add_follow_up(incident_id, "Document the failover", owner="dana", by="bob")
    flow.resolve(incident_id, by="bob")
    assert flow.drain(timeout=10)
    assert github_api.requests == []  # resolution alone files nothing

    flow.start_postmortem(incident_id, by="bob")
    assert flow.drain(timeout=10)

    first, second = github_api.requests_to("POST", ISSUES)
    assert first.path == second.path == "/repos/acme/incidents/issues"
    assert first.body["title"] == "Alert on index lag"
    assert first.body["labels"] == ["incident-follow-up", "sev1"]
    assert first.body["assignees"] == ["bob-gh"]
    assert "assignees" not in second.body  # dana has no login in the settings
    body = first.body["body"]
    for fact in (
        "Search is down",
        incident_id,
        "critical",
        "Owner: bob",
        f"https://incidents.example.com/{incident_id}",
    ):
        assert fact in body
    incident = flow.get(incident_id)
    refs = {
        ref.source: ref.external_id
        for ref in incident.external_refs
        if ref.kind == "followup_issue"
    }
    assert refs == {
        incident.follow_ups[0].id: "acme/incidents#101",
        incident.follow_ups[1].id: "acme/incidents#102",
    }
    item = incident.item("create_followup_issues")
    assert item is not None
    assert item.state is ItemState.DONE
    assert item.by == "github"
    assert item.link is not None
    assert item.link.startswith("https://github.com/acme/incidents/issues?q=")
    assert incident_id in item.link


def test_a_follow_up_added_during_the_postmortem_gets_its_issue(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
    drive: Callable[[IncidentFlow], str],
) -> None:
    _issues(github_api, 7)
    flow = make_flow(plugin)
    incident_id = _resolved(flow, drive)
    flow.start_postmortem(incident_id, by="bob")
    assert flow.drain(timeout=10)
    assert github_api.requests == []

    flow.add_follow_up(incident_id, "Add a canary", by="bob")
    assert flow.drain(timeout=10)

    (request,) = github_api.requests_to("POST", ISSUES)
    assert request.body["title"] == "Add a canary"
    assert "assignees" not in request.body
    assert "Owner: not assigned yet" in request.body["body"]
    item = flow.get(incident_id).item("create_followup_issues")
    assert item is not None
    assert item.state is ItemState.DONE
    assert item.link == "https://github.com/acme/incidents/issues/7"


def test_an_incident_without_follow_ups_leaves_the_item_to_a_person(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
    drive: Callable[[IncidentFlow], str],
) -> None:
    flow = make_flow(plugin)
    incident_id = _resolved(flow, drive)

    flow.start_postmortem(incident_id, by="bob")
    assert flow.drain(timeout=10)

    assert github_api.requests == []
    item = flow.get(incident_id).item("create_followup_issues")
    assert item is not None
    assert item.state is ItemState.OPEN


def test_a_redelivered_follow_up_files_nothing_twice(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
    drive: Callable[[IncidentFlow], str],
) -> None:
    flow = make_flow(plugin)
    incident_id = _resolved(flow, drive)
    flow.start_postmortem(incident_id, by="bob")
    flow.add_follow_up(incident_id, "Add a canary", by="bob")
    assert flow.drain(timeout=10)
    history = flow.history(incident_id)
    added = next(e for e in history if isinstance(e, FollowUpAdded))
    as_of = flow.get(incident_id)

    for _ in range(2):
        plugin.incident_flow_event(added, as_of, f"{incident_id}:{added.version}:github", flow)

    assert len(github_api.requests_to("POST", ISSUES)) == 1
    assert flow.history(incident_id) == history


def test_the_item_is_completed_once_while_follow_ups_keep_coming(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
    drive: Callable[[IncidentFlow], str],
) -> None:
    _issues(github_api, 1, 2)
    flow = make_flow(plugin)
    incident_id = _resolved(flow, drive)
    flow.add_follow_up(incident_id, "Add a canary", by="bob")
    flow.start_postmortem(incident_id, by="bob")
    assert flow.drain(timeout=10)

    flow.add_follow_up(incident_id, "Tune the alert", by="bob")
    assert flow.drain(timeout=10)

    assert len(github_api.requests_to("POST", ISSUES)) == 2
    completed = [e.item for e in flow.history(incident_id) if isinstance(e, ChecklistItemCompleted)]
    assert completed == ["create_followup_issues"]
    assert {row.status for row in flow.deliveries()} == {DeliveryStatus.DELIVERED}


def test_follow_ups_added_before_the_postmortem_wait_for_it(
    github_api: VendorAPI,
    plugin: GitHubPlugin,
    make_flow: Callable[..., IncidentFlow],
    drive: Callable[[IncidentFlow], str],
) -> None:
    flow = make_flow(plugin)
    incident_id = drive(flow)

    flow.add_follow_up(incident_id, "Add a canary", by="bob")
    flow.resolve(incident_id, by="bob")
    flow.add_follow_up(incident_id, "Tune the alert", by="bob")
    assert flow.drain(timeout=10)

    assert github_api.requests == []

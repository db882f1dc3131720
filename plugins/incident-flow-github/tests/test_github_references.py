"""Linking a public issue to an incident: the two accepted forms, a clear refusal of anything
else, and one recorded reference per issue."""

from __future__ import annotations

import pytest
from incident_flow_github import (
    InvalidIssueReferenceError,
    IssueReference,
    link_issue,
    linked_issues,
    parse_reference,
)

from incident_flow import IncidentFlow
from incident_flow.errors import UnknownIncidentError, ValidationError


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (
            "sourcegraph/sourcegraph#123",
            IssueReference(
                "sourcegraph",
                "sourcegraph",
                123,
                "https://github.com/sourcegraph/sourcegraph/issues/123",
            ),
        ),
        (
            " acme/web.site#7 ",
            IssueReference("acme", "web.site", 7, "https://github.com/acme/web.site/issues/7"),
        ),
        (
            "https://github.com/acme/web/issues/12",
            IssueReference("acme", "web", 12, "https://github.com/acme/web/issues/12"),
        ),
        (
            "https://github.com/acme/web/issues/12/#issuecomment-99",
            IssueReference("acme", "web", 12, "https://github.com/acme/web/issues/12"),
        ),
        (
            "https://github.example.com/acme/web/issues/5?x=1",
            IssueReference("acme", "web", 5, "https://github.example.com/acme/web/issues/5"),
        ),
    ],
)
def test_both_forms_are_accepted(reference: str, expected: IssueReference) -> None:
    assert parse_reference(reference) == expected


def test_a_short_reference_is_resolved_against_the_server() -> None:
    issue = parse_reference("acme/web#1", server_url="https://github.example.com/")

    assert issue.url == "https://github.example.com/acme/web/issues/1"
    assert str(issue) == "acme/web#1"


@pytest.mark.parametrize(
    "reference",
    [
        "",
        "#123",
        "acme/web",
        "acme/web#",
        "acme/web#0",
        "acme/web#12a",
        "acme#12",
        "-acme/web#1",
        "acme/../web#1",
        "acme/..#1",
        "https://github.com/acme/web/pull/12",
        "https://github.com/acme/web/issues",
        "github.com/acme/web/issues/12",
        "see acme/web#12",
    ],
)
def test_anything_else_is_refused_with_the_accepted_forms(reference: str) -> None:
    with pytest.raises(InvalidIssueReferenceError) as raised:
        parse_reference(reference)

    assert isinstance(raised.value, ValidationError)
    assert raised.value.field == "reference"
    assert "owner/repo#123" in str(raised.value)
    assert "https://github.com/owner/repo/issues/123" in str(raised.value)


def test_a_link_is_recorded_on_the_incident(incident_flow: IncidentFlow) -> None:
    incident = incident_flow.declare(
        "Search is down", severity="major", customer_impact=True, by="al"
    )

    after = link_issue(incident_flow, incident.id, "https://github.com/acme/web/issues/12", by="al")

    (ref,) = after.external_refs
    assert (ref.system, ref.kind, ref.external_id) == ("github", "linked_issue", "acme/web#12")
    assert ref.url == "https://github.com/acme/web/issues/12"
    assert ref.by == "al"


def test_linking_an_issue_again_records_nothing(incident_flow: IncidentFlow) -> None:
    incident = incident_flow.declare(
        "Search is down", severity="major", customer_impact=True, by="al"
    )
    link_issue(incident_flow, incident.id, "acme/web#12", by="al")
    version = incident_flow.get(incident.id).version

    link_issue(incident_flow, incident.id, "https://github.com/acme/web/issues/12", by="al")

    assert incident_flow.get(incident.id).version == version


def test_linked_issues_are_listed_once_each_in_order(incident_flow: IncidentFlow) -> None:
    incident = incident_flow.declare(
        "Search is down", severity="major", customer_impact=True, by="al"
    )
    for reference in ("acme/web#12", "acme/api#3", "Acme/Web#12"):
        link_issue(incident_flow, incident.id, reference, by="al")
    incident_flow.record_external(
        incident.id, system="github", kind="linked_issue", external_id="not an issue", by="x"
    )

    issues = linked_issues(incident_flow.get(incident.id))

    assert [str(issue) for issue in issues] == ["acme/web#12", "acme/api#3"]


def test_a_bad_reference_records_nothing(incident_flow: IncidentFlow) -> None:
    incident = incident_flow.declare(
        "Search is down", severity="major", customer_impact=True, by="al"
    )

    with pytest.raises(InvalidIssueReferenceError):
        link_issue(incident_flow, incident.id, "acme/web/pull/1", by="al")

    assert incident_flow.get(incident.id).external_refs == ()


def test_linking_to_an_unknown_incident_is_refused(incident_flow: IncidentFlow) -> None:
    with pytest.raises(UnknownIncidentError):
        link_issue(incident_flow, "inc-nope", "acme/web#1", by="al")

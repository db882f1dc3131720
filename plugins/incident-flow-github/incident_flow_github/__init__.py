"""incident_flow_github: close an incident's public GitHub issues and file its follow-ups."""

from incident_flow_github.client import GitHubClient, Issue
from incident_flow_github.config import GitHubConfig
from incident_flow_github.plugin import GitHubPlugin
from incident_flow_github.references import (
    InvalidIssueReferenceError,
    IssueReference,
    link_issue,
    linked_issues,
    parse_reference,
)

__all__ = [
    "GitHubClient",
    "GitHubConfig",
    "GitHubPlugin",
    "InvalidIssueReferenceError",
    "Issue",
    "IssueReference",
    "link_issue",
    "linked_issues",
    "parse_reference",
]

"""Public GitHub issues linked to an incident: how people name them, and where that is kept.

A person links an issue with :func:`link_issue`, giving it as ``owner/repo#123`` or as its web
address. The link is an :class:`~incident_flow.events.ExternalRefRecorded` on the incident
(system ``github``, kind ``linked_issue``, id ``owner/repo#123``), so it lives in the incident's
own log and the adapter finds it there when the incident is resolved.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

import attrs

from incident_flow.errors import ValidationError
from incident_flow.model import Incident
from incident_flow_github.config import DEFAULT_SERVER_URL

if TYPE_CHECKING:
    from incident_flow.flow import IncidentFlow

__all__ = [
    "LINKED_ISSUE",
    "SYSTEM",
    "InvalidIssueReferenceError",
    "IssueReference",
    "link_issue",
    "linked_issues",
    "parse_reference",
]

SYSTEM: Final = "github"
"""The ``system`` of every external reference this adapter records."""

LINKED_ISSUE: Final = "linked_issue"
"""The ``kind`` of a link between an incident and a public issue."""

ACCEPTED_FORMS = "owner/repo#123 or https://github.com/owner/repo/issues/123"

_OWNER = r"(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))"
_REPO = r"(?P<repo>[A-Za-z0-9._-]{1,100})"
_NUMBER = r"(?P<number>[1-9][0-9]{0,9})"
_SHORT = re.compile(rf"{_OWNER}/{_REPO}#{_NUMBER}")
_WEB = re.compile(
    rf"(?P<server>https?://[A-Za-z0-9.-]+(?::[0-9]{{1,5}})?)/{_OWNER}/{_REPO}/issues/{_NUMBER}"
    r"/?(?:[?#][^\s]*)?"
)


class InvalidIssueReferenceError(ValidationError):
    """An issue reference given to :func:`link_issue` is neither ``owner/repo#123`` nor an
    issue's web address; the message shows both forms. Nothing was recorded."""


@attrs.frozen
class IssueReference:
    """One issue of one repository, and its web address."""

    owner: str
    repo: str
    number: int
    url: str

    def __str__(self) -> str:
        return f"{self.owner}/{self.repo}#{self.number}"


def parse_reference(reference: str, *, server_url: str = DEFAULT_SERVER_URL) -> IssueReference:
    """The issue ``reference`` names: ``owner/repo#123`` (its address is then built on
    ``server_url``) or a web address ``https://<server>/owner/repo/issues/123`` (a fragment or
    query such as ``#issuecomment-1`` is dropped).

    Raises:
        InvalidIssueReferenceError: it is neither; pull requests and other pages are refused.
    """
    if not isinstance(reference, str):
        raise InvalidIssueReferenceError(
            f"an issue reference must be a string ({ACCEPTED_FORMS}), not {reference!r}",
            field="reference",
        )
    text = reference.strip()
    short = _SHORT.fullmatch(text)
    web = None if short else _WEB.fullmatch(text)
    found = short or web
    if found is None or found["repo"] in (".", ".."):
        raise InvalidIssueReferenceError(
            f"{reference!r} is not a GitHub issue; give it as {ACCEPTED_FORMS}",
            field="reference",
        )
    owner, repo, number = found["owner"], found["repo"], int(found["number"])
    server = web["server"] if web is not None else server_url.rstrip("/")
    return IssueReference(owner, repo, number, f"{server}/{owner}/{repo}/issues/{number}")


def link_issue(
    flow: IncidentFlow,
    incident_id: str,
    reference: str,
    *,
    by: str,
    server_url: str = DEFAULT_SERVER_URL,
) -> Incident:
    """Link the public issue ``reference`` to the incident: when the incident is resolved, the
    GitHub adapter comments on it and closes it.

    Linking the same issue again changes nothing. Link issues before the post-mortem starts:
    the adapter closes the issues linked by then.

    Args:
        flow: The flow holding the incident.
        incident_id: The incident.
        reference: ``owner/repo#123`` or ``https://github.com/owner/repo/issues/123``.
        by: Who links it.
        server_url: The web address ``owner/repo#123`` is resolved against (GitHub
            Enterprise Server: ``https://<host>``).

    Returns:
        The incident with the link recorded.

    Raises:
        InvalidIssueReferenceError: ``reference`` is not an issue in either form.
        incident_flow.errors.UnknownIncidentError: there is no such incident.
    """
    issue = parse_reference(reference, server_url=server_url)
    return flow.record_external(
        incident_id,
        system=SYSTEM,
        kind=LINKED_ISSUE,
        external_id=str(issue),
        url=issue.url,
        by=by,
    )


def linked_issues(
    incident: Incident, *, server_url: str = DEFAULT_SERVER_URL
) -> tuple[IssueReference, ...]:
    """The issues linked to ``incident``, each once, in the order they were linked.

    GitHub's names ignore case, so ``Acme/Web#1`` and ``acme/web#1`` are one issue (the first
    spelling is kept). A recorded link that does not parse (written by hand) is skipped.
    """
    found: dict[str, IssueReference] = {}
    for ref in incident.external_refs:
        if ref.system != SYSTEM or ref.kind != LINKED_ISSUE:
            continue
        try:
            issue = parse_reference(ref.external_id, server_url=server_url)
        except InvalidIssueReferenceError:
            continue
        if ref.url:
            issue = attrs.evolve(issue, url=ref.url)
        found.setdefault(str(issue).lower(), issue)
    return tuple(found.values())

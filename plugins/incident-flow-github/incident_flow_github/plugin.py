"""The GitHub adapter: closes an incident's public issues and files its follow-up issues.

What each event does (every other event, and every
:class:`~incident_flow.events.ExternalRefRecorded`, is ignored):

- :class:`~incident_flow.events.PhaseChanged` that resolves the incident: each linked issue
  (:func:`~incident_flow_github.references.link_issue`) gets a comment saying so, with a link
  back, and is closed (``state_reason`` ``completed``, or ``not_planned`` for a false positive).
  When all are, the checklist item ``close_github_issues`` is completed, if the process allows it
  in the incident's phase now.
- :class:`~incident_flow.events.PhaseChanged` into the post-mortem phase: the same for any linked
  issue not closed yet and for ``close_github_issues``; then a follow-up issue is created in
  ``GITHUB_REPOSITORY`` for each follow-up, and ``create_followup_issues`` is completed once every
  follow-up has its issue.
- :class:`~incident_flow.events.FollowUpAdded` during the post-mortem: that follow-up's issue,
  then ``create_followup_issues`` as above.

Each thing made on GitHub is recorded on the incident right after it is made and looked up
before (:func:`incident_flow.adapters.once`), so a redelivered event makes nothing twice.
Completing a checklist item is a command whose event comes back to this plugin; it is ignored,
and an item that is no longer open is never completed again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final, TypeVar
from urllib.parse import quote

from incident_flow import hookimpl
from incident_flow.adapters import once
from incident_flow.errors import (
    DeliveryError,
    PermanentDeliveryError,
    TransitionRefused,
    UnknownIncidentError,
)
from incident_flow.events import Event, ExternalRefRecorded, FollowUpAdded, PhaseChanged
from incident_flow.flow import IncidentFlow
from incident_flow.model import FollowUp, Incident, ItemState, Phase
from incident_flow_github.client import GitHubClient, Issue
from incident_flow_github.config import GitHubConfig
from incident_flow_github.references import SYSTEM, IssueReference, linked_issues

__all__ = [
    "CLOSE_ITEM",
    "FOLLOWUP_ISSUE",
    "FOLLOWUP_ITEM",
    "ISSUE_CLOSED",
    "ISSUE_COMMENT",
    "GitHubPlugin",
]

logger = logging.getLogger(__name__)

CLOSE_ITEM: Final = "close_github_issues"
"""The handbook's checklist item for updating and closing the public issues."""
FOLLOWUP_ITEM: Final = "create_followup_issues"
"""The handbook's checklist item for filing the follow-up work."""

ISSUE_COMMENT: Final = "issue_comment"
"""Kind of the recorded resolution comment; its source is the issue (``owner/repo#n``)."""
ISSUE_CLOSED: Final = "issue_closed"
"""Kind of the recorded closing of a linked issue; its source is the issue."""
FOLLOWUP_ISSUE: Final = "followup_issue"
"""Kind of the recorded follow-up issue; its source is the follow-up's id."""


class GitHubPlugin:
    """Reacts to an incident's resolution and post-mortem on GitHub; see the module docstring.

    Args:
        config: The settings (:meth:`GitHubConfig.from_env`).
        client: The client to call GitHub with; one is built from ``config`` by default.
        postmortem_phase: The phase in which follow-up issues are filed (a team's process may
            call it something else).
    """

    incident_flow_name = "github"

    def __init__(
        self,
        config: GitHubConfig,
        *,
        client: GitHubClient | None = None,
        postmortem_phase: str = Phase.POSTMORTEM,
    ) -> None:
        self.config = config
        self.client = client if client is not None else GitHubClient(config)
        self.postmortem_phase = str(postmortem_phase)

    def __repr__(self) -> str:
        return f"GitHubPlugin(repository={self.config.repository!r}, token=***)"

    def close(self) -> None:
        """Release the client's connections."""
        self.client.close()

    @property
    def name(self) -> str:
        """The name the plugin acts under: the ``by`` of what it records and completes."""
        return self.incident_flow_name

    # -- the hook ---------------------------------------------------------------------------

    @hookimpl
    def incident_flow_event(
        self, event: Event, incident: Incident, key: str, flow: IncidentFlow | None
    ) -> None:
        """Act on a resolution, the start of the post-mortem and a later follow-up.

        Raises:
            RetryableDeliveryError: GitHub was unreachable, slow or rate limiting; what was
                done is recorded, the rest is done on the retry.
            PermanentDeliveryError: GitHub refused a request (the first refusal's message), or
                the flow is missing.
        """
        if isinstance(event, ExternalRefRecorded):
            return  # our own records and other adapters': never a reason to act
        if isinstance(event, PhaseChanged):
            entering_postmortem = event.dest == self.postmortem_phase
            if not (event.resolves or entering_postmortem):
                return
            present = self._require(flow)
            now = self._current(present, event.incident_id)
            if now is None:
                return
            self._close_linked_issues(present, now, event.at)
            if entering_postmortem:
                self._file_follow_ups(present, incident, incident.follow_ups)
        elif isinstance(event, FollowUpAdded) and incident.phase == self.postmortem_phase:
            present = self._require(flow)
            if self._current(present, event.incident_id) is None:
                return
            added = [f for f in incident.follow_ups if f.id == event.follow_up_id]
            self._file_follow_ups(present, incident, added)

    def _require(self, flow: IncidentFlow | None) -> IncidentFlow:
        if flow is None:
            raise PermanentDeliveryError(
                f"{self.name} needs the flow to find linked issues and record what it makes; "
                "build the DeliveryWorker with flow="
            )
        return flow

    @staticmethod
    def _current(flow: IncidentFlow, incident_id: str) -> Incident | None:
        try:
            return flow.get(incident_id)
        except UnknownIncidentError:
            return None  # deleted meanwhile: nothing left to act for

    # -- linked issues ----------------------------------------------------------------------

    def _close_linked_issues(self, flow: IncidentFlow, incident: Incident, at: datetime) -> None:
        """Comment on and close every issue linked to ``incident`` (as it is now, so an issue
        linked after the event counts too), then complete ``close_github_issues`` when all are
        closed."""
        issues = linked_issues(incident, server_url=self.config.server_url)
        if not issues:
            return  # nothing linked: a person completes or waives the item
        body = self._resolution_note(incident, at)
        reason = "not_planned" if incident.false_positive else "completed"

        def work(issue: IssueReference) -> None:
            source = str(issue)
            once(
                flow,
                incident.id,
                system=SYSTEM,
                kind=ISSUE_COMMENT,
                source=source,
                by=self.name,
                make=lambda: _made(
                    self.client.comment(issue.owner, issue.repo, issue.number, body)
                ),
            )
            once(
                flow,
                incident.id,
                system=SYSTEM,
                kind=ISSUE_CLOSED,
                source=source,
                by=self.name,
                make=lambda: _made(
                    self.client.close_issue(issue.owner, issue.repo, issue.number, reason=reason)
                ),
            )

        _each(issues, work)
        after = flow.get(incident.id)
        if all(after.external_ref(SYSTEM, ISSUE_CLOSED, str(i)) for i in issues):
            self._complete(flow, incident.id, CLOSE_ITEM, issues[0].url)

    def _resolution_note(self, incident: Incident, at: datetime) -> str:
        when = at.strftime("%Y-%m-%d %H:%M UTC")
        if incident.false_positive:
            why = incident.false_positive_reason or "no reason given"
            text = (
                f"Incident `{incident.id}` ({incident.title}) turned out to be a false positive "
                f"({when}): {why}. Closing this issue as not planned."
            )
        else:
            text = (
                f"Incident `{incident.id}` ({incident.title}) was resolved at {when}. "
                "Closing this issue; thank you for reporting it."
            )
        link = self.config.incident_url(incident.id)
        return f"{text}\n\nIncident: {link}" if link else text

    # -- follow-ups -------------------------------------------------------------------------

    def _file_follow_ups(
        self, flow: IncidentFlow, incident: Incident, follow_ups: Sequence[FollowUp]
    ) -> None:
        """Create an issue for each of ``follow_ups``, then complete ``create_followup_issues``
        when every follow-up of the incident (as it is now) has one."""

        def work(follow_up: FollowUp) -> None:
            once(
                flow,
                incident.id,
                system=SYSTEM,
                kind=FOLLOWUP_ISSUE,
                source=follow_up.id,
                by=self.name,
                make=lambda: _made(self._create_follow_up(incident, follow_up)),
            )

        _each(follow_ups, work)
        now = flow.get(incident.id)
        if not now.follow_ups:
            return  # nothing to file: a person completes or waives the item
        refs = [now.external_ref(SYSTEM, FOLLOWUP_ISSUE, f.id) for f in now.follow_ups]
        if all(refs):
            urls = [ref.url for ref in refs if ref is not None and ref.url]
            link = urls[0] if len(urls) == 1 else self._follow_up_list(incident.id)
            self._complete(flow, incident.id, FOLLOWUP_ITEM, link)

    def _create_follow_up(self, incident: Incident, follow_up: FollowUp) -> Issue:
        login = self.config.owner_logins.get(follow_up.owner) if follow_up.owner else None
        return self.client.create_issue(
            self.config.owner,
            self.config.repo,
            title=follow_up.title,
            body=self._follow_up_body(incident, follow_up),
            labels=self.config.followup_labels,
            assignees=[login] if login else [],
        )

    def _follow_up_body(self, incident: Incident, follow_up: FollowUp) -> str:
        lines = [
            f"Follow-up of incident `{incident.id}`: {incident.title}",
            "",
            f"- Incident: `{incident.id}`",
            f"- Severity: {incident.severity.value}",
            f"- Owner: {follow_up.owner or 'not assigned yet'}",
            f"- Noted by {follow_up.by} at {follow_up.at.strftime('%Y-%m-%d %H:%M UTC')}",
        ]
        link = self.config.incident_url(incident.id)
        if link:
            lines.append(f"- Details: {link}")
        return "\n".join(lines)

    def _follow_up_list(self, incident_id: str) -> str:
        """The repository's issues that mention the incident (and carry the first label)."""
        query = f'is:issue "{incident_id}"'
        if self.config.followup_labels:
            query += f' label:"{self.config.followup_labels[0]}"'
        return f"{self.config.server_url}/{self.config.repository}/issues?q={quote(query, safe='')}"

    # -- the checklist ----------------------------------------------------------------------

    def _complete(self, flow: IncidentFlow, incident_id: str, item: str, link: str | None) -> None:
        """Complete ``item`` if it is still open and the process allows it now; else leave it
        (a later phase change, or a person, completes it)."""
        current = flow.get(incident_id).item(item)
        if current is None or current.state is not ItemState.OPEN:
            return  # not on this process's checklist, or done or waived already
        if flow.requirements(incident_id, "complete_item", by=self.name, item=item):
            return  # not in a phase where items are completed (yet, or any more)
        try:
            flow.complete_item(incident_id, item, by=self.name, link=link)
        except TransitionRefused as refused:
            # Someone completed it, or the phase moved on, between the question and the command.
            logger.info("%s: %s not completed: %s", self.name, item, refused)


def _made(made: Issue) -> tuple[str, str | None]:
    """What :func:`~incident_flow.adapters.once` records of a thing made on GitHub."""
    return made.id, made.url


_T = TypeVar("_T")


def _each(items: Sequence[_T], work: Callable[[_T], None]) -> None:
    """Do ``work`` for every item; stop at the first retriable failure (the vendor needs a
    rest, and the retry does the rest), but go past a permanent one (one locked issue should
    not keep the others open) and raise the first of those at the end."""
    refused: DeliveryError | None = None
    for item in items:
        try:
            work(item)
        except PermanentDeliveryError as error:
            refused = refused or error
    if refused is not None:
        raise refused

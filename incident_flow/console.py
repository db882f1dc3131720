"""Console adapters: print what Slack and the status page would receive.

These plugins are for demos and local runs: they post nothing anywhere, they write one line per
message to a stream (standard output by default). :class:`ConsoleSlack` shows the incident
channel and the handbook's announcements in other channels; :class:`ConsoleStatusPage` shows the
posts customers would read. Lines carry no wall-clock time of their own, only the events' times,
in UTC, so a replayed timeline prints the same lines.

Plugins are called on a background thread (one that overruns its time limit on a thread of its
own), so an adapter's lines may come after the next command has started; call
:meth:`IncidentFlow.drain <incident_flow.IncidentFlow.drain>` after a command to have them all
before the next one.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TextIO

from incident_flow.events import (
    ActionTaken,
    ChecklistItemCompleted,
    ChecklistItemWaived,
    Event,
    FalsePositiveMarked,
    FollowUpAdded,
    IncidentDeclared,
    OwnershipAcknowledged,
    PageAcknowledged,
    PageSent,
    PhaseChanged,
    ReleasePaused,
    ReleaseResumed,
    ReminderDue,
    RoleAssigned,
    RollbackRecorded,
    SeverityChanged,
    StatusUpdatePosted,
    WarningRecorded,
)
from incident_flow.hookspecs import hookimpl
from incident_flow.model import Incident, Severity
from incident_flow.process import HANDBOOK

__all__ = ["ConsoleSlack", "ConsoleStatusPage", "channel_name", "format_utc"]

# Slack refuses channel names longer than this.
MAX_CHANNEL = 80

ANNOUNCEMENT_CHANNELS = ("customer-support", "ce", "sales")
"""Where the handbook has customer-facing roles told of every customer-impacting incident."""
RELEASE_GROUPS = "@delivery-support @cs @ce"
"""Who the Incident Lead alerts when a release is paused (handbook: Pausing a release)."""


def format_utc(moment: datetime) -> str:
    """Return ``moment`` as ``2024-01-01 09:05 UTC``: the handbook asks for UTC, never local."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def channel_name(incident: Incident) -> str:
    """The incident's Slack channel, such as ``inc-2024-01-01-search-is-down``."""
    slug = re.sub(r"[^a-z0-9]+", "-", incident.title.lower()).strip("-") or incident.id.lower()
    name = f"inc-{incident.declared_at.astimezone(UTC):%Y-%m-%d}-{slug}"
    return name[:MAX_CHANNEL].rstrip("-")


class _Printer:
    """Writes whole lines to a stream, looked up at write time so a swapped stdout is honoured."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def _write(self, line: str) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        # One write per line: deliveries run in threads and must not split each other's lines.
        stream.write(line + "\n")
        stream.flush()


class ConsoleSlack(_Printer):
    """Prints a line per event as it would be posted in the incident's Slack channel.

    A customer-impacting declaration is also announced where the handbook asks: in
    #customer-support, #ce and #sales, in #marketing tagging @marketing-incident, and in #general
    when it is critical. A paused release alerts @delivery-support, @cs and @ce.

    Args:
        stream: where to print; standard output by default.
        roles: role name → title, to name roles the way the team's process does.
    """

    incident_flow_name = "console-slack"

    def __init__(
        self, stream: TextIO | None = None, *, roles: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(stream)
        self.roles: Mapping[str, str] = roles if roles is not None else HANDBOOK.roles

    @hookimpl
    def incident_flow_event(self, event: Event, incident: Incident) -> None:
        """Print the messages ``event`` would post."""
        for channel, text in self.messages(event, incident):
            self._write(f"[slack #{channel}] {text}")

    def messages(self, event: Event, incident: Incident) -> list[tuple[str, str]]:
        """The ``(channel, text)`` pairs ``event`` would post, incident channel first."""
        channel = channel_name(incident)
        actor = event.actor
        match event:
            case IncidentDeclared():
                impact = ", customer impact" if event.customer_impact else ""
                posts = [
                    (
                        channel,
                        f"{actor} declared a {event.severity} incident{impact}: {event.title} "
                        f"({format_utc(event.at)})",
                    )
                ]
                if event.customer_impact:
                    posts += self._announcements(incident)
                return posts
            case RoleAssigned():
                return [(channel, f"{event.person} is the {self._title(event.role)}")]
            case OwnershipAcknowledged():
                return [(channel, f"{actor}: I'm on it ({self._title('lead')})")]
            case PhaseChanged():
                return [(channel, self._phase_text(event, incident))]
            case RollbackRecorded():
                result = {True: " (it worked)", False: " (it did not work)", None: ""}
                text = f"{actor} tried a rollback: {event.outcome}{result[event.succeeded]}"
                return [(channel, text)]
            case ReleasePaused():
                groups = " ".join(event.alert) or RELEASE_GROUPS
                return [
                    (
                        channel,
                        f"{groups} release {event.release} is paused because of this "
                        f"incident; please plan accordingly ({actor})",
                    )
                ]
            case PageSent():
                note = f": {event.message}" if event.message else ""
                return [(channel, f"{actor} paged {event.target} ({event.page_id}){note}")]
            case PageAcknowledged():
                return [(channel, f"{actor} answered {event.page_id}")]
            case ReminderDue():
                who = f"@{event.person}" if event.person else f"the {self._title(event.recipient)}"
                target = "marketing" if event.recipient == "marketing" else channel
                return [(target, f"reminder for {who}: {event.message}")]
            case FollowUpAdded():
                owner = f" (owner {event.owner})" if event.owner else ""
                return [(channel, f"{actor} noted a follow-up: {event.title}{owner}")]
            case ReleaseResumed():
                return [
                    (channel, f"{RELEASE_GROUPS} release {event.release} may go ahead ({actor})")
                ]
            case StatusUpdatePosted():
                return [(channel, f"{actor} updated the status page ({event.status_phase})")]
            case SeverityChanged():
                posts = [
                    (
                        channel,
                        f"{actor} changed the severity from {event.previous} to {event.severity}",
                    )
                ]
                if incident.customer_impact and event.severity is Severity.CRITICAL:
                    posts += [("general", self._announcement(incident))]
                return posts
            case FalsePositiveMarked():
                return [
                    (
                        channel,
                        f"{actor} marked this a false positive: {event.reason}. "
                        "Thank you for raising it all the same.",
                    )
                ]
            case ChecklistItemCompleted():
                return [(channel, f"{actor} completed the post-mortem item {event.item}")]
            case ChecklistItemWaived():
                return [
                    (channel, f"{actor} waived the post-mortem item {event.item}: {event.reason}")
                ]
            case WarningRecorded():
                return [(channel, f"warning: {event.reason} (handbook: {event.handbook_ref})")]
            case ActionTaken():
                arguments = ", ".join(f"{k}={v}" for k, v in sorted(event.arguments.items()))
                return [
                    (channel, f"{actor}: {event.action}" + (f" ({arguments})" * bool(arguments)))
                ]
            case _:
                # An event type newer than this adapter still shows up, if plainly.
                return [(channel, f"{actor}: {event.type}")]

    def _title(self, role: str) -> str:
        return self.roles.get(role, role)

    def _phase_text(self, event: PhaseChanged, incident: Incident) -> str:
        if event.closes:
            return f"{event.actor} closed the incident"
        if event.resolves:
            minutes = int((event.at - incident.declared_at).total_seconds() // 60)
            return (
                f"{event.actor} resolved the incident at {format_utc(event.at)}, "
                f"{minutes} minutes after it was declared"
            )
        return f"{event.actor}: {event.source} -> {event.dest} ({event.action})"

    def _announcement(self, incident: Incident) -> str:
        return (
            f"{incident.severity} incident with customer impact since "
            f"{format_utc(incident.declared_at)}: {incident.title}. "
            f"Join #{channel_name(incident)} for more."
        )

    def _announcements(self, incident: Incident) -> list[tuple[str, str]]:
        text = self._announcement(incident)
        posts = [(name, text) for name in ANNOUNCEMENT_CHANNELS]
        posts.append(("marketing", f"@marketing-incident {text}"))
        if incident.severity is Severity.CRITICAL:
            posts.append(("general", text))
        return posts


class ConsoleStatusPage(_Printer):
    """Prints each status-page post as customers would read it.

    A post prints as ``[status page] Identified: We are aware…``; every other event is not for
    customers and prints nothing.

    Args:
        stream: where to print; standard output by default.
    """

    incident_flow_name = "console-statuspage"

    @hookimpl
    def incident_flow_event(self, event: Event, incident: Incident) -> None:
        """Print ``event`` if it is a status-page post."""
        if isinstance(event, StatusUpdatePosted):
            label = event.status_phase.capitalize()
            text = event.text
            # The handbook's examples start with their phase; others get it in front.
            if not text.lower().startswith(f"{event.status_phase.lower()}:"):
                text = f"{label}: {text}"
            self._write(f"[status page] {text}")

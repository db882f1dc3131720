"""The hook implementations: pages become Opsgenie alerts, and follow the incident's life.

Every alert action is recorded on the incident (an
:class:`~incident_flow.events.ExternalRefRecorded` event, through
:func:`~incident_flow.adapters.once`) right after Opsgenie accepted it, and looked up before it
is sent, so a redelivered event sends nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from incident_flow import hookimpl
from incident_flow.adapters import once
from incident_flow.errors import (
    AdapterConfigError,
    PermanentDeliveryError,
    UnknownIncidentError,
)
from incident_flow.events import (
    Event,
    ExternalRefRecorded,
    FalsePositiveMarked,
    OwnershipAcknowledged,
    PageAcknowledged,
    PageSent,
    PhaseChanged,
    ReminderDue,
)
from incident_flow.model import ExternalRef, Incident, Page
from incident_flow.timers import PAGE_UNACKNOWLEDGED
from incident_flow_opsgenie.client import OpsgenieClient
from incident_flow_opsgenie.config import OpsgenieConfig

if TYPE_CHECKING:
    from incident_flow.flow import IncidentFlow

__all__ = [
    "ACKNOWLEDGED",
    "ALERT",
    "CLOSED",
    "ESCALATED",
    "NAME",
    "SYSTEM",
    "OpsgeniePlugin",
    "alert_alias",
    "alert_message",
]

NAME: Final = "opsgenie"
"""The plugin's name: part of every delivery key, so it never changes."""

SYSTEM: Final = "opsgenie"
"""The ``system`` of every reference this plugin records."""
ALERT: Final = "alert"
"""Kind of the reference to a page's alert (source: the page id; id: the alert's alias)."""
ACKNOWLEDGED: Final = "alert_acknowledged"
"""Kind of the reference recorded once a page's alert was acknowledged (source: the page id)."""
CLOSED: Final = "alert_closed"
"""Kind of the reference recorded once a page's alert was closed (source: the page id)."""
ESCALATED: Final = "alert_escalated"
"""Kind of the reference recorded once per unanswered-page reminder (source: its key)."""

MESSAGE_LIMIT: Final = 130
"""Opsgenie cuts an alert's message at 130 characters; we cut it ourselves, at a word."""
DESCRIPTION_LIMIT: Final = 15_000
ALIAS_LIMIT: Final = 200
"""An alias is recorded as an external id, which incident_flow keeps to 200 characters
(Opsgenie takes 512)."""

logger = logging.getLogger("incident_flow_opsgenie")


def _cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut at a word boundary with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space >= limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:.-") + "…"


def alert_alias(incident_id: str, page_id: str) -> str:
    """The alias of the alert for one page: Opsgenie keeps one open alert per alias, so an
    alert sent again after a crash (made, but not yet recorded) is not a second one."""
    alias = f"incident-flow:{incident_id}:{page_id}"
    if len(alias) <= ALIAS_LIMIT:
        return alias
    digest = hashlib.sha256(incident_id.encode()).hexdigest()
    return f"incident-flow:{digest}:{page_id}"[:ALIAS_LIMIT]


def alert_message(incident: Incident, page: PageSent) -> str:
    """The alert's one line: what the person paging typed, or else the incident's title."""
    return _cut(page.message or incident.title, MESSAGE_LIMIT)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _description(incident: Incident, page: PageSent) -> str:
    people = ", ".join(f"{role} {person}" for role, person in sorted(incident.roles.items()))
    lines = [
        incident.title,
        "",
        f"Incident {incident.id}: severity {incident.severity}, phase {incident.phase}, "
        f"customer impact {'yes' if incident.customer_impact else 'no'}.",
        f"Paged by {page.actor} for {page.target} at {_when(page.at)}.",
    ]
    if page.message and page.message != incident.title:
        lines.append(f"Message: {page.message}")
    if people:
        lines.append(f"Roles: {people}.")
    if incident.description:
        lines += ["", incident.description]
    text = "\n".join(lines)
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"


class OpsgeniePlugin:
    """Pages through Opsgenie: an alert per page, acknowledged, escalated and closed with the
    incident, and who is on call from an Opsgenie schedule.

    Build it with an :class:`~incident_flow_opsgenie.config.OpsgenieConfig`; the entry point
    builds one from the environment.
    """

    incident_flow_name = NAME

    def __init__(self, config: OpsgenieConfig, *, client: OpsgenieClient | None = None) -> None:
        self.config = config
        self.client = client if client is not None else OpsgenieClient(config)

    def __repr__(self) -> str:
        return f"OpsgeniePlugin(api_url={self.config.api_url!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()

    # -- hooks -------------------------------------------------------------------------------

    @hookimpl
    def incident_flow_event(
        self, event: Event, incident: Incident, flow: IncidentFlow | None
    ) -> None:
        """Turn a page into an alert and keep the alert in step with the page and incident.

        ``incident`` is read as of the event (what the event meant); what was already made is
        read from the incident as it is now, through ``flow``.
        """
        if isinstance(event, ExternalRefRecorded):
            return  # ours or another adapter's bookkeeping: never a reason to call Opsgenie
        if isinstance(event, PageSent):
            self._create_alert(flow, incident, event)
        elif isinstance(event, PageAcknowledged):
            self._acknowledge(flow, incident, [event.page_id], event)
        elif isinstance(event, OwnershipAcknowledged):
            # The person paged took the lead: the same event answered their pages.
            answered = [
                page.id
                for page in incident.pages
                if page.acknowledged_by == event.actor and page.acknowledged_at == event.at
            ]
            self._acknowledge(flow, incident, answered, event)
        elif isinstance(event, FalsePositiveMarked):
            self._close_alerts(flow, incident, event, f"marked a false positive: {event.reason}")
        elif isinstance(event, PhaseChanged) and (event.resolves or event.closes):
            why = f"moved to {event.dest} ({event.action} by {event.actor})"
            self._close_alerts(flow, incident, event, why)
        elif isinstance(event, ReminderDue) and event.reminder == PAGE_UNACKNOWLEDGED:
            self._escalate(flow, incident, event)

    @hookimpl
    def incident_flow_who_is_on_call(self, schedule: str | None, at: datetime) -> str | None:
        """The first on-call recipient of ``schedule`` (the configured one when None), or None
        when the schedule is unknown to Opsgenie or there is no schedule to ask about.

        Raises:
            RetryableDeliveryError: Opsgenie is unreachable, slow, rate-limiting or failing.
            PermanentDeliveryError: Opsgenie refused the question (a bad key, say).
        """
        name = schedule.strip() if schedule and schedule.strip() else self.config.schedule
        if name is None:
            return None
        return self.client.on_call(name, at)

    # -- behaviours --------------------------------------------------------------------------

    def _create_alert(self, flow: IncidentFlow | None, incident: Incident, event: PageSent) -> None:
        alias = alert_alias(incident.id, event.page_id)
        severity = str(incident.severity)
        try:
            responder = self.config.responder(event.target)
        except AdapterConfigError as error:
            # A target such as "team:" cannot be routed, however often it is retried.
            raise PermanentDeliveryError(f"page {event.page_id}: {error}") from error
        payload: dict[str, Any] = {
            "message": alert_message(incident, event),
            "alias": alias,
            "description": _description(incident, event),
            "responders": [responder.payload()],
            "priority": self.config.priority(severity),
            "tags": list(dict.fromkeys([*self.config.tags, f"severity:{severity}"])),
            "details": {
                "incident_id": incident.id,
                "phase": incident.phase,
                "severity": severity,
                "page_id": event.page_id,
                "paged_by": event.actor,
                "target": event.target,
                "customer_impact": "yes" if incident.customer_impact else "no",
            },
            "entity": incident.id,
            "source": self.config.source,
            "user": event.actor,
        }

        def make() -> tuple[str, str | None]:
            request_id = self.client.create_alert(payload)
            logger.info(
                "Opsgenie alert %s requested for %s (request %s)", alias, event.target, request_id
            )
            return alias, None

        once(flow, incident.id, system=SYSTEM, kind=ALERT, source=event.page_id, by=NAME, make=make)

    def _acknowledge(
        self,
        flow: IncidentFlow | None,
        incident: Incident,
        page_ids: Iterable[str],
        event: Event,
    ) -> None:
        for page_id in page_ids:
            alert = self._alert(flow, incident.id, page_id)
            if alert is None:
                continue

            def make(alias: str = alert.external_id) -> tuple[str, str | None]:
                note = f"Acknowledged in incident_flow (incident {incident.id})."
                self.client.acknowledge(alias, user=event.actor, note=note)
                return alias, None

            once(
                flow,
                incident.id,
                system=SYSTEM,
                kind=ACKNOWLEDGED,
                source=page_id,
                by=NAME,
                make=make,
            )

    def _close_alerts(
        self, flow: IncidentFlow | None, incident: Incident, event: Event, why: str
    ) -> None:
        for page in incident.pages:
            alert = self._alert(flow, incident.id, page.id)
            if alert is None:
                continue

            def make(alias: str = alert.external_id) -> tuple[str, str | None]:
                note = f"Incident {incident.id} {why}"[:25_000]
                self.client.close_alert(alias, user=event.actor, note=note)
                return alias, None

            once(flow, incident.id, system=SYSTEM, kind=CLOSED, source=page.id, by=NAME, make=make)

    def _escalate(self, flow: IncidentFlow | None, incident: Incident, event: ReminderDue) -> None:
        page = incident.page(event.subject)
        if page is None or not page.is_open or incident.resolved_at is not None:
            return
        if self.config.escalation is None and self.config.escalate_to is None:
            logger.info(
                "page %s of %s is unanswered; set OPSGENIE_ESCALATION or OPSGENIE_ESCALATE_TO "
                "to escalate it in Opsgenie",
                page.id,
                incident.id,
            )
            return
        alert = self._alert(flow, incident.id, page.id)
        if alert is None:
            return
        note = _cut(event.message or _unanswered(page), 1000)

        def make() -> tuple[str, str | None]:
            if self.config.escalation is not None:
                self.client.escalate(
                    alert.external_id, self.config.escalation, user=event.actor, note=note
                )
            elif self.config.escalate_to is not None:
                self.client.add_responder(
                    alert.external_id, self.config.escalate_to, user=event.actor, note=note
                )
            return alert.external_id, None

        once(flow, incident.id, system=SYSTEM, kind=ESCALATED, source=event.key, by=NAME, make=make)

    def _alert(
        self, flow: IncidentFlow | None, incident_id: str, page_id: str
    ) -> ExternalRef | None:
        """The alert made for ``page_id``, as recorded now; None (logged) when none was made,
        as for a page sent before this adapter was installed."""
        if flow is None:
            raise PermanentDeliveryError(
                f"{NAME} needs the flow to find the alerts it made; build the DeliveryWorker "
                "with flow="
            )
        try:
            current = flow.get(incident_id)
        except UnknownIncidentError as error:
            raise PermanentDeliveryError(str(error)) from error
        alert = current.external_ref(SYSTEM, ALERT, page_id)
        if alert is None:
            logger.info("no Opsgenie alert was made for %s of %s", page_id, incident_id)
        return alert


def _unanswered(page: Page) -> str:
    return f"Page {page.id} for {page.target} unanswered since {_when(page.at)}."

"""The hook implementations: pages become PagerDuty alerts, and follow the incident.

What each event does (see the README for the requests in full):

- ``PageSent``: trigger an alert (Events API v2) on the target's routing key;
- ``PageAcknowledged``, or an ``OwnershipAcknowledged`` that answered pages: acknowledge them;
- ``PhaseChanged`` that resolves the incident, ``FalsePositiveMarked``: resolve every alert;
- ``ReminderDue`` ``page_unacknowledged``: trigger an escalation alert, when an escalation
  routing key is set;
- ``StatusUpdatePosted``: a status update on each PagerDuty incident the pages opened (REST),
  when a REST API key and a ``From`` user are set.

Everything sent is recorded on the incident (``system="pagerduty"``) right after it is sent and
looked for before, so a redelivered event sends nothing twice; the dedup keys are derived from
the incident, so PagerDuty folds a resend after a crash into the first alert.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from incident_flow import Incident, IncidentFlow, hookimpl
from incident_flow.adapters import Secret, once
from incident_flow.errors import (
    PermanentDeliveryError,
    RetryableDeliveryError,
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
    StatusUpdatePosted,
)
from incident_flow.timers import PAGE_UNACKNOWLEDGED
from incident_flow_pagerduty.client import PagerDutyClient
from incident_flow_pagerduty.config import PagerDutyConfig

__all__ = [
    "NAME",
    "SUMMARY_LIMIT",
    "SYSTEM",
    "PagerDutyPlugin",
    "escalation_dedup_key",
    "page_dedup_key",
]

logger = logging.getLogger(__name__)

NAME: Final = "pagerduty"
"""The plugin's name: part of every delivery key, and the ``by`` of what it records."""

SYSTEM: Final = "pagerduty"
"""The ``system`` of the external references the plugin records."""

SUMMARY_LIMIT: Final = 1024
"""PagerDuty cuts an alert's summary at 1024 characters; the adapter cuts it first."""

_KEY_LIMIT: Final = 200
"""The longest id incident_flow records; PagerDuty takes dedup keys up to 255."""

_CLIENT: Final = "incident_flow"


def _fit(key: str, prefix: str) -> str:
    """``key`` if it is short enough to record, else the prefix and a digest of it (stable)."""
    if len(key) <= _KEY_LIMIT:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{prefix[: _KEY_LIMIT - len(digest) - 1]}/{digest}"


def page_dedup_key(prefix: str, incident_id: str, page_id: str) -> str:
    """The dedup key of the alert for page ``page_id``: the same on every redelivery."""
    return _fit(f"{prefix}/{incident_id}/{page_id}", prefix)


def escalation_dedup_key(prefix: str, incident_id: str, reminder_key: str) -> str:
    """The dedup key of the escalation alert for the reminder occurrence ``reminder_key``."""
    return _fit(f"{prefix}/{incident_id}/escalation/{reminder_key}", prefix)


def _summary(*parts: str) -> str:
    text = ": ".join(part.strip() for part in parts if part and part.strip())
    if len(text) <= SUMMARY_LIMIT:
        return text
    return text[: SUMMARY_LIMIT - 1] + "…"


def _details(**values: object) -> dict[str, object]:
    """The alert's ``custom_details``: what is known, without empty entries."""
    return {name: value for name, value in values.items() if value is not None}


def _now(flow: IncidentFlow | None, incident_id: str) -> Incident:
    """The incident as it is now, where what earlier deliveries made is recorded."""
    if flow is None:
        raise PermanentDeliveryError(
            f"{NAME} needs the flow to find what it sent; build the DeliveryWorker with flow="
        )
    try:
        return flow.get(incident_id)
    except UnknownIncidentError as error:
        raise PermanentDeliveryError(str(error)) from error


class PagerDutyPlugin:
    """Pages through PagerDuty and keeps its alerts in step with the incident.

    Args:
        config: The settings (:meth:`PagerDutyConfig.from_env
            <incident_flow_pagerduty.PagerDutyConfig.from_env>`).
        client: The HTTP client; by default one built from ``config``.
    """

    incident_flow_name = NAME

    def __init__(self, config: PagerDutyConfig, *, client: PagerDutyClient | None = None):
        self.config = config
        self.client = client if client is not None else PagerDutyClient(config)

    def __repr__(self) -> str:
        return f"PagerDutyPlugin({self.config!r})"

    def close(self) -> None:
        """Close the HTTP client's connections."""
        self.client.close()

    # ------------------------------------------------------------------ hooks

    @hookimpl
    def incident_flow_event(
        self, event: Event, incident: Incident, key: str, flow: IncidentFlow | None
    ) -> None:
        """Send what ``event`` means to PagerDuty, once however often it is delivered."""
        match event:
            case ExternalRefRecorded():
                return  # what plugins record is bookkeeping, never news
            case PageSent():
                self._trigger_page(event, incident, flow)
            case PageAcknowledged():
                self._acknowledge(incident, flow, {event.page_id})
            case OwnershipAcknowledged():
                answered = {
                    page.id
                    for page in incident.pages
                    if page.acknowledged_at == event.at and page.acknowledged_by == event.actor
                }
                if answered:
                    self._acknowledge(incident, flow, answered)
            case PhaseChanged(resolves=True) | FalsePositiveMarked():
                self._resolve(incident, flow)
            case ReminderDue(reminder=reminder) if reminder == PAGE_UNACKNOWLEDGED:
                self._escalate(event, incident, flow)
            case StatusUpdatePosted():
                self._post_status_update(event, incident, key, flow)
            case _:
                return

    @hookimpl
    def incident_flow_who_is_on_call(self, schedule: str | None, at: datetime) -> str | None:
        """Who is on call for ``schedule`` at ``at``, by PagerDuty's on-calls.

        Returns None (letting another plugin answer) without a REST API key, without a
        schedule to ask about, or when nobody is on call then.

        Raises:
            RetryableDeliveryError: PagerDuty is unreachable, slow or rate-limiting.
            PermanentDeliveryError: PagerDuty refused the request (a bad key, say).
        """
        if self.config.api_key is None:
            logger.debug("who is on call: PAGERDUTY_API_KEY is not set; not asking PagerDuty")
            return None
        schedule_id = self.config.schedule_for(schedule)
        if schedule_id is None:
            return None
        moment = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        # PagerDuty lists the on-call periods overlapping a range; a one-second range around
        # the moment, then the entries covering the moment itself first.
        entries = self.client.oncalls(schedule_id, moment, moment + timedelta(seconds=1))
        ranked = sorted(entries, key=lambda entry: _rank(entry, moment))
        for entry in ranked:
            person = self._person(entry.get("user"))
            if person:
                return person
        return None

    # ------------------------------------------------------------------ events

    def _trigger_page(self, event: PageSent, incident: Incident, flow: IncidentFlow | None) -> None:
        dedup_key = page_dedup_key(self.config.dedup_prefix, incident.id, event.page_id)
        body = {
            "routing_key": self.config.routing_key_for(event.target).reveal(),
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "client": _CLIENT,
            "payload": {
                "summary": _summary(incident.title, event.message),
                "source": self.config.source,
                "severity": self.config.alert_severity(incident.severity),
                "timestamp": event.at.isoformat(),
                "class": "page",
                "custom_details": _details(
                    incident_id=incident.id,
                    title=incident.title,
                    phase=incident.phase,
                    severity=str(incident.severity),
                    customer_impact=incident.customer_impact,
                    target=event.target,
                    page_id=event.page_id,
                    message=event.message or None,
                    paged_by=event.actor,
                    lead=incident.lead,
                ),
            },
        }
        once(
            flow,
            incident.id,
            system=SYSTEM,
            kind="alert",
            source=event.page_id,
            by=NAME,
            make=lambda: self._send(body, "trigger", dedup_key),
        )

    def _escalate(self, event: ReminderDue, incident: Incident, flow: IncidentFlow | None) -> None:
        routing_key = self.config.escalation_routing_key
        if routing_key is None:
            # Nothing to do: the PagerDuty service's own escalation policy escalates an alert
            # nobody acknowledges.
            logger.debug("%s: no PAGERDUTY_ESCALATION_ROUTING_KEY; not escalating", event.key)
            return
        now = _now(flow, incident.id)
        answered = now.page(event.subject)
        if answered is not None and not answered.is_open:
            logger.debug("%s: page %s was answered since; not escalating", event.key, event.subject)
            return
        page = incident.page(event.subject)
        dedup_key = escalation_dedup_key(self.config.dedup_prefix, incident.id, event.key)
        target = page.target if page is not None else event.subject
        body = {
            "routing_key": routing_key.reveal(),
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "client": _CLIENT,
            "payload": {
                "summary": _summary(
                    f"Escalation: {incident.title}",
                    f"the page to {target} is not acknowledged",
                    page.message if page is not None else "",
                ),
                "source": self.config.source,
                "severity": self.config.alert_severity(incident.severity),
                "timestamp": event.at.isoformat(),
                "class": "escalation",
                "custom_details": _details(
                    incident_id=incident.id,
                    title=incident.title,
                    phase=incident.phase,
                    severity=str(incident.severity),
                    target=target,
                    page_id=event.subject,
                    reminder=event.key,
                    reminder_message=event.message or None,
                    due_at=event.due_at.isoformat(),
                    missed=event.missed,
                    lead=incident.lead,
                ),
            },
        }
        once(
            flow,
            incident.id,
            system=SYSTEM,
            kind="alert",
            source=event.key,
            by=NAME,
            make=lambda: self._send(body, "trigger (escalation)", dedup_key),
        )

    def _acknowledge(
        self, incident: Incident, flow: IncidentFlow | None, page_ids: set[str]
    ) -> None:
        self._follow_up_alerts(incident, flow, "acknowledge", page_ids)

    def _resolve(self, incident: Incident, flow: IncidentFlow | None) -> None:
        self._follow_up_alerts(incident, flow, "resolve", None)

    def _follow_up_alerts(
        self,
        incident: Incident,
        flow: IncidentFlow | None,
        action: str,
        page_ids: set[str] | None,
    ) -> None:
        """Send ``action`` for each alert sent for the pages (all when ``page_ids`` is None),
        each once."""
        now = _now(flow, incident.id)
        for dedup_key, routing_key in self._alerts(incident, now, page_ids):
            body = {
                "routing_key": routing_key.reveal(),
                "event_action": action,
                "dedup_key": dedup_key,
            }
            once(
                flow,
                incident.id,
                system=SYSTEM,
                kind=action,
                source=dedup_key,
                by=NAME,
                make=functools.partial(self._send, body, action, dedup_key),
            )

    def _alerts(
        self, incident: Incident, now: Incident, page_ids: set[str] | None
    ) -> Iterator[tuple[str, Secret]]:
        """The dedup key and routing key of every alert sent for the pages of ``incident`` (as
        of the event) and their escalations, as recorded on ``now``.

        Only alerts recorded as sent: a page whose trigger was refused has nothing to follow.
        """
        for page in incident.pages:
            if page_ids is not None and page.id not in page_ids:
                continue
            ref = now.external_ref(SYSTEM, "alert", page.id)
            if ref is not None:
                yield ref.external_id, self.config.routing_key_for(page.target)
        escalation_key = self.config.escalation_routing_key or self.config.routing_key
        for reminder in incident.reminders:
            if reminder.name != PAGE_UNACKNOWLEDGED:
                continue
            if page_ids is not None and reminder.subject not in page_ids:
                continue
            ref = now.external_ref(SYSTEM, "alert", reminder.key)
            if ref is not None:
                yield ref.external_id, escalation_key

    def _post_status_update(
        self,
        event: StatusUpdatePosted,
        incident: Incident,
        key: str,
        flow: IncidentFlow | None,
    ) -> None:
        if not self.config.posts_status_updates:
            return
        now = _now(flow, incident.id)
        for page in incident.pages:
            alert = now.external_ref(SYSTEM, "alert", page.id)
            if alert is None:
                continue  # never reached PagerDuty: no incident to post on
            source = f"{key}:{page.id}"
            if now.external_ref(SYSTEM, "status_update", source) is not None:
                continue
            dedup_key = alert.external_id
            found = once(
                flow,
                incident.id,
                system=SYSTEM,
                kind="incident",
                source=dedup_key,
                by=NAME,
                make=functools.partial(self._find_incident, dedup_key),
            )
            once(
                flow,
                incident.id,
                system=SYSTEM,
                kind="status_update",
                source=source,
                by=NAME,
                make=functools.partial(self._post, found.external_id, event.text, source),
            )

    # ------------------------------------------------------------------ calls

    def _send(self, body: Mapping[str, Any], operation: str, dedup_key: str) -> tuple[str, None]:
        self.client.send_event(body, operation=operation)
        return dedup_key, None

    def _find_incident(self, dedup_key: str) -> tuple[str, str | None]:
        incidents = self.client.find_incidents(dedup_key)
        exact = [item for item in incidents if item.get("incident_key") == dedup_key]
        # Incidents grouping several alerts have no incident key of their own; PagerDuty then
        # matches the alerts' keys, so any incident it lists is the one.
        for item in [*exact, *incidents]:
            vendor_id = item.get("id")
            if isinstance(vendor_id, str) and vendor_id:
                url = item.get("html_url")
                return vendor_id, url if isinstance(url, str) and url else None
        raise RetryableDeliveryError(
            f"PagerDuty has no incident for dedup key {dedup_key!r} yet (the alert may not have "
            "opened one yet); the status update is retried"
        )

    def _post(self, vendor_id: str, text: str, source: str) -> tuple[str, None]:
        update = self.client.post_status_update(vendor_id, text)
        update_id = update.get("id")
        return (update_id if isinstance(update_id, str) and update_id else source), None

    def _person(self, user: object) -> str | None:
        if not isinstance(user, Mapping):
            return None
        name = user.get("name") or user.get("summary")
        email = user.get("email")
        order = (email, name) if self.config.oncall_as == "email" else (name, email)
        for value in order:
            if isinstance(value, str) and value.strip():
                return value.strip()
        return None


def _rank(entry: Mapping[str, Any], moment: datetime) -> tuple[int, int]:
    """Entries covering ``moment`` first, then the lowest escalation level."""
    level = entry.get("escalation_level")
    return (0 if _covers(entry, moment) else 1, level if isinstance(level, int) else 1_000)


def _covers(entry: Mapping[str, Any], moment: datetime) -> bool:
    start, end = _moment(entry.get("start")), _moment(entry.get("end"))
    return (start is None or start <= moment) and (end is None or moment < end)


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)

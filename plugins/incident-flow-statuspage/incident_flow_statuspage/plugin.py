"""The Statuspage plugin: customer posts become a Statuspage incident and its updates.

What each event does (every other event, :class:`~incident_flow.events.ExternalRefRecorded`
included, does nothing):

:class:`~incident_flow.events.StatusUpdatePosted`
    The first one published creates the Statuspage incident (``POST
    /pages/{page_id}/incidents``: the incident's title, the post's status, its text, the
    affected components); each later one updates it (``PATCH
    /pages/{page_id}/incidents/{incident_id}``: status, text, components). A post with
    findings (a recorded communication rule it breaks) is held back unless
    ``publish_with_findings`` is set: a warning is logged and nothing is sent.
:class:`~incident_flow.events.PhaseChanged` with ``resolves``, and
:class:`~incident_flow.events.FalsePositiveMarked`
    When the last status published is not ``resolved`` yet, publish ``resolved`` with every
    affected component back to ``operational``.

**Made once.** What is made on Statuspage is recorded on the incident right after
(:func:`incident_flow.adapters.once`): the Statuspage incident as
``ExternalRef(system="statuspage", kind="incident", source="")``, each published post or
resolution as ``kind="update"`` with the delivery's idempotency key as ``source``. Both are
looked up before sending, so a redelivered event publishes nothing twice.

**Components** chosen for an incident (:meth:`StatuspagePlugin.set_components`) are recorded
on it as ``kind="components"`` (the ``external_id`` is ``id=status,…``), so they survive a
restart and every worker sees them; an incident without that record uses the configured
default.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from incident_flow import Event, Incident, IncidentFlow, hookimpl
from incident_flow.adapters import once
from incident_flow.errors import (
    PermanentDeliveryError,
    UnknownIncidentError,
    UnknownPhaseError,
    ValidationError,
)
from incident_flow.events import FalsePositiveMarked, PhaseChanged, StatusUpdatePosted
from incident_flow_statuspage.client import StatuspageClient
from incident_flow_statuspage.components import format_components, parse_components
from incident_flow_statuspage.config import StatuspageConfig
from incident_flow_statuspage.phases import to_statuspage

__all__ = ["COMPONENTS", "INCIDENT", "SYSTEM", "UPDATE", "StatuspagePlugin"]

logger = logging.getLogger(__name__)

SYSTEM: Final = "statuspage"
"""The ``system`` of every reference this plugin records."""
INCIDENT: Final = "incident"
"""The ``kind`` of the Statuspage incident's reference (``source=""``: one per incident)."""
UPDATE: Final = "update"
"""The ``kind`` of a published post or resolution (``source``: the idempotency key)."""
COMPONENTS: Final = "components"
"""The ``kind`` of the affected components chosen for an incident."""

_RESOLVED = "resolved"


class StatuspagePlugin:
    """Publishes an incident's customer posts on one Statuspage page.

    Args:
        config: where and how to publish.
        client: the API client; by default one built from ``config``.
    """

    incident_flow_name = "statuspage"

    def __init__(self, config: StatuspageConfig, *, client: StatuspageClient | None = None):
        self.config = config
        self.client = client if client is not None else StatuspageClient(config)

    def __repr__(self) -> str:
        return f"StatuspagePlugin(page_id={self.config.page_id!r}, api_url={self.config.api_url!r})"

    def close(self) -> None:
        """Close the API client's connections."""
        self.client.close()

    # -- the hook ---------------------------------------------------------------------------

    @hookimpl
    def incident_flow_event(
        self, event: Event, incident: Incident, key: str, flow: IncidentFlow | None
    ) -> None:
        """Publish what ``event`` means for customers, once per ``key``; see the module
        docstring.

        Raises:
            RetryableDeliveryError: Statuspage is unreachable, slow, rate-limiting or failing.
            PermanentDeliveryError: Statuspage refused the request (a 4xx), a post's phase has
                no Statuspage status, or there is no ``flow`` to record what was made.
        """
        try:
            if isinstance(event, StatusUpdatePosted):
                self._publish_post(event, incident, key, flow)
            elif isinstance(event, FalsePositiveMarked):
                self._publish_resolution(event, incident, key, flow, false_positive=True)
            elif isinstance(event, PhaseChanged) and event.resolves:
                self._publish_resolution(event, incident, key, flow, false_positive=False)
        except ValidationError as error:
            # Bad data (an unmapped phase, a malformed record) stays bad on every retry.
            raise PermanentDeliveryError(f"{SYSTEM}: {error}") from error

    # -- components -------------------------------------------------------------------------

    def components(self, incident: Incident) -> Mapping[str, str]:
        """The components ``incident`` affects (component id → status): the latest chosen with
        :meth:`set_components`, else the configured default."""
        ref = incident.external_ref(SYSTEM, COMPONENTS)
        if ref is None:
            return self.config.components
        return parse_components(ref.external_id)

    def set_components(
        self, flow: IncidentFlow, incident_id: str, components: Mapping[str, str], *, by: str
    ) -> Incident:
        """Choose the components ``incident_id`` affects, and their status, for its next posts.

        The choice is recorded on the incident (an
        :class:`~incident_flow.events.ExternalRefRecorded` of kind ``components``, by ``by``)
        and replaces the configured default; an empty mapping means none. Nothing is sent
        now: every post made after it carries it (a post carries the choice in force when it
        was made, even when delivered later), and the resolution sets each component back to
        ``operational``.

        Args:
            flow: the flow holding the incident.
            incident_id: the incident.
            components: component id → one of
                :data:`~incident_flow_statuspage.components.COMPONENT_STATUSES`, such as
                ``{"8kbf7d35c070": "major_outage"}``.
            by: who chose them.

        Returns:
            The incident, with the choice recorded (unchanged when it was already the choice).

        Raises:
            InvalidComponentError: a component id or status is malformed, or too many
                components to record.
            UnknownIncidentError: there is no such incident.
        """
        text = format_components(components)
        incident = flow.get(incident_id)
        current = incident.external_ref(SYSTEM, COMPONENTS)
        if current is not None and current.external_id == text:
            return incident
        # The source tells one choice from the next, so that choosing again what was chosen
        # before records a new latest choice rather than being taken for a duplicate.
        return flow.record_external(
            incident.id,
            system=SYSTEM,
            kind=COMPONENTS,
            external_id=text,
            source=f"v{incident.version}",
            by=by,
        )

    # -- what was published -----------------------------------------------------------------

    def published_status(
        self, flow: IncidentFlow, incident_id: str, *, before: int | None = None
    ) -> str | None:
        """The Statuspage status this plugin last published for ``incident_id`` (from its
        events before version ``before``, or all), or None when it published nothing.

        Read from the event log with this plugin's settings: a post counts when it is one the
        plugin publishes (no findings, or ``publish_with_findings``; a phase it maps), a
        resolution when something was published before it.
        """
        status: str | None = None
        for event in flow.history(incident_id):
            if before is not None and event.version >= before:
                break
            if isinstance(event, StatusUpdatePosted) and self._publishes(event):
                try:
                    status = to_statuspage(event.status_phase, self.config.phase_map)
                except UnknownPhaseError:
                    continue  # its delivery failed for good: nothing was published
            elif status is not None and _resolution(event):
                status = _RESOLVED
        return status

    # -- publishing -------------------------------------------------------------------------

    def _publishes(self, event: StatusUpdatePosted) -> bool:
        return not event.findings or self.config.publish_with_findings

    def _publish_post(
        self, event: StatusUpdatePosted, incident: Incident, key: str, flow: IncidentFlow | None
    ) -> None:
        if not self._publishes(event):
            logger.warning(
                "statuspage: holding back the status update of %s (version %d): it breaks "
                "communication rules: %s; post a corrected update, or set "
                "STATUSPAGE_PUBLISH_WITH_FINDINGS=1 to publish such posts",
                event.incident_id,
                event.version,
                "; ".join(f"{finding.rule} ({finding.message})" for finding in event.findings),
            )
            return
        status = to_statuspage(event.status_phase, self.config.phase_map)
        flow = _require(flow)
        now = _current(flow, event.incident_id)
        if now.external_ref(SYSTEM, UPDATE, key) is not None:
            return  # delivered before
        fields: dict[str, Any] = {
            "status": status,
            "body": event.text,
            # As of the post: the components chosen before it, not since.
            **_component_fields(self.components(incident)),
            "deliver_notifications": self.config.deliver_notifications,
        }
        vendor = now.external_ref(SYSTEM, INCIDENT, "")
        if vendor is None:
            made: list[bool] = []

            def create() -> tuple[str, str | None]:
                created = self.client.create_incident({"name": incident.title, **fields})
                made.append(True)
                return created.id, created.shortlink

            vendor = once(
                flow,
                event.incident_id,
                system=SYSTEM,
                kind=INCIDENT,
                source="",
                by=self.incident_flow_name,
                make=create,
            )
            if made:
                # This post is on the page: say so, or a redelivery would update with it.
                flow.record_external(
                    event.incident_id,
                    system=SYSTEM,
                    kind=UPDATE,
                    external_id=vendor.external_id,
                    source=key,
                    url=vendor.url,
                    by=self.incident_flow_name,
                )
                return
        self._update(flow, event.incident_id, vendor.external_id, vendor.url, key, fields)

    def _publish_resolution(
        self,
        event: Event,
        incident: Incident,
        key: str,
        flow: IncidentFlow | None,
        *,
        false_positive: bool,
    ) -> None:
        flow = _require(flow)
        now = _current(flow, event.incident_id)
        if now.external_ref(SYSTEM, UPDATE, key) is not None:
            return  # delivered before
        vendor = now.external_ref(SYSTEM, INCIDENT, "")
        if vendor is None:
            return  # nothing was published: nothing to resolve
        if self.published_status(flow, event.incident_id, before=event.version) in (
            None,
            _RESOLVED,
        ):
            return
        text = self.config.false_positive_text if false_positive else self.config.resolved_text
        operational = dict.fromkeys(self.components(incident), "operational")
        fields: dict[str, Any] = {
            "status": _RESOLVED,
            "body": text.format(support=flow.process.comms.support_address),
            **_component_fields(operational),
            "deliver_notifications": self.config.deliver_notifications,
        }
        self._update(flow, event.incident_id, vendor.external_id, vendor.url, key, fields)

    def _update(
        self,
        flow: IncidentFlow,
        incident_id: str,
        vendor_id: str,
        url: str | None,
        key: str,
        fields: Mapping[str, Any],
    ) -> None:
        def update() -> tuple[str, str | None]:
            updated = self.client.update_incident(vendor_id, fields)
            return vendor_id, updated.shortlink or url

        once(
            flow,
            incident_id,
            system=SYSTEM,
            kind=UPDATE,
            source=key,
            by=self.incident_flow_name,
            make=update,
        )


def _resolution(event: Event) -> bool:
    return isinstance(event, FalsePositiveMarked) or (
        isinstance(event, PhaseChanged) and event.resolves
    )


def _component_fields(components: Mapping[str, str]) -> dict[str, Any]:
    if not components:
        return {}
    return {"components": dict(components), "component_ids": list(components)}


def _require(flow: IncidentFlow | None) -> IncidentFlow:
    if flow is None:
        raise PermanentDeliveryError(
            f"{SYSTEM} needs the flow to record what it publishes; build the DeliveryWorker "
            "with flow="
        )
    return flow


def _current(flow: IncidentFlow, incident_id: str) -> Incident:
    try:
        return flow.get(incident_id)
    except UnknownIncidentError as error:
        raise PermanentDeliveryError(str(error)) from error

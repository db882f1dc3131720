"""The Slack plugin: what happens in Slack when something happens to an incident.

:class:`SlackPlugin` implements ``incident_flow_event``. Declaring an incident creates its
channel (``conversations.create``), sets the topic, posts the declaration and, when customers
are hit, the messenger's announcements; every later event is one line in that channel, and the
incident's close archives it. See the package README for each event's requests.

Idempotency: everything made in Slack (the channel, each post, each invitation, each topic
change, the archiving) is looked up among the incident's ``external_refs`` before it is made and
recorded there right after (:func:`incident_flow.adapters.once`), under a ``source`` built from
the delivery's key, so a redelivered event, or one retried halfway through, makes nothing
twice. The channel's id is read from the incident as it is now; an event delivered before the
channel is recorded raises :class:`~incident_flow.errors.RetryableDeliveryError`, so it waits,
in order, for the declaration's delivery to succeed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from incident_flow import hookimpl
from incident_flow.adapters import once
from incident_flow.errors import (
    PermanentDeliveryError,
    RetryableDeliveryError,
    UnknownIncidentError,
)
from incident_flow.events import (
    Event,
    ExternalRefRecorded,
    IncidentDeclared,
    PhaseChanged,
    ReleasePaused,
    ReminderDue,
    RoleAssigned,
    SeverityChanged,
    StatusUpdatePosted,
)
from incident_flow.model import ExternalRef, Incident, Role, Severity
from incident_flow.timers import ANNOUNCEMENT_DAY
from incident_flow_slack import messages
from incident_flow_slack.client import SlackClient, SlackPermanentError
from incident_flow_slack.config import SlackConfig

if TYPE_CHECKING:
    from incident_flow.flow import IncidentFlow

__all__ = ["NAME", "SYSTEM", "SlackPlugin", "channel_url"]

logger = logging.getLogger("incident_flow_slack")

NAME: Final = "slack"
"""The plugin's name: part of every delivery key, and the ``by`` of what it records."""
SYSTEM: Final = "slack"
"""The ``system`` of every external reference the plugin records."""

ANNOUNCED: Final = "announce:"
"""The ``source`` prefix of an announcement outside the incident's channel, one per channel
per incident: later status updates are relayed to the channels recorded under it."""

USER_ERRORS: Final = frozenset(
    {
        "user_not_found",
        "no_user",
        "cant_invite_self",
        "cant_invite",
        "user_is_bot",
        "user_is_restricted",
        "user_is_ultra_restricted",
        "ura_max_channels",
    }
)
"""Invitation errors about the person, not the adapter: said in the channel, not retried."""

TOPIC_ROLES: Final = frozenset({Role.LEAD.value, Role.MESSENGER.value})

_MAX_SOURCE = 200


def channel_url(channel_id: str) -> str:
    """An address that opens the channel in Slack, whatever the workspace's domain."""
    return f"https://slack.com/app_redirect?channel={channel_id}"


def _source(text: str) -> str:
    """``text`` as a reference's source, hashed when longer than the flow accepts."""
    if len(text) <= _MAX_SOURCE:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class SlackPlugin:
    """Reacts to every event of every incident in Slack; see the module docstring.

    Args:
        config: The workspace's settings (channels to announce to, the marketing group, the
            channel prefix, the API URL and token).
        client: The Web API client; by default one built from ``config``.
    """

    incident_flow_name = NAME

    def __init__(self, config: SlackConfig, *, client: SlackClient | None = None) -> None:
        self.config = config
        self.client = client if client is not None else SlackClient(config)

    def __repr__(self) -> str:
        return (
            f"SlackPlugin(api_url={self.config.api_url!r}, prefix={self.config.channel_prefix!r})"
        )

    @hookimpl
    def incident_flow_event(
        self, event: Event, incident: Incident, key: str, flow: IncidentFlow | None
    ) -> None:
        """Do in Slack what ``event`` calls for; a redelivery with the same ``key`` makes
        nothing twice.

        Raises:
            RetryableDeliveryError: Slack is rate limiting, failing or unreachable, or the
                channel is not recorded yet (the declaration is still being delivered).
            PermanentDeliveryError: Slack refused a call for good (``SlackPermanentError``,
                with Slack's code), or there is no flow to record in.
        """
        if isinstance(event, ExternalRefRecorded):
            return  # ours and every other adapter's records: never a reason to post
        _Reaction(self, event, incident, key, flow).run()


class _Reaction:
    """One delivery of one event: the requests it makes, each made once."""

    def __init__(
        self,
        plugin: SlackPlugin,
        event: Event,
        incident: Incident,
        key: str,
        flow: IncidentFlow | None,
    ) -> None:
        self.config = plugin.config
        self.client = plugin.client
        self.event = event
        self.incident = incident
        self.key = key
        self.flow = flow

    # ------------------------------------------------------------------ making things once

    def once(
        self, kind: str, source: str, make: Callable[[], tuple[str, str | None]]
    ) -> ExternalRef:
        return once(
            self.flow,
            self.incident.id,
            system=SYSTEM,
            kind=kind,
            source=_source(source),
            by=NAME,
            make=make,
        )

    def post(
        self,
        channel: str,
        text: str,
        source: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
        link_names: bool = False,
    ) -> None:
        def make() -> tuple[str, str | None]:
            return self.client.post(channel, text, blocks=blocks, link_names=link_names), None

        self.once("message", source, make)

    def set_topic(self, channel: str) -> None:
        def make() -> tuple[str, str | None]:
            self.client.set_topic(channel, messages.topic(self.incident))
            return channel, None

        self.once("topic", self.key, make)

    def invite(self, channel: str, person: str | None) -> str | None:
        """Invite ``person`` when a Slack user id; Slack's reason when it refused them."""
        user = messages.user_id(person)
        if user is None:
            return None

        def make() -> tuple[str, str | None]:
            self.client.invite(channel, user)
            return user, None

        try:
            self.once("invite", f"{self.key}:{user}", make)
        except SlackPermanentError as error:
            if error.code not in USER_ERRORS:
                raise
            logger.info("not inviting %s to %s: %s", user, channel, error.code)
            return error.code
        return None

    def now(self) -> Incident:
        """The incident as it is now, with what earlier deliveries recorded."""
        if self.flow is None:
            raise PermanentDeliveryError(
                f"{NAME} needs the flow to find the incident's channel; build the "
                "DeliveryWorker with flow="
            )
        try:
            return self.flow.get(self.incident.id)
        except UnknownIncidentError as error:
            raise PermanentDeliveryError(str(error)) from error

    # ------------------------------------------------------------------ reactions

    def run(self) -> None:
        event = self.event
        if isinstance(event, IncidentDeclared):
            self.declared()
            return
        now = self.now()
        found = now.external_ref(SYSTEM, "channel")
        if found is None:
            raise RetryableDeliveryError(
                f"incident {self.incident.id} has no Slack channel recorded yet (its "
                f"declaration is not delivered); {event.type} waits for it"
            )
        channel = found.external_id
        if now.external_ref(SYSTEM, "archive") is not None:
            logger.info("%s: channel %s is archived; not posting %s", self.key, channel, event.type)
            return
        if isinstance(event, RoleAssigned):
            self.role_assigned(event, channel)
        elif isinstance(event, ReminderDue):
            self.reminded(event, channel)
        elif isinstance(event, StatusUpdatePosted):
            self.status_posted(event, channel, now)
        elif isinstance(event, ReleasePaused):
            self.post(channel, messages.line(event, self.incident), self.key, link_names=True)
        elif isinstance(event, SeverityChanged):
            self.post(channel, messages.line(event, self.incident), self.key)
            self.set_topic(channel)
            if self.incident.customer_impact:
                self.announce(channel)  # a newly critical incident reaches #general
        elif isinstance(event, PhaseChanged):
            if self.closes(event):
                self.close(event, channel)
            else:
                self.post(channel, messages.line(event, self.incident), self.key)
                self.set_topic(channel)
        else:
            self.post(channel, messages.line(event, self.incident), self.key)

    def declared(self) -> None:
        incident = self.incident

        def create() -> tuple[str, str | None]:
            channel = self.create_channel()
            return channel, channel_url(channel)

        channel = self.once("channel", "", create).external_id
        self.invite(channel, self.event.actor)
        self.set_topic(channel)
        self.post(
            channel,
            messages.declaration(incident),
            self.key,
            blocks=messages.declaration_blocks(incident),
        )
        if incident.customer_impact:
            self.announce(channel)

    def create_channel(self) -> str:
        """Create the channel under its readable name, or with a suffix from the incident's id
        when Slack answers ``name_taken``."""
        prefix, incident = self.config.channel_prefix, self.incident
        names = [messages.channel_name(prefix, incident)]
        names.extend(
            messages.channel_name(prefix, incident, suffix)
            for suffix in messages.channel_suffixes(incident.id)
        )
        for name in dict.fromkeys(names):
            try:
                return self.client.create_channel(name)
            except SlackPermanentError as error:
                if error.code != "name_taken":
                    raise
                logger.info("channel name %s is taken; trying another", name)
        raise SlackPermanentError(
            f"slack conversations.create: every name tried is taken ({', '.join(names)}); "
            "rename or archive one of those channels and requeue the delivery",
            code="name_taken",
            operation="conversations.create",
        )

    def announce(self, channel: str) -> None:
        """The messenger's announcements of a customer-impacting incident, each channel once
        per incident: the customer-facing channels, the severe ones when it is critical, and
        marketing with its group tagged."""
        config, incident = self.config, self.incident
        audiences: dict[str, str] = {}
        for target in config.announce_channels:
            audiences.setdefault(target, "customer-facing")
        if incident.severity is Severity.CRITICAL:
            for target in config.severe_channels:
                audiences[target] = "severe"
        if config.marketing_channel:
            audiences[config.marketing_channel] = "marketing"
        for target, audience in audiences.items():
            text = messages.announcement(incident, channel, audience, config.marketing_group)
            self.post(target, text, ANNOUNCED + target, link_names=audience == "marketing")

    def role_assigned(self, event: RoleAssigned, channel: str) -> None:
        refused = self.invite(channel, event.person)
        self.post(channel, messages.line(event, self.incident, invite_error=refused), self.key)
        if event.role in TOPIC_ROLES:
            self.set_topic(channel)

    def reminded(self, event: ReminderDue, channel: str) -> None:
        """A reminder in the channel, mentioning the person it is for; on an announcement day,
        marketing's channel first, its group tagged.

        A mention in the channel notifies the person as a direct message would, and keeps the
        reminder where the lead and everyone else see it (the handbook keeps all communication
        in the incident's channel); a DM would need another scope, a conversation opened per
        person and a second record per reminder, for no more reach.
        """
        marketing = self.config.marketing_channel
        if event.reminder == ANNOUNCEMENT_DAY and marketing:
            text = messages.announcement_day(
                event, self.incident, channel, self.config.marketing_group
            )
            self.post(marketing, text, f"{self.key}:{marketing}", link_names=True)
        self.post(channel, messages.line(event, self.incident), self.key)

    def status_posted(self, event: StatusUpdatePosted, channel: str, now: Incident) -> None:
        self.post(channel, messages.line(event, self.incident), self.key)
        told = [
            ref.source[len(ANNOUNCED) :]
            for ref in now.external_refs
            if ref.system == SYSTEM and ref.kind == "message" and ref.source.startswith(ANNOUNCED)
        ]
        for target in dict.fromkeys(told):
            text = messages.status_relay(event, self.incident, channel)
            self.post(target, text, f"{self.key}:{target}")

    def closes(self, event: PhaseChanged) -> bool:
        if event.closes:
            return True
        if self.incident.false_positive and self.flow is not None:
            return self.flow.process.is_terminal(event.dest)
        return False

    def close(self, event: PhaseChanged, channel: str) -> None:
        self.post(channel, messages.closing(event, self.incident), self.key)

        def archive() -> tuple[str, str | None]:
            self.client.archive(channel)
            return channel, channel_url(channel)

        self.once("archive", "", archive)

"""Plugins that ``incident-flow worker --plugin tests.cli_plugins:…`` loads in the CLI tests.

They write what they receive to the file named by ``INCIDENT_FLOW_TEST_RECORD``, one line per
delivery, so a test can read what a worker in another process delivered.
"""

from __future__ import annotations

import os

from incident_flow import Event, Incident, IncidentFlow, hookimpl
from incident_flow.adapters import once
from incident_flow.errors import PermanentDeliveryError
from incident_flow.events import ExternalRefRecorded


def _write(line: str) -> None:
    fd = os.open(os.environ["INCIDENT_FLOW_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


class FileRecorder:
    incident_flow_name = "file-recorder"

    @hookimpl
    def incident_flow_event(self, event: Event, key: str) -> None:
        _write(f"{key} {event.type}")


class Refusing:
    incident_flow_name = "refusing"

    @hookimpl
    def incident_flow_event(self, event: Event) -> None:
        raise PermanentDeliveryError("HTTP 404: channel_not_found")


class ChannelMaker:
    """Records one 'channel' per incident through the flow the worker hands it."""

    incident_flow_name = "channel-maker"

    @hookimpl
    def incident_flow_event(
        self, event: Event, incident: Incident, key: str, flow: IncidentFlow | None
    ) -> None:
        if isinstance(event, ExternalRefRecorded):
            return

        def make() -> tuple[str, str | None]:
            _write(f"{key} made a channel")
            return f"C-{incident.id}", None

        once(
            flow, incident.id, system="chat", kind="channel", by=self.incident_flow_name, make=make
        )

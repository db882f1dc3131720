"""Helpers of the Bolt app's tests: signed Slack requests, a flow with an incident and its
channel, and a local server standing in for a command's ``response_url``.

(Not a conftest: the test folders of several plugins run together, and the reactions' tests
own this folder's conftest.)
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

from incident_flow_slack.config import SlackConfig
from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk.signature import SignatureVerifier

from incident_flow import FakeClock, IncidentFlow
from incident_flow.model import Incident
from incident_flow.store.memory import MemoryStore

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-1111-2222-appT3stT0ken"
START = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
CHANNEL = "C123"
REPORTER = "U0REPORTER"
LEAD = "U0LEAD"
MESSENGER = "U0MESSENGER"


def app_config(api_url: str = "http://127.0.0.1:9/api/", **settings: Any) -> SlackConfig:
    """Settings with the tests' token and signing secret; the Web API at ``api_url`` (by
    default a port where nothing listens: commands must not need Slack)."""
    settings.setdefault("signing_secret", SIGNING_SECRET)
    settings.setdefault("timeout", 1.0)
    return SlackConfig(bot_token=BOT_TOKEN, api_url=api_url, **settings)


def make_flow(flow_class: type[IncidentFlow] = IncidentFlow) -> IncidentFlow:
    """A flow on a memory store and a fake clock, delivering to nobody (the app only writes)."""
    return flow_class(
        store=MemoryStore(),
        clock=FakeClock(START),
        entry_points=False,
        reminders=False,
        deliver=False,
    )


def incident_with_channel(
    flow: IncidentFlow,
    channel: str = CHANNEL,
    *,
    customer_impact: bool = True,
    title: str = "Search is down",
) -> Incident:
    """A major incident declared by ``REPORTER`` whose Slack channel is ``channel``, recorded
    as the reactions plugin records it."""
    incident = flow.declare(title, severity="major", customer_impact=customer_impact, by=REPORTER)
    return flow.record_external(
        incident.id, system="slack", kind="channel", external_id=channel, by="slack"
    )


def sign(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """The headers Slack sends with ``body``: its ``v0`` signature and timestamp."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": signature,
    }


def command_body(
    text: str,
    *,
    channel: str = CHANNEL,
    user: str = LEAD,
    response_url: str = "http://127.0.0.1:9/commands/T1/1/x",
    trigger_id: str | None = None,
) -> str:
    """The form body of ``/incident <text>`` as Slack posts it (with a fresh ``trigger_id``,
    as each command typed has)."""
    if trigger_id is None:
        trigger_id = f"13345224609.738474920.{uuid.uuid4().hex}"
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": "T0001",
            "team_domain": "example",
            "channel_id": channel,
            "channel_name": "inc-search-is-down",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/incident",
            "text": text,
            "api_app_id": "A0001",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def submission_body(
    *,
    title: str = "Search is down",
    severity: str | None = "major",
    impact: str | None = "yes",
    description: str = "",
    user: str = REPORTER,
) -> str:
    """The form body of a declaration form's submission, as Slack posts it."""

    def chosen(value: str | None) -> dict[str, Any]:
        if value is None:
            return {"type": "static_select", "selected_option": None}
        option = {"text": {"type": "plain_text", "text": value}, "value": value}
        return {"type": "static_select", "selected_option": option}

    values = {
        "title": {"value": {"type": "plain_text_input", "value": title}},
        "severity": {"value": chosen(severity)},
        "impact": {"value": chosen(impact)},
        "description": {"value": {"type": "plain_text_input", "value": description or None}},
    }
    payload = {
        "type": "view_submission",
        "team": {"id": "T0001", "domain": "example"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy-verification-token",
        "trigger_id": "12466734323.1395872398.7c6b0ab6cb",
        "view": {
            "id": "V0001",
            "team_id": "T0001",
            "type": "modal",
            "callback_id": "incident_declare",
            "private_metadata": "",
            "state": {"values": values},
            "hash": "156663117.cd33ad1f",
        },
    }
    return urlencode({"payload": json.dumps(payload)})


def dispatch(app: App, body: str, headers: Mapping[str, str] | None = None) -> BoltResponse:
    """Hand Slack's request to the app in-process, signed unless ``headers`` are given."""
    return app.dispatch(
        BoltRequest(body=body, headers=dict(sign(body) if headers is None else headers))
    )


def answer(response: BoltResponse) -> dict[str, Any]:
    """The JSON body of an acknowledgement."""
    assert response.status == 200, (response.status, response.body)
    found: dict[str, Any] = json.loads(response.body) if response.body else {}
    return found


def wait_for(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``condition`` until it is truthy (for what the app does after acknowledging)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.01)


class ResponseURL:
    """A local server standing in for a command's ``response_url``: records each JSON body
    posted to it and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.bodies: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorder.bodies.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(recorder.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/commands/T0001/1/abc"

    def __enter__(self) -> ResponseURL:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

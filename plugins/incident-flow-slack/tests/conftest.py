"""Fixtures of the Slack reactions' tests: a local Slack Web API, a plugin pointed at it, and
flows that deliver to that plugin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from incident_flow_slack.config import SlackConfig
from incident_flow_slack.reactions import SlackPlugin

from incident_flow import FakeClock, IncidentFlow
from incident_flow.store.memory import MemoryStore
from incident_flow.testing.vendor_api import VendorAPI

SLACK_SPEC = "slack_web_openapi_v2.json"
TOKEN = "xoxb-1111-2222-s3cr3tT0k3n"
START = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """WebClient sends every request through ``HTTPS_PROXY`` when set, 127.0.0.1 included."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def slack_api(vendor_api: Callable[..., VendorAPI]) -> VendorAPI:
    """A local Slack Web API that checks every request against Slack's description."""
    return vendor_api(SLACK_SPEC)


def make_config(api: VendorAPI, **settings: Any) -> SlackConfig:
    """Settings pointing at ``api``, with a client timeout well under check_plugin's and well
    over what a healthy local server takes on a busy machine."""
    settings.setdefault("timeout", 2.0)
    return SlackConfig(bot_token=TOKEN, api_url=api.base_url + "/", **settings)


@pytest.fixture
def slack_config(slack_api: VendorAPI) -> SlackConfig:
    return make_config(slack_api)


@pytest.fixture
def slack_plugin(slack_config: SlackConfig) -> SlackPlugin:
    return SlackPlugin(slack_config)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def make_flow(clock: FakeClock) -> Iterator[Callable[..., IncidentFlow]]:
    """Flows on a memory store with the fake clock, delivering to the given plugins (the
    ``slack_plugin`` by default); shut down after the test."""
    flows: list[IncidentFlow] = []

    def make(*plugins: object, **options: Any) -> IncidentFlow:
        flow = IncidentFlow(
            store=MemoryStore(),
            clock=clock,
            plugins=list(plugins),
            entry_points=False,
            reminders=False,
            **options,
        )
        flows.append(flow)
        return flow

    yield make
    for flow in flows:
        flow.shutdown()


@pytest.fixture
def flow(make_flow: Callable[..., IncidentFlow], slack_plugin: SlackPlugin) -> IncidentFlow:
    """A flow delivering to the Slack plugin."""
    return make_flow(slack_plugin)


@pytest.fixture
def posts(slack_api: VendorAPI) -> Callable[..., list[dict[str, Any]]]:
    """``posts(channel=None)``: the bodies of ``chat.postMessage`` requests answered 200 (to
    ``channel`` if given), in order. (Helpers are fixtures: test folders of several plugins
    run together, so a module named ``conftest`` cannot be imported.)"""

    def found(channel: str | None = None) -> list[dict[str, Any]]:
        return [
            request.body
            for request in slack_api.requests_to("POST", "/chat.postMessage")
            if request.status == 200 and (channel is None or request.body.get("channel") == channel)
        ]

    return found


@pytest.fixture
def bodies(slack_api: VendorAPI) -> Callable[[str], list[dict[str, Any]]]:
    """``bodies(method)``: the bodies of the requests to a Web API method answered 200."""

    def found(method: str) -> list[dict[str, Any]]:
        return [r.body for r in slack_api.requests_to("POST", f"/{method}") if r.status == 200]

    return found


@pytest.fixture
def config_for() -> Callable[..., SlackConfig]:
    """``config_for(api, **settings)``: settings pointing at ``api``."""
    return make_config


@pytest.fixture
def slack_token() -> str:
    """The bot token the tests' settings hold (to check it never shows)."""
    return TOKEN

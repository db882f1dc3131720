"""The Web API client: Slack's answers turned into delivery errors, and the token never shown."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from incident_flow_slack.client import SlackClient, SlackPermanentError, SlackRetryableError
from incident_flow_slack.config import SlackConfig
from incident_flow_slack.reactions import SlackPlugin

from incident_flow.errors import AdapterConfigError, PermanentDeliveryError, RetryableDeliveryError
from incident_flow.testing.vendor_api import Answer, VendorAPI


@pytest.fixture
def client(slack_config: SlackConfig) -> SlackClient:
    return SlackClient(slack_config)


def refuse(api: VendorAPI, method: str, body: dict[str, object], **headers: str) -> None:
    """Answer the next call of ``method`` with HTTP 200 and ``body`` (Slack's ``ok: false``)."""
    api.respond_sequence("POST", f"/{method}", [Answer(200, body, headers=headers, validate=False)])


def test_a_post_is_sent_as_slack_documents_it(client: SlackClient, slack_api: VendorAPI) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]
    message = client.post("C0INC0001", "hi", blocks=blocks, link_names=True)

    (request,) = slack_api.requests_to("POST", "/chat.postMessage")
    assert request.valid
    assert request.headers["Authorization"].startswith("Bearer xoxb-")
    assert request.body["blocks"] == blocks
    assert request.body["link_names"] is True
    assert message == "CAAAAAAAA:0000000000.000000"  # the channel and ts Slack answered


def test_http_429_is_retryable_after_what_slack_asks(
    client: SlackClient, slack_api: VendorAPI
) -> None:
    slack_api.fail("POST", "/chat.postMessage", status=429, retry_after=7)

    with pytest.raises(SlackRetryableError) as caught:
        client.post("C0INC0001", "hi")

    assert isinstance(caught.value, RetryableDeliveryError)
    assert caught.value.retry_after == 7
    assert caught.value.code == "ratelimited"
    # no built-in retry handler slept on it and asked again
    assert len(slack_api.requests_to("POST", "/chat.postMessage")) == 1


def test_ok_false_ratelimited_is_retryable_too(client: SlackClient, slack_api: VendorAPI) -> None:
    refuse(
        slack_api,
        "conversations.setTopic",
        {"ok": False, "error": "ratelimited"},
        **{"Retry-After": "12"},
    )

    with pytest.raises(SlackRetryableError) as caught:
        client.set_topic("C0INC0001", "topic")

    assert caught.value.retry_after == 12


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_is_retryable(client: SlackClient, slack_api: VendorAPI, status: int) -> None:
    slack_api.fail("POST", "/conversations.archive", status=status)

    with pytest.raises(SlackRetryableError, match=f"HTTP {status}"):
        client.archive("C0INC0001")


@pytest.mark.parametrize(
    "code", ["fatal_error", "internal_error", "service_unavailable", "request_timeout"]
)
def test_slacks_own_failures_are_retryable(
    client: SlackClient, slack_api: VendorAPI, code: str
) -> None:
    refuse(slack_api, "chat.postMessage", {"ok": False, "error": code})

    with pytest.raises(SlackRetryableError, match=code):
        client.post("C0INC0001", "hi")


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("channel_not_found", "give a channel id"),
        ("not_in_channel", "invite it"),
        ("invalid_auth", "SLACK_BOT_TOKEN is not a valid token"),
        ("is_archived", "unarchive it"),
        ("no_text", "api.slack.com/methods/chat.postMessage#errors"),
    ],
)
def test_other_errors_are_permanent_with_slacks_code_and_a_hint(
    client: SlackClient, slack_api: VendorAPI, code: str, hint: str
) -> None:
    refuse(slack_api, "chat.postMessage", {"ok": False, "error": code})

    with pytest.raises(SlackPermanentError) as caught:
        client.post("C0INC0001", "hi")

    assert isinstance(caught.value, PermanentDeliveryError)
    assert caught.value.code == code
    assert caught.value.operation == "chat.postMessage"
    assert code in str(caught.value)
    assert hint in str(caught.value)


def test_a_missing_scope_names_the_scope(client: SlackClient, slack_api: VendorAPI) -> None:
    refuse(
        slack_api,
        "conversations.create",
        {"ok": False, "error": "missing_scope", "needed": "channels:manage"},
    )

    with pytest.raises(SlackPermanentError, match="lacks the scope channels:manage"):
        client.create_channel("inc-20240514-search")


def test_http_400_is_permanent(client: SlackClient, slack_api: VendorAPI) -> None:
    slack_api.fail("POST", "/conversations.invite", status=400)

    with pytest.raises(SlackPermanentError, match="bad_request"):
        client.invite("C0INC0001", "U0BOB0001")


def test_already_in_channel_and_already_archived_are_success(
    client: SlackClient, slack_api: VendorAPI
) -> None:
    refuse(slack_api, "conversations.invite", {"ok": False, "error": "already_in_channel"})
    refuse(slack_api, "conversations.archive", {"ok": False, "error": "already_archived"})

    assert client.invite("C0INC0001", "U0BOB0001") is False
    assert client.archive("C0INC0001") is False
    assert client.invite("C0INC0001", "U0BOB0001") is True
    assert client.archive("C0INC0001") is True


def test_a_slow_answer_times_out_as_retryable(
    slack_api: VendorAPI, config_for: Callable[..., SlackConfig]
) -> None:
    client = SlackClient(config_for(slack_api, timeout=0.2))
    slack_api.delay("POST", "/chat.postMessage", seconds=2)

    with pytest.raises(SlackRetryableError, match="network failure"):
        client.post("C0INC0001", "hi")


def test_an_unreachable_slack_is_retryable(slack_token: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = SlackClient(
        SlackConfig(bot_token=slack_token, api_url=f"http://127.0.0.1:{port}/api/", timeout=1)
    )

    with pytest.raises(SlackRetryableError, match="network failure"):
        client.post("C0INC0001", "hi")


def test_the_token_is_never_shown(
    client: SlackClient, slack_api: VendorAPI, slack_config: SlackConfig, slack_token: str
) -> None:
    refuse(
        slack_api,
        "chat.postMessage",
        {"ok": False, "error": "invalid_auth", "detail": f"token {slack_token} is unknown"},
    )

    with pytest.raises(SlackPermanentError) as caught:
        client.post("C0INC0001", "hi")

    assert caught.value.__cause__ is None  # the SDK's error, holding the request, is dropped
    shown = [str(caught.value), repr(client), repr(SlackPlugin(slack_config)), repr(slack_config)]
    assert all(slack_token not in text for text in shown)
    assert "token=***" in repr(client)


def test_the_api_url_must_be_http(slack_token: str) -> None:
    with pytest.raises(AdapterConfigError, match="SLACK_API_URL"):
        SlackClient(SlackConfig(bot_token=slack_token, api_url="file:///etc/"))

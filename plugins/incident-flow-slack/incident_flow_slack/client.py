"""The few Slack Web API calls the reactions make, through ``slack_sdk``'s ``WebClient``.

Slack answers most failures with HTTP 200 and ``{"ok": false, "error": "channel_not_found"}``;
``WebClient`` raises ``SlackApiError`` for those and for every HTTP error. :class:`SlackClient`
turns each into the delivery error the worker acts on:

- ``ratelimited`` (HTTP 429) → :class:`~incident_flow.errors.RetryableDeliveryError` with
  ``retry_after`` from ``Retry-After``;
- HTTP 408/425/5xx, ``fatal_error``, ``internal_error``, ``service_unavailable``,
  ``request_timeout``, and network failures or timeouts → ``RetryableDeliveryError``;
- anything else (``channel_not_found``, ``not_in_channel``, ``invalid_auth``, ``missing_scope``,
  an HTTP 400 …) → :class:`SlackPermanentError`, a
  :class:`~incident_flow.errors.PermanentDeliveryError` carrying Slack's error code and a hint.

``WebClient`` is built without retry handlers: the delivery worker already retries with
backoff and honours ``retry_after``, so a client that slept on a 429 inside a delivery would
only hold the plugin's lane and overrun the delivery timeout.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from incident_flow.adapters import RETRIABLE_STATUSES, Secret, redact, retry_after_seconds
from incident_flow.errors import AdapterConfigError, PermanentDeliveryError, RetryableDeliveryError
from incident_flow_slack.config import SlackConfig

__all__ = [
    "RATE_LIMITED",
    "RETRIABLE_ERRORS",
    "SlackClient",
    "SlackPermanentError",
    "SlackRetryableError",
    "delivery_error",
]

logger = logging.getLogger("incident_flow_slack.client")

RATE_LIMITED: Final = frozenset({"ratelimited", "rate_limited"})
"""Slack's error codes for "slow down" (``chat.postMessage`` documents the second spelling)."""

RETRIABLE_ERRORS: Final = frozenset(
    {"fatal_error", "internal_error", "service_unavailable", "request_timeout"}
)
"""Slack's error codes for a failure on its side that a later attempt may not meet."""

HINTS: Final[Mapping[str, str]] = {
    "channel_not_found": (
        "the channel does not exist or the bot cannot see it; give a channel id (C…) or the name "
        "of a public channel in the SLACK_*_CHANNEL(S) settings"
    ),
    "not_in_channel": (
        "the bot is not a member of that channel; invite it (/invite @incident-flow) or grant "
        "the chat:write.public scope"
    ),
    "is_archived": "the channel is archived; unarchive it, or change the setting that names it",
    "invalid_auth": "SLACK_BOT_TOKEN is not a valid token for this workspace",
    "not_authed": "no token was sent; set SLACK_BOT_TOKEN",
    "account_inactive": "the token belongs to a deactivated user or an uninstalled app",
    "token_revoked": "the token was revoked; reinstall the app and set the new SLACK_BOT_TOKEN",
    "token_expired": "the token expired; set a fresh SLACK_BOT_TOKEN",
    "missing_scope": "the bot token lacks a scope; add it to the app's manifest and reinstall",
    "restricted_action": "the workspace's settings forbid the bot this action",
    "name_taken": "a channel with this name exists already",
    "invalid_name_specials": "channel names may only hold a-z, 0-9, - and _",
    "invalid_name_maxlength": "channel names are at most 80 characters",
    "user_not_found": "no such Slack user; people must be Slack user ids (U…)",
    "cant_invite_self": "the bot cannot invite itself",
    "user_is_bot": "bots cannot be invited this way",
    "cant_invite": "this user cannot be invited to the channel",
    "msg_too_long": "the message is too long for Slack",
    "bad_request": "Slack refused the request as malformed",
}
"""What to do about a permanent error, by Slack's code."""


class SlackPermanentError(PermanentDeliveryError):
    """Slack refused a call and will refuse it again: raised by :class:`SlackClient` for every
    error that is not a rate limit, a 5xx or a network failure. ``code`` is Slack's error
    (``channel_not_found``), ``operation`` the Web API method."""

    def __init__(self, message: str, *, code: str, operation: str) -> None:
        super().__init__(message)
        self.code = code
        self.operation = operation


class SlackRetryableError(RetryableDeliveryError):
    """A Slack call failed in a way a later attempt may not (a rate limit, a 5xx, a timeout);
    ``code`` is Slack's error or the network failure's kind."""

    def __init__(
        self, message: str, *, code: str, operation: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.code = code
        self.operation = operation


def _header(headers: Any, name: str) -> str | None:
    if not isinstance(headers, Mapping):
        return None
    for key, value in headers.items():
        if str(key).lower() == name:
            # aiohttp-style header lists hold one value per entry
            return str(value[0] if isinstance(value, list | tuple) and value else value)
    return None


def delivery_error(
    operation: str, error: SlackApiError, *, secrets: Iterable[Secret | str | None] = ()
) -> SlackPermanentError | SlackRetryableError:
    """The delivery error for ``SlackApiError`` raised by ``operation``, with no secret in it.

    Args:
        operation: The Web API method (``chat.postMessage``).
        error: What ``WebClient`` raised.
        secrets: Values to take out of the message (the bot token), as ``Secret`` or text.
    """
    response = error.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = getattr(response, "data", None)
    body: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
    code = str(body.get("error") or (f"http_{status}" if status else "unknown_error"))
    hidden = list(secrets)

    def say(words: str) -> str:
        return redact(f"slack {operation}: {words}", hidden)

    if status == 429 or code in RATE_LIMITED:
        retry_after = retry_after_seconds(
            _header(getattr(response, "headers", None), "retry-after")
        )
        wait = f"; retry after {retry_after:g} s" if retry_after is not None else ""
        return SlackRetryableError(
            say(f"rate limited (HTTP {status}, {code}){wait}"),
            code=code,
            operation=operation,
            retry_after=retry_after,
        )
    if status in RETRIABLE_STATUSES or status >= 500 or code in RETRIABLE_ERRORS:
        return SlackRetryableError(
            say(f"Slack is unavailable (HTTP {status}, {code}); will retry"),
            code=code,
            operation=operation,
        )
    hint = HINTS.get(code, "see https://api.slack.com/methods/" + operation + "#errors")
    if code == "missing_scope" and body.get("needed"):
        hint = f"the bot token lacks the scope {body['needed']}; add it to the app and reinstall"
    return SlackPermanentError(
        say(f"{code} (HTTP {status}): {hint}"), code=code, operation=operation
    )


class SlackClient:
    """Creates channels, posts, invites and archives for the reactions, with errors typed.

    Wraps a ``WebClient`` (``base_url`` = ``config.api_url``, the bot token, ``config.timeout``
    per call, no retry handlers) that it never shows: its repr names the URL only.

    Raises:
        AdapterConfigError: ``config.api_url`` is not an http(s) URL.
    """

    def __init__(self, config: SlackConfig) -> None:
        if not config.api_url.lower().startswith(("http://", "https://")):
            raise AdapterConfigError(
                f"SLACK_API_URL must be an http(s) URL, not {config.api_url!r}",
                setting="SLACK_API_URL",
            )
        self._token = config.bot_token
        self.api_url = config.api_url
        self.timeout = config.timeout
        self._web = WebClient(
            token=config.bot_token.reveal(),
            base_url=config.api_url,
            # urllib takes fractional seconds; the SDK's annotation is only narrower
            timeout=config.timeout,  # type: ignore[arg-type]
            retry_handlers=[],
            logger=logger,
        )

    def __repr__(self) -> str:
        return f"SlackClient(api_url={self.api_url!r}, timeout={self.timeout:g}, token=***)"

    # ------------------------------------------------------------------ calls

    def create_channel(self, name: str) -> str:
        """Create the public channel ``name``; return its id.

        Raises:
            SlackPermanentError: with ``code == "name_taken"`` when the name is in use.
        """
        response = self._call("conversations.create", self._web.conversations_create, name=name)
        channel = response.get("channel")
        if not isinstance(channel, Mapping) or not channel.get("id"):
            raise SlackPermanentError(
                "slack conversations.create: the answer holds no channel id",
                code="no_channel",
                operation="conversations.create",
            )
        return str(channel["id"])

    def set_topic(self, channel: str, topic: str) -> None:
        """Set ``channel``'s topic."""
        self._call(
            "conversations.setTopic", self._web.conversations_setTopic, channel=channel, topic=topic
        )

    def post(
        self,
        channel: str,
        text: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
        link_names: bool = False,
    ) -> str:
        """Post ``text`` (and ``blocks``, whose fallback ``text`` is) to ``channel``; return the
        message's id, ``<channel id>:<ts>``.

        ``link_names`` lets Slack turn ``@group`` handles in the text into mentions.
        """
        options: dict[str, Any] = {"unfurl_links": False, "unfurl_media": False}
        if blocks:
            options["blocks"] = blocks
        if link_names:
            options["link_names"] = True
        response = self._call(
            "chat.postMessage", self._web.chat_postMessage, channel=channel, text=text, **options
        )
        where = response.get("channel") or channel
        return f"{where}:{response.get('ts', '')}"

    def invite(self, channel: str, user: str) -> bool:
        """Invite the Slack user ``user`` to ``channel``; False when they were in it already."""
        try:
            self._call(
                "conversations.invite", self._web.conversations_invite, channel=channel, users=user
            )
        except SlackPermanentError as error:
            if error.code == "already_in_channel":
                return False
            raise
        return True

    def archive(self, channel: str) -> bool:
        """Archive ``channel``; False when it was archived already."""
        try:
            self._call("conversations.archive", self._web.conversations_archive, channel=channel)
        except SlackPermanentError as error:
            if error.code == "already_archived":
                return False
            raise
        return True

    def _call(self, operation: str, method: Any, **params: Any) -> SlackResponse:
        """Call ``method`` (a bound ``WebClient`` method); raise a typed delivery error."""
        try:
            response: SlackResponse = method(**params)
        except SlackApiError as error:
            raise delivery_error(operation, error, secrets=(self._token,)) from None
        except (OSError, http.client.HTTPException) as error:
            # TimeoutError, URLError (refused, DNS), a connection reset, a broken status line
            kind = type(error).__name__
            raise SlackRetryableError(
                redact(f"slack {operation}: network failure ({kind}): {error}", [self._token]),
                code=kind,
                operation=operation,
            ) from None
        except SlackClientError as error:
            raise SlackPermanentError(
                redact(f"slack {operation}: {error}", [self._token]),
                code=type(error).__name__,
                operation=operation,
            ) from None
        return response

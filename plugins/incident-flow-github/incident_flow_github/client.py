"""The three GitHub REST calls the adapter makes, with every failure turned into a delivery error.

Only what the handbook needs: create an issue, comment on one, close one. Each answer that is
not a success becomes a :class:`~incident_flow.errors.RetryableDeliveryError` (rate limits,
5xx, timeouts, connection failures) or a :class:`~incident_flow.errors.PermanentDeliveryError`
(any other 4xx, with GitHub's own message), with the token taken out of every message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import httpx

from incident_flow.adapters import raise_for_status, redact, retry_after_seconds
from incident_flow.errors import PermanentDeliveryError, RetryableDeliveryError
from incident_flow_github.config import GitHubConfig

__all__ = ["API_VERSION", "GitHubClient", "Issue"]

API_VERSION: Final = "2022-11-28"
"""The REST API version every request asks for (``X-GitHub-Api-Version``)."""

VENDOR: Final = "GitHub"


@attrs.frozen
class Issue:
    """What the adapter keeps of an issue or comment GitHub answered with."""

    id: str
    """The issue's ``owner/repo#number``, or a comment's numeric id."""
    url: str | None
    """Its web address (``html_url``)."""


class GitHubClient:
    """A synchronous client of GitHub's issue endpoints, built on one :class:`httpx.Client`.

    Safe to share between threads (httpx's connection pool is). Close it with :meth:`close`
    (or use it as a context manager) to release its connections.
    """

    def __init__(self, config: GitHubConfig, *, transport: httpx.BaseTransport | None = None):
        self._config = config
        self._http = httpx.Client(
            base_url=config.api_url,
            timeout=httpx.Timeout(config.timeout),
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "incident-flow-github",
            },
            transport=transport,
            # A renamed repository answers with a redirect to its new name.
            follow_redirects=True,
            max_redirects=3,
        )

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self._config.api_url!r}, token=***)"

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the client's connections."""
        self._http.close()

    # -- the calls --------------------------------------------------------------------------

    def create_issue(
        self,
        owner: str,
        repo: str,
        *,
        title: str,
        body: str,
        labels: Sequence[str] = (),
        assignees: Sequence[str] = (),
    ) -> Issue:
        """Open an issue (``POST /repos/{owner}/{repo}/issues``); its id is ``owner/repo#n``.

        ``labels`` and ``assignees`` are sent only when there are some.

        Raises:
            RetryableDeliveryError: a rate limit, 5xx, timeout or connection failure.
            PermanentDeliveryError: any other refusal, with GitHub's message.
        """
        payload: dict[str, Any] = {"title": title, "body": body}
        if labels:
            payload["labels"] = list(labels)
        if assignees:
            payload["assignees"] = list(assignees)
        answer = self._send(
            "POST", f"/repos/{owner}/{repo}/issues", payload, f"create an issue in {owner}/{repo}"
        )
        number = answer.get("number")
        if not isinstance(number, int) or isinstance(number, bool):
            raise PermanentDeliveryError(
                f"{VENDOR} created an issue in {owner}/{repo} but its answer has no number; "
                "look for it there before requeueing, or it is made twice"
            )
        return Issue(f"{owner}/{repo}#{number}", _html_url(answer))

    def comment(self, owner: str, repo: str, number: int, body: str) -> Issue:
        """Comment on an issue (``POST /repos/{owner}/{repo}/issues/{number}/comments``); the
        result's id is the comment's.

        Raises:
            RetryableDeliveryError: a rate limit, 5xx, timeout or connection failure.
            PermanentDeliveryError: any other refusal (a locked or missing issue), with
                GitHub's message.
        """
        answer = self._send(
            "POST",
            f"/repos/{owner}/{repo}/issues/{number}/comments",
            {"body": body},
            f"comment on {owner}/{repo}#{number}",
        )
        comment_id = answer.get("id")
        return Issue(
            str(comment_id) if comment_id is not None else f"{owner}/{repo}#{number}",
            _html_url(answer),
        )

    def close_issue(self, owner: str, repo: str, number: int, *, reason: str) -> Issue:
        """Close an issue with ``state_reason`` ``reason`` (``completed`` or ``not_planned``)
        (``PATCH /repos/{owner}/{repo}/issues/{number}``). Closing a closed issue is harmless.

        Raises:
            RetryableDeliveryError: a rate limit, 5xx, timeout or connection failure.
            PermanentDeliveryError: any other refusal, with GitHub's message.
        """
        answer = self._send(
            "PATCH",
            f"/repos/{owner}/{repo}/issues/{number}",
            {"state": "closed", "state_reason": reason},
            f"close {owner}/{repo}#{number}",
        )
        return Issue(f"{owner}/{repo}#{number}", _html_url(answer))

    # -- the wire ---------------------------------------------------------------------------

    def _send(self, method: str, path: str, payload: Mapping[str, Any], operation: str) -> Any:
        token = self._config.token
        try:
            response = self._http.request(
                method,
                path,
                json=payload,
                headers={"Authorization": f"Bearer {token.reveal()}"},
            )
        except httpx.TimeoutException as error:
            raise RetryableDeliveryError(
                redact(
                    f"{VENDOR} {operation}: no answer within {self._config.timeout:g} s "
                    f"({type(error).__name__})",
                    [token],
                )
            ) from None
        except httpx.TooManyRedirects:
            raise PermanentDeliveryError(
                f"{VENDOR} {operation}: redirected too often; is the issue still there?"
            ) from None
        except httpx.RequestError as error:  # a lost connection, a broken answer
            raise RetryableDeliveryError(
                redact(f"{VENDOR} {operation}: {type(error).__name__}: {error}", [token])
            ) from None
        body = _json(response)
        status = response.status_code
        if 300 <= status < 400 or response.request.method != method:
            _raise_for_redirect(response, operation)
        if status >= 400:
            _raise_for_rate_limit(response, body, operation, token.reveal())
            raise_for_status(VENDOR, operation, status, response.headers, body, secrets=[token])
        if not isinstance(body, dict):
            # The thing may well exist now; retrying would make it again.
            raise PermanentDeliveryError(
                f"{VENDOR} {operation}: HTTP {status} with an answer that is not a JSON object; "
                "check GitHub before requeueing"
            )
        return body


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _html_url(answer: Mapping[str, Any]) -> str | None:
    url = answer.get("html_url")
    return url if isinstance(url, str) and url else None


def _raise_for_redirect(response: httpx.Response, operation: str) -> None:
    """A redirect that was not followed, or was followed as a GET (httpx turns a redirected
    POST into one), did not make the change asked for: retrying the same cannot help."""
    first = response.history[0] if response.history else response
    where = first.headers.get("location") or str(response.url)
    raise PermanentDeliveryError(
        f"{VENDOR} {operation}: HTTP {first.status_code} to {where}: the request was not "
        "applied there; check whether the repository was renamed or moved"
    )


def _raise_for_rate_limit(response: httpx.Response, body: Any, operation: str, token: str) -> None:
    """GitHub answers a rate limit with 403 as often as with 429: a 403 that carries
    ``Retry-After`` or an exhausted ``x-ratelimit-remaining`` is retried, at the time given."""
    if response.status_code != 403:
        return
    headers = response.headers
    retry_after = retry_after_seconds(headers.get("retry-after"))
    if retry_after is None and headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset", "")
        if reset.isdigit():
            retry_after = max(0.0, int(reset) - time.time())
    if retry_after is None and headers.get("x-ratelimit-remaining") != "0":
        return
    message = body.get("message") if isinstance(body, dict) else None
    raise RetryableDeliveryError(
        redact(f"{VENDOR} {operation}: HTTP 403: rate limited: {message or 'no message'}", [token]),
        retry_after=retry_after,
    )

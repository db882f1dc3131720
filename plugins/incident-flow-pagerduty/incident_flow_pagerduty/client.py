"""The few PagerDuty calls the adapter makes, with vendor answers turned into delivery errors.

Two APIs, two base URLs: the Events API v2 (``POST /enqueue``: trigger, acknowledge and resolve
alerts; the routing key in the body is the credential) and the REST API (incidents, status
updates, on-calls; ``Authorization: Token token=<key>``). Every failure leaves here as an
:class:`~incident_flow.errors.DeliveryError`: a 429 with its ``Retry-After``, a 5xx, a timeout
or a dropped connection as retryable, any other 4xx as permanent with PagerDuty's own words,
and never with a key in the message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

import httpx

from incident_flow.adapters import Secret, raise_for_status, redact
from incident_flow.errors import RetryableDeliveryError
from incident_flow_pagerduty.config import PagerDutyConfig

__all__ = ["REST_ACCEPT", "PagerDutyClient"]

logger = logging.getLogger(__name__)

REST_ACCEPT: Final = "application/vnd.pagerduty+json;version=2"
"""The REST API's versioning ``Accept`` header."""

_VENDOR = "PagerDuty"


class PagerDutyClient:
    """A synchronous httpx client for the Events API v2 and the REST API.

    One instance is shared by the delivery threads (httpx's client and its connection pool are
    safe to share). Call :meth:`close` when done with it.
    """

    def __init__(self, config: PagerDutyConfig) -> None:
        self._config = config
        self._http = httpx.Client(
            timeout=httpx.Timeout(config.timeout),
            headers={"User-Agent": "incident-flow-pagerduty/0.1.0"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        config = self._config
        return f"PagerDutyClient(events_url={config.events_url!r}, api_url={config.api_url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # ------------------------------------------------------------------ Events API v2

    def send_event(self, body: Mapping[str, Any], *, operation: str) -> Mapping[str, Any]:
        """``POST /enqueue`` with ``body`` (an alert event); PagerDuty's answer.

        ``operation`` names the call in error messages (``trigger``, ``resolve``…).

        Raises:
            RetryableDeliveryError: 429, 5xx, a timeout or a connection failure.
            PermanentDeliveryError: any other 4xx (a bad routing key, a malformed event).
        """
        answer = self._send(
            "POST",
            f"{self._config.events_url}/enqueue",
            operation=f"events {operation}",
            json=dict(body),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        return answer if isinstance(answer, Mapping) else {}

    # ------------------------------------------------------------------ REST API

    def find_incidents(self, incident_key: str) -> list[Mapping[str, Any]]:
        """The PagerDuty incidents whose incident key (or whose alerts' key) is
        ``incident_key``: ``GET /incidents?incident_key=…``, over all dates.

        Raises:
            RetryableDeliveryError: 429, 5xx, a timeout or a connection failure.
            PermanentDeliveryError: any other 4xx (a bad API key, say).
        """
        answer = self._rest(
            "GET",
            "/incidents",
            operation="GET /incidents",
            params=(("incident_key", incident_key), ("date_range", "all")),
        )
        incidents = answer.get("incidents") if isinstance(answer, Mapping) else None
        if not isinstance(incidents, list):
            return []
        return [item for item in incidents if isinstance(item, Mapping)]

    def post_status_update(self, incident_id: str, message: str) -> Mapping[str, Any]:
        """``POST /incidents/{id}/status_updates`` as the ``From`` user; the status update.

        Raises:
            RetryableDeliveryError: 429, 5xx, a timeout or a connection failure.
            PermanentDeliveryError: any other 4xx (an unknown incident or user, say).
        """
        assert self._config.from_email is not None
        answer = self._rest(
            "POST",
            f"/incidents/{quote(incident_id, safe='')}/status_updates",
            operation="POST /incidents/{id}/status_updates",
            json={"message": message},
            headers={"From": self._config.from_email},
        )
        update = answer.get("status_update") if isinstance(answer, Mapping) else None
        return update if isinstance(update, Mapping) else {}

    def oncalls(
        self, schedule_id: str, since: datetime, until: datetime
    ) -> list[Mapping[str, Any]]:
        """The on-call entries of ``schedule_id`` that overlap ``since``–``until``, with their
        users in full: ``GET /oncalls``.

        Raises:
            RetryableDeliveryError: 429, 5xx, a timeout or a connection failure.
            PermanentDeliveryError: any other 4xx.
        """
        params = (
            ("schedule_ids[]", schedule_id),
            ("since", _timestamp(since)),
            ("until", _timestamp(until)),
            ("include[]", "users"),
            ("time_zone", "UTC"),
        )
        answer = self._rest("GET", "/oncalls", operation="GET /oncalls", params=params)
        entries = answer.get("oncalls") if isinstance(answer, Mapping) else None
        if not isinstance(entries, list):
            return []
        return [item for item in entries if isinstance(item, Mapping)]

    # ------------------------------------------------------------------ plumbing

    def _rest(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: tuple[tuple[str, str], ...] | None = None,
        json: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        api_key = self._config.api_key
        assert api_key is not None
        sent = {
            "Authorization": f"Token token={api_key.reveal()}",
            "Accept": REST_ACCEPT,
            # The REST description requires it on every call, GETs included.
            "Content-Type": "application/json",
            **(headers or {}),
        }
        return self._send(
            method,
            f"{self._config.api_url}{path}",
            operation=f"REST {operation}",
            params=params,
            json=dict(json) if json is not None else None,
            headers=sent,
        )

    def _send(
        self,
        method: str,
        url: str,
        *,
        operation: str,
        params: tuple[tuple[str, str], ...] | None = None,
        json: Any = None,
        headers: Mapping[str, str],
    ) -> Any:
        secrets: tuple[Secret, ...] = self._config.secrets
        try:
            response = self._http.request(
                method,
                url,
                params=params,
                json=json,
                headers=dict(headers),
            )
        except httpx.TimeoutException as error:
            raise RetryableDeliveryError(
                redact(
                    f"{_VENDOR} {operation}: no answer within {self._config.timeout:g} s "
                    f"({type(error).__name__})",
                    secrets,
                )
            ) from error
        except httpx.TransportError as error:
            raise RetryableDeliveryError(
                redact(f"{_VENDOR} {operation}: {type(error).__name__}: {error}", secrets)
            ) from error
        body = _body(response)
        raise_for_status(
            _VENDOR, operation, response.status_code, response.headers, body, secrets=secrets
        )
        logger.debug("%s %s: HTTP %s", _VENDOR, operation, response.status_code)
        return body


def _body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

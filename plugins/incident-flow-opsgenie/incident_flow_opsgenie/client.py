"""The few Opsgenie Alert and Schedule API calls the adapter makes, over one ``httpx.Client``.

Every answer other than a success becomes one of incident_flow's delivery errors
(:func:`~incident_flow.adapters.raise_for_status`), and every network failure a
:class:`~incident_flow.errors.RetryableDeliveryError`, so the delivery worker knows whether to
try again. Alert actions address the alert by its alias (``identifierType=alias``): creating an
alert is asynchronous at Opsgenie, so its id is not known when the answer comes back, but the
alias is ours from the start.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from incident_flow.adapters import raise_for_status, redact
from incident_flow.errors import RetryableDeliveryError
from incident_flow_opsgenie.config import OpsgenieConfig, Responder

__all__ = ["VENDOR", "OpsgenieClient"]

VENDOR = "Opsgenie"

USER_AGENT = "incident-flow-opsgenie/0.1.0"

logger = logging.getLogger("incident_flow_opsgenie")


class OpsgenieClient:
    """Calls Opsgenie with the config's key, URL and timeout; safe to share between threads.

    The HTTP connection pool is opened on the first request, so building a client (at import,
    from the entry point) never touches the network.
    """

    def __init__(self, config: OpsgenieConfig) -> None:
        self.config = config
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpsgenieClient(api_url={self.config.api_url!r})"

    @property
    def http(self) -> httpx.Client:
        """The shared ``httpx.Client``, made on first use."""
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(
                    base_url=self.config.api_url,
                    timeout=httpx.Timeout(self.config.timeout),
                    headers={
                        "Authorization": f"GenieKey {self.config.api_key.reveal()}",
                        "Accept": "application/json",
                        "User-Agent": USER_AGENT,
                    },
                )
            return self._http

    def close(self) -> None:
        """Close the connection pool (a later request opens a new one)."""
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()

    # -- alerts ------------------------------------------------------------------------------

    def create_alert(self, payload: dict[str, Any]) -> str:
        """``POST /v2/alerts``; returns Opsgenie's request id (the alert is made later).

        Opsgenie keeps one open alert per ``alias``: sending the same payload twice makes one
        alert (its count goes up), which covers a crash between sending and recording.
        """
        body = self._send("POST", "/v2/alerts", "create alert", json=payload)
        return str(body.get("requestId", "")) if isinstance(body, dict) else ""

    def acknowledge(self, alias: str, *, user: str, note: str) -> None:
        """``POST /v2/alerts/{alias}/acknowledge``: someone answered the page."""
        self._alert_action(alias, "acknowledge", {"user": user, "note": note})

    def close_alert(self, alias: str, *, user: str, note: str) -> None:
        """``POST /v2/alerts/{alias}/close``: nobody needs to be paged about it any more."""
        self._alert_action(alias, "close", {"user": user, "note": note})

    def escalate(self, alias: str, escalation: str, *, user: str, note: str) -> None:
        """``POST /v2/alerts/{alias}/escalate``: hand the alert to the next level of an
        escalation policy."""
        payload = {
            "escalation": {"type": "escalation", "name": escalation},
            "user": user,
            "note": note,
        }
        self._alert_action(alias, "escalate", payload)

    def add_responder(self, alias: str, responder: Responder, *, user: str, note: str) -> None:
        """``POST /v2/alerts/{alias}/responders``: page one more team or person."""
        payload = {"responder": responder.payload(), "user": user, "note": note}
        self._alert_action(alias, "responders", payload)

    def _alert_action(self, alias: str, action: str, payload: dict[str, Any]) -> None:
        payload = {key: value for key, value in payload.items() if value}
        payload["source"] = self.config.source
        self._send(
            "POST",
            f"/v2/alerts/{quote(alias, safe='')}/{action}",
            f"{action} alert",
            params={"identifierType": "alias"},
            json=payload,
        )

    # -- schedules ---------------------------------------------------------------------------

    def on_call(self, schedule: str, at: datetime) -> str | None:
        """The first on-call recipient of the schedule named ``schedule`` at ``at``; None when
        nobody is on call or there is no such schedule (HTTP 404)."""
        moment = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = self._send(
            "GET",
            f"/v2/schedules/{quote(schedule, safe='')}/on-calls",
            "get on-calls",
            params={"scheduleIdentifierType": "name", "flat": "true", "date": moment},
            missing_ok=True,
        )
        data = body.get("data") if isinstance(body, dict) else None
        recipients = data.get("onCallRecipients") if isinstance(data, dict) else None
        if not isinstance(recipients, list):
            return None
        for recipient in recipients:
            if isinstance(recipient, str) and recipient.strip():
                return recipient.strip()
        return None

    # -- transport ---------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        """Send one request; return its JSON body (None for a 404 when ``missing_ok``).

        Raises:
            RetryableDeliveryError: a timeout, a network failure, HTTP 429, 408 or 5xx.
            PermanentDeliveryError: any other HTTP 4xx.
        """
        secrets = (self.config.api_key,)
        try:
            response = self.http.request(method, path, params=params, json=json)
        except httpx.TimeoutException as error:
            raise RetryableDeliveryError(
                redact(f"{VENDOR} {operation}: no answer within {self.config.timeout:g} s", secrets)
            ) from error
        except httpx.TransportError as error:
            raise RetryableDeliveryError(
                redact(f"{VENDOR} {operation}: {type(error).__name__}: {error}", secrets)
            ) from error
        if missing_ok and response.status_code == 404:
            return None
        try:
            body: Any = response.json() if response.content else None
        except ValueError:
            body = response.text
        logger.debug("%s %s: HTTP %s", VENDOR, operation, response.status_code)
        raise_for_status(
            VENDOR, operation, response.status_code, response.headers, body, secrets=secrets
        )
        return body

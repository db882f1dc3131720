"""Example Statuspage adapters for the plugin contract tests: one well-behaved, and broken ones.

They talk to the Atlassian Statuspage API (or a :class:`VendorAPI` standing in for it) with
``urllib.request``: the first status update of an incident creates a status-page incident
(``POST /pages/{page_id}/incidents``), later ones update it
(``PATCH /pages/{page_id}/incidents/{incident_id}``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from incident_flow import Event, Incident, hookimpl
from incident_flow.errors import PermanentDeliveryError, RetryableDeliveryError
from incident_flow.events import StatusUpdatePosted

STATUSES = {"identified": "identified", "investigating": "investigating", "resolved": "resolved"}
"""The handbook's status-page phases, as Statuspage incident statuses."""


class StatuspageAdapter:
    """Posts status updates to Statuspage, once per key, mapping vendor errors as it should:
    HTTP 429 → ``RetryableDeliveryError(retry_after=Retry-After)``, 5xx and timeouts →
    ``RetryableDeliveryError``, other 4xx → ``PermanentDeliveryError(vendor message)``."""

    incident_flow_name = "statuspage"

    def __init__(self, base_url: str, *, page_id: str = "pg1", timeout: float | None = 2.0):
        self.base_url = base_url
        self.page_id = page_id
        self.timeout = timeout
        self.vendor_ids: dict[str, str] = {}
        """Our incident id → the status-page incident created for it."""
        self.handled: set[str] = set()
        """Keys already delivered."""

    @hookimpl
    def incident_flow_event(self, event: Event, incident: Incident, key: str) -> None:
        if self.already_handled(key):
            return
        self.handle(event, incident)
        self.handled.add(key)

    def already_handled(self, key: str) -> bool:
        return key in self.handled

    def handle(self, event: Event, incident: Incident) -> None:
        if not isinstance(event, StatusUpdatePosted):
            return
        body = {
            "incident": {
                "name": incident.title,
                "status": STATUSES.get(event.status_phase, "investigating"),
                "body": event.text,
            }
        }
        vendor_id = self.vendor_ids.get(incident.id)
        if vendor_id is None:
            reply = self.send("POST", f"/pages/{self.page_id}/incidents", body)
            if reply is not None:
                self.vendor_ids[incident.id] = str(reply["id"])
        else:
            self.send("PATCH", f"/pages/{self.page_id}/incidents/{vendor_id}", body)

    def open(self, request: urllib.request.Request) -> Any:
        return urllib.request.urlopen(request, timeout=self.timeout)

    def send(self, method: str, path: str, body: object) -> dict[str, Any] | None:
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Authorization": "OAuth test-key", "Content-Type": "application/json"},
        )
        try:
            with self.open(request) as response:
                reply: dict[str, Any] = json.loads(response.read() or b"{}")
                return reply
        except urllib.error.HTTPError as error:
            with error:  # closes the connection, whatever vendor_error does
                return self.vendor_error(method, path, error)
        except (TimeoutError, urllib.error.URLError) as error:
            raise RetryableDeliveryError(f"{method} {path}: {error}") from error

    def vendor_error(
        self, method: str, path: str, error: urllib.error.HTTPError
    ) -> dict[str, Any] | None:
        try:
            detail = json.loads(error.read() or b"{}")
        except ValueError:
            detail = {}
        message = f"{method} {path}: HTTP {error.code}: " + str(
            detail.get("message") or detail.get("error") or error.reason
        )
        if error.code == 429:
            retry_after = error.headers.get("Retry-After")
            raise RetryableDeliveryError(
                message, retry_after=int(retry_after) if retry_after else None
            ) from error
        if error.code >= 500:
            raise RetryableDeliveryError(message) from error
        raise PermanentDeliveryError(message) from error


class DoublePostingAdapter(StatuspageAdapter):
    """Forgets to check the key: a redelivery posts (PATCHes) again."""

    incident_flow_name = "statuspage-double-post"

    def already_handled(self, key: str) -> bool:
        return False


class SwallowingAdapter(StatuspageAdapter):
    """Catches a 5xx and returns as if delivered."""

    incident_flow_name = "statuspage-swallow-5xx"

    def vendor_error(
        self, method: str, path: str, error: urllib.error.HTTPError
    ) -> dict[str, Any] | None:
        if error.code >= 500:
            return None
        return super().vendor_error(method, path, error)


class PlainRateLimitAdapter(StatuspageAdapter):
    """Turns a 429 into a plain RuntimeError, losing the Retry-After."""

    incident_flow_name = "statuspage-plain-429"

    def vendor_error(
        self, method: str, path: str, error: urllib.error.HTTPError
    ) -> dict[str, Any] | None:
        if error.code == 429:
            raise RuntimeError(f"rate limited by Statuspage: {method} {path}")
        return super().vendor_error(method, path, error)


class NoTimeoutAdapter(StatuspageAdapter):
    """Calls the vendor with no client timeout: a slow vendor holds it forever."""

    incident_flow_name = "statuspage-no-timeout"

    def open(self, request: urllib.request.Request) -> Any:
        return urllib.request.urlopen(request)


class FragileAdapter(StatuspageAdapter):
    """Raises on every ``RoleAssigned``, whatever the vendor does."""

    incident_flow_name = "statuspage-fragile"

    def handle(self, event: Event, incident: Incident) -> None:
        if event.type == "RoleAssigned":
            raise KeyError(f"no template for {event.type}")
        super().handle(event, incident)

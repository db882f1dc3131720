"""The two Statuspage API calls the adapter makes, over httpx, with failures made deliverable.

Every answer other than a 2xx becomes the delivery error the worker understands
(:func:`incident_flow.adapters.raise_for_status`: 429 → retry after ``Retry-After``, 5xx →
retry, other 4xx → dead-lettered with Statuspage's message); a timeout or a broken connection
becomes a :class:`~incident_flow.errors.RetryableDeliveryError`. The API key is taken out of
every message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import attrs
import httpx

from incident_flow.adapters import raise_for_status, redact
from incident_flow.errors import PermanentDeliveryError, RetryableDeliveryError
from incident_flow_statuspage.config import StatuspageConfig

__all__ = ["StatuspageClient", "VendorIncident"]

_VENDOR = "Statuspage"
_USER_AGENT = "incident-flow-statuspage/0.1.0"


@attrs.frozen
class VendorIncident:
    """What Statuspage answered about an incident: its id and short link."""

    id: str
    shortlink: str | None = None


class StatuspageClient:
    """Creates and updates incidents on one page; one :class:`httpx.Client` (thread-safe),
    closed by :meth:`close`."""

    def __init__(
        self, config: StatuspageConfig, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._config = config
        self._http = httpx.Client(
            base_url=config.api_url,
            timeout=httpx.Timeout(config.timeout),
            headers={
                "Authorization": f"OAuth {config.api_key.reveal()}",
                "Accept": "application/json",
                "User-Agent": _USER_AGENT,
            },
            transport=transport,
        )
        self._incidents = f"/pages/{quote(config.page_id, safe='')}/incidents"

    def __repr__(self) -> str:
        return (
            f"StatuspageClient(api_url={self._config.api_url!r}, page_id={self._config.page_id!r})"
        )

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def create_incident(self, fields: Mapping[str, Any]) -> VendorIncident:
        """``POST /pages/{page_id}/incidents`` with ``{"incident": fields}``.

        Raises:
            RetryableDeliveryError: a 429, 408, 5xx, timeout or lost connection.
            PermanentDeliveryError: another 4xx, or an answer without an incident id.
        """
        body = self._send("POST", self._incidents, "create incident", fields)
        created = self._incident(body, "create incident")
        assert created is not None
        return created

    def update_incident(self, incident_id: str, fields: Mapping[str, Any]) -> VendorIncident:
        """``PATCH /pages/{page_id}/incidents/{incident_id}`` with ``{"incident": fields}``.

        Raises:
            RetryableDeliveryError: a 429, 408, 5xx, timeout or lost connection.
            PermanentDeliveryError: another 4xx (an incident deleted on Statuspage: 404).
        """
        path = f"{self._incidents}/{quote(incident_id, safe='')}"
        body = self._send("PATCH", path, "update incident", fields)
        found = self._incident(body, "update incident", required=False)
        return found if found is not None else VendorIncident(incident_id, None)

    def _send(self, method: str, path: str, operation: str, fields: Mapping[str, Any]) -> Any:
        secrets = (self._config.api_key,)
        try:
            response = self._http.request(method, path, json={"incident": dict(fields)})
        except httpx.TransportError as error:  # timeouts, refused and dropped connections
            kind = "timed out" if isinstance(error, httpx.TimeoutException) else "failed"
            message = redact(
                f"{_VENDOR} {operation} {kind}: {type(error).__name__}: {error}", secrets
            )
            raise RetryableDeliveryError(message) from error
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        raise_for_status(
            _VENDOR, operation, response.status_code, response.headers, body, secrets=secrets
        )
        return body

    @staticmethod
    def _incident(body: Any, operation: str, *, required: bool = True) -> VendorIncident | None:
        vendor_id = body.get("id") if isinstance(body, Mapping) else None
        if not isinstance(vendor_id, str) or not vendor_id:
            if not required:
                return None
            # Trying again could publish a second incident: stop and let a person look.
            raise PermanentDeliveryError(
                f"{_VENDOR} {operation}: the answer names no incident id; look on the page "
                "before requeueing the delivery"
            )
        shortlink = body.get("shortlink")
        return VendorIncident(vendor_id, shortlink if isinstance(shortlink, str) else None)

"""The plugin keeps the notification contract over every transition of the handbook."""

from __future__ import annotations

from collections.abc import Callable

from incident_flow_statuspage import StatuspagePlugin

from incident_flow.testing.plugins import check_plugin
from incident_flow.testing.vendor_api import VendorAPI


def test_the_plugin_keeps_its_contract(
    make_plugin: Callable[..., StatuspagePlugin], statuspage: VendorAPI
) -> None:
    report = check_plugin(make_plugin(timeout=1.0), api=statuspage, timeout=3.0, sequences=3)

    report.raise_for_problems()
    assert report.events_delivered["StatusUpdatePosted"] > 0
    assert statuspage.requests_to("POST", "/pages/{page_id}/incidents")
    resolutions = [
        request
        for request in statuspage.requests_to("PATCH", "/pages/{page_id}/incidents/{incident_id}")
        if request.body["incident"]["status"] == "resolved"
    ]
    assert resolutions
    # The faults were played: a 429, a 503 and a 400 were answered.
    assert {429, 503, 400} <= {request.status for request in statuspage.requests}

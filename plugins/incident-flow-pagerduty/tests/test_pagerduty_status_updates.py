"""Status posts reach the PagerDuty incidents the pages opened, through the REST API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from incident_flow_pagerduty import PagerDutyPlugin

from incident_flow import IncidentFlow
from incident_flow.errors import RetryableDeliveryError
from incident_flow.testing.vendor_api import VendorAPI

POST = (
    "Investigating: We are investigating an issue with search. "
    "If you have any questions, email support@sourcegraph.com."
)
LATER = "Investigating: A fix is being deployed."


def paged(flow: IncidentFlow, *targets: str) -> str:
    """An incident with a page to each target."""
    incident = flow.declare("Search is down", severity="critical", customer_impact=True, by="al")
    for target in targets:
        flow.page(incident.id, target, by="al")
    return incident.id


def test_a_status_post_becomes_a_status_update_on_the_pagerduty_incident(
    flow: IncidentFlow, rest_api: VendorAPI, known: Any
) -> None:
    incident_id = paged(flow, "delivery team")
    flow.post_status_update(incident_id, POST, phase="investigating", by="al")
    assert flow.drain(timeout=5)

    [search] = rest_api.requests_to("GET", "/incidents")
    assert search.query == {
        "incident_key": f"incident-flow/{incident_id}/page-2",
        "date_range": "all",
    }
    [post] = rest_api.requests_to("POST", "/incidents/{id}/status_updates")
    assert post.path == f"/incidents/{known.pd_incident}/status_updates"
    assert post.body == {"message": POST}
    assert post.headers["From"] == known.from_email
    assert post.headers["Authorization"] == f"Token token={known.api_key}"
    assert post.headers["Accept"] == "application/vnd.pagerduty+json;version=2"

    now = flow.get(incident_id)
    vendor = now.external_ref("pagerduty", "incident")
    assert vendor is not None
    assert vendor.external_id == known.pd_incident
    assert vendor.source == f"incident-flow/{incident_id}/page-2"
    assert vendor.url == f"https://acme.pagerduty.com/incidents/{known.pd_incident}"
    update = now.external_ref("pagerduty", "status_update")
    assert update is not None
    assert update.source == f"{incident_id}:3:pagerduty:page-2"


def test_the_pagerduty_incident_is_looked_up_once(flow: IncidentFlow, rest_api: VendorAPI) -> None:
    incident_id = paged(flow, "delivery team")
    flow.post_status_update(incident_id, POST, phase="investigating", by="al")
    flow.post_status_update(incident_id, LATER, phase="investigating", by="al")
    assert flow.drain(timeout=5)

    assert len(rest_api.requests_to("GET", "/incidents")) == 1
    posts = rest_api.requests_to("POST", "/incidents/{id}/status_updates")
    assert [post.body for post in posts] == [{"message": POST}, {"message": LATER}]


def test_the_incident_with_the_dedup_key_is_preferred(
    flow: IncidentFlow, rest_api: VendorAPI, known: Any
) -> None:
    incident_id = paged(flow, "delivery team")
    listed = known.pd_incidents("PGROUPED")
    exact = known.pd_incidents("PEXACT1", incident_key=f"incident-flow/{incident_id}/page-2")
    listed["incidents"] += exact["incidents"]
    rest_api.respond("GET", "/incidents", json=listed)
    flow.post_status_update(incident_id, POST, phase="investigating", by="al")
    assert flow.drain(timeout=5)

    [post] = rest_api.requests_to("POST", "/incidents/{id}/status_updates")
    assert post.path == "/incidents/PEXACT1/status_updates"


def test_each_paged_service_gets_the_update(flow: IncidentFlow, rest_api: VendorAPI) -> None:
    incident_id = paged(flow, "delivery team", "search-team")
    rest_api.respond(
        "GET",
        "/incidents",
        json={"incidents": [{"id": "PSECOND", "type": "incident"}]},
    )
    flow.post_status_update(incident_id, POST, phase="investigating", by="al")
    assert flow.drain(timeout=5)

    keys = [r.query["incident_key"] for r in rest_api.requests_to("GET", "/incidents")]
    assert keys == [f"incident-flow/{incident_id}/page-2", f"incident-flow/{incident_id}/page-3"]
    assert len(rest_api.requests_to("POST", "/incidents/{id}/status_updates")) == 2


def test_a_redelivered_post_updates_nothing_more(
    flow: IncidentFlow,
    plugin: PagerDutyPlugin,
    rest_api: VendorAPI,
    deliver: Callable[..., None],
) -> None:
    incident_id = paged(flow, "delivery team")
    posted = flow.post_status_update(incident_id, POST, phase="investigating", by="al")
    assert flow.drain(timeout=5)
    before = list(rest_api.requests)

    deliver(plugin, flow, incident_id, posted.version)

    assert rest_api.requests == before


def test_no_pagerduty_incident_yet_is_retried_and_then_posted(
    make_incident_flow: Callable[..., IncidentFlow],
    plugin: PagerDutyPlugin,
    rest_api: VendorAPI,
    deliver: Callable[..., None],
    known: Any,
) -> None:
    flow = make_incident_flow(deliver=False)
    incident_id = paged(flow, "delivery team")
    posted = flow.post_status_update(incident_id, POST, phase="investigating", by="al")
    deliver(plugin, flow, incident_id, 2)
    rest_api.respond("GET", "/incidents", json={"incidents": []}, times=1)

    with pytest.raises(RetryableDeliveryError, match="no incident for dedup key"):
        deliver(plugin, flow, incident_id, posted.version)
    assert flow.get(incident_id).external_ref("pagerduty", "incident") is None

    deliver(plugin, flow, incident_id, posted.version)  # PagerDuty has opened it by now
    [post] = rest_api.requests_to("POST", "/incidents/{id}/status_updates")
    assert post.path == f"/incidents/{known.pd_incident}/status_updates"


@pytest.mark.parametrize("missing", ["api_key", "from_email"])
def test_without_rest_settings_status_posts_are_not_sent(
    make_plugin: Callable[..., PagerDutyPlugin],
    flow_for: Callable[..., IncidentFlow],
    rest_api: VendorAPI,
    missing: str,
) -> None:
    flow = flow_for(make_plugin(**{missing: None}))
    incident_id = paged(flow, "delivery team")
    flow.post_status_update(incident_id, POST, phase="investigating", by="al")
    assert flow.drain(timeout=5)

    assert rest_api.requests == []
    assert all(row.status == "delivered" for row in flow.deliveries())


def test_a_page_that_never_reached_pagerduty_gets_no_update(
    flow: IncidentFlow, events_api: VendorAPI, rest_api: VendorAPI
) -> None:
    events_api.fail("POST", "/enqueue", status=400, times=1)
    incident_id = paged(flow, "delivery team")
    flow.post_status_update(incident_id, POST, phase="investigating", by="al")
    assert flow.drain(timeout=5)

    statuses = {row.version: row.status for row in flow.deliveries()}
    assert statuses[2] == "dead"  # the page: refused by PagerDuty
    assert rest_api.requests == []

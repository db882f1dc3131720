"""Affected components: chosen per incident, kept in its events, carried by the next post."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from incident_flow_statuspage import COMPONENT_STATUSES, InvalidComponentError, StatuspagePlugin
from incident_flow_statuspage.components import format_components, parse_components
from statuspage_support import Driver

from incident_flow import IncidentFlow
from incident_flow.errors import ValidationError
from incident_flow.store.memory import MemoryStore
from incident_flow.testing.vendor_api import VendorAPI

CREATE = ("POST", "/pages/{page_id}/incidents")
UPDATE = ("PATCH", "/pages/{page_id}/incidents/{incident_id}")


def sent_components(statuspage: VendorAPI) -> list[tuple[object, object]]:
    return [
        (request.body["incident"].get("components"), request.body["incident"].get("component_ids"))
        for request in statuspage.requests
    ]


def test_the_next_post_carries_the_components_set_for_the_incident(
    flow: IncidentFlow, driver: Driver, statuspage: VendorAPI, plugin: StatuspagePlugin
) -> None:
    incident = driver.mitigating()

    after = plugin.set_components(
        flow, incident.id, {"cmp1": "major_outage", "cmp2": "degraded_performance"}, by="carol"
    )
    driver.post(incident.id)

    assert flow.drain(timeout=10)
    assert statuspage.requests_to(*UPDATE) == []
    assert sent_components(statuspage) == [
        ({"cmp1": "major_outage", "cmp2": "degraded_performance"}, ["cmp1", "cmp2"])
    ]
    ref = after.external_ref("statuspage", "components")
    assert ref is not None
    assert (ref.external_id, ref.by) == ("cmp1=major_outage,cmp2=degraded_performance", "carol")


def test_an_incident_without_a_choice_uses_the_configured_components(
    make_flow: Callable[..., IncidentFlow],
    make_plugin: Callable[..., StatuspagePlugin],
    statuspage: VendorAPI,
) -> None:
    plugin = make_plugin(components="cmp9=partial_outage")
    flow = make_flow(plugin)
    driver = Driver(flow)
    incident = driver.mitigating()
    driver.post(incident.id)
    plugin.set_components(flow, incident.id, {}, by="carol")

    driver.post(incident.id, "We are continuing to investigate.", phase="investigating")

    assert flow.drain(timeout=10)
    assert sent_components(statuspage) == [({"cmp9": "partial_outage"}, ["cmp9"]), (None, None)]


def test_components_survive_a_restart(
    make_flow: Callable[..., IncidentFlow],
    make_plugin: Callable[..., StatuspagePlugin],
    statuspage: VendorAPI,
) -> None:
    store = MemoryStore()
    before = make_flow(make_plugin(), store=store)
    incident = Driver(before).mitigating()
    make_plugin().set_components(before, incident.id, {"cmp1": "major_outage"}, by="carol")
    before.shutdown()

    plugin = make_plugin()
    after = make_flow(plugin, store=store)
    Driver(after).post(incident.id)

    assert plugin.components(after.get(incident.id)) == {"cmp1": "major_outage"}
    assert after.drain(timeout=10)
    assert sent_components(statuspage) == [({"cmp1": "major_outage"}, ["cmp1"])]


def test_choosing_again_records_only_a_change(
    flow: IncidentFlow, driver: Driver, plugin: StatuspagePlugin
) -> None:
    incident = driver.mitigating()
    first = plugin.set_components(flow, incident.id, {"cmp1": "major_outage"}, by="carol")
    same = plugin.set_components(flow, incident.id, {"cmp1": "major_outage"}, by="carol")
    assert same.version == first.version

    plugin.set_components(flow, incident.id, {"cmp1": "partial_outage"}, by="carol")
    back = plugin.set_components(flow, incident.id, {"cmp1": "major_outage"}, by="carol")

    assert back.version == first.version + 2
    assert plugin.components(back) == {"cmp1": "major_outage"}
    assert flow.drain(timeout=10)


@pytest.mark.parametrize(
    ("components", "message"),
    [
        ({"cmp1": "down"}, "status 'down' is not one of Statuspage's: operational"),
        ({"cmp1": ""}, "status '' is not one of"),
        ({"": "major_outage"}, "component id '' is not a Statuspage component id"),
        ({"cmp 1": "major_outage"}, "component id 'cmp 1'"),
        ({f"component{n:02}": "major_outage" for n in range(9)}, "at most 200 fit"),
        ("cmp1=major_outage", "components must map component ids to statuses"),
    ],
)
def test_malformed_components_are_refused(
    flow: IncidentFlow,
    driver: Driver,
    plugin: StatuspagePlugin,
    components: object,
    message: str,
) -> None:
    incident = driver.mitigating()

    with pytest.raises(InvalidComponentError, match=message) as raised:
        plugin.set_components(flow, incident.id, components, by="carol")  # type: ignore[arg-type]

    assert isinstance(raised.value, ValidationError)
    assert raised.value.field == "components"
    assert flow.get(incident.id).external_ref("statuspage", "components") is None


def test_every_statuspage_status_is_accepted_and_read_back() -> None:
    chosen = {f"cmp{n}": status for n, status in enumerate(COMPONENT_STATUSES)}

    assert parse_components(format_components(chosen)) == chosen
    assert parse_components(format_components({})) == {}
    assert parse_components(" cmp1 = Major_Outage , ") == {"cmp1": "major_outage"}

"""The five adapters on one flow, through a whole incident of the handbook.

Each adapter is tested alone in its own folder; this checks that together they neither trip
over one another nor over what the others record on the incident, that every delivery
succeeds, and that each vendor received valid requests only (the ``vendor_api`` fixture fails
the test otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from incident_flow_github import GitHubConfig, GitHubPlugin, link_issue
from incident_flow_opsgenie import OpsgenieConfig, OpsgeniePlugin
from incident_flow_pagerduty import PagerDutyConfig, PagerDutyPlugin
from incident_flow_slack import SlackConfig, SlackPlugin
from incident_flow_statuspage import StatuspageConfig, StatuspagePlugin

from incident_flow import FakeClock, IncidentFlow, ItemState, Role, Severity
from incident_flow.adapters import Secret
from incident_flow.store.memory import MemoryStore
from incident_flow.testing.vendor_api import VendorAPI

START = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
SUPPORT = "Questions: support@sourcegraph.com."


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def vendors(vendor_api: Callable[..., VendorAPI]) -> dict[str, VendorAPI]:
    return {
        "slack": vendor_api("slack_web_openapi_v2.json"),
        "opsgenie": vendor_api("opsgenie_swagger.json"),
        "pagerduty-events": vendor_api("pagerduty_events_v2_openapiv3.json"),
        "pagerduty-rest": vendor_api("pagerduty_rest_openapiv3.json"),
        "statuspage": vendor_api("statuspage_openapi.json"),
        "github": vendor_api("github_issues_subset_openapi.json"),
    }


@pytest.fixture
def flow(vendors: dict[str, VendorAPI]) -> Iterator[IncidentFlow]:
    plugins = [
        SlackPlugin(
            SlackConfig(bot_token="xoxb-1-2-slack", api_url=vendors["slack"].base_url, timeout=5)
        ),
        OpsgeniePlugin(
            OpsgenieConfig(
                api_key=Secret("genie-key-0123"), api_url=vendors["opsgenie"].base_url, timeout=5
            )
        ),
        PagerDutyPlugin(
            PagerDutyConfig(
                routing_key="R0UT1NGKEYdefault0000000000000001",
                api_key="y_NbAkKc66ryYTWUXYEu",
                from_email="incident-bot@example.com",
                events_url=vendors["pagerduty-events"].base_url,
                api_url=vendors["pagerduty-rest"].base_url,
                timeout=5,
            )
        ),
        StatuspagePlugin(
            StatuspageConfig(
                api_key="statuspage-key-0123",
                page_id="pg1",
                api_url=vendors["statuspage"].base_url,
                timeout=5,
            )
        ),
        GitHubPlugin(
            GitHubConfig(
                token=Secret("ghp_test0123456789"),
                repository="acme/incidents",
                api_url=vendors["github"].base_url,
                timeout=5,
            )
        ),
    ]
    with IncidentFlow(
        store=MemoryStore(),
        clock=FakeClock(START),
        plugins=plugins,
        entry_points=False,
        reminders=False,
    ) as flow:
        yield flow
    for plugin in plugins:
        close = getattr(plugin, "close", None)
        if close is not None:
            close()  # their HTTP clients' connections


def pagerduty_opened(api: VendorAPI, incident_id: str, page_id: str) -> None:
    """PagerDuty's REST API lists the incident the page's alert opened."""
    pd_incident = {
        "incidents": [
            {
                "id": "PT4KHLK",
                "type": "incident",
                "incident_number": 1000,
                "title": "Search is down",
                "status": "triggered",
                "incident_key": f"incident-flow/{incident_id}/{page_id}",
                "html_url": "https://acme.pagerduty.com/incidents/PT4KHLK",
            }
        ],
        "limit": 25,
        "offset": 0,
        "more": False,
        "total": None,
    }
    api.respond("GET", "/incidents", json=pd_incident)


def test_a_whole_incident_through_every_adapter(
    flow: IncidentFlow, vendors: dict[str, VendorAPI]
) -> None:
    clock = flow.clock
    assert isinstance(clock, FakeClock)
    incident = flow.declare(
        "Search is down", severity=Severity.CRITICAL, customer_impact=True, by="U0REPORTER"
    )
    page = flow.page(incident.id, "search-team", by="U0REPORTER", message="search 502s")
    pagerduty_opened(vendors["pagerduty-rest"], incident.id, page.pages[0].id)
    link_issue(flow, incident.id, "acme/web#42", by="U0LEAD")
    clock.advance(timedelta(minutes=2))
    flow.assign(incident.id, Role.LEAD, "U0LEAD", by="U0REPORTER")
    flow.acknowledge_page(incident.id, by="U0LEAD")
    flow.acknowledge(incident.id, by="U0LEAD")
    flow.assign(incident.id, Role.MESSENGER, "U0MESSENGER", by="U0LEAD")
    flow.triage(incident.id, by="U0LEAD")
    flow.start_mitigation(incident.id, by="U0LEAD")
    flow.post_status_update(
        incident.id,
        f"We are investigating failing searches since 09:00 UTC. {SUPPORT}",
        phase="investigating",
        by="U0MESSENGER",
    )
    clock.advance(timedelta(minutes=20))
    flow.record_rollback(incident.id, outcome="rolled back to 5.3.1", succeeded=True, by="U0LEAD")
    flow.resolve(incident.id, by="U0LEAD")
    flow.start_postmortem(incident.id, by="U0LEAD")
    flow.add_follow_up(incident.id, "Alert on search 502s", by="U0LEAD", owner="U0LEAD")
    assert flow.drain(timeout=60)

    # Every delivery to every adapter went through (what they record is not delivered).
    assert {d.status for d in flow.deliveries()} == {"delivered"}, [
        (d.plugin, d.last_error) for d in flow.deliveries() if d.status != "delivered"
    ]
    current = flow.get(incident.id)
    made = {(ref.system, ref.kind) for ref in current.external_refs}
    assert {
        ("slack", "channel"),
        ("opsgenie", "alert"),
        ("opsgenie", "alert_acknowledged"),
        ("opsgenie", "alert_closed"),
        ("pagerduty", "alert"),
        ("statuspage", "incident"),
        ("github", "linked_issue"),
        ("github", "issue_closed"),
        ("github", "followup_issue"),
    } <= made
    assert current.item("close_github_issues").state is ItemState.DONE
    assert current.item("create_followup_issues").state is ItemState.DONE

    slack = vendors["slack"]
    assert len(slack.requests_to("POST", "/conversations.create")) == 1
    announced = {r.body.get("channel") for r in slack.requests_to("POST", "/chat.postMessage")}
    assert {"customer-support", "ce", "sales", "general", "marketing"} <= announced
    assert len(vendors["opsgenie"].requests_to("POST", "/v2/alerts")) == 1
    assert vendors["opsgenie"].requests_to("POST", "/v2/alerts/{identifier}/close")
    actions = [r.body["event_action"] for r in vendors["pagerduty-events"].requests]
    assert actions == ["trigger", "acknowledge", "resolve"]
    assert vendors["pagerduty-rest"].requests_to("POST", "/incidents/{id}/status_updates")
    statuses = [
        r.body["incident"]["status"]
        for r in vendors["statuspage"].requests
        if r.method in {"POST", "PATCH"}
    ]
    assert statuses == ["investigating", "resolved"]
    github = vendors["github"]
    assert [r.body["state"] for r in github.requests_to("PATCH", "/repos/acme/web/issues/42")] == [
        "closed"
    ]
    assert len(github.requests_to("POST", "/repos/{owner}/{repo}/issues")) == 1


def test_nothing_is_made_twice_when_every_event_is_delivered_again(
    flow: IncidentFlow, vendors: dict[str, VendorAPI]
) -> None:
    incident = flow.declare(
        "Search is down", severity=Severity.MAJOR, customer_impact=True, by="U0REPORTER"
    )
    paged = flow.page(incident.id, "search-team", by="U0REPORTER")
    pagerduty_opened(vendors["pagerduty-rest"], incident.id, paged.pages[0].id)
    flow.post_status_update(
        incident.id, f"Search is failing for some users. {SUPPORT}", phase="identified", by="U0R"
    )
    assert flow.drain(timeout=60)
    sent = {name: len(api.requests) for name, api in vendors.items()}

    # Every event again, to every adapter, with its key: as after a crash before the outcomes
    # were recorded.
    state = None
    for event in flow.history(incident.id):
        state = event.apply(state)
        for notifier in flow.plugins.notifiers:
            key = f"{event.incident_id}:{event.version}:{notifier.plugin}"
            notifier.invoke(event, state, key, flow)

    mutating = {
        name: [r.describe() for r in api.requests[sent[name] :] if r.method not in {"GET", "HEAD"}]
        for name, api in vendors.items()
    }
    assert mutating == {name: [] for name in vendors}

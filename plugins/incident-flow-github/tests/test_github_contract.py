"""The plugin keeps incident_flow's delivery contract (``check_plugin``) on every transition of
the handbook: no raise while GitHub is healthy, nothing made twice on a redelivery, the right
delivery error for a 429, a 503, a 400 and a slow answer, and only requests valid under
GitHub's description."""

from __future__ import annotations

from collections.abc import Callable

from incident_flow_github import GitHubConfig, GitHubPlugin, link_issue

from incident_flow import Event, Incident, IncidentFlow, hookimpl
from incident_flow.events import IncidentDeclared
from incident_flow.testing.plugins import check_plugin
from incident_flow.testing.vendor_api import VendorAPI


class LinkingGitHubPlugin(GitHubPlugin):
    """The plugin, plus a public issue linked to every incident as it is declared, so that the
    harness's incidents have issues to close when they are resolved."""

    @hookimpl
    def incident_flow_event(
        self, event: Event, incident: Incident, key: str, flow: IncidentFlow | None
    ) -> None:
        if isinstance(event, IncidentDeclared) and flow is not None:
            link_issue(flow, event.incident_id, "acme/status#7", by="reporter")
        super().incident_flow_event(event, incident, key, flow)


def test_the_plugin_keeps_the_contract(
    github_api: VendorAPI, make_config: Callable[..., GitHubConfig]
) -> None:
    plugin = LinkingGitHubPlugin(make_config(timeout=1.0))
    try:
        report = check_plugin(plugin, api=github_api, timeout=3.0, sequences=3)
    finally:
        plugin.close()

    report.raise_for_problems()
    assert report.events_delivered["PhaseChanged"] > 0
    assert report.events_delivered["FollowUpAdded"] > 0
    sent = {(r.method, r.operation) for r in github_api.requests}
    assert sent == {
        ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
        ("PATCH", "/repos/{owner}/{repo}/issues/{issue_number}"),
        ("POST", "/repos/{owner}/{repo}/issues"),
    }
    # The faults were played on what the plugin sends.
    assert {429, 503, 400} <= {r.status for r in github_api.requests}

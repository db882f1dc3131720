"""The Slack plugin keeps the notification contract that incident_flow checks every adapter
against: each transition's events delivered, redelivered, and replayed under Slack's 429, 503,
400 and a slow answer, every request valid under Slack's Web API description."""

from __future__ import annotations

from collections.abc import Callable

from incident_flow_slack.config import SlackConfig
from incident_flow_slack.reactions import SlackPlugin

from incident_flow.testing.plugins import check_plugin
from incident_flow.testing.vendor_api import VendorAPI


def test_the_slack_plugin_keeps_the_plugin_contract(
    slack_api: VendorAPI, config_for: Callable[..., SlackConfig]
) -> None:
    plugin = SlackPlugin(config_for(slack_api, timeout=2.0))

    report = check_plugin(plugin, api=slack_api, timeout=5, sequences=3)

    report.raise_for_problems()
    assert {"IncidentDeclared", "RoleAssigned", "StatusUpdatePosted", "PhaseChanged"} <= set(
        report.events_delivered
    )

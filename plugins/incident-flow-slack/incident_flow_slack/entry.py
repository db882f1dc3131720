"""The entry point ``slack`` (group ``incident_flow``): the plugin, configured from the
environment when the registry loads it.

An install without ``SLACK_BOT_TOKEN`` raises :class:`~incident_flow.errors.AdapterConfigError`
on import, which the registry reports as a load failure naming the variable (see
``IncidentFlow.plugin_failures``) instead of crashing the host.
"""

from __future__ import annotations

from incident_flow_slack.config import SlackConfig
from incident_flow_slack.reactions import SlackPlugin

__all__ = ["plugin"]

plugin = SlackPlugin(SlackConfig.from_env())
"""The plugin the ``incident_flow`` entry point names."""

"""The entry point: the plugin, built from the environment when incident_flow loads it.

An installation without ``PAGERDUTY_ROUTING_KEY`` fails to import here with
:class:`~incident_flow.errors.AdapterConfigError`, which the plugin registry reports (in
``flow.plugin_failures`` and the log) under the name ``pagerduty``, naming the variable.
"""

from incident_flow_pagerduty.config import PagerDutyConfig
from incident_flow_pagerduty.plugin import PagerDutyPlugin

__all__ = ["plugin"]

plugin = PagerDutyPlugin(PagerDutyConfig.from_env())
"""The plugin registered under the ``incident_flow`` entry point ``pagerduty``."""

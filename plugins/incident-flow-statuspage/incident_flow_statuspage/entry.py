"""The entry point: the plugin, configured from the environment when it is loaded.

An install without ``STATUSPAGE_API_KEY`` or ``STATUSPAGE_PAGE_ID`` raises
:class:`~incident_flow.errors.AdapterConfigError` here, which the plugin registry reports as
a load failure naming the variable (``flow.plugin_failures``) while the other plugins load.
"""

from incident_flow_statuspage.config import StatuspageConfig
from incident_flow_statuspage.plugin import StatuspagePlugin

__all__ = ["plugin"]

plugin = StatuspagePlugin(StatuspageConfig.from_env())

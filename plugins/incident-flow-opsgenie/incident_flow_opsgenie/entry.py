"""The entry point's target: the plugin, configured from the environment on import.

An install without ``OPSGENIE_API_KEY`` (or with a bad setting) raises
:class:`~incident_flow.errors.AdapterConfigError` here, which the plugin registry reports as a
load failure naming the variable, and the flow runs on without Opsgenie.
"""

from __future__ import annotations

from incident_flow_opsgenie.config import OpsgenieConfig
from incident_flow_opsgenie.plugin import OpsgeniePlugin

__all__ = ["plugin"]

plugin = OpsgeniePlugin(OpsgenieConfig.from_env())
"""The plugin registered under the name ``opsgenie``."""

"""incident-flow-opsgenie: page the on-call engineer through Opsgenie."""

from incident_flow_opsgenie.client import OpsgenieClient
from incident_flow_opsgenie.config import OpsgenieConfig, Responder
from incident_flow_opsgenie.plugin import OpsgeniePlugin, alert_alias

__all__ = [
    "OpsgenieClient",
    "OpsgenieConfig",
    "OpsgeniePlugin",
    "Responder",
    "alert_alias",
]

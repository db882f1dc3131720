"""incident-flow-statuspage: publish an incident's customer posts on Atlassian Statuspage."""

from incident_flow_statuspage.client import StatuspageClient, VendorIncident
from incident_flow_statuspage.components import COMPONENT_STATUSES, InvalidComponentError
from incident_flow_statuspage.config import StatuspageConfig
from incident_flow_statuspage.phases import (
    DEFAULT_PHASE_MAP,
    STATUSPAGE_STATUSES,
    from_statuspage,
    to_statuspage,
)
from incident_flow_statuspage.plugin import StatuspagePlugin

__all__ = [
    "COMPONENT_STATUSES",
    "DEFAULT_PHASE_MAP",
    "STATUSPAGE_STATUSES",
    "InvalidComponentError",
    "StatuspageClient",
    "StatuspageConfig",
    "StatuspagePlugin",
    "VendorIncident",
    "from_statuspage",
    "to_statuspage",
]

"""incident-flow-pagerduty: pages through PagerDuty, and keeps its alerts in step with incidents."""

from incident_flow_pagerduty.client import PagerDutyClient as PagerDutyClient
from incident_flow_pagerduty.config import PagerDutyConfig as PagerDutyConfig
from incident_flow_pagerduty.plugin import PagerDutyPlugin as PagerDutyPlugin
from incident_flow_pagerduty.plugin import escalation_dedup_key as escalation_dedup_key
from incident_flow_pagerduty.plugin import page_dedup_key as page_dedup_key

__all__ = [
    "PagerDutyClient",
    "PagerDutyConfig",
    "PagerDutyPlugin",
    "escalation_dedup_key",
    "page_dedup_key",
]

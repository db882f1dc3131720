"""incident_flow_slack: run incident_flow incidents from Slack."""

from incident_flow_slack.client import SlackClient, SlackPermanentError, SlackRetryableError
from incident_flow_slack.config import SlackConfig
from incident_flow_slack.messages import recap, recap_blocks
from incident_flow_slack.reactions import SlackPlugin

__all__ = [
    "SlackClient",
    "SlackConfig",
    "SlackPermanentError",
    "SlackPlugin",
    "SlackRetryableError",
    "recap",
    "recap_blocks",
]

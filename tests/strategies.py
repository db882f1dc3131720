"""The harness's strategies, as our own tests use them.

See :mod:`incident_flow.testing.strategies`.
"""

from incident_flow.testing.strategies import *  # noqa: F403
from incident_flow.testing.strategies import EVENT_STRATEGIES, people, severities, stored_events

__all__ = ["EVENT_STRATEGIES", "people", "severities", "stored_events"]

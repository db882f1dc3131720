"""incident_flow: incident response as code."""

from importlib.metadata import version

from incident_flow.clock import Clock, FakeClock, SystemClock
from incident_flow.delivery import DeliveryWorker, RetryPolicy
from incident_flow.errors import ConcurrencyConflict, IncidentFlowError, TransitionRefused
from incident_flow.events import Event
from incident_flow.flow import IncidentFlow, retry_on_conflict
from incident_flow.hookspecs import hookimpl
from incident_flow.model import Incident, ItemState, Phase, Role, Severity
from incident_flow.process import HANDBOOK, ChecklistItemSpec, PhaseSpec, Process, Transition
from incident_flow.requirements import Context, Guard, Requirement

__all__ = [
    "HANDBOOK",
    "ChecklistItemSpec",
    "Clock",
    "ConcurrencyConflict",
    "Context",
    "DeliveryWorker",
    "Event",
    "FakeClock",
    "Guard",
    "Incident",
    "IncidentFlow",
    "IncidentFlowError",
    "ItemState",
    "Phase",
    "PhaseSpec",
    "Process",
    "Requirement",
    "RetryPolicy",
    "Role",
    "Severity",
    "SystemClock",
    "Transition",
    "TransitionRefused",
    "__version__",
    "hookimpl",
    "retry_on_conflict",
]

__version__ = version("incident-flow")

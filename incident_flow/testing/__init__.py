"""The test kit for plugin authors and process authors.

- :mod:`~incident_flow.testing.strategies`: hypothesis strategies (people, severities, status
  texts, commands, valid command sequences for a process, stored events);
- :mod:`~incident_flow.testing.stateful`: :func:`process_test_case`, a hypothesis state machine
  over any process;
- :mod:`~incident_flow.testing.paths`: :func:`explore`, :func:`shortest_paths`,
  :func:`simple_paths` and replayable :class:`Path` values;
- :mod:`~incident_flow.testing.coverage`: :class:`CoverageRecorder` and :class:`Coverage`;
- :mod:`~incident_flow.testing.checks`: :func:`check_process`;
- :mod:`~incident_flow.testing.plugins`: :func:`check_plugin`, the plugin contract;
- :mod:`~incident_flow.testing.vendor_api`: :class:`VendorAPI`, a local server that validates
  requests against a vendor's OpenAPI description;
- :mod:`~incident_flow.testing.pytest_plugin`: fixtures, registered with pytest automatically.

It needs the ``testing`` extra: ``pip install "incident-flow[testing]"``.
"""

from incident_flow.clock import FakeClock
from incident_flow.testing.checks import Finding, check_process
from incident_flow.testing.commands import Command, Declaration
from incident_flow.testing.coverage import Coverage, CoverageRecorder
from incident_flow.testing.paths import Exploration, Path, explore, shortest_paths, simple_paths
from incident_flow.testing.stateful import ProcessMachine, process_test_case

__all__ = [
    "Command",
    "Coverage",
    "CoverageRecorder",
    "Declaration",
    "Exploration",
    "FakeClock",
    "Finding",
    "Path",
    "ProcessMachine",
    "check_process",
    "explore",
    "process_test_case",
    "shortest_paths",
    "simple_paths",
]

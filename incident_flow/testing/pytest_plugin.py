"""pytest fixtures for testing a plugin or a process with incident_flow.

Installed with incident_flow (entry point ``pytest11``), so any test suite of a project that has
incident_flow installed can use them without importing anything. Turn them off with
``pytest -p no:incident_flow`` (or ``-p no:incident_flow`` in ``addopts``). The fixtures need the
``testing`` extra (``pip install "incident-flow[testing]"``); this module itself imports nothing
heavy, so a suite that does not use them pays nothing.

``incident_clock``
    A :class:`~incident_flow.FakeClock` at 2024-05-14 09:00 UTC; move it with ``advance``.
``make_incident_flow``
    A factory: ``make_incident_flow(plugins=[...], process=..., store=...)`` returns an
    :class:`~incident_flow.IncidentFlow` on a memory store with the fake clock and no installed
    plugins (``entry_points=False``) unless told otherwise; every flow is shut down after the
    test.
``incident_flow``
    ``make_incident_flow()``: the handbook's process, no plugins.
``incident_coverage``
    A factory: ``incident_coverage(process=HANDBOOK)`` returns a
    :class:`~incident_flow.testing.CoverageRecorder` to register on flows as a plugin.
``vendor_api``
    A factory: ``vendor_api("slack_web_openapi_v2.json")`` starts a
    :class:`~incident_flow.testing.vendor_api.VendorAPI` for that description; each is stopped
    after the test, and the test fails if any request it received was invalid.
``check_incident_plugin``
    ``check_incident_plugin(plugin, api=api, ...)`` runs
    :func:`~incident_flow.testing.plugins.check_plugin` and fails the test with the report when
    there is any problem; it returns the report.
``run_process_machine``
    ``run_process_machine(process, rules=[...], max_examples=50)`` runs the stateful machine of
    :mod:`incident_flow.testing.stateful` over ``process`` now, and fails the test with the
    shrunk counter-example when an invariant breaks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from incident_flow import FakeClock, IncidentFlow
    from incident_flow.process import Process
    from incident_flow.testing.coverage import CoverageRecorder
    from incident_flow.testing.plugins import PluginReport
    from incident_flow.testing.vendor_api import VendorAPI

CLOCK_START = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)


@pytest.fixture
def incident_clock() -> FakeClock:
    """A fake clock at 2024-05-14 09:00 UTC."""
    from incident_flow import FakeClock

    return FakeClock(CLOCK_START)


@pytest.fixture
def make_incident_flow(incident_clock: FakeClock) -> Iterator[Callable[..., IncidentFlow]]:
    """A factory of flows on a memory store with the fake clock; shut down after the test.

    Reminders are not looked for in the background (time only moves when the test moves the
    clock): call ``flow.fire_reminders()`` after ``incident_clock.advance(...)``.
    """
    from incident_flow import IncidentFlow

    flows: list[IncidentFlow] = []

    def make(**options: Any) -> IncidentFlow:
        options.setdefault("clock", incident_clock)
        options.setdefault("entry_points", False)
        options.setdefault("reminders", False)
        flow = IncidentFlow(**options)
        flows.append(flow)
        return flow

    yield make
    for flow in flows:
        flow.shutdown()


@pytest.fixture
def incident_flow(make_incident_flow: Callable[..., IncidentFlow]) -> IncidentFlow:
    """A flow of the handbook's process on a memory store, with the fake clock."""
    return make_incident_flow()


@pytest.fixture
def incident_coverage() -> Callable[..., CoverageRecorder]:
    """A factory of coverage recorders (register one on a flow as a plugin)."""
    from incident_flow.process import HANDBOOK
    from incident_flow.testing.coverage import CoverageRecorder

    def make(process: Process = HANDBOOK) -> CoverageRecorder:
        return CoverageRecorder(process)

    return make


@pytest.fixture
def vendor_api() -> Iterator[Callable[..., VendorAPI]]:
    """A factory of local vendor API servers, stopped after the test; an invalid request
    received by any of them fails the test."""
    from incident_flow.testing.vendor_api import VendorAPI

    started: list[VendorAPI] = []

    def start(spec: str, **options: Any) -> VendorAPI:
        api = VendorAPI.from_spec(spec, **options)
        api.start()
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()
    for api in started:
        if api.strict:
            api.assert_all_valid()


@pytest.fixture
def check_incident_plugin() -> Callable[..., PluginReport]:
    """Run the plugin contract check; fail the test on any problem."""
    from incident_flow.testing.plugins import check_plugin

    def check(plugin: object, **options: Any) -> PluginReport:
        report = check_plugin(plugin, **options)
        report.raise_for_problems()
        return report

    return check


@pytest.fixture
def run_process_machine() -> Callable[..., None]:
    """Run the stateful machine over a process now; fail with the counter-example."""
    from hypothesis import HealthCheck, settings
    from hypothesis.stateful import run_state_machine_as_test

    from incident_flow.testing.stateful import FAILING_FAST, machine_for

    def run(process: Process, *, max_examples: int = 50, steps: int = 40, **options: Any) -> None:
        machine = machine_for(process, **options)
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=max_examples,
                stateful_step_count=steps,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                phases=FAILING_FAST,
            ),
        )

    return run

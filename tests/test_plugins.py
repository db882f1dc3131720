"""Plugins: loading, isolation of notification hooks, policy and provider hooks."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime
from importlib.metadata import EntryPoint

import pytest

from incident_flow import (
    Context,
    Event,
    FakeClock,
    Incident,
    IncidentFlow,
    Requirement,
    TransitionRefused,
    hookimpl,
)
from incident_flow.errors import PluginError
from incident_flow.store import DeliveryStatus
from tests.conftest import declare


class Recorder:
    """Records every event it is notified of."""

    def __init__(self, name: str = "recorder") -> None:
        self.incident_flow_name = name
        self.seen: list[tuple[str, int, str]] = []

    @hookimpl
    def incident_flow_event(self, event: Event, incident: Incident, key: str) -> None:
        assert incident.version == event.version
        self.seen.append((event.type, event.version, key))


class Exploding:
    incident_flow_name = "exploding"

    @hookimpl
    def incident_flow_event(self, event: Event) -> None:
        raise RuntimeError(f"vendor down while handling {event.type}")


class Hanging:
    incident_flow_name = "hanging"

    def __init__(self) -> None:
        self.release = threading.Event()

    @hookimpl
    def incident_flow_event(self, event: Event) -> None:
        self.release.wait(timeout=30)


ENTRY_POINT_PLUGIN = Recorder("from-entry-point")


def make_flow(clock: FakeClock, *plugins: object) -> IncidentFlow:
    return IncidentFlow(clock=clock, plugins=plugins, entry_points=False)


def test_every_committed_event_reaches_a_plugin_in_order(clock: FakeClock) -> None:
    recorder = Recorder()
    with make_flow(clock, recorder) as flow:
        incident = declare(flow)
        flow.triage(incident.id, by="alice")
        assert flow.drain(timeout=5)
    assert [(t, v) for t, v, _ in recorder.seen] == [("IncidentDeclared", 1), ("PhaseChanged", 2)]
    assert recorder.seen[0][2] == f"{incident.id}:1:recorder"
    assert all(d.status == DeliveryStatus.DELIVERED for d in flow.deliveries())


def test_a_refused_command_notifies_nobody(clock: FakeClock) -> None:
    recorder = Recorder()
    with make_flow(clock, recorder) as flow:
        incident = declare(flow)
        with pytest.raises(TransitionRefused):
            flow.close(incident.id, by="alice")
        flow.drain(timeout=5)
    assert len(recorder.seen) == 1
    assert len(flow.deliveries()) == 1


def test_a_raising_plugin_never_reaches_the_caller_nor_stops_others(clock: FakeClock) -> None:
    recorder = Recorder()
    with make_flow(clock, Exploding(), recorder) as flow:
        incident = declare(flow)
        flow.triage(incident.id, by="alice")
        assert flow.drain(timeout=5)
        failed = flow.deliveries(status="failed")
        waiting = flow.deliveries(status="pending")
    assert len(recorder.seen) == 2
    assert [(d.plugin, d.version) for d in failed] == [("exploding", 1)]
    assert failed[0].last_error == "RuntimeError: vendor down while handling IncidentDeclared"
    # The next event waits for the failed one: a plugin sees an incident's events in order.
    assert [(d.plugin, d.version, d.attempts) for d in waiting] == [("exploding", 2, 0)]


def test_a_hanging_plugin_delays_neither_commands_nor_other_plugins(clock: FakeClock) -> None:
    hanging, recorder = Hanging(), Recorder()
    flow = IncidentFlow(
        clock=clock, plugins=[hanging, recorder], entry_points=False, delivery_timeout=0.1
    )
    try:
        incident = declare(flow)
        for _ in range(5):
            flow.post_status_update(
                incident.id,
                "Identified: aware, support@sourcegraph.com.",
                phase="identified",
                by="c",
            )
        assert flow.drain(timeout=5)  # the stuck call is given up on, not waited for
        assert len(recorder.seen) == 6
        (timed_out,) = flow.deliveries(status="failed", plugin="hanging")
        assert timed_out.version == 1
        assert timed_out.last_error is not None
        assert timed_out.last_error.startswith("TimeoutError")
        # The rest wait behind it, in order, for its retry.
        assert len(flow.deliveries(status="pending", plugin="hanging")) == 5
    finally:
        hanging.release.set()
        flow.shutdown()
    # The late answer was recorded after all; what shutting down had time to deliver behind
    # it went in order.
    delivered = [d.version for d in flow.deliveries(status="delivered", plugin="hanging")]
    assert delivered == list(range(1, len(delivered) + 1))
    assert delivered


def test_an_implementation_may_take_fewer_arguments(clock: FakeClock) -> None:
    received: list[str] = []

    class Minimal:
        @hookimpl
        def incident_flow_event(self, incident: Incident) -> None:
            received.append(incident.phase)

    with make_flow(clock, Minimal()) as flow:
        declare(flow)
        flow.drain(timeout=5)
    assert received == ["identified"]


def test_a_misspelled_hook_is_an_error(clock: FakeClock) -> None:
    class Typo:
        @hookimpl
        def incident_flow_evnt(self, event: Event) -> None: ...

    with pytest.raises(PluginError, match="incident_flow_evnt"):
        make_flow(clock, Typo())


def test_an_unknown_hook_argument_is_an_error(clock: FakeClock) -> None:
    class Extra:
        @hookimpl
        def incident_flow_event(self, event: Event, mood: str) -> None: ...

    with pytest.raises(PluginError, match="mood"):
        make_flow(clock, Extra())


def test_two_plugins_with_one_name_are_an_error(clock: FakeClock) -> None:
    with pytest.raises(PluginError, match="already registered"):
        make_flow(clock, Recorder("same"), Recorder("same"))


def test_policy_hook_adds_requirements(clock: FakeClock) -> None:
    class NoFridayTriage:
        @hookimpl
        def incident_flow_requirements(
            self, incident: Incident, action: str, context: Context
        ) -> Iterable[Requirement]:
            if action == "triage" and context.actor != "bob":
                yield Requirement("bob_triages", "only bob triages here", "team policy")

    with make_flow(clock, NoFridayTriage()) as flow:
        incident = declare(flow)
        with pytest.raises(TransitionRefused) as refused:
            flow.triage(incident.id, by="alice")
        assert [r.name for r in refused.value.unmet] == ["bob_triages"]
        assert [r.name for r in flow.requirements(incident.id, "triage", by="alice")] == [
            "bob_triages"
        ]
        assert "triage" not in flow.available_actions(incident.id, by="alice")
        assert flow.triage(incident.id, by="bob").phase == "triaged"


def test_a_raising_policy_hook_fails_the_command_and_writes_nothing(clock: FakeClock) -> None:
    class Broken:
        @hookimpl
        def incident_flow_requirements(self, action: str) -> None:
            if action == "triage":
                raise KeyError("oops")

    with make_flow(clock, Broken()) as flow:
        incident = declare(flow)
        with pytest.raises(PluginError, match="triage"):
            flow.triage(incident.id, by="alice")
        assert flow.get(incident.id).version == 1


def test_who_is_on_call_takes_the_first_answer(clock: FakeClock) -> None:
    class NoIdea:
        @hookimpl
        def incident_flow_who_is_on_call(self, schedule: str | None) -> None:
            return None

    class Rota:
        @hookimpl
        def incident_flow_who_is_on_call(self, schedule: str | None, at: datetime) -> str:
            return f"oncall-{schedule}@{at:%H:%M}"

    with make_flow(clock, Rota(), NoIdea()) as flow:
        assert flow.who_is_on_call("delivery") == "oncall-delivery@09:00"
    with make_flow(clock) as flow:
        assert flow.who_is_on_call() is None


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two installed entry points: one that cannot be imported, one that can."""
    values = [
        ("broken", "incident_flow_no_such_module:plugin"),
        ("good", "tests.test_plugins:ENTRY_POINT_PLUGIN"),
    ]

    def fake(group: str) -> list[EntryPoint]:
        assert group == "incident_flow"
        return [EntryPoint(name, value, group) for name, value in values]

    monkeypatch.setattr("incident_flow.plugins.entry_points", fake)


@pytest.mark.usefixtures("installed")
def test_a_broken_entry_point_is_reported_and_skipped(clock: FakeClock) -> None:
    with IncidentFlow(clock=clock) as flow:
        assert [f.name for f in flow.plugin_failures] == ["broken"]
        assert "ModuleNotFoundError" in flow.plugin_failures[0].error
        assert "good" in flow.plugins.names()


@pytest.mark.usefixtures("installed")
def test_the_environment_limits_which_entry_points_load(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INCIDENT_FLOW_PLUGINS", "good")
    with IncidentFlow(clock=clock) as flow:
        assert flow.plugin_failures == []
        assert "good" in flow.plugins.names()

"""The pytest plugin: its fixtures work in another project's suite, and it can be turned off."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from incident_flow import FakeClock, IncidentFlow, Role
from incident_flow.testing import CoverageRecorder
from incident_flow.testing.vendor_api import VendorAPI

ROOT = Path(__file__).resolve().parent.parent

A_TEAMS_SUITE = """
from incident_flow import HANDBOOK, Role, hookimpl


class Recorder:
    incident_flow_name = "recorder"

    def __init__(self):
        self.keys = []

    @hookimpl
    def incident_flow_event(self, key):
        self.keys.append(key)


def test_a_flow_with_a_fake_clock(make_incident_flow, incident_clock):
    recorder = Recorder()
    flow = make_incident_flow(plugins=[recorder])
    incident = flow.declare("Search is down", severity="major", customer_impact=False, by="al")
    incident_clock.advance(minutes=5)
    flow.assign(incident.id, Role.LEAD, "bob", by="al")
    assert flow.drain(timeout=5)
    assert len(recorder.keys) == 2
    assert flow.history(incident.id)[-1].at == incident.declared_at.replace(minute=5)


def test_the_machine(run_process_machine):
    run_process_machine(HANDBOOK, max_examples=5, steps=5)
"""


def run_pytest(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_team.py").write_text(textwrap.dedent(A_TEAMS_SUITE))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, "test_team.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_fixtures_work_in_another_projects_suite(tmp_path: Path) -> None:
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_the_plugin_can_be_turned_off(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "-p", "no:incident_flow")
    assert result.returncode != 0
    assert "fixture 'make_incident_flow' not found" in result.stdout


def test_incident_flow_fixture_is_the_handbook_on_a_fake_clock(
    incident_flow: IncidentFlow, incident_clock: FakeClock
) -> None:
    incident = incident_flow.declare("x", severity="major", customer_impact=False, by="al")
    assert incident.declared_at == incident_clock.now()
    assert incident_flow.process.name == "handbook"


def test_incident_coverage_records_a_flow(
    make_incident_flow: object, incident_coverage: object
) -> None:
    recorder: CoverageRecorder = incident_coverage()  # type: ignore[operator]
    flow: IncidentFlow = make_incident_flow(plugins=[recorder])  # type: ignore[operator]
    incident = flow.declare("x", severity="major", customer_impact=False, by="al")
    flow.assign(incident.id, Role.LEAD, "bob", by="al")
    assert flow.drain(timeout=5)
    assert recorder.coverage().events["RoleAssigned"]


def test_vendor_api_starts_a_server_and_checks_requests(vendor_api: object) -> None:
    import json
    import urllib.request

    api: VendorAPI = vendor_api("pagerduty_events_v2_openapiv3.json")  # type: ignore[operator]
    body = {
        "routing_key": "R0123456789ABCDEF0123456789ABCDEF",
        "event_action": "trigger",
        "dedup_key": "inc-1",
        "payload": {"summary": "Search is down", "source": "incident_flow", "severity": "critical"},
    }
    request = urllib.request.Request(
        api.base_url + "/enqueue",  # base_url ends in the description's base path, /v2
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 202
    assert [r.valid for r in api.requests] == [True]


def test_check_incident_plugin_fails_a_plugin_that_raises(check_incident_plugin: object) -> None:
    from incident_flow import hookimpl
    from incident_flow.testing import shortest_paths

    class Raising:
        incident_flow_name = "raising"

        @hookimpl
        def incident_flow_event(self, event: object) -> None:
            raise RuntimeError("boom")

    paths = shortest_paths(__import__("incident_flow").HANDBOOK)[:2]
    with pytest.raises(AssertionError, match="boom"):
        check_incident_plugin(Raising(), paths=paths)  # type: ignore[operator]

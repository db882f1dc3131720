"""Status phases ↔ Statuspage statuses, both ways, through the process's own mapping."""

from __future__ import annotations

import attrs
import pytest
from incident_flow_statuspage import (
    DEFAULT_PHASE_MAP,
    STATUSPAGE_STATUSES,
    from_statuspage,
    to_statuspage,
)

from incident_flow import HANDBOOK
from incident_flow.comms import CommsPolicy
from incident_flow.errors import UnknownPhaseError, ValidationError

MONITORING_IS_INVESTIGATING = attrs.evolve(
    HANDBOOK, comms=CommsPolicy(phase_aliases={"monitoring": "investigating"})
)
WITH_MONITORING = attrs.evolve(
    HANDBOOK, status_phases=("identified", "investigating", "monitoring", "resolved")
)


@pytest.mark.parametrize("phase", ["identified", "investigating", "resolved"])
def test_the_handbook_s_status_phases_are_statuspage_s_statuses(phase: str) -> None:
    assert to_statuspage(phase) == phase
    assert from_statuspage(phase) == phase
    assert to_statuspage(phase.upper()) == phase


def test_monitoring_is_ours_only_when_the_process_maps_it() -> None:
    with pytest.raises(UnknownPhaseError, match="phase_aliases"):
        from_statuspage("monitoring")

    assert from_statuspage("monitoring", process=MONITORING_IS_INVESTIGATING) == "investigating"
    assert from_statuspage("monitoring", process=WITH_MONITORING) == "monitoring"
    assert to_statuspage("monitoring") == "monitoring"


def test_an_alias_is_published_as_the_phase_it_stands_for() -> None:
    """The core records an alias as its target, so that is what reaches Statuspage."""
    recorded = MONITORING_IS_INVESTIGATING.check_status_phase("monitoring")

    assert recorded == "investigating"
    assert to_statuspage(recorded) == "investigating"


def test_a_team_maps_its_own_phases() -> None:
    process = attrs.evolve(
        HANDBOOK, status_phases=("identified", "investigating", "mitigated", "resolved")
    )
    mapping = {**DEFAULT_PHASE_MAP, "mitigated": "monitoring"}

    assert to_statuspage("mitigated", mapping) == "monitoring"
    assert from_statuspage("monitoring", mapping, process=process) == "mitigated"


def test_a_phase_without_a_status_names_the_setting_to_add() -> None:
    with pytest.raises(UnknownPhaseError, match="STATUSPAGE_PHASE_MAP=mitigated=") as raised:
        to_statuspage("mitigated")

    assert isinstance(raised.value, ValidationError)


@pytest.mark.parametrize("status", ["scheduled", "down", ""])
def test_only_live_incident_statuses_are_read(status: str) -> None:
    with pytest.raises(UnknownPhaseError):
        from_statuspage(status)


def test_the_default_mapping_is_the_identity_on_statuspage_s_statuses() -> None:
    assert dict(DEFAULT_PHASE_MAP) == {status: status for status in STATUSPAGE_STATUSES}

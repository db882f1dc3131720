"""Serialization: every event and incident round-trips through JSON; bad rows are typed errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given

from incident_flow import IncidentFlow
from incident_flow.errors import CorruptEventError, SchemaVersionError, UnknownEventTypeError
from incident_flow.events import EVENT_TYPES, Event, RoleAssigned
from incident_flow.serialization import (
    dumps_event,
    event_to_dict,
    incident_from_dict,
    incident_to_dict,
    loads_event,
    register_upcaster,
)
from tests.conftest import to_postmortem
from tests.strategies import EVENT_STRATEGIES, stored_events


@given(stored_events)
def test_every_event_round_trips_through_json(event: Event) -> None:
    assert loads_event(dumps_event(event)) == event


def test_the_strategies_cover_every_event_type() -> None:
    assert {cls.__name__ for cls in EVENT_STRATEGIES} == set(EVENT_TYPES)


def test_stored_events_carry_type_and_schema(flow: IncidentFlow) -> None:
    incident = to_postmortem(flow)
    record = event_to_dict(flow.history(incident.id)[0])
    assert record["type"] == "IncidentDeclared"
    assert record["schema"] == 1
    assert record["at"] == "2024-03-01T09:00:00+00:00"


def test_a_whole_incident_round_trips(flow: IncidentFlow) -> None:
    incident = to_postmortem(flow)
    text = json.dumps(incident_to_dict(incident))
    assert incident_from_dict(json.loads(text)) == incident


def _record() -> dict[str, object]:
    return {
        "type": "RoleAssigned",
        "schema": 1,
        "incident_id": "inc-1",
        "version": 2,
        "at": "2024-03-01T09:00:00+00:00",
        "actor": "alice",
        "role": "lead",
        "person": "bob",
    }


def test_unknown_event_type_names_incident_and_version() -> None:
    with pytest.raises(UnknownEventTypeError, match=r"incident inc-1, version 2"):
        loads_event(json.dumps({**_record(), "type": "AliensLanded"}))


def test_newer_schema_is_refused() -> None:
    with pytest.raises(SchemaVersionError, match="upgrade"):
        loads_event(json.dumps({**_record(), "schema": 99}))


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        json.dumps({**_record(), "at": "2024-03-01T09:00:00"}),
        json.dumps({**_record(), "version": "two"}),
        json.dumps({k: v for k, v in _record().items() if k != "person"}),
    ],
    ids=["not-json", "not-object", "naive-time", "bad-version", "missing-field"],
)
def test_corrupt_events_are_typed_errors(text: str) -> None:
    with pytest.raises(CorruptEventError):
        loads_event(text)


def test_old_schemas_are_upcast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RoleAssigned, "schema_version", 2)

    @register_upcaster("RoleAssigned", 1)
    def rename_person(data: dict[str, object]) -> dict[str, object]:
        return {**data, "person": str(data["person"]).upper()}

    event = loads_event(json.dumps(_record()))
    assert isinstance(event, RoleAssigned)
    assert event.person == "BOB"

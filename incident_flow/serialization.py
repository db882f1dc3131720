"""Events and incidents to and from JSON, through a cattrs converter.

Each stored event is a JSON object with its ``type`` (the event class's name), the ``schema``
version it was written with, and its fields. Loading an event written by an older schema runs the
registered upcasters (:func:`register_upcaster`) in order; an unknown type, a newer schema or a
malformed payload raises a :class:`~incident_flow.errors.CorruptEventError` subclass naming the
incident and version. The module never touches cattrs' global converter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import cattrs
from cattrs.preconf.json import make_converter as make_json_converter

from incident_flow.errors import CorruptEventError, SchemaVersionError, UnknownEventTypeError
from incident_flow.events import EVENT_TYPES, Event
from incident_flow.model import Incident

__all__ = [
    "dumps_event",
    "event_from_dict",
    "event_to_dict",
    "incident_from_dict",
    "incident_to_dict",
    "loads_event",
    "make_converter",
    "register_upcaster",
]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def make_converter() -> cattrs.Converter:
    """Return a new converter for incident_flow's records, with datetimes as ISO 8601 strings."""
    converter = make_json_converter()
    converter.register_unstructure_hook(MappingProxyType, dict)

    def structure_datetime(value: Any, _: type) -> datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}")
        return parsed

    converter.register_structure_hook(datetime, structure_datetime)
    return converter


_converter = make_converter()


def register_upcaster(event_type: str, from_schema: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function turning a stored ``event_type`` at ``from_schema`` into the next schema.

    Use when a new release changes an event's fields: the stored rows stay as they were and are
    upcast on every load.
    """

    def register(function: Upcaster) -> Upcaster:
        _UPCASTERS[(event_type, from_schema)] = function
        return function

    return register


def event_to_dict(event: Event) -> dict[str, Any]:
    """Return ``event`` as a JSON-ready dict with its ``type`` and ``schema``."""
    record: dict[str, Any] = {"type": event.type, "schema": event.schema_version}
    record.update(_converter.unstructure(event))
    return record


def event_from_dict(record: Mapping[str, Any]) -> Event:
    """Build an event from a dict made by :func:`event_to_dict` (or an older schema of it).

    Raises:
        UnknownEventTypeError: the type is not known.
        SchemaVersionError: the schema is newer than this version of incident_flow.
        CorruptEventError: anything else is wrong with the payload.
    """
    data = dict(record)
    incident_id = data.get("incident_id")
    version = data.get("version")
    where: dict[str, Any] = {
        "incident_id": str(incident_id) if incident_id is not None else None,
        "version": version if isinstance(version, int) else None,
    }
    type_name = data.pop("type", None)
    cls = EVENT_TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise UnknownEventTypeError(f"unknown event type {type_name!r}", **where)
    schema = data.pop("schema", 1)
    if not isinstance(schema, int) or schema < 1:
        raise CorruptEventError(f"bad schema version {schema!r} on {type_name}", **where)
    if schema > cls.schema_version:
        raise SchemaVersionError(
            f"{type_name} was written with schema {schema}, newer than {cls.schema_version}; "
            "upgrade incident_flow to read it",
            **where,
        )
    while schema < cls.schema_version:
        upcast = _UPCASTERS.get((type_name, schema))
        if upcast is None:
            raise SchemaVersionError(f"no upcaster for {type_name} schema {schema}", **where)
        data = upcast(data)
        schema += 1
    try:
        return _converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as error:
        raise CorruptEventError(f"cannot decode {type_name}: {error}", **where) from error


def dumps_event(event: Event) -> str:
    """Return ``event`` as compact JSON."""
    return json.dumps(event_to_dict(event), separators=(",", ":"), sort_keys=True)


def loads_event(text: str | bytes) -> Event:
    """Parse an event written by :func:`dumps_event`.

    Raises:
        CorruptEventError: the text is not a JSON object or not a valid event.
    """
    try:
        record = json.loads(text)
    except ValueError as error:
        raise CorruptEventError(f"stored event is not JSON: {error}") from error
    if not isinstance(record, dict):
        raise CorruptEventError("stored event is not a JSON object")
    return event_from_dict(record)


def incident_to_dict(incident: Incident) -> dict[str, Any]:
    """Return ``incident`` as a JSON-ready dict."""
    result: dict[str, Any] = _converter.unstructure(incident)
    return result


def incident_from_dict(record: Mapping[str, Any]) -> Incident:
    """Build an incident from a dict made by :func:`incident_to_dict`."""
    return _converter.structure(dict(record), Incident)

"""Events and incidents to and from JSON, through a cattrs converter.

Each stored event is a JSON object with its ``type`` (the event class's name), the ``schema``
version it was written with, and its fields. Loading an event written by an older schema runs the
registered upcasters (:func:`register_upcaster`) in order; an unknown type, a newer schema or a
malformed payload raises a :class:`~incident_flow.errors.CorruptEventError` subclass naming the
incident and version. The module never touches cattrs' global converter.
"""

from __future__ import annotations

import json
import json.scanner
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from types import MappingProxyType
from typing import Any

import attrs
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
    return _decode(dict(record))


def _where(data: Mapping[str, Any]) -> dict[str, Any]:
    incident_id = data.get("incident_id")
    version = data.get("version")
    return {
        "incident_id": str(incident_id) if incident_id is not None else None,
        "version": version if isinstance(version, int) else None,
    }


def _decode(data: dict[str, Any]) -> Event:
    """Build an event from ``data``, a dict this module may consume."""
    type_name = data.pop("type", None)
    cls = EVENT_TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise UnknownEventTypeError(f"unknown event type {type_name!r}", **_where(data))
    schema = data.pop("schema", 1)
    if schema == cls.schema_version:
        decoder = _DECODERS.get(cls) or _DECODERS.setdefault(cls, _compile_decoder(cls))
        try:
            return decoder(data)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            message = f"cannot decode {type_name}: {type(error).__name__}: {error}"
            raise CorruptEventError(message, **_where(data)) from error
    where = _where(data)
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
    data["schema"] = schema
    data["type"] = type_name
    return _decode(data)


_DECODERS: dict[type[Event], Callable[[dict[str, Any]], Event]] = {}


def _text(value: Any) -> str:
    if value.__class__ is not str:
        raise TypeError(f"expected a string, not {value!r}")
    return value


def _integer(value: Any) -> int:
    if value.__class__ is not int:
        raise TypeError(f"expected an integer, not {value!r}")
    return value


def _flag(value: Any) -> bool:
    if value.__class__ is not bool:
        raise TypeError(f"expected true or false, not {value!r}")
    return value


def _optional_flag(value: Any) -> bool | None:
    return None if value is None else _flag(value)


def _moment(value: Any) -> datetime:
    parsed = datetime.fromisoformat(_text(value))
    if parsed.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}")
    return parsed


_FIELD_DECODERS: dict[Any, Callable[[Any], Any]] = {
    str: _text,
    int: _integer,
    bool: _flag,
    bool | None: _optional_flag,
    datetime: _moment,
}


def _compile_decoder(cls: type[Event]) -> Callable[[dict[str, Any]], Event]:
    """Build a decoder for one event class: each field checked for its type, then the frozen
    event filled in directly. Types without a fast check go through the cattrs converter."""
    attrs.resolve_types(cls)
    namespace: dict[str, Any] = {
        "new_object": object.__new__,
        "set_attribute": object.__setattr__,
        "cls": cls,
    }
    lines = ["def decode(data):", "    event = new_object(cls)"]
    for index, field in enumerate(attrs.fields(cls)):
        check = _FIELD_DECODERS.get(field.type)
        if check is None:
            check = partial(_converter.structure, cl=field.type)
        namespace[f"check_{index}"] = check
        if field.default is attrs.NOTHING:
            value = f"check_{index}(data[{field.name!r}])"
        else:
            namespace[f"default_{index}"] = field.default
            value = (
                f"check_{index}(data[{field.name!r}]) if {field.name!r} in data "
                f"else default_{index}"
            )
        lines.append(f"    set_attribute(event, {field.name!r}, {value})")
    lines.append("    return event")
    exec("\n".join(lines), namespace)  # the same technique attrs uses for its own methods
    decoder: Callable[[dict[str, Any]], Event] = namespace["decode"]
    return decoder


def dumps_event(event: Event) -> str:
    """Return ``event`` as compact JSON."""
    return json.dumps(event_to_dict(event), separators=(",", ":"), sort_keys=True)


def loads_event(text: str | bytes) -> Event:
    """Parse an event written by :func:`dumps_event`.

    Raises:
        CorruptEventError: the text is not a JSON object or not a valid event.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        # The scanner json.loads runs, minus its wrappers: stored events are read in bulk.
        record, end = _scan_json(text, 0)
    except (StopIteration, ValueError) as error:
        raise CorruptEventError(f"stored event is not JSON: {error!r}") from error
    if end != len(text) and text[end:].strip():
        raise CorruptEventError("stored event has data after its JSON object")
    if not isinstance(record, dict):
        raise CorruptEventError("stored event is not a JSON object")
    return _decode(record)


_scan_json = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def incident_to_dict(incident: Incident) -> dict[str, Any]:
    """Return ``incident`` as a JSON-ready dict."""
    result: dict[str, Any] = _converter.unstructure(incident)
    return result


def incident_from_dict(record: Mapping[str, Any]) -> Incident:
    """Build an incident from a dict made by :func:`incident_to_dict`."""
    return _converter.structure(dict(record), Incident)

"""The record's JSON Schema (draft 2020-12), generated from its one definition in shapes.py.

Published as docs/room-event.schema.json; regenerate it with `python -m service.events.record`.
"""

import types
import typing
from typing import Any, Union

import msgspec
import orjson

from service.events.shapes import ADDED_IN_V2, END_REASONS, PROVIDERS, SCHEMA_VERSION, RoomEvent

SCHEMA_ID = "https://roomevents.dev/schemas/room-event/v2.json"
SCHEMA_PATH = "docs/room-event.schema.json"

_SCALARS = {str: "string", int: "integer", bool: "boolean", float: "number"}
_STRUCTURE = ("properties", "required", "additionalProperties", "items")


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__total__")


def _type_schema(tp: Any) -> dict[str, Any]:
    """The JSON Schema of a Python type as used in shapes.py (no descriptions)."""
    if tp is Any:
        return {}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) < len(args):  # Optional[...]: null is one more JSON type
            inner = _type_schema(members[0] if len(members) == 1 else Union[tuple(members)])
            return {**inner, "type": [inner["type"], "null"]}
        return {"oneOf": [_type_schema(a) for a in members]}
    if origin is typing.Annotated:
        return _type_schema(args[0])
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0])}
    if origin is dict:
        values = _type_schema(args[1])
        return {"type": "object", **({"additionalProperties": values} if values else {})}
    if _is_typeddict(tp):
        return _object_schema(tp)
    return {"type": _SCALARS[tp]}


def _object_schema(typed_dict: type) -> dict[str, Any]:
    """Every key listed and required (null when it does not apply), nothing else allowed."""
    properties = {
        name: _field_schema(hint) for name, hint in typing.get_type_hints(typed_dict, include_extras=True).items()
    }
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _field_schema(hint: Any) -> dict[str, Any]:
    meta = next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, msgspec.Meta)), None)
    derived = _type_schema(hint)
    head = {k: v for k, v in derived.items() if k not in _STRUCTURE}
    tail = {k: v for k, v in derived.items() if k in _STRUCTURE}
    extra = dict(meta.extra_json_schema or {}) if meta is not None else {}
    if "enum" in extra or "const" in extra:
        head.pop("type", None)
    out = {**head, **extra}
    if meta is not None and meta.description:
        out["description"] = meta.description
    return {**out, **tail}


def json_schema() -> dict[str, Any]:
    """The record's JSON Schema, published as docs/room-event.schema.json.

    Exact for this schema_version: every field is listed and required (null when it does not
    apply). Adding a field is a backwards-compatible change within a version; removing or retyping
    one bumps SCHEMA_VERSION. Records of version 1 validate too: they lack only ADDED_IN_V2.
    """
    record = _object_schema(RoomEvent)
    always = [name for name in record["required"] if name not in ADDED_IN_V2]
    others = [p for p in PROVIDERS if p != "twilio"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "roomevents room-event record",
        "description": "One record on the room-events topic (value, orjson-encoded UTF-8 JSON). Generated "
        "from service/events/shapes.py by service/events/schema.py; see docs/events.md.",
        "type": "object",
        "required": always,
        "additionalProperties": False,
        "properties": record["properties"],
        "allOf": [
            # The current version has every field; version 1 lacks the provider fields (it is twilio's).
            {
                "if": {"properties": {"schema_version": {"const": SCHEMA_VERSION}}},
                "then": {"required": list(ADDED_IN_V2)},
                "else": {"not": {"anyOf": [{"required": [name]} for name in ADDED_IN_V2]}},
            },
            # Twilio's records and roomevents' own commands and timers carry no native ids; the other
            # providers' webhooks carry theirs.
            {
                "if": {
                    "anyOf": [
                        {"properties": {"provider": {"const": "twilio"}}, "required": ["provider"]},
                        {"properties": {"source": {"enum": ["api", "timer"]}}},
                    ]
                },
                "then": {"properties": {"native": {"const": None}}},
            },
            {
                "if": {
                    "properties": {"provider": {"enum": others}, "source": {"const": "callback"}},
                    "required": ["provider", "source"],
                },
                "then": {"properties": {"native": {"type": "object"}}, "required": ["native"]},
            },
            # Commands and timers only ever create or end rooms.
            {
                "if": {"properties": {"source": {"const": "api"}}},
                "then": {"properties": {"type": {"enum": ["room-created", "room-ended"]}}},
            },
            {
                "if": {"properties": {"source": {"const": "timer"}}},
                "then": {"properties": {"type": {"const": "room-ended"}, "end_reason": {"const": "timeout"}}},
            },
            {
                "if": {"properties": {"source": {"const": "callback"}}},
                "then": {"properties": {"config": {"const": None}}},
            },
            # end_reason is set exactly on room-ended.
            {
                "if": {"properties": {"type": {"const": "room-ended"}}},
                "then": {"properties": {"end_reason": {"enum": list(END_REASONS)}}},
                "else": {"properties": {"end_reason": {"const": None}}},
            },
        ],
    }


def schema_text() -> str:
    """The published schema file's exact content."""
    return orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n"

"""Normalization of create-room input to the form shape ``{Param: [str, ...]}``: a form body as it is,
a JSON body with real JSON types turned into the strings a form would carry (see params.py)."""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

from service.rooms.limits import (
    E_CALLBACK,
    E_CALLBACK_METHOD,
    E_MAX_PARTICIPANTS,
    E_MEDIA_REGION,
    E_NAME_CHARS,
    E_NAME_INVALID,
    E_PARAMS,
    E_PARTICIPANT_DURATION,
    E_RECORDING_RULES,
    E_TIMEOUT,
    E_TYPE,
    error,
    invalid,
    shape_error,
)

# Parameter kinds (drive JSON normalization) and the code used when a value has the wrong shape.
STR, _INT, _BOOL, _LIST, _JSON = "str", "int", "bool", "list", "json"
PARAMS: dict[str, tuple[str, int]] = {
    "Type": (STR, E_TYPE),
    "UniqueName": (STR, E_NAME_INVALID),
    "StatusCallback": (STR, E_CALLBACK),
    "StatusCallbackMethod": (STR, E_CALLBACK_METHOD),
    "MaxParticipants": (_INT, E_MAX_PARTICIPANTS),
    "MaxParticipantDuration": (_INT, E_PARTICIPANT_DURATION),
    "EmptyRoomTimeout": (_INT, E_TIMEOUT),
    "UnusedRoomTimeout": (_INT, E_TIMEOUT),
    "AudioOnly": (_BOOL, E_PARAMS),
    "EnableTurn": (_BOOL, E_PARAMS),
    "LargeRoom": (_BOOL, E_PARAMS),
    "RecordParticipantsOnConnect": (_BOOL, E_PARAMS),
    "VideoCodecs": (_LIST, E_PARAMS),
    "MediaRegion": (STR, E_MEDIA_REGION),
    "RecordingRules": (_JSON, E_RECORDING_RULES),
}

_JSON_TYPE_NAMES = {
    dict: "an object",
    list: "an array",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
}


def normalize_form(form: Any, known: Mapping[str, tuple[str, int]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    getall = getattr(form, "getall", None)
    for key in form.keys():
        if key not in known or key in out:
            continue  # unknown parameters are ignored, as Twilio does
        raw = getall(key) if callable(getall) else form[key]
        if isinstance(raw, (str, bytes)):
            raw = [raw]
        code = known[key][1]
        values: list[str] = []
        for item in raw:
            if isinstance(item, bytes):
                try:
                    item = item.decode("utf-8")
                except UnicodeDecodeError:
                    raise shape_error(
                        E_NAME_CHARS if key == "UniqueName" else code, f"{key} is not valid UTF-8"
                    ) from None
            if not isinstance(item, str):
                raise shape_error(code, f"{key} must be a string value")
            values.append(item)
        out[key] = values
    return out


def normalize_json(body: Any) -> dict[str, list[str]]:
    if not isinstance(body, Mapping):
        raise invalid("the JSON request body must be an object")
    out: dict[str, list[str]] = {}
    for key, value in body.items():
        if key not in PARAMS or value is None:
            continue
        kind, code = PARAMS[key]
        if kind == _JSON:
            out[key] = [value if isinstance(value, str) else _json_dumps(value, key)]
        elif kind == _LIST:
            items = value if isinstance(value, list) else [value]
            out[key] = [_json_scalar(key, STR, code, item) for item in items if item is not None]
        else:
            out[key] = [_json_scalar(key, kind, code, value)]
    return out


def _json_dumps(value: Any, key: str) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise error(E_RECORDING_RULES, f"{key} is not valid JSON") from None


def _json_scalar(key: str, kind: str, code: int, value: Any) -> str:
    if isinstance(value, str):
        return value  # strings are tolerated everywhere, exactly as in the form
    if kind == _BOOL and isinstance(value, bool):
        return "true" if value else "false"
    if kind == _INT and not isinstance(value, bool):
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            if math.isfinite(value) and value.is_integer():
                return str(int(value))
            return repr(value)  # e.g. "1.5": rejected by the integer check with the right message
    found = _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
    wanted = {STR: "a string", _INT: "an integer", _BOOL: "a boolean (true or false)"}[kind]
    raise shape_error(code, f"{key} must be {wanted}, got {found}")

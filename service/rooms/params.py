"""Create-room parameters (``POST /v1/Rooms``) and the room update status: parsing and validation.

Pure domain code: no aiohttp, no aiokafka, no I/O. Every validation failure raises
:class:`~service.rooms.errors.TwilioError` with HTTP status 400 and a Twilio Video error code.

One validation path
-------------------
Both entry points first *normalize* their input to the form shape ``{Param: [str, ...]}`` (the
shape Twilio's SDKs send: repeated keys for lists, ``"true"``/``"false"`` for booleans, JSON text
for ``RecordingRules``), then :func:`_validate` runs once on that shape.

* :func:`parse_create_form` - ``application/x-www-form-urlencoded`` body; each key maps to the list
  of its values (a plain ``str`` value, or a multidict with ``getall``, is accepted too). For
  scalar parameters the first value wins; empty values are skipped.
* :func:`parse_create_json` - a JSON object shaped like the seed's "Request example": real JSON
  types (booleans, integers, ``VideoCodecs`` an array, ``RecordingRules`` an array/object or its
  JSON text). Strings are tolerated wherever the form would accept them (``"42"``, ``"true"``).
  A JSON type that cannot mean the parameter (an object for ``Type``, ``true`` for
  ``MaxParticipants``, a number for ``UniqueName``, an array for a scalar) is rejected with that
  parameter's error code. ``null`` means "not given".

Documented choices (where the seed and ``twilio-video.md`` leave room)
---------------------------------------------------------------------
* Empty values: an empty string for any parameter (``UniqueName=``, ``StatusCallback=``,
  ``MaxParticipants=``...) means "not given" and the default applies. ``UniqueName`` is then
  ``None`` and the room resource shows its SID.
* Defaults per type: ``max_participants`` group 50, peer-to-peer 10, group-small 4, go 2 - also the
  upper bound (the 2020 50-100 "large room" pilot is not modelled: ``LargeRoom`` does not raise it).
* ``max_concurrent_published_tracks`` (derived, not a request parameter; spec examples in
  twilio-video.md 3.4): peer-to-peer and go 0 (= unconstrained, media does not flow through
  Twilio); otherwise 16 when ``LargeRoom=true``, else 170.
* ``video_codecs``: ``[]`` when ``AudioOnly=true`` (given codecs are still validated, then dropped,
  as Twilio's examples show ``[]`` for audio-only rooms); otherwise the given codecs in order without
  duplicates, or ``["VP8"]`` when none were given (every spec example, peer-to-peer included).
  Codec names are accepted case-insensitively (``vp8``) and normalized; one value may also carry a
  comma list (``VP8,H264``).
* ``media_region``: ``None`` for peer-to-peer (no media server; the parameter is rejected there),
  ``"us1"`` for group, group-small and go (spec examples). Given values must be one of Twilio's
  Video regions (:data:`MEDIA_REGIONS`, case-insensitive, normalized to lower case) else 53115 -
  so the seed's placeholder ``MediaRegion=string`` is rejected.
* peer-to-peer only (the seed says "not available in peer-to-peer rooms") rejects ``MediaRegion``,
  ``RecordParticipantsOnConnect=true`` and non-empty ``VideoCodecs`` with 53114; ``go`` rooms accept
  them, as the seed names only peer-to-peer. ``RecordParticipantsOnConnect=false`` is fine anywhere.
* ``AudioOnly=true`` only for ``Type=group`` (not group-small) else 53124; ``false`` is fine anywhere.
* Malformed booleans (``AudioOnly=yes``), unknown or non-string codecs and a JSON body that is not
  an object use 53114 (twilio-video.js ``RoomInvalidParametersError``), message prefix
  "Room creation parameter(s) invalid"; the Video range has no dedicated code for them. Type
  incompatibilities use the same code with Twilio's phrase "Room creation parameter(s) incompatible
  with the Room type". Booleans accept ``true``/``false`` in any case, nothing else.
* Integers: ASCII digits with an optional sign (surrounding whitespace ignored); ``"1.5"``,
  ``"1e3"``, ``"٥"`` are not integers. JSON ``5.0`` counts as 5. Non-integers get the same code as
  out-of-range values (53107 / 53109 / 53123).
* ``MaxParticipantDuration``: 1..86400 seconds. No documented lower bound exists in the references
  (some sources mention 600 for the Console setting; unverified), so 1 is used
  (:data:`MIN_PARTICIPANT_DURATION`).
* ``UniqueName``: at most 128 characters (code points) else 53101; surrogates, C0/C1 control
  characters and U+FFFD (what the HTTP layer's UTF-8 decoder substitutes for invalid bytes) -> 53102;
  a name shaped like a Room SID (``RM`` + 32 hex) -> 53100, because names and SIDs share the
  ``/v1/Rooms/{Sid}`` path and the partition key (``unique_name`` defaults to the SID). Not stripped.
* ``StatusCallback``: absolute ``http``/``https`` URL with a host (credentials, port, query and a
  ``#`` connection-override fragment allowed); no whitespace or control characters -> else 53111.
* ``StatusCallbackMethod``: HEAD/GET/POST/PATCH/PUT/DELETE (the seed wins over the spec's GET/POST),
  case-insensitive, normalized to upper case, default POST -> else 53110.
* ``Type`` is case-sensitive (``Group`` -> 53108), like the enum.
* ``RecordingRules``: JSON array of rules, or ``{"rules": [...]}``. A rule is an object with
  ``type`` ``include``/``exclude`` and at least one filter: ``all`` (``true``), ``publisher``,
  ``track`` (non-empty strings), ``kind`` (``audio``/``video``/``data``); ``all`` cannot be combined
  with other filters; unknown keys are rejected (a misspelt filter would widen the rule).
  Percent-encoded JSON (as in the OpenAPI example ``%5B%7B...``) is decoded once. Anything else
  -> 53120. The parsed value is kept as given (list or dict). Accepted for every room type.
* ``EnableTurn`` must be a boolean if given; the result is always ``True``.
* Unknown parameters are ignored (Twilio may add parameters), including the spec's
  ``TranscribeParticipantsOnConnect``/``TranscriptionsConfiguration`` which the seed does not list.
* Validation order (first error wins): Type, UniqueName, StatusCallback, StatusCallbackMethod,
  MaxParticipants, MaxParticipantDuration, EmptyRoomTimeout, UnusedRoomTimeout, boolean formats,
  AudioOnly vs type, VideoCodecs values, peer-to-peer incompatibilities, MediaRegion value,
  RecordingRules. E.g. the seed's example (Type=go, MaxParticipants=42, AudioOnly=true) -> 53107.
"""
from __future__ import annotations

import copy
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence
from urllib.parse import unquote, urlsplit

from .errors import TwilioError

__all__ = [
    "ROOM_TYPES",
    "CALLBACK_METHODS",
    "VIDEO_CODECS",
    "MEDIA_REGIONS",
    "MAX_PARTICIPANTS",
    "RESOURCE_KEYS",
    "RoomParams",
    "parse_create_form",
    "parse_create_json",
    "parse_update_status",
]

ROOM_TYPES = ("go", "peer-to-peer", "group-small", "group")
CALLBACK_METHODS = ("HEAD", "GET", "POST", "PATCH", "PUT", "DELETE")
VIDEO_CODECS = ("VP8", "H264")
#: Twilio Video media regions (docs: "Video Regions and Global Low Latency").
MEDIA_REGIONS = ("gll", "au1", "br1", "de1", "ie1", "in1", "jp1", "sg1", "us1", "us2")
RECORDING_RULE_TYPES = ("include", "exclude")
RECORDING_RULE_KINDS = ("audio", "video", "data")

DEFAULT_TYPE = "group"
#: Default and maximum MaxParticipants per room type.
MAX_PARTICIPANTS = {"group": 50, "peer-to-peer": 10, "group-small": 4, "go": 2}
DEFAULT_STATUS_CALLBACK_METHOD = "POST"
DEFAULT_MAX_PARTICIPANT_DURATION = 14_400
MIN_PARTICIPANT_DURATION = 1
MAX_PARTICIPANT_DURATION = 86_400
DEFAULT_ROOM_TIMEOUT = 5
MIN_ROOM_TIMEOUT = 1
MAX_ROOM_TIMEOUT = 60
DEFAULT_VIDEO_CODECS = ("VP8",)
DEFAULT_MEDIA_REGION = "us1"
MAX_UNIQUE_NAME_LENGTH = 128
#: max_concurrent_published_tracks: regular group rooms, large rooms, peer-to-peer topologies.
PUBLISHED_TRACKS_GROUP = 170
PUBLISHED_TRACKS_LARGE = 16
PUBLISHED_TRACKS_P2P = 0
P2P_TYPES = ("peer-to-peer", "go")  # media flows peer to peer: no track limit on Twilio's side

UPDATE_STATUSES = ("completed",)

#: Keys of RoomParams.to_dict() that are fields of Twilio's room resource (all but recording_rules).
RESOURCE_KEYS = (
    "type",
    "unique_name",
    "status_callback",
    "status_callback_method",
    "max_participants",
    "max_participant_duration",
    "max_concurrent_published_tracks",
    "record_participants_on_connect",
    "video_codecs",
    "media_region",
    "audio_only",
    "empty_room_timeout",
    "unused_room_timeout",
    "large_room",
    "enable_turn",
)

# ---------------------------------------------------------------------------------------------
# Error codes and Twilio's canonical phrases (twilio-video.md 3.6 / twilio-video.js error enum).

E_NAME_INVALID = 53100
E_NAME_TOO_LONG = 53101
E_NAME_CHARS = 53102
E_MAX_PARTICIPANTS = 53107
E_TYPE = 53108
E_TIMEOUT = 53109
E_CALLBACK_METHOD = 53110
E_CALLBACK = 53111
E_STATUS = 53112
E_PARAMS = 53114
E_MEDIA_REGION = 53115
E_RECORDING_RULES = 53120
E_PARTICIPANT_DURATION = 53123
E_AUDIO_ONLY = 53124

_PHRASE = {
    E_NAME_INVALID: "Room name is invalid",
    E_NAME_TOO_LONG: "Room name is too long",
    E_NAME_CHARS: "Room name contains invalid characters",
    E_MAX_PARTICIPANTS: "MaxParticipants is out of range",
    E_TYPE: "RoomType is not valid",
    E_TIMEOUT: "Timeout is out of range",
    E_CALLBACK_METHOD: "StatusCallbackMethod is invalid",
    E_CALLBACK: "StatusCallback is invalid",
    E_STATUS: "Status is invalid",
    E_PARAMS: "Room creation parameter(s) incompatible with the Room type",
    E_MEDIA_REGION: "MediaRegion is invalid",
    E_RECORDING_RULES: "Invalid Recording Rule(s)",
    E_PARTICIPANT_DURATION: "MaxParticipantDuration is out of range",
    E_AUDIO_ONLY: "The AudioOnly flag is not supported for the Room type",
}


#: 53114 also covers malformed values that have no dedicated code (twilio-video.js names it
#: RoomInvalidParametersError); those get this phrase instead.
_INVALID_PHRASE = "Room creation parameter(s) invalid"


def _error(code: int, detail: str, phrase: str | None = None) -> TwilioError:
    return TwilioError(code, f"{phrase or _PHRASE[code]}: {detail}", 400)


def _invalid(detail: str) -> TwilioError:
    return _error(E_PARAMS, detail, _INVALID_PHRASE)


def _shape_error(code: int, detail: str) -> TwilioError:
    """A value of the wrong shape, reported with its parameter's code."""
    return _invalid(detail) if code == E_PARAMS else _error(code, detail)


def _show(value: str, limit: int = 64) -> str:
    """Quote a client value for an error message: escaped, and cut if long."""
    if len(value) > limit:
        value = value[: limit - 3] + "..."
    return repr(value)


# Parameter kinds (drive JSON normalization) and the code used when a value has the wrong shape.
_STR, _INT, _BOOL, _LIST, _JSON = "str", "int", "bool", "list", "json"
_PARAMS: dict[str, tuple[str, int]] = {
    "Type": (_STR, E_TYPE),
    "UniqueName": (_STR, E_NAME_INVALID),
    "StatusCallback": (_STR, E_CALLBACK),
    "StatusCallbackMethod": (_STR, E_CALLBACK_METHOD),
    "MaxParticipants": (_INT, E_MAX_PARTICIPANTS),
    "MaxParticipantDuration": (_INT, E_PARTICIPANT_DURATION),
    "EmptyRoomTimeout": (_INT, E_TIMEOUT),
    "UnusedRoomTimeout": (_INT, E_TIMEOUT),
    "AudioOnly": (_BOOL, E_PARAMS),
    "EnableTurn": (_BOOL, E_PARAMS),
    "LargeRoom": (_BOOL, E_PARAMS),
    "RecordParticipantsOnConnect": (_BOOL, E_PARAMS),
    "VideoCodecs": (_LIST, E_PARAMS),
    "MediaRegion": (_STR, E_MEDIA_REGION),
    "RecordingRules": (_JSON, E_RECORDING_RULES),
}

_JSON_TYPE_NAMES = {dict: "an object", list: "an array", bool: "a boolean", int: "a number",
                    float: "a number", str: "a string"}


# ---------------------------------------------------------------------------------------------
# The value object


@dataclass(frozen=True, slots=True)
class RoomParams:
    """Validated create-room parameters, with every default applied."""

    type: str
    unique_name: str | None
    status_callback: str | None
    status_callback_method: str
    max_participants: int
    max_participant_duration: int
    empty_room_timeout: int
    unused_room_timeout: int
    audio_only: bool
    large_room: bool
    record_participants_on_connect: bool
    video_codecs: tuple[str, ...]
    media_region: str | None
    recording_rules: dict | list | None = field(hash=False)
    enable_turn: bool
    max_concurrent_published_tracks: int

    def to_dict(self) -> dict:
        """Snake_case keys as the Twilio room resource names them (:data:`RESOURCE_KEYS`), lists not
        tuples, plus ``recording_rules`` (not a resource field: drop it when rendering the room)."""
        return {
            "type": self.type,
            "unique_name": self.unique_name,
            "status_callback": self.status_callback,
            "status_callback_method": self.status_callback_method,
            "max_participants": self.max_participants,
            "max_participant_duration": self.max_participant_duration,
            "max_concurrent_published_tracks": self.max_concurrent_published_tracks,
            "record_participants_on_connect": self.record_participants_on_connect,
            "video_codecs": list(self.video_codecs),
            "media_region": self.media_region,
            "audio_only": self.audio_only,
            "empty_room_timeout": self.empty_room_timeout,
            "unused_room_timeout": self.unused_room_timeout,
            "large_room": self.large_room,
            "enable_turn": self.enable_turn,
            "recording_rules": copy.deepcopy(self.recording_rules),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RoomParams":
        """Inverse of :meth:`to_dict` (e.g. when reading an event record back). Trusts its input."""
        return cls(
            type=data["type"],
            unique_name=data.get("unique_name"),
            status_callback=data.get("status_callback"),
            status_callback_method=data["status_callback_method"],
            max_participants=data["max_participants"],
            max_participant_duration=data["max_participant_duration"],
            empty_room_timeout=data["empty_room_timeout"],
            unused_room_timeout=data["unused_room_timeout"],
            audio_only=data["audio_only"],
            large_room=data["large_room"],
            record_participants_on_connect=data["record_participants_on_connect"],
            video_codecs=tuple(data.get("video_codecs") or ()),
            media_region=data.get("media_region"),
            recording_rules=copy.deepcopy(data.get("recording_rules")),
            enable_turn=True,
            max_concurrent_published_tracks=data["max_concurrent_published_tracks"],
        )


# ---------------------------------------------------------------------------------------------
# Entry points


def parse_create_form(form: Mapping[str, Sequence[str]]) -> RoomParams:
    """Validate a form-encoded ``POST /v1/Rooms`` body (each key -> list of its values)."""
    return _validate(_normalize_form(form, _PARAMS))


def parse_create_json(body: Mapping[str, Any]) -> RoomParams:
    """Validate a JSON ``POST /v1/Rooms`` body shaped like the seed's request example."""
    return _validate(_normalize_json(body))


def parse_update_status(form: Mapping[str, Sequence[str]]) -> str:
    """``POST /v1/Rooms/{Sid}``: ``Status`` must be ``completed`` (case-insensitive) -> ``"completed"``."""
    values = _normalize_form(form, {"Status": (_STR, E_STATUS)}).get("Status", [])
    status = _first(values)
    if status is None:
        raise _error(E_STATUS, "Status is required and must be 'completed'")
    if status.strip().lower() not in UPDATE_STATUSES:
        raise _error(E_STATUS, f"Status {_show(status)} is not supported, it must be 'completed'")
    return "completed"


# ---------------------------------------------------------------------------------------------
# Normalization to {Param: [str, ...]}


def _normalize_form(form: Any, known: Mapping[str, tuple[str, int]]) -> dict[str, list[str]]:
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
                    raise _shape_error(E_NAME_CHARS if key == "UniqueName" else code,
                                       f"{key} is not valid UTF-8") from None
            if not isinstance(item, str):
                raise _shape_error(code, f"{key} must be a string value")
            values.append(item)
        out[key] = values
    return out


def _normalize_json(body: Any) -> dict[str, list[str]]:
    if not isinstance(body, Mapping):
        raise _invalid("the JSON request body must be an object")
    out: dict[str, list[str]] = {}
    for key, value in body.items():
        if key not in _PARAMS or value is None:
            continue
        kind, code = _PARAMS[key]
        if kind == _JSON:
            out[key] = [value if isinstance(value, str) else _json_dumps(value, key)]
        elif kind == _LIST:
            items = value if isinstance(value, list) else [value]
            out[key] = [_json_scalar(key, _STR, code, item) for item in items if item is not None]
        else:
            out[key] = [_json_scalar(key, kind, code, value)]
    return out


def _json_dumps(value: Any, key: str) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise _error(E_RECORDING_RULES, f"{key} is not valid JSON") from None


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
    wanted = {_STR: "a string", _INT: "an integer", _BOOL: "a boolean (true or false)"}[kind]
    raise _shape_error(code, f"{key} must be {wanted}, got {found}")


# ---------------------------------------------------------------------------------------------
# Validation (the single path)


def _first(values: Sequence[str] | None) -> str | None:
    """First non-empty value: empty strings mean "not given"."""
    for value in values or ():
        if value != "":
            return value
    return None


_INT_RE = re.compile(r"[+-]?[0-9]{1,18}")


def _parse_int(text: str) -> int | None:
    text = text.strip()
    return int(text) if _INT_RE.fullmatch(text) else None


def _int_param(norm: Mapping[str, list[str]], key: str, default: int, low: int, high: int,
               code: int, explain: str) -> int:
    text = _first(norm.get(key))
    if text is None:
        return default
    value = _parse_int(text)
    if value is None or not low <= value <= high:
        raise _error(code, f"{key} {_show(text)} {explain}")
    return value


def _bool_param(norm: Mapping[str, list[str]], key: str) -> bool | None:
    text = _first(norm.get(key))
    if text is None:
        return None
    token = text.strip().lower()
    if token == "true":
        return True
    if token == "false":
        return False
    raise _invalid(f"{key} {_show(text)} is not a boolean, use true or false")


def _validate(norm: Mapping[str, list[str]]) -> RoomParams:
    # Type
    room_type = _first(norm.get("Type"))
    if room_type is None:
        room_type = DEFAULT_TYPE
    elif room_type.strip() not in ROOM_TYPES:
        raise _error(E_TYPE, f"Type {_show(room_type)} is not one of {', '.join(ROOM_TYPES)}")
    room_type = room_type.strip()

    unique_name = _unique_name(_first(norm.get("UniqueName")))
    status_callback = _status_callback(_first(norm.get("StatusCallback")))

    # StatusCallbackMethod
    method = _first(norm.get("StatusCallbackMethod"))
    if method is None:
        method = DEFAULT_STATUS_CALLBACK_METHOD
    elif method.strip().upper() in CALLBACK_METHODS:
        method = method.strip().upper()
    else:
        raise _error(E_CALLBACK_METHOD, f"StatusCallbackMethod {_show(method)} is not one of "
                                        f"{', '.join(CALLBACK_METHODS)}")

    limit = MAX_PARTICIPANTS[room_type]
    max_participants = _int_param(
        norm, "MaxParticipants", limit, 1, limit, E_MAX_PARTICIPANTS,
        f"must be an integer from 1 to {limit} for Type {room_type}")
    max_participant_duration = _int_param(
        norm, "MaxParticipantDuration", DEFAULT_MAX_PARTICIPANT_DURATION,
        MIN_PARTICIPANT_DURATION, MAX_PARTICIPANT_DURATION, E_PARTICIPANT_DURATION,
        f"must be an integer number of seconds from {MIN_PARTICIPANT_DURATION} "
        f"to {MAX_PARTICIPANT_DURATION}")
    timeouts = [
        _int_param(norm, key, DEFAULT_ROOM_TIMEOUT, MIN_ROOM_TIMEOUT, MAX_ROOM_TIMEOUT, E_TIMEOUT,
                   f"must be a whole number of minutes from {MIN_ROOM_TIMEOUT} "
                   f"to {MAX_ROOM_TIMEOUT}")
        for key in ("EmptyRoomTimeout", "UnusedRoomTimeout")
    ]

    audio_only = _bool_param(norm, "AudioOnly") or False
    _bool_param(norm, "EnableTurn")  # validated, then ignored: always true
    large_room = _bool_param(norm, "LargeRoom") or False
    record = _bool_param(norm, "RecordParticipantsOnConnect") or False

    if audio_only and room_type != "group":
        raise _error(E_AUDIO_ONLY, f"AudioOnly=true needs Type group, got Type {room_type}")

    codecs = _video_codecs(norm.get("VideoCodecs"))
    region = _first(norm.get("MediaRegion"))

    if room_type == "peer-to-peer":
        for given, name in ((region is not None, "MediaRegion"),
                            (record, "RecordParticipantsOnConnect=true"),
                            (bool(codecs), "VideoCodecs")):
            if given:
                raise _error(E_PARAMS, f"{name} is not available for Type peer-to-peer")

    if region is None:
        region = None if room_type == "peer-to-peer" else DEFAULT_MEDIA_REGION
    elif region.strip().lower() in MEDIA_REGIONS:
        region = region.strip().lower()
    else:
        raise _error(E_MEDIA_REGION, f"MediaRegion {_show(region)} is not one of "
                                     f"{', '.join(MEDIA_REGIONS)}")

    recording_rules = _recording_rules(_first(norm.get("RecordingRules")))

    if audio_only:
        codecs = ()
    elif not codecs:
        codecs = DEFAULT_VIDEO_CODECS

    if room_type in P2P_TYPES:
        tracks = PUBLISHED_TRACKS_P2P
    elif large_room:
        tracks = PUBLISHED_TRACKS_LARGE
    else:
        tracks = PUBLISHED_TRACKS_GROUP

    return RoomParams(
        type=room_type,
        unique_name=unique_name,
        status_callback=status_callback,
        status_callback_method=method,
        max_participants=max_participants,
        max_participant_duration=max_participant_duration,
        empty_room_timeout=timeouts[0],
        unused_room_timeout=timeouts[1],
        audio_only=audio_only,
        large_room=large_room,
        record_participants_on_connect=record,
        video_codecs=codecs,
        media_region=region,
        recording_rules=recording_rules,
        enable_turn=True,
        max_concurrent_published_tracks=tracks,
    )


_SID_RE = re.compile(r"RM[0-9a-fA-F]{32}")


def _bad_name_char(ch: str) -> bool:
    # Cs: lone surrogates (undecodable input); Cc: C0/C1 controls; U+FFFD: replacement character
    # left by a lenient UTF-8 decoder, i.e. the client sent invalid UTF-8.
    return ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cs")


def _unique_name(name: str | None) -> str | None:
    if name is None:
        return None
    if len(name) > MAX_UNIQUE_NAME_LENGTH:
        raise _error(E_NAME_TOO_LONG, f"UniqueName has {len(name)} characters, "
                                      f"the maximum is {MAX_UNIQUE_NAME_LENGTH}")
    if any(_bad_name_char(ch) for ch in name):
        raise _error(E_NAME_CHARS, "UniqueName must be valid UTF-8 text without control "
                                   "characters")
    if _SID_RE.fullmatch(name):
        raise _error(E_NAME_INVALID, "UniqueName must not have the form of a Room SID "
                                     "(RM followed by 32 hex digits)")
    return name


def _status_callback(url: str | None) -> str | None:
    if url is None:
        return None
    url = url.strip()
    if url == "":
        return None
    problem = None
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cs") for ch in url):
        problem = "contains whitespace or control characters"
    else:
        try:
            parts = urlsplit(url)
            _ = parts.port  # raises ValueError on a malformed port
        except ValueError:
            problem = "is not a valid URL"
        else:
            if parts.scheme.lower() not in ("http", "https"):
                problem = "must be an absolute http or https URL"
            elif not parts.hostname:
                problem = "must name a host"
    if problem:
        raise _error(E_CALLBACK, f"StatusCallback {_show(url)} {problem}")
    return url


def _video_codecs(values: Sequence[str] | None) -> tuple[str, ...]:
    codecs: list[str] = []
    for value in values or ():
        for part in value.split(","):
            part = part.strip()
            if part == "":
                continue
            codec = part.upper()
            if codec not in VIDEO_CODECS:
                raise _invalid(f"VideoCodecs value {_show(part)} is not one of "
                               f"{', '.join(VIDEO_CODECS)}")
            if codec not in codecs:
                codecs.append(codec)
    return tuple(codecs)


def _recording_rules(text: str | None) -> dict | list | None:
    if text is None:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = _NOT_JSON
        if text.lstrip().startswith("%"):
            try:
                parsed = json.loads(unquote(text))
            except ValueError:
                pass
    if parsed is _NOT_JSON:
        raise _error(E_RECORDING_RULES, "RecordingRules is not valid JSON")
    if isinstance(parsed, dict):
        extra = sorted(set(parsed) - {"rules"})
        if extra or "rules" not in parsed:
            raise _error(E_RECORDING_RULES, "RecordingRules must be an array of rules or an object "
                                            "with only a \"rules\" array")
        rules = parsed["rules"]
    else:
        rules = parsed
    if not isinstance(rules, list):
        raise _error(E_RECORDING_RULES, "RecordingRules must be an array of rules or an object "
                                        "with a \"rules\" array")
    for index, rule in enumerate(rules):
        _check_rule(index, rule)
    return parsed


_NOT_JSON = object()
_RULE_FILTERS = ("all", "publisher", "track", "kind")


def _check_rule(index: int, rule: Any) -> None:
    where = f"rule {index}"
    if not isinstance(rule, dict):
        raise _error(E_RECORDING_RULES, f"{where} must be an object")
    unknown = sorted(set(rule) - {"type", *_RULE_FILTERS})
    if unknown:
        raise _error(E_RECORDING_RULES, f"{where} has unknown key(s) {', '.join(unknown)}")
    if rule.get("type") not in RECORDING_RULE_TYPES:
        raise _error(E_RECORDING_RULES, f"{where} needs \"type\" include or exclude")
    filters = [name for name in _RULE_FILTERS if name in rule]
    if not filters:
        raise _error(E_RECORDING_RULES, f"{where} needs a filter: all, publisher, track or kind")
    if "all" in rule:
        if rule["all"] is not True:
            raise _error(E_RECORDING_RULES, f"{where}: \"all\" must be true")
        if len(filters) > 1:
            raise _error(E_RECORDING_RULES, f"{where}: \"all\" cannot be combined with other "
                                            "filters")
    for name in ("publisher", "track"):
        if name in rule and (not isinstance(rule[name], str) or rule[name] == ""):
            raise _error(E_RECORDING_RULES, f"{where}: \"{name}\" must be a non-empty string")
    if "kind" in rule and rule["kind"] not in RECORDING_RULE_KINDS:
        raise _error(E_RECORDING_RULES, f"{where}: \"kind\" must be audio, video or data")

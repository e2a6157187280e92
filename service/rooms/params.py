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
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import orjson

from service.rooms import fields
from service.rooms.limits import (
    CALLBACK_METHODS,
    DEFAULT_MAX_PARTICIPANT_DURATION,
    DEFAULT_MEDIA_REGION,
    DEFAULT_ROOM_TIMEOUT,
    DEFAULT_STATUS_CALLBACK_METHOD,
    DEFAULT_TYPE,
    DEFAULT_VIDEO_CODECS,
    E_AUDIO_ONLY,
    E_CALLBACK_METHOD,
    E_MAX_PARTICIPANTS,
    E_MEDIA_REGION,
    E_PARAMS,
    E_PARTICIPANT_DURATION,
    E_STATUS,
    E_TIMEOUT,
    E_TYPE,
    MAX_PARTICIPANT_DURATION,
    MAX_PARTICIPANTS,
    MAX_ROOM_TIMEOUT,
    MEDIA_REGIONS,
    MIN_PARTICIPANT_DURATION,
    MIN_ROOM_TIMEOUT,
    P2P_TYPES,
    PUBLISHED_TRACKS_GROUP,
    PUBLISHED_TRACKS_LARGE,
    PUBLISHED_TRACKS_P2P,
    RESOURCE_KEYS,
    ROOM_TYPES,
    UPDATE_STATUSES,
    VIDEO_CODECS,
    error,
    invalid,
    show,
)
from service.rooms.normalize import PARAMS, STR, normalize_form, normalize_json

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
    return _validate(normalize_form(form, PARAMS))


def parse_create_json(body: Mapping[str, Any]) -> RoomParams:
    """Validate a JSON ``POST /v1/Rooms`` body shaped like the seed's request example."""
    return _validate(normalize_json(body))


def parse_update_status(form: Mapping[str, Sequence[str]]) -> str:
    """``POST /v1/Rooms/{Sid}``: ``Status`` must be ``completed`` (case-insensitive) -> ``"completed"``."""
    values = normalize_form(form, {"Status": (STR, E_STATUS)}).get("Status", [])
    status = _first(values)
    if status is None:
        raise error(E_STATUS, "Status is required and must be 'completed'")
    if status.strip().lower() not in UPDATE_STATUSES:
        raise error(E_STATUS, f"Status {show(status)} is not supported, it must be 'completed'")
    return "completed"


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


def _int_param(
    norm: Mapping[str, list[str]], key: str, default: int, low: int, high: int, code: int, explain: str
) -> int:
    text = _first(norm.get(key))
    if text is None:
        return default
    value = _parse_int(text)
    if value is None or not low <= value <= high:
        raise error(code, f"{key} {show(text)} {explain}")
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
    raise invalid(f"{key} {show(text)} is not a boolean, use true or false")


def _validate(norm: Mapping[str, list[str]]) -> RoomParams:
    # Type
    room_type = _first(norm.get("Type"))
    if room_type is None:
        room_type = DEFAULT_TYPE
    elif room_type.strip() not in ROOM_TYPES:
        raise error(E_TYPE, f"Type {show(room_type)} is not one of {', '.join(ROOM_TYPES)}")
    room_type = room_type.strip()

    unique_name = fields.unique_name(_first(norm.get("UniqueName")))
    status_callback = fields.status_callback(_first(norm.get("StatusCallback")))

    # StatusCallbackMethod
    method = _first(norm.get("StatusCallbackMethod"))
    if method is None:
        method = DEFAULT_STATUS_CALLBACK_METHOD
    elif method.strip().upper() in CALLBACK_METHODS:
        method = method.strip().upper()
    else:
        raise error(
            E_CALLBACK_METHOD, f"StatusCallbackMethod {show(method)} is not one of {', '.join(CALLBACK_METHODS)}"
        )

    limit = MAX_PARTICIPANTS[room_type]
    max_participants = _int_param(
        norm,
        "MaxParticipants",
        limit,
        1,
        limit,
        E_MAX_PARTICIPANTS,
        f"must be an integer from 1 to {limit} for Type {room_type}",
    )
    max_participant_duration = _int_param(
        norm,
        "MaxParticipantDuration",
        DEFAULT_MAX_PARTICIPANT_DURATION,
        MIN_PARTICIPANT_DURATION,
        MAX_PARTICIPANT_DURATION,
        E_PARTICIPANT_DURATION,
        f"must be an integer number of seconds from {MIN_PARTICIPANT_DURATION} to {MAX_PARTICIPANT_DURATION}",
    )
    timeouts = [
        _int_param(
            norm,
            key,
            DEFAULT_ROOM_TIMEOUT,
            MIN_ROOM_TIMEOUT,
            MAX_ROOM_TIMEOUT,
            E_TIMEOUT,
            f"must be a whole number of minutes from {MIN_ROOM_TIMEOUT} to {MAX_ROOM_TIMEOUT}",
        )
        for key in ("EmptyRoomTimeout", "UnusedRoomTimeout")
    ]

    audio_only = _bool_param(norm, "AudioOnly") or False
    _bool_param(norm, "EnableTurn")  # validated, then ignored: always true
    large_room = _bool_param(norm, "LargeRoom") or False
    record = _bool_param(norm, "RecordParticipantsOnConnect") or False

    if audio_only and room_type != "group":
        raise error(E_AUDIO_ONLY, f"AudioOnly=true needs Type group, got Type {room_type}")

    codecs = fields.video_codecs(norm.get("VideoCodecs"))
    region = _first(norm.get("MediaRegion"))

    if room_type == "peer-to-peer":
        for given, name in (
            (region is not None, "MediaRegion"),
            (record, "RecordParticipantsOnConnect=true"),
            (bool(codecs), "VideoCodecs"),
        ):
            if given:
                raise error(E_PARAMS, f"{name} is not available for Type peer-to-peer")

    if region is None:
        region = None if room_type == "peer-to-peer" else DEFAULT_MEDIA_REGION
    elif region.strip().lower() in MEDIA_REGIONS:
        region = region.strip().lower()
    else:
        raise error(E_MEDIA_REGION, f"MediaRegion {show(region)} is not one of {', '.join(MEDIA_REGIONS)}")

    recording_rules = fields.recording_rules(_first(norm.get("RecordingRules")))

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


def form_from_json(doc: Mapping[str, Any]) -> dict[str, list[str]]:
    """A JSON request body as form parameters (what the event record keeps as `params`): strings
    as they are, other values as their JSON text, and `null` as a parameter not given."""
    return {
        key: [value if isinstance(value, str) else orjson.dumps(value).decode()]
        for key, value in doc.items()
        if value is not None
    }

"""The room-event record: one versioned schema for every record on the events topic.

Both REST commands (source "api"), Twilio status callbacks (source "callback") and the
materializer's timers (source "timer") become this one dict shape, encoded with orjson.
Provider-neutral on purpose: Twilio's raw parameters are kept under `params`, the typed fields
are what consumers read. The JSON Schema in docs/room-event.schema.json is generated from
`json_schema()` below and checked by the tests.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Mapping, Optional, Sequence, TypedDict

import msgspec
import orjson

SCHEMA_VERSION = 1
SCHEMA_ID = "https://roomevents.dev/schemas/room-event/v1.json"

# Documented Twilio room events. Others are kept and published under their own name.
ROOM_EVENTS = (
    "room-created",
    "room-ended",
    "participant-connected",
    "participant-disconnected",
    "track-added",
    "track-removed",
    "track-enabled",
    "track-disabled",
    "recording-started",
    "recording-completed",
    "recording-failed",
)
SOURCES = ("api", "callback", "timer")
END_REASONS = ("api", "timeout", "callback")


class RecordError(ValueError):
    """A record (or callback) that cannot become a valid room event."""


# ---------------------------------------------------------------- time

def parse_timestamp_ms(value: str) -> int:
    """Twilio `Timestamp` (ISO 8601, UTC, usually ms precision with Z) -> epoch milliseconds."""
    text = value.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise RecordError(f"Timestamp {value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(round(parsed.timestamp() * 1000))


def format_ms(ms: int) -> str:
    """Epoch ms -> ISO 8601 UTC with millisecond precision, e.g. 2025-10-27T18:16:01.876Z."""
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def format_twilio_date(ms: int | None) -> str | None:
    """Epoch ms -> the room resource's date format (ISO 8601 UTC, second precision, Z)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- building records

def _first(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    return values[0] if values[0] != "" else None


def _int_or_none(params: Mapping[str, Sequence[str]], name: str) -> int | None:
    value = _first(params, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        try:
            return int(float(value))
        except ValueError:
            return None


def _raw(params: Mapping[str, Sequence[str]]) -> dict[str, str | list[str]]:
    """Parameters as received: one value as a string, repeated keys as a list."""
    return {k: (v[0] if len(v) == 1 else list(v)) for k, v in params.items()}


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
        h.update(b"\x00")
    return h.hexdigest()[:32]


def callback_event_id(params: Mapping[str, Sequence[str]]) -> str:
    """Same callback, same id: a hash of every parameter, independent of order and HTTP method."""
    canonical = orjson.dumps(sorted((k, sorted(v)) for k, v in params.items()))
    return _digest(b"callback", canonical)


def command_event_id(kind: str, room_sid: str) -> str:
    return _digest(b"api", kind.encode(), room_sid.encode())


def timer_event_id(room_sid: str) -> str:
    return _digest(b"timer", b"room-ended", room_sid.encode())


def from_callback(params: Mapping[str, Sequence[str]], received_at_ms: int, *,
                  known_name: str | None = None) -> dict[str, Any]:
    """A Twilio status callback (already signature-checked) -> room-event record.

    `known_name` is the room's unique name as the ingress knows it, used when the callback lacks
    `RoomName`, so the record gets the same key as the room's other records (one fold per room).
    `params` keeps what was received."""
    room_sid = _first(params, "RoomSid")
    event_type = _first(params, "StatusCallbackEvent")
    if not room_sid or not event_type:
        raise RecordError("missing required parameter(s): RoomSid, StatusCallbackEvent")
    timestamp = _first(params, "Timestamp")
    occurred_ms = parse_timestamp_ms(timestamp) if timestamp else received_at_ms
    participant_sid = _first(params, "ParticipantSid")
    track_sid = _first(params, "TrackSid")
    recording_sid = _first(params, "RecordingSid")
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": callback_event_id(params),
        "type": event_type,
        "source": "callback",
        "account_sid": _first(params, "AccountSid"),
        "room_sid": room_sid,
        "room_name": _first(params, "RoomName") or known_name or room_sid,
        "occurred_at": format_ms(occurred_ms),
        "occurred_at_ms": occurred_ms,
        "sequence_number": _int_or_none(params, "SequenceNumber"),
        "received_at": format_ms(received_at_ms),
        "room": {
            "status": _first(params, "RoomStatus"),
            "type": _first(params, "RoomType"),
            "duration": _int_or_none(params, "RoomDuration"),
        },
        "participant": None if not participant_sid else {
            "sid": participant_sid,
            "identity": _first(params, "ParticipantIdentity"),
            "status": _first(params, "ParticipantStatus"),
            "duration": _int_or_none(params, "ParticipantDuration"),
        },
        "track": None if not track_sid else {
            "sid": track_sid,
            "kind": _first(params, "TrackKind"),
            "name": _first(params, "TrackName"),
        },
        "recording": None if not recording_sid else {
            "sid": recording_sid,
            "source_sid": _first(params, "SourceSid"),
            "track_name": _first(params, "TrackName"),
            "uri": _first(params, "RecordingUri"),
            "media_uri": _first(params, "MediaUri"),
            "media_external_location": _first(params, "MediaExternalLocation"),
            "container": _first(params, "Container"),
            "codec": _first(params, "Codec"),
            "type": _first(params, "Type"),
            "duration": _int_or_none(params, "Duration"),
            "size": _int_or_none(params, "Size"),
            "offset_from_twilio_video_epoch": _int_or_none(params, "OffsetFromTwilioVideoEpoch"),
            "failed_operation": _first(params, "FailedOperation"),
        },
        "config": None,
        "end_reason": "callback" if event_type == "room-ended" else None,
        "params": _raw(params),
    }


def _command(kind: str, event_id: str, source: str, account_sid: str, room_sid: str, room_name: str,
             occurred_ms: int, received_at_ms: int, params: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id,
        "type": kind,
        "source": source,
        "account_sid": account_sid,
        "room_sid": room_sid,
        "room_name": room_name,
        "occurred_at": format_ms(occurred_ms),
        "occurred_at_ms": occurred_ms,
        "sequence_number": None,
        "received_at": format_ms(received_at_ms),
        "room": None,
        "participant": None,
        "track": None,
        "recording": None,
        "config": None,
        "end_reason": None,
        "params": _raw(params),
    }


def room_created(account_sid: str, room_sid: str, config: Mapping[str, Any], now_ms: int,
                 params: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """`POST /v1/Rooms` accepted: the room's configuration (snake_case room-resource fields)."""
    name = config.get("unique_name") or room_sid
    record = _command("room-created", command_event_id("room-created", room_sid), "api", account_sid,
                      room_sid, name, now_ms, now_ms, params)
    record["config"] = dict(config)
    record["room"] = {"status": "in-progress", "type": config.get("type"), "duration": None}
    return record


def room_ended(account_sid: str, room_sid: str, room_name: str, now_ms: int, *, reason: str,
               params: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """A room ended by this system: via the API (`Status=completed`) or by a timer."""
    if reason not in ("api", "timeout"):
        raise ValueError(reason)
    source = "api" if reason == "api" else "timer"
    event_id = command_event_id("room-ended", room_sid) if reason == "api" else timer_event_id(room_sid)
    record = _command("room-ended", event_id, source, account_sid, room_sid, room_name, now_ms, now_ms,
                      params or {})
    record["end_reason"] = reason
    record["room"] = {"status": "completed", "type": None, "duration": None}
    return record


def partition_key(record: Mapping[str, Any]) -> bytes:
    """All records of one room and of one unique name share a key, so a partition and an order."""
    return (record.get("room_name") or record["room_sid"]).encode()


# ---------------------------------------------------------------- encoding

def encode(record: Mapping[str, Any]) -> bytes:
    return orjson.dumps(record)


def _checked(record: dict[str, Any]) -> dict[str, Any]:
    """What every consumer must refuse to fold: another schema version, or no identity."""
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RecordError(f"unknown schema_version {version!r}")
    for key in ("event_id", "type", "room_sid", "occurred_at_ms"):
        if record.get(key) in (None, ""):
            raise RecordError(f"record lacks {key}")
    return record


def decode(raw: bytes) -> dict[str, Any]:
    """Bytes from the topic -> record. Raises RecordError for anything a consumer must not fold."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"undecodable record: {exc}") from None
    if not isinstance(record, dict):
        raise RecordError("record is not a JSON object")
    return _checked(record)


class _FoldFields(TypedDict, total=False):
    """The fields the materializer folds. Decoding only these (msgspec skips `params`, times as
    text...) halves the cost of reading a record on the materializer's hot path."""
    schema_version: Any
    event_id: str
    type: str
    source: str
    account_sid: Optional[str]
    room_sid: str
    room_name: Optional[str]
    occurred_at_ms: int
    sequence_number: Optional[int]
    room: Optional[dict]
    participant: Optional[dict]
    track: Optional[dict]
    recording: Optional[dict]
    config: Optional[dict]
    end_reason: Optional[str]


_fold_decoder = msgspec.json.Decoder(_FoldFields)


def decode_for_fold(raw: bytes) -> dict[str, Any]:
    """Like decode(), keeping only what the fold reads. Raises RecordError the same way."""
    try:
        record = _fold_decoder.decode(raw)
    except msgspec.DecodeError as exc:  # invalid JSON, not an object, or a field of the wrong type
        raise RecordError(f"undecodable record: {exc}") from None
    return _checked(record)


# ---------------------------------------------------------------- JSON Schema

SCHEMA_PATH = "docs/room-event.schema.json"
_MS_TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def json_schema() -> dict[str, Any]:
    """The record's JSON Schema (draft 2020-12), published as docs/room-event.schema.json.

    Exact for this schema_version: every field is listed and required (null when it does not
    apply). Adding a field is a backwards-compatible change within a version; removing or retyping
    one bumps SCHEMA_VERSION. Regenerate the file with `python -m service.events.record`.
    """
    def str_or_null(description: str) -> dict[str, Any]:
        return {"type": ["string", "null"], "description": description}

    def int_or_null(description: str) -> dict[str, Any]:
        return {"type": ["integer", "null"], "description": description}

    def obj(description: str, props: dict[str, Any]) -> dict[str, Any]:
        return {"type": ["object", "null"], "description": description, "properties": props,
                "required": list(props), "additionalProperties": False}

    properties: dict[str, Any] = {
        "schema_version": {"const": SCHEMA_VERSION, "description": "Version of this record schema."},
        "event_id": {"type": "string", "pattern": "^[0-9a-f]{32}$",
                     "description": "Deterministic id: the same callback (or command) always gets the same "
                                    "id, so consumers deduplicate by it. Also the CloudEvents `id`."},
        "type": {"type": "string", "minLength": 1,
                 "description": "Room event type: Twilio's StatusCallbackEvent for callbacks (unknown "
                                "values are kept as sent); room-created / room-ended for commands and "
                                "timers. Documented Twilio values: " + ", ".join(ROOM_EVENTS) + "."},
        "source": {"enum": list(SOURCES),
                   "description": "callback: a Twilio status callback; api: a Rooms API command "
                                  "accepted by roomevents; timer: roomevents ended an API-created room "
                                  "after its empty/unused timeout."},
        "account_sid": str_or_null("Twilio account SID (AccountSid); null when a callback did not carry it."),
        "room_sid": {"type": "string", "minLength": 1, "description": "Room SID (RoomSid), RM..."},
        "room_name": {"type": "string", "minLength": 1,
                      "description": "The room's unique name (RoomName); the room SID when it has none. "
                                     "The Kafka message key."},
        "occurred_at": {"type": "string", "format": "date-time", "pattern": _MS_TIME,
                        "description": "When it happened: Twilio's Timestamp (UTC, millisecond precision); "
                                       "the receive time when a callback carried none. Order events by it."},
        "occurred_at_ms": {"type": "integer", "description": "occurred_at as epoch milliseconds."},
        "sequence_number": int_or_null("Twilio's SequenceNumber (internal to Twilio: not an ordering key)."),
        "received_at": {"type": "string", "format": "date-time", "pattern": _MS_TIME,
                        "description": "When roomevents received it (UTC, millisecond precision)."},
        "room": obj("Room fields carried by the event.", {
            "status": str_or_null("RoomStatus: in-progress, completed, failed."),
            "type": str_or_null("RoomType: group, go, peer-to-peer, group-small."),
            "duration": int_or_null("RoomDuration in seconds (room-ended)."),
        }),
        "participant": obj("Participant fields; null unless the event carries a ParticipantSid.", {
            "sid": {"type": "string", "description": "ParticipantSid, PA..."},
            "identity": str_or_null("ParticipantIdentity."),
            "status": str_or_null("ParticipantStatus: connected, disconnected."),
            "duration": int_or_null("ParticipantDuration in seconds (participant-disconnected)."),
        }),
        "track": obj("Track fields; null unless the event carries a TrackSid.", {
            "sid": {"type": "string", "description": "TrackSid, MT..."},
            "kind": str_or_null("TrackKind: audio, video, data."),
            "name": str_or_null("TrackName."),
        }),
        "recording": obj("Recording fields; null unless the event carries a RecordingSid.", {
            "sid": {"type": "string", "description": "RecordingSid, RT..."},
            "source_sid": str_or_null("SourceSid: the recorded track."),
            "track_name": str_or_null("TrackName of the recorded track."),
            "uri": str_or_null("RecordingUri (relative)."),
            "media_uri": str_or_null("MediaUri (recording-completed)."),
            "media_external_location": str_or_null("MediaExternalLocation (recording-completed)."),
            "container": str_or_null("Container: mka, mkv."),
            "codec": str_or_null("Codec: PCMU, OPUS, VP8, H264."),
            "type": str_or_null("Type: audio, video."),
            "duration": int_or_null("Duration in seconds (recording-completed)."),
            "size": int_or_null("Size in bytes (recording-completed)."),
            "offset_from_twilio_video_epoch": int_or_null("OffsetFromTwilioVideoEpoch in milliseconds."),
            "failed_operation": str_or_null("FailedOperation (recording-failed)."),
        }),
        "config": {"type": ["object", "null"],
                   "description": "The room's configuration (room resource fields, snake_case) on an api "
                                  "room-created; null otherwise."},
        "end_reason": {"enum": [*END_REASONS, None],
                       "description": "Why the room ended (room-ended only): callback (Twilio said so), "
                                      "api (Status=completed), timeout (roomevents' timer)."},
        "params": {"type": "object",
                   "description": "Every parameter as received (unknown ones included): one value as a "
                                  "string, a repeated parameter as a list of strings.",
                   "additionalProperties": {"oneOf": [{"type": "string"},
                                                      {"type": "array", "items": {"type": "string"}}]}},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "roomevents room-event record",
        "description": "One record on the room-events topic (value, orjson-encoded UTF-8 JSON). Generated "
                       "from service/events/record.py json_schema(); see docs/events.md.",
        "type": "object",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
        "allOf": [
            # Commands and timers only ever create or end rooms.
            {"if": {"properties": {"source": {"const": "api"}}},
             "then": {"properties": {"type": {"enum": ["room-created", "room-ended"]}}}},
            {"if": {"properties": {"source": {"const": "timer"}}},
             "then": {"properties": {"type": {"const": "room-ended"}, "end_reason": {"const": "timeout"}}}},
            {"if": {"properties": {"source": {"const": "callback"}}},
             "then": {"properties": {"config": {"const": None}}}},
            # end_reason is set exactly on room-ended.
            {"if": {"properties": {"type": {"const": "room-ended"}}},
             "then": {"properties": {"end_reason": {"enum": list(END_REASONS)}}},
             "else": {"properties": {"end_reason": {"const": None}}}},
        ],
    }


def schema_text() -> str:
    """The published schema file's exact content."""
    return orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n"


if __name__ == "__main__":  # python -m service.events.record [path]: regenerate the published schema
    import sys
    from pathlib import Path

    target = Path(sys.argv[1] if len(sys.argv) > 1 else SCHEMA_PATH)
    target.write_text(schema_text())
    print(f"wrote {target}")

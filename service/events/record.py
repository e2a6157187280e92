"""The room-event record: one versioned schema for every record on the events topic.

REST commands (source "api"), Twilio status callbacks and LiveKit / Zoom webhooks (source
"callback") and the materializer's timers (source "timer") become this one dict shape, encoded with
orjson. Provider-neutral on purpose: `provider` says who spoke, Twilio's raw parameters are kept
under `params` and the other providers' webhooks under `native`; the typed fields (in Twilio's
vocabulary, with SIDs derived from the providers' own ids: `derived_sid`) are what consumers read.
The shape is defined once, in service/events/shapes.py: the fold's decoder below and the JSON Schema
in docs/room-event.schema.json (service/events/schema.py, checked by the tests) both come from it.
Consumers read schema versions 1 (before providers: twilio's) and 2.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Mapping, Sequence

import orjson

from service.events.codec import decode, decode_for_fold, encode
from service.events.errors import RecordError
from service.events.schema import SCHEMA_ID, SCHEMA_PATH, json_schema, schema_text
from service.events.shapes import (
    END_REASONS,
    PROVIDERS,
    ROOM_EVENTS,
    SCHEMA_VERSION,
    SCHEMA_VERSIONS,
    SOURCES,
    FoldedEvent,
    NativeFields,
    ParticipantFields,
    RecordingFields,
    RoomEvent,
    RoomFields,
    TrackFields,
)

__all__ = [  # the record's shape and schema live next door; this is the module callers import
    "END_REASONS",
    "PROVIDERS",
    "ROOM_EVENTS",
    "SCHEMA_ID",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "SCHEMA_VERSIONS",
    "SOURCES",
    "FoldedEvent",
    "RecordError",
    "RoomEvent",
    "callback_event_id",
    "command_event_id",
    "decode",
    "decode_for_fold",
    "derived_sid",
    "digest",
    "encode",
    "format_ms",
    "format_twilio_date",
    "format_twilio_second",
    "from_callback",
    "json_schema",
    "parse_timestamp_ms",
    "partition_key",
    "provider_event",
    "provider_of",
    "room_created",
    "room_ended",
    "schema_text",
    "timer_event_id",
]


# ---------------------------------------------------------------- time


def parse_timestamp_ms(value: str) -> int:
    """Twilio `Timestamp` (ISO 8601, UTC, usually ms precision with Z) -> epoch milliseconds."""
    ms = _canonical_ms(value)
    return _parse_iso_ms(value) if ms is None else ms


def _parse_iso_ms(value: str) -> int:
    """`parse_timestamp_ms` of any ISO 8601 text, by datetime.fromisoformat."""
    text = value.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise RecordError(f"Timestamp {value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        ms = int(round(parsed.timestamp() * 1000))
    except (OverflowError, ValueError, OSError):
        ms = _MIN_MS - 1
    if not _MIN_MS <= ms <= _MAX_MS:  # e.g. 0001-01-01T00:00:00+23:59 is in year 0 in UTC
        raise RecordError(f"Timestamp {value[:64]!r} is out of range (years 1 to 9999 in UTC)")
    return ms


# What a record's times can be: a date-time of years 1..9999 in UTC (format_ms), so within 64 bits.
_MIN_MS = int(datetime(1, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
_MAX_MS = int(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc).timestamp() * 1000)


@lru_cache(maxsize=4096)
def _second_prefix(second: int) -> str:
    dt = datetime.fromtimestamp(second, tz=timezone.utc)
    # The year zero-padded by hand: strftime's %Y gives "1", not "0001", before the year 1000.
    return f"{dt.year:04d}" + dt.strftime("-%m-%dT%H:%M:%S.")


@lru_cache(maxsize=4096)
def _canonical_second(prefix: str) -> int | None:
    """The epoch second of "YYYY-MM-DDTHH:MM:SS" (UTC) when `format_ms` writes that second so: None
    for any other text (then `parse_timestamp_ms` takes the whole value its own way)."""
    try:
        ms = _parse_iso_ms(prefix + ".000Z")
    except RecordError:
        return None
    second = ms // 1000
    return second if _second_prefix(second) == prefix + "." else None


def _canonical_ms(value: str) -> int | None:
    """Epoch ms of a timestamp in the canonical form (what `format_ms` writes, and what Twilio sends:
    2025-10-27T18:16:01.876Z), the date and time to the second parsed once per second; None for
    any other text. For such a value `format_ms(_canonical_ms(value)) == value`."""
    if len(value) != 24 or value[19] != "." or value[23] != "Z":
        return None
    millis = value[20:23]
    if not (millis.isascii() and millis.isdigit()):
        return None
    second = _canonical_second(value[:19])
    return None if second is None else second * 1000 + int(millis)


def format_ms(ms: int) -> str:
    """Epoch ms -> ISO 8601 UTC with millisecond precision, e.g. 2025-10-27T18:16:01.876Z."""
    # The date and time to the second once per second (strftime is most of the cost).
    return f"{_second_prefix(ms // 1000)}{ms % 1000:03d}Z"


# Receipt times: many callbacks of one millisecond under load.
_format_received = lru_cache(maxsize=64)(format_ms)


def format_twilio_date(ms: int | None) -> str | None:
    """Epoch ms -> the room resource's date format (ISO 8601 UTC, second precision, Z)."""
    if ms is None:
        return None
    return format_twilio_second(ms // 1000)


def format_twilio_second(second: int) -> str:
    """Epoch seconds -> the room resource's date format (what format_twilio_date writes)."""
    return datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- building records


def _first(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    return values[0] if values[0] != "" else None


_INT64 = (-(2**63), 2**63 - 1)  # what every JSON reader (and orjson's writer) takes as an integer


def _int_or_none(params: Mapping[str, Sequence[str]], name: str) -> int | None:
    """The parameter as an integer (a decimal like "1.5e3" is truncated); None when absent or not a
    number. RecordError naming it when it is a number out of the 64-bit range, or not finite."""
    return _int_value(name, _first(params, name))


def _int_value(name: str, value: str | None) -> int | None:
    """`_int_or_none` of the parameter `name` whose first value is `value` (None: absent or empty)."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:  # also past int()'s 4300 digits: float() then says inf
        try:
            as_float = float(value)
        except ValueError:
            return None
        if not math.isfinite(as_float):
            raise RecordError(f"{name}={value[:32]!r} is out of range (not a finite number)") from None
        number = int(as_float)
    if not _INT64[0] <= number <= _INT64[1]:
        raise RecordError(f"{name}={value[:32]!r} is out of range (a 64-bit integer)")
    return number


def _raw(params: Mapping[str, Sequence[str]]) -> dict[str, str | list[str]]:
    """Parameters as received: one value as a string, repeated keys as a list."""
    return {k: (v[0] if len(v) == 1 else list(v)) for k, v in params.items()}


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
        h.update(b"\x00")
    return h.hexdigest()[:32]


def digest(*parts: str) -> str:
    """A deterministic 32-hex-digit id from text parts (each one delimited: no two lists collide)."""
    return _digest(*(part.encode() for part in parts))


# Twilio's SID prefixes of what a provider's ids are mapped to.
SID_PREFIXES = {"room": "RM", "participant": "PA", "track": "MT", "recording": "RT"}


def derived_sid(kind: str, provider: str, *native_ids: str) -> str:
    """The Twilio-shaped SID of a provider's room, participant, track or recording: its prefix (RM, PA,
    MT, RT) + the first 32 hex digits of sha256("<provider>:<kind>:<id>[:<id>...]"), e.g. a LiveKit
    room's "RM" + sha256("livekit:room:RM_xyz")[:32]. The same native ids always give the same SID, so
    every webhook about one room (and every replay) meets in one fold."""
    text = ":".join((provider, kind, *native_ids))
    return SID_PREFIXES[kind] + hashlib.sha256(text.encode()).hexdigest()[:32]


def provider_of(record: Mapping[str, Any]) -> str:
    """Who reported a record: its `provider`, or twilio for a version-1 record (which has none)."""
    return record.get("provider") or "twilio"


def callback_event_id(params: Mapping[str, Sequence[str]]) -> str:
    """Same callback, same id: a hash of every parameter, independent of order, HTTP method and of
    repeated identical values (as the signature is: a repeated value keeps it valid, so it must not
    make a new event either)."""
    return _digest_callback(orjson.dumps(sorted((k, sorted(set(v))) for k, v in params.items())))


def _digest_callback(canonical: bytes) -> str:
    """_digest(b"callback", canonical), in one call."""
    return hashlib.sha256(b"callback\x00" + canonical + b"\x00").hexdigest()[:32]


def command_event_id(kind: str, room_sid: str) -> str:
    return _digest(b"api", kind.encode(), room_sid.encode())


def timer_event_id(room_sid: str) -> str:
    return _digest(b"timer", b"room-ended", room_sid.encode())


def from_callback(
    params: Mapping[str, Sequence[str]], received_at_ms: int, *, known_name: str | None = None
) -> RoomEvent:
    """A Twilio status callback (already signature-checked) -> room-event record.

    `known_name` is the room's unique name as the ingress knows it, used when the callback lacks
    `RoomName`, so the record gets the same key as the room's other records (one fold per room).
    `params` keeps what was received."""
    # Each parameter's first value, looked up once (`_first`: an empty value is None). With one
    # value per name (nearly always), those are also the parameters as received and their id.
    try:
        firsts = {name: value for name, (value,) in params.items()}
        raw: dict[str, Any] | None = firsts
        event_id = _digest_callback(orjson.dumps([(name, [value]) for name, value in sorted(firsts.items())]))
    except ValueError:  # a name with several values (or none)
        firsts = {name: values[0] for name, values in params.items() if values}
        raw = None
        event_id = callback_event_id(params)
    get = firsts.get
    room_sid = get("RoomSid") or None
    event_type = get("StatusCallbackEvent") or None
    if not room_sid or not event_type:
        raise RecordError("missing required parameter(s): RoomSid, StatusCallbackEvent")
    timestamp = get("Timestamp") or None
    canonical_ms = _canonical_ms(timestamp) if timestamp else None
    if canonical_ms is not None:  # Twilio's own form: the text is what format_ms would write
        occurred_ms, occurred_at = canonical_ms, timestamp
    else:
        occurred_ms = parse_timestamp_ms(timestamp) if timestamp else received_at_ms
        occurred_at = format_ms(occurred_ms)
    participant_sid = get("ParticipantSid") or None
    track_sid = get("TrackSid") or None
    recording_sid = get("RecordingSid") or None
    participant: ParticipantFields | None = None
    if participant_sid:
        participant = {
            "sid": participant_sid,
            "identity": get("ParticipantIdentity") or None,
            "status": get("ParticipantStatus") or None,
            "duration": _int_value("ParticipantDuration", get("ParticipantDuration") or None),
        }
    track: TrackFields | None = None
    if track_sid:
        track = {"sid": track_sid, "kind": get("TrackKind") or None, "name": get("TrackName") or None}
    recording: RecordingFields | None = None
    if recording_sid:
        recording = {
            "sid": recording_sid,
            "source_sid": get("SourceSid") or None,
            "track_name": get("TrackName") or None,
            "uri": get("RecordingUri") or None,
            "media_uri": get("MediaUri") or None,
            "media_external_location": get("MediaExternalLocation") or None,
            "container": get("Container") or None,
            "codec": get("Codec") or None,
            "type": get("Type") or None,
            "duration": _int_value("Duration", get("Duration") or None),
            "size": _int_value("Size", get("Size") or None),
            "offset_from_twilio_video_epoch": _int_value(
                "OffsetFromTwilioVideoEpoch", get("OffsetFromTwilioVideoEpoch") or None
            ),
            "failed_operation": get("FailedOperation") or None,
        }
    room: RoomFields = {
        "status": get("RoomStatus") or None,
        "type": get("RoomType") or None,
        "duration": _int_value("RoomDuration", get("RoomDuration") or None),
    }
    # Parameters as received (`_raw`): with one value each (nearly always), the first values are it.
    return {
        "schema_version": SCHEMA_VERSION,
        "provider": "twilio",
        "event_id": event_id,
        "type": event_type,
        "source": "callback",
        "account_sid": get("AccountSid") or None,
        "room_sid": room_sid,
        "room_name": get("RoomName") or known_name or room_sid,
        "occurred_at": occurred_at,
        "occurred_at_ms": occurred_ms,
        "sequence_number": _int_value("SequenceNumber", get("SequenceNumber") or None),
        "received_at": _format_received(received_at_ms),
        "room": room,
        "participant": participant,
        "track": track,
        "recording": recording,
        "config": None,
        "end_reason": "callback" if event_type == "room-ended" else None,
        "params": _raw(params) if raw is None else raw,
        "native": None,
    }


def provider_event(
    provider: str,
    event_type: str,
    *,
    event_id: str,
    account_sid: str | None,
    room_sid: str,
    room_name: str | None,
    occurred_ms: int,
    received_at_ms: int,
    native: NativeFields,
    room: RoomFields | None = None,
    participant: ParticipantFields | None = None,
    track: TrackFields | None = None,
    recording: RecordingFields | None = None,
) -> RoomEvent:
    """A LiveKit or Zoom webhook (already verified, already mapped to Twilio's vocabulary and SIDs by
    service/providers/) -> room-event record. `native` keeps the provider's ids and its body."""
    if provider not in PROVIDERS or provider == "twilio":
        raise ValueError(provider)
    return {
        "schema_version": SCHEMA_VERSION,
        "provider": provider,
        "event_id": event_id,
        "type": event_type,
        "source": "callback",
        "account_sid": account_sid,
        "room_sid": room_sid,
        "room_name": room_name or room_sid,
        "occurred_at": format_ms(occurred_ms),
        "occurred_at_ms": occurred_ms,
        "sequence_number": None,
        "received_at": format_ms(received_at_ms),
        "room": room,
        "participant": participant,
        "track": track,
        "recording": recording,
        "config": None,
        "end_reason": "callback" if event_type == "room-ended" else None,
        "params": {},
        "native": native,
    }


def _command(
    kind: str,
    event_id: str,
    source: str,
    account_sid: str,
    room_sid: str,
    room_name: str,
    occurred_ms: int,
    received_at_ms: int,
    params: Mapping[str, Sequence[str]],
    provider: str = "twilio",
) -> RoomEvent:
    return {
        "schema_version": SCHEMA_VERSION,
        "provider": provider,
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
        "native": None,
    }


def room_created(
    account_sid: str, room_sid: str, config: Mapping[str, Any], now_ms: int, params: Mapping[str, Sequence[str]]
) -> RoomEvent:
    """`POST /v1/Rooms` accepted: the room's configuration (snake_case room-resource fields)."""
    name = config.get("unique_name") or room_sid
    record = _command(
        "room-created",
        command_event_id("room-created", room_sid),
        "api",
        account_sid,
        room_sid,
        name,
        now_ms,
        now_ms,
        params,
    )
    record["config"] = dict(config)
    record["room"] = {"status": "in-progress", "type": config.get("type"), "duration": None}
    return record


def room_ended(
    account_sid: str,
    room_sid: str,
    room_name: str,
    now_ms: int,
    *,
    reason: str,
    params: Mapping[str, Sequence[str]] | None = None,
    provider: str = "twilio",
) -> RoomEvent:
    """A room ended by this system: via the API (`Status=completed`) or by a timer. `provider` is the
    room's (the API can complete a LiveKit or Zoom room as roomevents sees it)."""
    if reason not in ("api", "timeout"):
        raise ValueError(reason)
    source = "api" if reason == "api" else "timer"
    event_id = command_event_id("room-ended", room_sid) if reason == "api" else timer_event_id(room_sid)
    record = _command(
        "room-ended", event_id, source, account_sid, room_sid, room_name, now_ms, now_ms, params or {}, provider
    )
    record["end_reason"] = reason
    record["room"] = {"status": "completed", "type": None, "duration": None}
    return record


def partition_key(record: Mapping[str, Any]) -> bytes:
    """All records of one room and of one unique name share a key, so a partition and an order."""
    return (record.get("room_name") or record["room_sid"]).encode()


if __name__ == "__main__":  # python -m service.events.record [path]: regenerate the published schema
    import sys
    from pathlib import Path

    target = Path(sys.argv[1] if len(sys.argv) > 1 else SCHEMA_PATH)
    target.write_text(schema_text())
    print(f"wrote {target}")

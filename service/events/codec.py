"""Room-event records to and from bytes: orjson out; in, the full record or only what the fold reads.

A record a consumer must not fold raises RecordError (dead-letter it); any other error is a bug.
"""

from __future__ import annotations

from typing import Any, Mapping

import msgspec
import orjson

from service.events.errors import RecordError
from service.events.shapes import IDENTIFIED, SCHEMA_VERSION, SCHEMA_VERSIONS, ConfigFields, FoldedEvent, RoomEvent


def encode(record: Mapping[str, Any]) -> bytes:
    return orjson.dumps(record)


def _checked(record: Any) -> Any:
    """What every consumer must refuse to fold: a schema version it does not know (it reads 1 and 2),
    no identity, or a shape the fold cannot take (a participant, track or recording without its SID;
    a configuration whose unique name or timeouts are of the wrong type; a provider that is not a
    name)."""
    version = record.get("schema_version")
    if version not in SCHEMA_VERSIONS or isinstance(version, bool):
        raise RecordError(f"unknown schema_version {version!r}")
    provider = record.get("provider")
    if provider is not None and not (isinstance(provider, str) and provider):
        raise RecordError(f"malformed record: provider {provider!r} is not a name")
    for key in _IDENTITY:
        if record.get(key) in (None, ""):
            raise RecordError(f"record lacks {key}")
    for key in IDENTIFIED:
        part = record.get(key)
        if part:
            try:
                sid = part["sid"]
            except (KeyError, TypeError) as exc:
                raise RecordError(f"malformed record: {key}: {type(exc).__name__} {exc}") from None
            if not isinstance(sid, str):
                raise RecordError(f"malformed record: {key}: its sid is not a string")
    config = record.get("config")
    if config is not None:
        try:
            msgspec.convert(config, ConfigFields)
        except msgspec.ValidationError as exc:
            raise RecordError(f"malformed record: config: {exc}") from None
    return record


_IDENTITY = ("event_id", "type", "room_sid", "occurred_at_ms")


def decode(raw: bytes) -> RoomEvent:
    """Bytes from the topic -> record. Raises RecordError for anything a consumer must not fold."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"undecodable record: {exc}") from None
    if not isinstance(record, dict):
        raise RecordError("record is not a JSON object")
    return _checked(record)


# Decoding only the fields the fold reads (msgspec skips `params`, the times as text...) halves the
# cost of reading a record on the materializer's hot path; msgspec also checks their types there.
_fold_decoder = msgspec.json.Decoder(FoldedEvent)


def decode_for_fold(raw: bytes) -> FoldedEvent:
    """Like decode(), keeping only what the fold reads. Raises RecordError for every record the fold
    cannot take, so a consumer dead-letters exactly those: any other error is a bug, not poison."""
    try:
        record = _fold_decoder.decode(raw)
    except msgspec.DecodeError as exc:  # invalid JSON, not an object, or a field of the wrong type
        raise RecordError(f"undecodable record: {exc}") from None
    # The common case in one expression (msgspec checked the types already): when it holds, so does
    # every check of _checked, which runs (and names the problem) whenever this does not plainly hold.
    get = record.get
    participant, track, recording = get("participant"), get("track"), get("recording")
    version = get("schema_version")
    if (
        (version == SCHEMA_VERSION or version == 1)
        and type(version) is int
        and get("provider") != ""
        and get("event_id")
        and get("type")
        and get("room_sid")
        and get("occurred_at_ms") is not None
        and get("config") is None
        and (not participant or "sid" in participant)
        and (not track or "sid" in track)
        and (not recording or "sid" in recording)
    ):
        return record
    return _checked(record)

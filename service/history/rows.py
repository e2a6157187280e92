"""Room documents -> history rows (the `rooms` and `participants` tables). Pure: no I/O.

The order of one room's documents, newest last, is `order_key`: the document's `version` (the
events-topic offset of the latest record folded into it, monotonic per room; -1 when the document
carries none), then the time of its latest event, then `date_updated`. The upsert keeps the row
whose key is greater or equal, so a replay or an out-of-order write never moves a room backwards.

Values are coerced to their column types here (an integer out of range or a NUL character in a
string would make PostgreSQL refuse the whole batch): such a value becomes NULL (or loses the NUL)
in the analyst columns, and the document keeps everything else.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from service.events import record as records

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

# Column order of `room_row`, as in service/history/migrations/0001_rooms_and_participants.sql,
# with the PostgreSQL type each is sent as.
ROOM_COLUMNS: tuple[tuple[str, str], ...] = (
    ("sid", "text"),
    ("account_sid", "text"),
    ("unique_name", "text"),
    ("status", "text"),
    ("type", "text"),
    ("provider", "text"),
    ("date_created", "timestamptz"),
    ("date_updated", "timestamptz"),
    ("end_time", "timestamptz"),
    ("duration", "integer"),
    ("end_reason", "text"),
    ("failure_reason", "text"),
    ("created_via", "text"),
    ("peak_participants", "integer"),
    ("participant_sessions", "integer"),
    ("max_participants", "integer"),
    ("max_participant_duration", "integer"),
    ("max_concurrent_published_tracks", "integer"),
    ("empty_room_timeout", "integer"),
    ("unused_room_timeout", "integer"),
    ("audio_only", "boolean"),
    ("enable_turn", "boolean"),
    ("large_room", "boolean"),
    ("record_participants_on_connect", "boolean"),
    ("media_region", "text"),
    ("status_callback", "text"),
    ("status_callback_method", "text"),
    ("video_codecs", "text"),
    ("version", "bigint"),
    ("last_event_ms", "bigint"),
    ("date_updated_ms", "bigint"),
    ("date_created_ms", "bigint"),
    ("doc", "jsonb"),
)
PARTICIPANT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("room_sid", "text"),
    ("sid", "text"),
    ("identity", "text"),
    ("status", "text"),
    ("start_time", "timestamptz"),
    ("end_time", "timestamptz"),
    ("duration", "integer"),
)
# video_codecs travels as one comma-joined text (arrays of arrays do not unnest) and is split in SQL.
ARRAY_TEXT_COLUMNS = frozenset({"video_codecs"})


class NotARoomDocument(ValueError):
    pass


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _int(value: Any, bounds: tuple[int, int] = INT32) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if bounds[0] <= value <= bounds[1] else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _ms(value: Any) -> int | None:
    """A document date (ISO 8601 text) -> epoch ms; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return records.parse_timestamp_ms(value)
    except (records.RecordError, ValueError, OverflowError):
        return None


def _when(ms: int | None) -> datetime | None:
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def strip_nul(doc: Any) -> Any:
    """The document without NUL characters (jsonb cannot hold U+0000): each becomes U+FFFD."""
    if isinstance(doc, str):
        return doc.replace("\x00", "\ufffd")
    if isinstance(doc, dict):
        return {strip_nul(k): strip_nul(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [strip_nul(v) for v in doc]
    return doc


def check_document(doc: Any) -> Mapping[str, Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("sid"), str) or not doc["sid"]:
        raise NotARoomDocument("not a room document (an object with a string sid)")
    return doc


def order_key(doc: Mapping[str, Any]) -> tuple[int, int, int]:
    """(version, last event ms, date_updated ms): greater is newer."""
    version = _int(doc.get("version"), INT64)
    last = doc.get("last_event") if isinstance(doc.get("last_event"), dict) else {}
    return (
        version if version is not None else -1,
        _ms(last.get("occurred_at")) or 0,
        _ms(doc.get("date_updated")) or 0,
    )


def date_created_ms(doc: Mapping[str, Any]) -> int:
    value = _int(doc.get("date_created_ms"), INT64)
    return value if value is not None else (_ms(doc.get("date_created")) or 0)


def _participants(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    people = doc.get("participants")
    if not isinstance(people, list):
        return []
    return [p for p in people if isinstance(p, dict) and isinstance(p.get("sid"), str)]


def room_row(doc: Mapping[str, Any]) -> tuple:
    """The `rooms` row of a room document, in ROOM_COLUMNS order (`doc` goes in as given)."""
    check_document(doc)
    version, last_ms, updated_ms = order_key(doc)
    created_ms = date_created_ms(doc)
    end_ms = _int(doc.get("end_time_ms"), INT64)
    if end_ms is None:
        end_ms = _ms(doc.get("end_time"))
    codecs = doc.get("video_codecs")
    codecs_text = ",".join(_text(c) for c in codecs if isinstance(c, str)) if isinstance(codecs, list) else None
    return (
        _text(doc["sid"]),
        _text(doc.get("account_sid")),
        _text(doc.get("unique_name") or doc["sid"]),
        _text(doc.get("status")) or "in-progress",
        _text(doc.get("type")),
        _text(doc.get("provider")) or "twilio",
        _when(created_ms),
        _when(_ms(doc.get("date_updated"))),
        _when(end_ms),
        _int(doc.get("duration")),
        _text(doc.get("end_reason")),
        _text(doc.get("failure_reason")),
        _text(doc.get("created_via")),
        _int(doc.get("peak_concurrent_participants")) or 0,
        len(_participants(doc)),
        _int(doc.get("max_participants")),
        _int(doc.get("max_participant_duration")),
        _int(doc.get("max_concurrent_published_tracks")),
        _int(doc.get("empty_room_timeout")),
        _int(doc.get("unused_room_timeout")),
        _bool(doc.get("audio_only")),
        _bool(doc.get("enable_turn")),
        _bool(doc.get("large_room")),
        _bool(doc.get("record_participants_on_connect")),
        _text(doc.get("media_region")),
        _text(doc.get("status_callback")),
        _text(doc.get("status_callback_method")),
        codecs_text,
        version,
        last_ms,
        updated_ms,
        created_ms,
        doc,
    )


def participant_rows(doc: Mapping[str, Any]) -> list[tuple]:
    """One `participants` row per participant session of the document, in PARTICIPANT_COLUMNS order."""
    room_sid = _text(doc["sid"])
    fallback = _ms(doc.get("date_created")) or date_created_ms(doc)
    rows = []
    for p in _participants(doc):
        start = _ms(p.get("start_time"))
        rows.append(
            (
                room_sid,
                _text(p["sid"]),
                _text(p.get("identity")),
                _text(p.get("status")) or "disconnected",
                _when(start if start is not None else fallback),
                _when(_ms(p.get("end_time"))),
                _int(p.get("duration")),
            )
        )
    return rows

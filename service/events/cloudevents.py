"""CloudEvents 1.0 Kafka protocol binding, binary mode: attributes as `ce_*` headers, data as value."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from service.events.record import SCHEMA_ID

SPECVERSION = b"1.0"
CONTENT_TYPE = b"application/json"
TYPE_PREFIX = "io.roomevents."
# The $id of the room-event JSON Schema (service/events/record.py json_schema()).
EVENT_DATASCHEMA = SCHEMA_ID


def headers(
    ce_id: str, ce_type: str, ce_source: str, ce_time: str, subject: str | None = None, dataschema: str | None = None
) -> list[tuple[str, bytes]]:
    out = [
        ("ce_specversion", SPECVERSION),
        ("ce_id", ce_id.encode()),
        ("ce_source", ce_source.encode()),
        ("ce_type", (TYPE_PREFIX + ce_type).encode()),
        ("ce_time", ce_time.encode()),
        ("content-type", CONTENT_TYPE),
    ]
    if subject:
        out.append(("ce_subject", subject.encode()))
    if dataschema:
        out.append(("ce_dataschema", dataschema.encode()))
    return out


def event_headers(record: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """Headers for an events-topic record: id = event_id (dedupe key), type = io.roomevents.room-event.<type>,
    source = /roomevents/<account_sid>/<source>, time = occurred_at, subject = room SID,
    dataschema = the record schema's $id. (`headers(...)`, the per-type and per-source values encoded
    once: every callback has its own id, time and subject, few types and sources.)"""
    room_sid = record["room_sid"]
    out = [
        ("ce_specversion", SPECVERSION),
        ("ce_id", record["event_id"].encode()),
        ("ce_source", _event_source(record.get("account_sid") or "unknown", record["source"])),
        ("ce_type", _event_type(record["type"])),
        ("ce_time", record["occurred_at"].encode()),
        ("content-type", CONTENT_TYPE),
    ]
    if room_sid:
        out.append(("ce_subject", room_sid.encode()))
    out.append(("ce_dataschema", _EVENT_DATASCHEMA))
    return out


_EVENT_DATASCHEMA = EVENT_DATASCHEMA.encode()


@lru_cache(maxsize=256)
def _event_source(account_sid: str, source: str) -> bytes:
    return f"/roomevents/{account_sid}/{source}".encode()


@lru_cache(maxsize=256)
def _event_type(event_type: str) -> bytes:
    return (TYPE_PREFIX + "room-event." + event_type).encode()


def state_headers(doc: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """Headers for a state-topic record (the full room document)."""
    last = doc.get("last_event") or {}
    return headers(
        f"{doc['sid']}:{last.get('event_id', '')}",
        "room-state.changed",
        f"/roomevents/{doc.get('account_sid') or 'unknown'}/materializer",
        doc.get("date_updated_ms_iso") or last.get("occurred_at") or "",
        doc["sid"],
    )

"""The room document: what the materializer publishes to the state topic for each changed room. Pure."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from service.events import record as _record
from service.state.shapes import RoomState
from service.state.views import (
    date_created_ms,
    end_ms,
    end_reason,
    participant_interval,
    peak_concurrency,
    status,
    unique_name,
)

# Rendering formats the same instants again and again (a room's creation, each join): cache them.
format_ms = lru_cache(maxsize=1 << 16)(_record.format_ms)
# By the second, not the millisecond: joins and creations of many rooms share seconds, so the cache
# holds every date a window's rooms show (by the millisecond, 10,000 rooms of 8 participants
# cycled through more keys than it holds, and nearly every date was formatted anew).
_format_second = lru_cache(maxsize=1 << 16)(_record.format_twilio_second)


def format_twilio_date(ms: int | None) -> str | None:
    return None if ms is None else _format_second(ms // 1000)


# Twilio room-resource fields, in Twilio's order; `url` and `links` are added by the read API.
RESOURCE_FIELDS = (
    "account_sid",
    "audio_only",
    "date_created",
    "date_updated",
    "duration",
    "empty_room_timeout",
    "enable_turn",
    "end_time",
    "large_room",
    "max_concurrent_published_tracks",
    "max_participant_duration",
    "max_participants",
    "media_region",
    "record_participants_on_connect",
    "sid",
    "status",
    "status_callback",
    "status_callback_method",
    "type",
    "unique_name",
    "unused_room_timeout",
    "video_codecs",
)


def recording_rules(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A created room's recording rules: its RecordingRules, else what RecordParticipantsOnConnect
    means (record everything, or no rule: nothing recorded)."""
    rules = config.get("recording_rules")
    if isinstance(rules, dict):
        rules = rules.get("rules")
    if rules is not None:
        return [dict(rule) for rule in rules]
    return [{"type": "include", "all": True}] if config.get("record_participants_on_connect") else []


def render(s: RoomState) -> dict[str, Any]:
    """The full room document for the state topic: the Twilio resource plus dashboard fields."""
    config = s["config"].value if s["config"] is not None else {}
    room_status = status(s)
    created = date_created_ms(s)
    ended = end_ms(s)
    duration = None
    if s["room_duration"] is not None and s["ended"] is not None:
        duration = s["room_duration"]
    elif ended is not None:
        duration = max(0, (ended - created) // 1000)
    last = s["last_order"]
    updated = last.at_ms if last is not None else created

    people = []
    connected = 0
    for sid, p in sorted(s["participants"].items()):
        start, left = participant_interval(p)
        is_connected = left is None and room_status == "in-progress"
        connected += is_connected
        p_end = left if left is not None else (max(ended, start) if room_status != "in-progress" else None)
        p_duration = (
            p["duration"] if p["duration"] is not None else (None if p_end is None else max(0, (p_end - start) // 1000))
        )
        people.append(
            {
                "sid": sid,
                "identity": p["identity"],
                "status": "connected" if is_connected else "disconnected",
                "start_time": format_twilio_date(start),
                "end_time": format_twilio_date(p_end),
                "duration": p_duration,
            }
        )

    published = {"audio": 0, "video": 0, "data": 0}
    tracks = []
    participants = s["participants"]
    for sid, t in sorted(s["tracks"].items()):
        owner = participants.get(t["participant_sid"]) if t["participant_sid"] is not None else None
        is_published = (
            t["removed_ms"] is None
            and room_status == "in-progress"
            and (owner is None or owner["disconnected_ms"] is None)
        )
        if is_published and t["kind"] in published:
            published[t["kind"]] += 1
        tracks.append(
            {
                "sid": sid,
                "participant_sid": t["participant_sid"],
                "kind": t["kind"],
                "name": t["name"],
                "published": is_published,
                "enabled": t["enabled"].value if t["enabled"] is not None else None,
            }
        )

    recordings = []
    for sid, r in sorted(s["recordings"].items()):
        rec_status = {0: "processing", 1: "processing", 2: "completed", 3: "failed"}[r["rank"]]
        recordings.append(
            {
                "sid": sid,
                "status": rec_status,
                "participant_sid": r["participant_sid"],
                "source_sid": r.get("source_sid"),
                "type": r.get("type"),
                "codec": r.get("codec"),
                "container": r.get("container"),
                "duration": r.get("duration"),
                "size": r.get("size"),
                "media_uri": r.get("media_uri"),
                "failure": r.get("failed_operation"),
                "track_name": r.get("track_name"),
                "offset": r.get("offset_from_twilio_video_epoch"),
                "media_external_location": r.get("media_external_location"),
                # When the recording started (else when it was first heard of).
                "date_created": format_twilio_date(
                    r["started_ms"] if r["started_ms"] is not None else r.get("first_seen_ms")
                ),
            }
        )

    doc = {key: config.get(key) for key in RESOURCE_FIELDS}
    doc.update(
        {
            "account_sid": config.get("account_sid") or s["account_sid"],
            "sid": s["sid"],
            "status": room_status,
            "type": config.get("type") or s["room_type"],
            "unique_name": unique_name(s),
            "enable_turn": True if s["config"] is not None else config.get("enable_turn"),
            "date_created": format_twilio_date(created),
            "date_updated": format_twilio_date(updated),
            "end_time": format_twilio_date(ended),
            "duration": duration,
            # Dashboard fields beyond the Twilio resource.
            "created_via": "api" if s["config"] is not None else "callback",
            "provider": s.get("provider") or "twilio",
            "end_reason": end_reason(s),
            "failure_reason": s["failed"].value if s["failed"] is not None else None,
            "date_created_ms": created,
            "end_time_ms": ended,
            "participants": people,
            "connected_participants": connected,
            "peak_concurrent_participants": peak_concurrency(s["participants"]),
            "published_tracks": published,
            "tracks": tracks,
            "recordings": recordings,
            "recording_rules": recording_rules(config) if s["config"] is not None else None,
            "last_event": None
            if last is None
            else {
                "event_id": last.event_id,
                "type": s["last_type"],
                "occurred_at": format_ms(last.at_ms),
                "sequence_number": last.sequence,
            },
        }
    )
    return doc

"""The room-state reducer: fold(state, event) -> state. Pure: no I/O, no clock, no mutation.

Order-insensitive by construction: every field is merged with min, max, or last-writer-wins under
one total order, (occurred_at_ms, sequence_number, event_id). So the same set of events, in any
order and with any duplicates, folds to the same state; replaying the topic equals the live run.
Twilio's Timestamp orders events, never arrival. Completed and failed are final because they
derive from the mere presence of an end (or failure), which no later event can take away.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Optional, TypeVar

from service.events import record as _record
from service.events.shapes import FoldedEvent, ParticipantFields, RecordingFields, TrackFields
from service.state.shapes import Ended, Order, ParticipantState, RecordingState, RoomState, Stamped, TrackState

__all__ = ["RESOURCE_FIELDS", "Ended", "Order", "RoomState", "Stamped", "date_created_ms", "empty", "end_ms",
           "end_reason", "fold", "mark_failed", "order_of", "participant_edges", "participant_interval",
           "peak_concurrency", "render", "status", "unique_name"]

# Rendering formats the same instants again and again (a room's creation, each join): cache them.
format_ms = lru_cache(maxsize=1 << 16)(_record.format_ms)
format_twilio_date = lru_cache(maxsize=1 << 16)(_record.format_twilio_date)

T = TypeVar("T")
V = TypeVar("V", int, str)

# Twilio room-resource fields, in Twilio's order; `url` and `links` are added by the read API.
RESOURCE_FIELDS = (
    "account_sid", "audio_only", "date_created", "date_updated", "duration", "empty_room_timeout",
    "enable_turn", "end_time", "large_room", "max_concurrent_published_tracks",
    "max_participant_duration", "max_participants", "media_region", "record_participants_on_connect",
    "sid", "status", "status_callback", "status_callback_method", "type", "unique_name",
    "unused_room_timeout", "video_codecs",
)
_RECORDING_STATUS = {"recording-started": (1, "processing"), "recording-completed": (2, "completed"),
                     "recording-failed": (3, "failed")}
_TRACK_TOGGLES = {"track-added": True, "track-enabled": True, "track-disabled": False}
_PARTICIPANT_EDGES = ("participant-connected", "participant-disconnected")


# tuple.__new__(Order, ...) is what Order(...) does, without its Python-level __new__: the fold builds
# one Order per event (and a Stamped per toggle), so this halves what naming them costs on the hot path.
_new = tuple.__new__


def order_of(event: Mapping[str, Any]) -> Order:
    return _new(Order, (event["occurred_at_ms"], event.get("sequence_number") or 0, event["event_id"]))


def _min(a: Optional[V], b: Optional[V]) -> Optional[V]:
    if a is None:
        return b
    if b is None:
        return a
    return a if a <= b else b


def _max(a: Optional[V], b: Optional[V]) -> Optional[V]:
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b


def _lww(current: Stamped[T] | None, order: Order, value: T) -> Stamped[T]:
    """Last writer wins: keep (order, value) with the greatest order."""
    if current is None or order > current.order:
        return _new(Stamped, (order, value))
    return current


def _earliest(current: Stamped[T] | None, order: Order, value: T) -> Stamped[T]:
    if current is None or order < current.order:
        return _new(Stamped, (order, value))
    return current


def empty(room_sid: str) -> RoomState:
    return {
        "sid": room_sid,
        "config": None,
        "account_sid": None,
        "room_name": None,
        "room_type": None,
        "created_ms": None,
        "first_seen_ms": None,
        "ended": None,
        "completed_seen": None,
        "room_duration": None,
        "failed": None,
        "participants": {},
        "tracks": {},
        "recordings": {},
        "last_order": None,
        "last_type": None,
    }


def fold(state: RoomState | None, event: FoldedEvent) -> RoomState:
    """Apply one room event. Returns a new state; `state` is never modified."""
    s: RoomState = state.copy() if state is not None else empty(event["room_sid"])
    order = order_of(event)
    ts = order.at_ms
    kind = event["type"]
    room = event.get("room") or {}

    if s["first_seen_ms"] is None or ts < s["first_seen_ms"]:
        s["first_seen_ms"] = ts
    if s["last_order"] is None or order > s["last_order"]:
        s["last_order"] = order
        s["last_type"] = kind
    # Almost always equal to what is stored: one comparison each on the hot path.
    value = event.get("account_sid")
    if value is not None and value != s["account_sid"]:
        s["account_sid"] = _min(s["account_sid"], value)
    value = event.get("room_name")
    if value is not None and value != s["room_name"] and value != s["sid"]:
        s["room_name"] = _min(s["room_name"], value)
    value = room.get("type")
    if value is not None and value != s["room_type"]:
        s["room_type"] = _min(s["room_type"], value)

    if kind == "room-created":
        s["created_ms"] = _min(s["created_ms"], ts)
        config = event.get("config")
        if config is not None:
            s["config"] = _earliest(s["config"], order, config)
    elif kind == "room-ended":
        s["ended"] = _earliest(s["ended"], order, Ended(ts, event.get("end_reason") or "callback"))
        s["room_duration"] = _max(s["room_duration"], room.get("duration"))
    room_status = room.get("status")
    if room_status is not None and room_status != "in-progress":
        if room_status == "failed":
            s["failed"] = _earliest(s["failed"], order, "reported-by-twilio")
        elif room_status == "completed" and kind != "room-ended":
            # Twilio says the room is over even though its room-ended (if any) is not here.
            s["completed_seen"] = _earliest(s["completed_seen"], order, ts)

    participant = event.get("participant")
    if participant:
        s["participants"] = _fold_participant(s["participants"], participant, kind, ts)
    track = event.get("track")
    if track:
        s["tracks"] = _fold_track(s["tracks"], track, participant, kind, order)
    recording = event.get("recording")
    if recording:
        s["recordings"] = _fold_recording(s["recordings"], recording, participant, kind, ts)
    return s


def mark_failed(state: RoomState, reason: str, order: Order) -> RoomState:
    """A decision outside one room's history (losing the unique-name race) fails the room."""
    s = state.copy()
    s["failed"] = _earliest(s["failed"], order, reason)
    return s


def _fold_participant(participants: dict[str, ParticipantState], p: ParticipantFields, kind: str,
                      ts: int) -> dict[str, ParticipantState]:
    sid = p["sid"]
    cur = participants.get(sid)
    if cur is None:
        cur = {"identity": None, "connected_ms": None, "disconnected_ms": None, "first_seen_ms": None,
               "duration": None}
    elif kind not in _PARTICIPANT_EDGES and p.get("status") != "disconnected" and (
            cur["first_seen_ms"] is not None and cur["first_seen_ms"] <= ts
            and p.get("identity") in (None, cur["identity"])):
        return participants  # most events only mention their participant: nothing changes
    new = cur.copy()
    new["identity"] = _min(cur["identity"], p.get("identity"))
    new["first_seen_ms"] = _min(cur["first_seen_ms"], ts)
    if kind == "participant-connected":
        new["connected_ms"] = _min(cur["connected_ms"], ts)
    elif kind == "participant-disconnected" or p.get("status") == "disconnected":
        new["disconnected_ms"] = _max(cur["disconnected_ms"], ts)
        new["duration"] = _max(cur["duration"], p.get("duration"))
    out = participants.copy()
    out[sid] = new
    return out


def _fold_track(tracks: dict[str, TrackState], t: TrackFields, participant: ParticipantFields | None, kind: str,
                order: Order) -> dict[str, TrackState]:
    sid = t["sid"]
    cur = tracks.get(sid)
    if cur is None:
        cur = {"participant_sid": None, "kind": None, "name": None, "added_ms": None, "removed_ms": None,
               "enabled": None}
    new = cur.copy()
    # Each almost always equal to what is stored: compared before merging.
    value = participant.get("sid") if participant else None
    if value is not None and value != cur["participant_sid"]:
        new["participant_sid"] = _min(cur["participant_sid"], value)
    value = t.get("kind")
    if value is not None and value != cur["kind"]:
        new["kind"] = _min(cur["kind"], value)
    value = t.get("name")
    if value is not None and value != cur["name"]:
        new["name"] = _min(cur["name"], value)
    if kind == "track-added":
        new["added_ms"] = _min(cur["added_ms"], order.at_ms)
    elif kind == "track-removed":
        new["removed_ms"] = _max(cur["removed_ms"], order.at_ms)
    if kind in _TRACK_TOGGLES:
        new["enabled"] = _lww(cur["enabled"], order, _TRACK_TOGGLES[kind])
    out = tracks.copy()
    out[sid] = new
    return out


def _fold_recording(recordings: dict[str, RecordingState], r: RecordingFields,
                    participant: ParticipantFields | None, kind: str, ts: int) -> dict[str, RecordingState]:
    sid = r["sid"]
    cur = recordings.get(sid) or {"rank": 0, "started_ms": None, "participant_sid": None}
    new = cur.copy()
    for key, value in r.items():
        if key != "sid" and value is not None:
            new[key] = _max(cur.get(key), value)
    new["participant_sid"] = _min(cur["participant_sid"], participant.get("sid") if participant else None)
    if kind in _RECORDING_STATUS:
        new["rank"] = max(cur["rank"], _RECORDING_STATUS[kind][0])
    if kind == "recording-started":
        new["started_ms"] = _min(cur["started_ms"], ts)
    out = recordings.copy()
    out[sid] = new
    return out


# ---------------------------------------------------------------- derived views of a state

def status(s: RoomState) -> str:
    if s["failed"] is not None:
        return "failed"
    if s["ended"] is not None or s["completed_seen"] is not None:
        return "completed"
    return "in-progress"


def unique_name(s: RoomState) -> str:
    if s["config"] is not None:
        return s["config"].value.get("unique_name") or s["sid"]
    return s["room_name"] or s["sid"]


def date_created_ms(s: RoomState) -> int:
    return _min(s["created_ms"], s["first_seen_ms"])


def end_ms(s: RoomState) -> int | None:
    if s["ended"] is not None:
        return s["ended"].value.at_ms
    if s["completed_seen"] is not None:
        return s["completed_seen"].value
    if s["failed"] is not None:
        return s["failed"].order.at_ms
    return None


def end_reason(s: RoomState) -> str | None:
    if s["ended"] is not None:
        return s["ended"].value.reason
    if s["completed_seen"] is not None:
        return "callback"
    return None


def participant_interval(p: Mapping[str, Any]) -> tuple[int, int | None]:
    """(joined, left) of one participant; a leave stamped before the join (clock skew) is the join."""
    start = p["connected_ms"] if p["connected_ms"] is not None else p["first_seen_ms"]
    left = p["disconnected_ms"]
    if left is not None and left < start:
        left = start
    return start, left


def participant_edges(participants: Mapping[str, Mapping[str, Any]]) -> list[tuple[int, int]]:
    """Joins (+1) and leaves (-1) in time order; at one instant leaves sort before joins."""
    edges = []
    for p in participants.values():
        start, left = participant_interval(p)
        edges.append((start, 1))
        if left is not None:
            edges.append((left, -1))
    edges.sort()
    return edges


def peak_concurrency(participants: Mapping[str, Mapping[str, Any]]) -> int:
    """Most participants connected at the same instant, from their connect/disconnect times."""
    peak = current = 0
    for _, delta in participant_edges(participants):
        current += delta
        peak = max(peak, current)
    return peak


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
        p_duration = p["duration"] if p["duration"] is not None else (
            None if p_end is None else max(0, (p_end - start) // 1000))
        people.append({
            "sid": sid, "identity": p["identity"],
            "status": "connected" if is_connected else "disconnected",
            "start_time": format_twilio_date(start), "end_time": format_twilio_date(p_end),
            "duration": p_duration,
        })

    published = {"audio": 0, "video": 0, "data": 0}
    tracks = []
    participants = s["participants"]
    for sid, t in sorted(s["tracks"].items()):
        owner = participants.get(t["participant_sid"]) if t["participant_sid"] is not None else None
        is_published = (t["removed_ms"] is None and room_status == "in-progress"
                        and (owner is None or owner["disconnected_ms"] is None))
        if is_published and t["kind"] in published:
            published[t["kind"]] += 1
        tracks.append({"sid": sid, "participant_sid": t["participant_sid"], "kind": t["kind"],
                       "name": t["name"], "published": is_published,
                       "enabled": t["enabled"].value if t["enabled"] is not None else None})

    recordings = []
    for sid, r in sorted(s["recordings"].items()):
        rec_status = {0: "processing", 1: "processing", 2: "completed", 3: "failed"}[r["rank"]]
        recordings.append({"sid": sid, "status": rec_status, "participant_sid": r["participant_sid"],
                           "source_sid": r.get("source_sid"), "type": r.get("type"),
                           "codec": r.get("codec"), "container": r.get("container"),
                           "duration": r.get("duration"), "size": r.get("size"),
                           "media_uri": r.get("media_uri"), "failure": r.get("failed_operation")})

    doc = {key: config.get(key) for key in RESOURCE_FIELDS}
    doc.update({
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
        "last_event": None if last is None else {
            "event_id": last.event_id, "type": s["last_type"], "occurred_at": format_ms(last.at_ms),
            "sequence_number": last.sequence},
    })
    return doc

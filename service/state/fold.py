"""The room-state reducer: fold(state, event) -> state. Pure: no I/O, no clock, no mutation.

Order-insensitive by construction: every field is merged with min, max, or last-writer-wins under
one total order, (occurred_at_ms, sequence_number, event_id). So the same set of events, in any
order and with any duplicates, folds to the same state; replaying the topic equals the live run.
The provider's own event time orders events (Twilio's Timestamp, LiveKit's created_at, Zoom's
event_ts), never arrival. Completed and failed are final because they
derive from the mere presence of an end (or failure), which no later event can take away.
What a state means (status, end time...) is in views.py, the room document in render.py.
"""

from __future__ import annotations

from sys import intern
from typing import Any, Mapping, Optional, TypeVar

from service.events.shapes import FoldedEvent, ParticipantFields, RecordingFields, TrackFields
from service.state.shapes import Ended, Order, ParticipantState, RecordingState, RoomState, Stamped, TrackState

__all__ = ["Ended", "Order", "RoomState", "Stamped", "empty", "fold", "mark_failed", "order_of"]

T = TypeVar("T")
V = TypeVar("V", int, str)

_RECORDING_STATUS = {
    "recording-started": (1, "processing"),
    "recording-completed": (2, "completed"),
    "recording-failed": (3, "failed"),
}
_TRACK_TOGGLES = {"track-added": True, "track-enabled": True, "track-disabled": False}
_PARTICIPANT_EDGES = ("participant-connected", "participant-disconnected")
_NO_FIELDS: Mapping[str, Any] = {}  # an event without room fields (read, never written)


def _intern(value: Optional[str]) -> Optional[str]:
    """One string object for the values that many rooms share (types, kinds, the account): each event
    compares its own copy with the stored one, which stays in the CPU cache when every room stores the
    same object, not a copy of its own."""
    return intern(value) if type(value) is str else value


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
        "provider": None,
    }


def _provider(current: Optional[str], reported: str) -> str:
    """Merge who reports a room: any provider outranks twilio (an API command about a LiveKit room is
    still a LiveKit room), then the least name. Commutative, associative and idempotent."""
    if current is None or current == reported or current == "twilio":
        return reported
    if reported == "twilio":
        return current
    return current if current <= reported else reported


def fold(state: RoomState | None, event: FoldedEvent) -> RoomState:
    """Apply one room event. Returns a new state; `state` is never modified."""
    # The materializer's hot path (once per event): each field of the event and the state is read once.
    s: RoomState = state.copy() if state is not None else empty(event["room_sid"])
    get = event.get
    order = order_of(event)  # the one rule of an event's order (replays depend on it)
    ts = order.at_ms
    kind = event["type"]
    room = get("room") or _NO_FIELDS

    first_seen = s["first_seen_ms"]
    if first_seen is None or ts < first_seen:
        s["first_seen_ms"] = ts
    last = s["last_order"]
    if last is None or order > last:
        s["last_order"] = order
        s["last_type"] = _intern(kind)
    # Almost always equal to what is stored: one comparison each on the hot path.
    value = get("account_sid")
    if value is not None and value != s["account_sid"]:
        s["account_sid"] = _intern(_min(s["account_sid"], value))
    value = get("room_name")
    if value is not None and value != s["room_name"] and value != s["sid"]:
        s["room_name"] = _min(s["room_name"], value)
    value = room.get("type")
    if value is not None and value != s["room_type"]:
        s["room_type"] = _intern(_min(s["room_type"], value))
    value = get("provider") or "twilio"  # version 1 records are twilio's
    current = s.get("provider")
    if value != current:
        s["provider"] = _intern(_provider(current, value))

    if kind == "room-created":
        s["created_ms"] = _min(s["created_ms"], ts)
        config = get("config")
        if config is not None:
            s["config"] = _earliest(s["config"], order, config)
    elif kind == "room-ended":
        s["ended"] = _earliest(s["ended"], order, Ended(ts, get("end_reason") or "callback"))
        s["room_duration"] = _max(s["room_duration"], room.get("duration"))
    room_status = room.get("status")
    if room_status is not None and room_status != "in-progress":
        if room_status == "failed":
            s["failed"] = _earliest(s["failed"], order, "reported-by-twilio")
        elif room_status == "completed" and kind != "room-ended":
            # Twilio says the room is over even though its room-ended (if any) is not here.
            s["completed_seen"] = _earliest(s["completed_seen"], order, ts)

    participant = get("participant")
    if participant:
        s["participants"] = _fold_participant(s["participants"], participant, kind, ts)
    track = get("track")
    if track:
        s["tracks"] = _fold_track(s["tracks"], track, participant, kind, order)
    recording = get("recording")
    if recording:
        s["recordings"] = _fold_recording(s["recordings"], recording, participant, kind, ts)
    return s


def mark_failed(state: RoomState, reason: str, order: Order) -> RoomState:
    """A decision outside one room's history (losing the unique-name race) fails the room."""
    s = state.copy()
    s["failed"] = _earliest(s["failed"], order, reason)
    return s


def _fold_participant(
    participants: dict[str, ParticipantState], p: ParticipantFields, kind: str, ts: int
) -> dict[str, ParticipantState]:
    sid = p["sid"]
    cur = participants.get(sid)
    if cur is None:
        cur = {"identity": None, "connected_ms": None, "disconnected_ms": None, "first_seen_ms": None, "duration": None}
    elif (
        kind not in _PARTICIPANT_EDGES
        and p.get("status") != "disconnected"
        and (
            cur["first_seen_ms"] is not None
            and cur["first_seen_ms"] <= ts
            and p.get("identity") in (None, cur["identity"])
        )
    ):
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


def _fold_track(
    tracks: dict[str, TrackState], t: TrackFields, participant: ParticipantFields | None, kind: str, order: Order
) -> dict[str, TrackState]:
    sid = t["sid"]
    cur = tracks.get(sid)
    if cur is None:
        cur = {
            "participant_sid": None,
            "kind": None,
            "name": None,
            "added_ms": None,
            "removed_ms": None,
            "enabled": None,
        }
    new = cur.copy()
    # Each almost always equal to what is stored: compared before merging.
    value = participant.get("sid") if participant else None
    if value is not None and value != cur["participant_sid"]:
        new["participant_sid"] = _min(cur["participant_sid"], value)
    value = t.get("kind")
    if value is not None and value != cur["kind"]:
        new["kind"] = _intern(_min(cur["kind"], value))
    value = t.get("name")
    if value is not None and value != cur["name"]:
        new["name"] = _min(cur["name"], value)
    if kind == "track-added":
        new["added_ms"] = _min(cur["added_ms"], order.at_ms)
    elif kind == "track-removed":
        new["removed_ms"] = _max(cur["removed_ms"], order.at_ms)
    enabled = _TRACK_TOGGLES.get(kind)
    if enabled is not None:
        new["enabled"] = _lww(cur["enabled"], order, enabled)
    out = tracks.copy()
    out[sid] = new
    return out


def _fold_recording(
    recordings: dict[str, RecordingState], r: RecordingFields, participant: ParticipantFields | None, kind: str, ts: int
) -> dict[str, RecordingState]:
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
    new["first_seen_ms"] = _min(cur.get("first_seen_ms"), ts)
    out = recordings.copy()
    out[sid] = new
    return out

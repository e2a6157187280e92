"""RoomBook: the rooms of one events partition, who holds each unique name, and what retired.

Pure domain code (no I/O, the clock is a parameter). Room state is folded by `fold`; the one
decision that depends on log order rather than Twilio time is unique-name arbitration: records are
keyed by unique name, so every competitor for a name sits on one partition, and the first create
in log order while the name is free wins. Replaying the partition replays the same decisions.

With a retention (service/state/retention.py), ended rooms leave the book by event time, and late
events for them are refused with a reason instead of folded. Each room also carries a version:
the greatest events-topic offset folded into it, monotonic, the same in a replay.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping, NamedTuple

from service.events import record as records
from service.state.fold import fold, mark_failed, order_of
from service.state.retention import Retention, event_time
from service.state.room_states import RoomStates
from service.state.shapes import RoomState
from service.state.views import date_created_ms, participant_edges, status, unique_name

UNIQUE_NAME_TAKEN = "unique-name-taken"


class Applied(NamedTuple):
    """What one event did: changed its room's state, changed nothing (a duplicate), or was refused.
    (A tuple: one is made per event folded.)"""

    sid: str
    changed: bool
    refused: str | None = None  # why it was not folded (retention): dead-letter it with this reason


_new = tuple.__new__
_seconds: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch seconds (receipt times share seconds)


def _received_ms(event: Mapping[str, Any]) -> int | None:
    text = event.get("received_at")
    if not text:
        return None
    # The ingress writes "YYYY-MM-DDTHH:MM:SS.mmmZ" (records.format_ms): its second parsed once.
    if len(text) == 24 and text[19] == "." and text[23] == "Z" and text[20:23].isdigit():
        second = _seconds.get(text[:19])
        if second is None:
            try:
                second = int(datetime.fromisoformat(text[:19] + "+00:00").timestamp())
            except ValueError:
                return None
            if len(_seconds) >= 100_000:
                _seconds.clear()
            _seconds[text[:19]] = second
        # Exactly what the general path gives (datetime.timestamp() is this division, then * 1000).
        return int((second * 1_000_000 + int(text[20:23]) * 1000) / 1_000_000 * 1000)
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return None


class RoomBook:
    def __init__(self, retain_ms: int | None = None) -> None:
        self.rooms = RoomStates()  # ended rooms held compressed
        self.active_names: dict[str, str] = {}
        self.versions: dict[str, int] = {}
        self.retention = Retention(retain_ms) if retain_ms else None

    def apply(self, event: Mapping[str, Any]) -> str:
        """Fold one event in; returns the SID of the room it changed."""
        return self.take(event).sid

    def take(self, event: Mapping[str, Any], offset: int | None = None) -> Applied:
        """Fold one event (at `offset` of the events topic, when known) unless retention refuses it."""
        # The hot path of the materializer (once per event): each view of the state is computed once.
        sid = event["room_sid"]
        rooms = self.rooms
        before = rooms.get(sid)
        retention = self.retention
        # Only a room not held, or a retired one, can be refused: most events skip asking.
        if retention is not None and (before is None or sid in retention.retired):
            refused = retention.late_reason(event, before is not None)
            if refused is not None:
                return _new(Applied, (sid, False, refused))
        after = fold(before, event)
        name = unique_name(after)
        active_names = self.active_names
        holder = active_names.get(name)
        # Arbitrate the room's first api create, even if callbacks for its SID came before it.
        if (
            event["type"] == "room-created"
            and event.get("source") == "api"
            and (before is None or before["config"] is None)
            and holder is not None
            and holder != sid
            and status(rooms[holder]) == "in-progress"
        ):
            after = mark_failed(after, UNIQUE_NAME_TAKEN, order_of(event))
        room_status = status(after)
        rooms.put(sid, after, room_status)
        if room_status == "in-progress":
            if holder is None:
                active_names[name] = sid
        elif holder == sid:
            del active_names[name]
        if offset is not None:
            versions = self.versions
            if offset > versions.get(sid, -1):
                versions[sid] = offset
        if retention is not None:
            occurred = event["occurred_at_ms"]
            watermark = retention.watermark_ms
            # Event time is at most the event's own time: only a later one can move the watermark.
            if watermark is None or occurred > watermark:
                retention.advance(event_time(occurred, _received_ms(event)))
            if room_status != "in-progress":
                retention.ended(sid, after)
        # A later event moved the room's last order: changed, without comparing the whole states.
        changed = before is None or (after["last_order"] is not before["last_order"] or after != before)
        return _new(Applied, (sid, changed, None))

    def apply_all(self, events: Iterable[Mapping[str, Any]]) -> set[str]:
        return {self.apply(e) for e in events}

    def forget(self, sids: Iterable[str]) -> None:
        """Drop rooms (their partition was revoked, or they retired)."""
        for sid in sids:
            state = self.rooms.pop(sid, None)
            self.versions.pop(sid, None)
            if state is not None:
                name = unique_name(state)
                if self.active_names.get(name) == sid:
                    del self.active_names[name]

    def retire_due(self) -> list[str]:
        """Retire the ended rooms whose retention passed (in event time); returns their SIDs."""
        if self.retention is None:
            return []
        due = self.retention.due(self.rooms)
        self.forget(due)
        return due

    # ------------------------------------------------------------ restoring from a changelog

    def restore(self, sid: str, state: RoomState, version: int | None) -> None:
        """Install a room's state as the changelog kept it (names are rebuilt by `restored`)."""
        self.rooms[sid] = state
        if version is not None:
            self.versions[sid] = version
        if self.retention is not None:
            self.retention.restore_room(sid, state)

    def restored(self) -> None:
        """After `restore` calls: who holds each name, as replaying the partition would decide."""
        self.active_names = {}
        by_creation = sorted(self.rooms.items(), key=lambda item: (date_created_ms(item[1]), item[0]))
        for sid, state in by_creation:
            if status(state) == "in-progress":
                self.active_names.setdefault(unique_name(state), sid)


def timer_due(state: RoomState, now_ms: int) -> int | None:
    """When roomevents is the room's authority, the instant its timeout ended it, if that has passed.

    Authority: created through our API with no StatusCallback (so Twilio reports nothing). Unused:
    no participant connected within UnusedRoomTimeout minutes of creation. Empty: the room stayed
    empty for EmptyRoomTimeout minutes after a participant left. The history is swept in Twilio
    time, so the first timeout that elapsed wins even if participants (stamped later) arrived since;
    the instant comes from the history, not from `now`, so a replay emits the same record.
    """
    if state["config"] is None or status(state) != "in-progress":
        return None
    config = state["config"].value
    if config.get("status_callback"):
        return None
    due = _timeout_instant(state, config)
    return due if due is not None and due <= now_ms else None


def _timeout_instant(state: RoomState, config: Mapping[str, Any]) -> int | None:
    unused = date_created_ms(state) + int(config.get("unused_room_timeout") or 5) * 60_000
    participants = state["participants"]
    if not participants:
        return unused
    empty_for = int(config.get("empty_room_timeout") or 5) * 60_000
    edges = participant_edges(participants)
    if edges[0][0] >= unused:
        return unused  # nobody came in time
    present = 0
    emptied_at = None
    for at, delta in edges:
        if emptied_at is not None and at >= emptied_at + empty_for:
            return emptied_at + empty_for  # stayed empty long enough before this join
        present += delta
        emptied_at = at if present == 0 else None
    return emptied_at + empty_for if emptied_at is not None else None


def timer_event(state: RoomState, due_ms: int, now_ms: int) -> dict[str, Any]:
    config = state["config"].value
    return records.room_ended(
        config.get("account_sid") or "", state["sid"], unique_name(state), due_ms, reason="timeout"
    ) | {"received_at": records.format_ms(now_ms)}

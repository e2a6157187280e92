"""RoomBook: the rooms of the partitions one materializer owns, and who holds each unique name.

Pure domain code (no I/O, the clock is a parameter). Room state is folded by `fold`; the one
decision that depends on log order rather than Twilio time is unique-name arbitration: records are
keyed by unique name, so every competitor for a name sits on one partition, and the first create
in log order while the name is free wins. Replaying the partition replays the same decisions.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from service.events import record as records
from service.state.fold import fold, mark_failed, order_of
from service.state.shapes import RoomState
from service.state.views import date_created_ms, participant_edges, status, unique_name

UNIQUE_NAME_TAKEN = "unique-name-taken"


class RoomBook:
    def __init__(self) -> None:
        self.rooms: dict[str, RoomState] = {}
        self.active_names: dict[str, str] = {}

    def apply(self, event: Mapping[str, Any]) -> str:
        """Fold one event in; returns the SID of the room it changed."""
        sid = event["room_sid"]
        before = self.rooms.get(sid)
        after = fold(before, event)
        name = unique_name(after)
        holder = self.active_names.get(name)
        # Arbitrate the room's first api create, even if callbacks for its SID came before it.
        if (
            event["type"] == "room-created"
            and event.get("source") == "api"
            and (before is None or before["config"] is None)
            and holder is not None
            and holder != sid
            and status(self.rooms[holder]) == "in-progress"
        ):
            after = mark_failed(after, UNIQUE_NAME_TAKEN, order_of(event))
        self.rooms[sid] = after
        if status(after) == "in-progress":
            self.active_names.setdefault(name, sid)
        elif holder == sid:
            del self.active_names[name]
        return sid

    def apply_all(self, events: Iterable[Mapping[str, Any]]) -> set[str]:
        return {self.apply(e) for e in events}

    def forget(self, sids: Iterable[str]) -> None:
        """Drop rooms (their partition was revoked)."""
        for sid in sids:
            state = self.rooms.pop(sid, None)
            if state is not None:
                name = unique_name(state)
                if self.active_names.get(name) == sid:
                    del self.active_names[name]


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

"""Retiring ended rooms from the hot state, by event time. Pure: no I/O, no clock.

A room that is completed or failed and ended more than `retain_ms` before the partition's event
time (the latest Twilio time folded on it, the watermark) is retired: it leaves the book, and the
materializer writes tombstones for it on the state and changelog topics. Event time, not the wall
clock, so a replay retires the same rooms; a partition that receives nothing retires nothing.

A late event must never bring a retired room back as in-progress. Such events are dead-lettered
with a reason rather than folded into a fresh, partial room:
- `room-retired`: the room was retired within the last `retain_ms` (its SID is remembered that long);
- `older-than-retention`: an event for a room not held, stamped more than `retain_ms` before the
  watermark (it could only belong to a room retired long ago).
The dead letter keeps the record whole, so it can still be archived or inspected.

Event time is the provider's timestamp, but no later than the ingress's receipt time plus a
small allowance (`event_time`): a callback stamped years ahead must not push the watermark past
every room and retire them all. Both times are in the record, so replays agree.
"""

from __future__ import annotations

import heapq
from typing import Any, Mapping

from service.state.views import end_ms, status

ROOM_RETIRED = "room-retired"
# How far ahead of its receipt an event's own timestamp may move event time (clock skew).
FUTURE_ALLOWANCE_MS = 5 * 60_000
OLDER_THAN_RETENTION = "older-than-retention"


def event_time(occurred_at_ms: int, received_at_ms: int | None) -> int:
    """The time an event moves the watermark to."""
    if received_at_ms is None:
        return occurred_at_ms
    return min(occurred_at_ms, received_at_ms + FUTURE_ALLOWANCE_MS)


class Retention:
    """One partition's event time, its ended rooms in end order, and the recently retired SIDs."""

    def __init__(self, retain_ms: int) -> None:
        self.retain_ms = retain_ms
        self.watermark_ms: int | None = None
        self.retired: dict[str, int] = {}  # SID -> end time, until it is `retain_ms` older still
        self._ended: list[tuple[int, str]] = []  # heap of (end time, SID); stale entries are skipped
        self._retired_order: list[tuple[int, str]] = []

    # ------------------------------------------------------------ folding

    def late_reason(self, event: Mapping[str, Any], held: bool) -> str | None:
        """Why an event must not be folded (dead-letter it), or None."""
        sid = event["room_sid"]
        if sid in self.retired:
            return ROOM_RETIRED
        if not held and self.watermark_ms is not None and event["occurred_at_ms"] < self.watermark_ms - self.retain_ms:
            return OLDER_THAN_RETENTION
        return None

    def advance(self, event_ms: int) -> None:
        """After a fold: event time moves to the event's, if later (see event_time)."""
        if self.watermark_ms is None or event_ms > self.watermark_ms:
            self.watermark_ms = event_ms

    def ended(self, sid: str, state: Mapping[str, Any]) -> None:
        """A fold left the room completed or failed: it retires once its end is old enough."""
        heapq.heappush(self._ended, (end_ms(state), sid))

    # ------------------------------------------------------------ retiring

    def due(self, rooms: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """SIDs of held rooms to retire now, oldest end first (each once)."""
        if self.watermark_ms is None:
            return []
        horizon = self.watermark_ms - self.retain_ms
        out: list[str] = []
        while self._ended and self._ended[0][0] < horizon:
            ended_at, sid = heapq.heappop(self._ended)
            state = rooms.get(sid)
            if state is None or sid in self.retired or status(state) == "in-progress" or end_ms(state) != ended_at:
                continue  # gone, already retired, or an entry a later fold superseded
            out.append(sid)
            self.retired[sid] = ended_at
            heapq.heappush(self._retired_order, (ended_at, sid))
        return out

    def expired(self) -> list[str]:
        """Retired SIDs no longer remembered: ended more than twice the retention before event time."""
        if self.watermark_ms is None:
            return []
        horizon = self.watermark_ms - 2 * self.retain_ms
        out = []
        while self._retired_order and self._retired_order[0][0] < horizon:
            _, sid = heapq.heappop(self._retired_order)
            if self.retired.pop(sid, None) is not None:
                out.append(sid)
        return out

    # ------------------------------------------------------------ restoring

    def restore_room(self, sid: str, state: Mapping[str, Any]) -> None:
        if status(state) != "in-progress":
            heapq.heappush(self._ended, (end_ms(state), sid))

    def restore_retired(self, sid: str, ended_at: int) -> None:
        self.retired[sid] = ended_at
        heapq.heappush(self._retired_order, (ended_at, sid))

    def restore_watermark(self, watermark_ms: int | None) -> None:
        if watermark_ms is not None and (self.watermark_ms is None or watermark_ms > self.watermark_ms):
            self.watermark_ms = watermark_ms

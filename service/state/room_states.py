"""RoomStates: a partition's fold states, ended rooms held compactly. Pure: no I/O.

A room in progress changes with every event and stays a plain dict. A completed or failed room
rarely changes again (late events, then retirement), and ended rooms are most of what a
partition holds within the retention window: each is kept as zlib-compressed msgspec JSON (a
room of 8 participants: ~6 KB of state as JSON, ~1 KB compressed, against tens of KB as Python
objects) and decoded when read. Reads of ended rooms are rare on the hot path (a late event, a
retirement, a snapshot); the timers and gauges read only the live ones or the counts.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, MutableMapping

import msgspec

from service.state.shapes import RoomState
from service.state.views import status

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RoomState)
_LEVEL = 1


class RoomStates(MutableMapping[str, RoomState]):
    def __init__(self) -> None:
        self._live: dict[str, RoomState] = {}
        self._ended: dict[str, bytes] = {}
        self._ended_failed = 0  # of the ended rooms, how many failed (for the gauges)

    def __getitem__(self, sid: str) -> RoomState:
        state = self._live.get(sid)
        if state is not None:
            return state
        blob = self._ended[sid]  # KeyError when absent, as a dict
        return _decoder.decode(zlib.decompress(blob))

    def __setitem__(self, sid: str, state: RoomState) -> None:
        self.put(sid, state, status(state))

    def put(self, sid: str, state: RoomState, room_status: str) -> None:
        """Set a room's state whose status (views.status) the caller has at hand."""
        if room_status == "in-progress" and sid not in self._ended:
            self._live[sid] = state  # the hot path: a room in progress stays one
            return
        self._discard(sid)
        if room_status == "in-progress":
            self._live[sid] = state
        else:
            self._ended[sid] = zlib.compress(_encoder.encode(state), _LEVEL)
            self._ended_failed += room_status == "failed"

    def __delitem__(self, sid: str) -> None:
        if not self._discard(sid):
            raise KeyError(sid)

    def _discard(self, sid: str) -> bool:
        if self._live.pop(sid, None) is not None:
            return True
        blob = self._ended.pop(sid, None)
        if blob is None:
            return False
        if status(_decoder.decode(zlib.decompress(blob))) == "failed":
            self._ended_failed -= 1
        return True

    def __iter__(self) -> Iterator[str]:
        yield from list(self._live)
        yield from list(self._ended)

    def __len__(self) -> int:
        return len(self._live) + len(self._ended)

    def __contains__(self, sid: object) -> bool:
        return sid in self._live or sid in self._ended

    def get(self, sid: str, default: RoomState | None = None) -> RoomState | None:  # type: ignore[override]
        state = self._live.get(sid)
        if state is not None:
            return state
        blob = self._ended.get(sid)
        return default if blob is None else _decoder.decode(zlib.decompress(blob))

    def live(self) -> dict[str, RoomState]:
        """The rooms in progress (a copy: safe across awaits)."""
        return dict(self._live)

    def status_counts(self) -> dict[str, int]:
        return {
            "in-progress": len(self._live),
            "completed": len(self._ended) - self._ended_failed,
            "failed": self._ended_failed,
        }

"""RoomStates: ended rooms held compressed, rooms in progress as they are; a dict to its users."""

from __future__ import annotations

import copy
import random
import tracemalloc

from service.state.book import RoomBook
from service.state.room_states import RoomStates
from service.state.views import status
from tests import streams


def ended_rooms(count: int) -> dict:
    book = RoomBook()
    for i in range(count):
        book.apply_all(streams.room_history(i, random.Random(i), participants=8))
    return {sid: book.rooms[sid] for sid in book.rooms}


def test_reads_writes_and_counts_like_a_dict():
    states = ended_rooms(3)
    rooms = RoomStates()
    for sid, state in states.items():
        rooms[sid] = state
    live_sid, live_state = "RMlive", dict(next(iter(states.values())), ended=None, completed_seen=None, failed=None)
    rooms[live_sid] = live_state
    assert status(live_state) == "in-progress"
    assert len(rooms) == 4 and set(rooms) == {*states, live_sid}
    assert all(rooms[sid] == state for sid, state in states.items())
    assert rooms[live_sid] is live_state  # a room in progress is not copied
    assert rooms.live() == {live_sid: live_state}
    assert rooms.status_counts() == {"in-progress": 1, "completed": 3, "failed": 0}
    del rooms[next(iter(states))]
    assert len(rooms) == 3 and rooms.status_counts()["completed"] == 2
    assert rooms.get("RMnone") is None and "RMnone" not in rooms


def test_ended_rooms_take_a_fraction_of_their_memory_as_objects():
    states = ended_rooms(200)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        as_objects = {sid: copy.deepcopy(state) for sid, state in states.items()}
        objects_bytes = tracemalloc.get_traced_memory()[0] - before
        before = tracemalloc.get_traced_memory()[0]
        compact = RoomStates()
        for sid, state in states.items():
            compact[sid] = state
        compact_bytes = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(as_objects) == len(compact) == 200
    print(f"per ended room of 8 participants: {objects_bytes // 200} bytes as objects, {compact_bytes // 200} held")
    assert compact_bytes * 4 < objects_bytes, (compact_bytes, objects_bytes)

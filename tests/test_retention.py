"""Retiring ended rooms by event time (service/state/retention.py through RoomBook). Pure: no broker.

- a completed or failed room leaves the book once event time is `retain` past its end, never before;
- a late event never brings a retired room back: it is refused with a reason (dead-lettered);
- a callback stamped far in the future cannot retire everything;
- the held rooms after a log do not depend on where batches began and ended (replay = live run).
"""

from __future__ import annotations

from hypothesis import given, settings as hsettings, strategies as st

from service.events.record import format_ms, from_callback
from service.state.book import RoomBook
from service.state.changelog import decode_room, encode_room
from service.state.render import render
from service.state.retention import OLDER_THAN_RETENTION, ROOM_RETIRED
from service.state.views import status

ACCOUNT = "AC" + "0" * 31 + "1"
T0 = 1_900_000_000_000
MIN = 60_000
RETAIN = 30 * MIN


def callback(sid: str, event: str, at_ms: int, received_ms: int | None = None, **extra: str) -> dict:
    params = {
        "AccountSid": ACCOUNT,
        "RoomSid": sid,
        "RoomName": f"name-{sid}",
        "RoomType": "group",
        "StatusCallbackEvent": event,
        "Timestamp": format_ms(at_ms),
        "RoomStatus": "completed" if event == "room-ended" else "in-progress",
        **extra,
    }
    return from_callback({k: [v] for k, v in params.items()}, received_ms if received_ms is not None else at_ms + 50)


def joined(sid: str, at_ms: int, n: int = 1) -> dict:
    return callback(sid, "participant-connected", at_ms, ParticipantSid=f"PA{n:032x}", ParticipantIdentity=f"u{n}")


def test_an_ended_room_retires_once_event_time_passes_its_end_plus_retention():
    book = RoomBook(RETAIN)
    book.take(callback("RMa", "room-created", T0))
    book.take(callback("RMa", "room-ended", T0 + 5 * MIN))
    book.take(callback("RMlive", "room-created", T0 + 6 * MIN))
    assert book.retire_due() == []
    book.take(joined("RMlive", T0 + 5 * MIN + RETAIN))  # exactly at the horizon: not yet
    assert book.retire_due() == []
    book.take(joined("RMlive", T0 + 5 * MIN + RETAIN + 1, 2))
    assert book.retire_due() == ["RMa"]
    assert "RMa" not in book.rooms and status(book.rooms["RMlive"]) == "in-progress"
    # In-progress rooms never retire, however old.
    book.take(joined("RMlive", T0 + 100 * RETAIN, 3))
    assert book.retire_due() == [] and "RMlive" in book.rooms


def test_a_late_event_never_brings_a_retired_room_back():
    book = RoomBook(RETAIN)
    book.take(callback("RMa", "room-created", T0))
    book.take(callback("RMa", "room-ended", T0 + MIN))
    book.take(callback("RMb", "room-created", T0 + 2 * RETAIN))
    assert book.retire_due() == ["RMa"]
    # A participant event of the retired room, stamped before or after its end.
    for at in (T0 + 30_000, T0 + 2 * MIN):
        applied = book.take(joined("RMa", at, 7))
        assert applied.refused == ROOM_RETIRED and not applied.changed
    assert "RMa" not in book.rooms
    # Long after, the SID is forgotten, but anything that old is refused by its age.
    book.take(joined("RMb", T0 + 10 * RETAIN))
    book.retire_due()
    assert book.retention.expired() == ["RMa"]
    applied = book.take(joined("RMa", T0 + 30_000, 8))
    assert applied.refused == OLDER_THAN_RETENTION and "RMa" not in book.rooms
    # A new room with current events is folded as usual.
    assert book.take(callback("RMc", "room-created", T0 + 10 * RETAIN)).changed


def test_a_timestamp_far_ahead_moves_event_time_only_a_little_past_its_receipt():
    book = RoomBook(RETAIN)
    book.take(callback("RMa", "room-created", T0))
    book.take(callback("RMa", "room-ended", T0 + MIN))
    # Stamped a year ahead, received now.
    book.take(callback("RMb", "room-created", T0 + 365 * 24 * 60 * MIN, received_ms=T0 + 2 * MIN))
    assert book.retire_due() == [] and "RMa" in book.rooms
    assert book.retention.watermark_ms == T0 + 2 * MIN + 5 * MIN


def test_changelog_entries_round_trip_state_and_version():
    book = RoomBook(RETAIN)
    book.take(callback("RMa", "room-created", T0), offset=3)
    book.take(joined("RMa", T0 + 1000), offset=9)
    state, version = decode_room(encode_room(book.rooms["RMa"], book.versions["RMa"]))
    assert state == book.rooms["RMa"] and version == 9
    restored = RoomBook(RETAIN)
    restored.restore("RMa", state, version)
    restored.restored()
    assert restored.active_names == {"name-RMa": "RMa"}
    assert render(restored.rooms["RMa"]) == render(book.rooms["RMa"])


# ---------------------------------------------------------------- replay equals the live run


@st.composite
def logs(draw):
    """A partition's log: rooms created over time, most ended, some events arriving late."""
    events = []
    for i in range(draw(st.integers(2, 6))):
        sid = f"RM{i:032x}"
        start = T0 + draw(st.integers(0, 8)) * RETAIN // 2
        events.append(callback(sid, "room-created", start))
        for n in range(draw(st.integers(0, 3))):
            events.append(joined(sid, start + draw(st.integers(0, 10)) * MIN, n))
        if draw(st.booleans()):
            events.append(callback(sid, "room-ended", start + draw(st.integers(1, 20)) * MIN))
    order = draw(st.permutations(range(len(events))))
    return [events[i] for i in order]


def run(log: list[dict], cuts: set[int]) -> RoomBook:
    book = RoomBook(RETAIN)
    for offset, event in enumerate(log):
        book.take(event, offset)
        if offset in cuts:
            book.retire_due()
    book.retire_due()
    return book


@hsettings(max_examples=150, deadline=None, database=None)
@given(logs(), st.sets(st.integers(0, 40)))
def test_held_rooms_do_not_depend_on_batch_boundaries(log, cuts):
    live, replay = run(log, cuts), run(log, set())
    assert live.rooms.keys() == replay.rooms.keys()
    for sid in live.rooms:
        assert render(live.rooms[sid]) == render(replay.rooms[sid])
        assert live.versions[sid] == replay.versions[sid]
    assert live.retention.retired.keys() == replay.retention.retired.keys()

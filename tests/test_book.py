"""RoomBook: unique-name arbitration in log order, replay, and the authority timers (pure, no broker)."""

from __future__ import annotations

from service.events.record import format_ms, from_callback, parse_timestamp_ms, room_created, room_ended
from service.rooms.params import parse_create_form
from service.state.book import UNIQUE_NAME_TAKEN, RoomBook, timer_due, timer_event
from service.state.fold import fold
from service.state.render import render
from service.state.views import status

ACCOUNT = "AC" + "0" * 31 + "1"
A, B, C = ("RM" + ch * 32 for ch in "abc")
T0 = parse_timestamp_ms("2030-01-01T00:00:00.000Z")
S = 1000
MIN = 60 * S


def api_create(sid: str, t: int = 0, name: str | None = "demo", **form) -> dict:
    raw = ({"UniqueName": [name]} if name else {}) | {k: [str(v)] for k, v in form.items()}
    config = parse_create_form(raw).to_dict() | {"account_sid": ACCOUNT, "sid": sid}
    return room_created(ACCOUNT, sid, config, T0 + t, raw)


def api_end(sid: str, t: int, name: str = "demo", reason: str = "api") -> dict:
    return room_ended(ACCOUNT, sid, name, T0 + t, reason=reason)


def cb(event: str, sid: str, t: int, name: str | None = "demo", room_status: str = "in-progress", **params) -> dict:
    raw = {
        "AccountSid": ACCOUNT,
        "RoomSid": sid,
        "RoomName": name,
        "RoomStatus": room_status,
        "RoomType": "group",
        "StatusCallbackEvent": event,
        "Timestamp": format_ms(T0 + t),
        **params,
    }
    return from_callback({k: [str(v)] for k, v in raw.items() if v is not None}, T0 + t + 100)


def joined(sid: str, t: int, psid: str) -> dict:
    return cb("participant-connected", sid, t, ParticipantSid=psid, ParticipantStatus="connected")


def left(sid: str, t: int, psid: str) -> dict:
    return cb("participant-disconnected", sid, t, ParticipantSid=psid, ParticipantStatus="disconnected")


def book_of(*events) -> RoomBook:
    book = RoomBook()
    for event in events:
        book.apply(event)
    return book


# ---------------------------------------------------------------- unique-name arbitration


def test_second_api_create_with_an_in_progress_name_fails():
    book = book_of(api_create(A, 0), api_create(B, 2 * S))
    loser = render(book.rooms[B])
    assert loser["status"] == "failed" and loser["failure_reason"] == UNIQUE_NAME_TAKEN
    assert loser["unique_name"] == "demo" and loser["end_time_ms"] == T0 + 2 * S and loser["duration"] == 0
    winner = render(book.rooms[A])
    assert winner["status"] == "in-progress" and winner["failure_reason"] is None
    assert book.active_names == {"demo": A}


def test_log_order_decides_not_the_timestamp():
    """The earlier log entry wins even when its create is stamped later (the ingress clocks differ)."""
    book = book_of(api_create(B, 5 * S), api_create(A, 0))
    assert status(book.rooms[B]) == "in-progress" and status(book.rooms[A]) == "failed"


def test_apply_returns_the_changed_room():
    book = RoomBook()
    assert book.apply(api_create(A, 0)) == A
    assert book.apply_all([api_create(B, S), joined(A, 2 * S, "PA1")]) == {A, B}


def test_the_loser_stays_failed():
    book = book_of(api_create(A, 0), api_create(B, S))
    for event in (api_create(B, S), joined(B, 2 * S, "PA1"), cb("room-created", B, S), api_end(A, 3 * S)):
        book.apply(event)
    assert status(book.rooms[B]) == "failed"
    assert render(book.rooms[B])["failure_reason"] == UNIQUE_NAME_TAKEN
    assert "demo" not in book.active_names  # A completed; the loser never held the name


def test_a_redelivered_create_of_the_winner_does_not_fail_it():
    book = book_of(api_create(A, 0), joined(A, S, "PA1"), api_create(A, 0))
    assert status(book.rooms[A]) == "in-progress" and book.active_names == {"demo": A}


def test_the_name_is_free_after_completion():
    book = book_of(api_create(A, 0), api_end(A, MIN), api_create(B, 2 * MIN))
    assert status(book.rooms[A]) == "completed" and status(book.rooms[B]) == "in-progress"
    assert book.active_names == {"demo": B}
    # ... and after a completion reported by Twilio, and after a failure.
    book = book_of(api_create(A, 0), cb("room-ended", A, MIN, room_status="completed"), api_create(B, 2 * MIN))
    assert status(book.rooms[B]) == "in-progress"
    book = book_of(api_create(A, 0), cb("room-ended", A, MIN, room_status="failed"), api_create(B, 2 * MIN))
    assert status(book.rooms[B]) == "in-progress"


def test_late_events_of_a_completed_room_do_not_take_the_name_back():
    book = book_of(api_create(A, 0), api_end(A, MIN), api_create(B, 2 * MIN), joined(A, 30 * S, "PA1"))
    assert book.active_names == {"demo": B}
    book.apply(api_create(C, 3 * MIN))
    assert render(book.rooms[C])["failure_reason"] == UNIQUE_NAME_TAKEN


def test_rooms_without_a_unique_name_never_conflict():
    book = book_of(api_create(A, 0, name=None), api_create(B, 0, name=None))
    assert status(book.rooms[A]) == status(book.rooms[B]) == "in-progress"
    assert book.active_names == {A: A, B: B}


def test_a_room_twilio_reports_in_progress_holds_its_name():
    book = book_of(cb("room-created", A, 0), api_create(B, S))
    assert status(book.rooms[A]) == "in-progress"
    assert render(book.rooms[B])["failure_reason"] == UNIQUE_NAME_TAKEN


def test_callbacks_before_the_api_create_do_not_skip_arbitration():
    book = book_of(api_create(A, 0), joined(B, 0, "PA1"), api_create(B, S))
    assert status(book.rooms[A]) == "in-progress"
    assert render(book.rooms[B])["failure_reason"] == UNIQUE_NAME_TAKEN


def test_forget_drops_rooms_and_frees_their_names():
    book = book_of(api_create(A, 0), api_create(B, 0, name="other"))
    book.forget([A, "RM-unknown"])
    assert set(book.rooms) == {B} and book.active_names == {"other": B}


# ---------------------------------------------------------------- replay


def _log() -> list[dict]:
    return [
        api_create(A, 0),
        joined(A, S, "PA1"),
        api_create(B, 2 * S),  # B loses
        cb("track-added", A, 3 * S, ParticipantSid="PA1", TrackSid="MT1", TrackKind="audio"),
        left(A, 20 * S, "PA1"),
        api_end(A, 30 * S),
        api_create(C, 40 * S),  # C wins after A ended
        joined(A, 10 * S, "PA2"),
        api_create(B, 2 * S),
        api_create(A, 0),
    ]  # late and redelivered


def test_replaying_the_same_log_gives_identical_states():
    live = book_of(*_log())
    replayed = RoomBook()
    replayed.apply_all(_log())
    assert replayed.rooms == live.rooms and replayed.active_names == live.active_names
    assert [render(replayed.rooms[s]) for s in (A, B, C)] == [render(live.rooms[s]) for s in (A, B, C)]
    assert [status(live.rooms[s]) for s in (A, B, C)] == ["completed", "failed", "in-progress"]
    assert live.active_names == {"demo": C}


# ---------------------------------------------------------------- timers


def test_unused_room_times_out_after_unused_room_timeout():
    state = fold(None, api_create(A, 0, UnusedRoomTimeout=2))
    assert timer_due(state, T0 + 2 * MIN - 1) is None
    assert timer_due(state, T0 + 2 * MIN) == T0 + 2 * MIN
    assert timer_due(state, T0 + 60 * MIN) == T0 + 2 * MIN  # from the history, not from now
    default = fold(None, api_create(B, 0))
    assert timer_due(default, T0 + 5 * MIN - 1) is None and timer_due(default, T0 + 5 * MIN) == T0 + 5 * MIN


def test_a_connected_participant_keeps_the_room_open():
    state = fold(fold(None, api_create(A, 0, UnusedRoomTimeout=1)), joined(A, 30 * S, "PA1"))
    assert timer_due(state, T0 + 600 * MIN) is None


def test_empty_room_times_out_after_the_last_participant_left():
    state = None
    for event in (
        api_create(A, 0, EmptyRoomTimeout=3),
        joined(A, 10 * S, "PA1"),
        joined(A, 20 * S, "PA2"),
        left(A, 50 * S, "PA1"),
        left(A, 70 * S, "PA2"),
    ):
        state = fold(state, event)
    assert timer_due(state, T0 + 70 * S + 3 * MIN - 1) is None
    assert timer_due(state, T0 + 70 * S + 3 * MIN) == T0 + 70 * S + 3 * MIN


def test_a_rejoin_within_the_empty_timeout_restarts_it():
    events = [
        api_create(A, 0, EmptyRoomTimeout=3),
        joined(A, 0, "PA1"),
        left(A, MIN, "PA1"),
        joined(A, 2 * MIN, "PA2"),
        left(A, 4 * MIN, "PA2"),
    ]
    state = None
    for event in events:
        state = fold(state, event)
    assert timer_due(state, T0 + 100 * MIN) == T0 + 7 * MIN


def test_the_first_elapsed_timeout_wins_over_participants_stamped_after_it():
    """Twilio would have ended the room already; a participant stamped later cannot keep it open."""
    unused = [api_create(A, 0, UnusedRoomTimeout=2), joined(A, 3 * MIN, "PA1")]
    state = None
    for event in unused:
        state = fold(state, event)
    assert timer_due(state, T0 + 3 * MIN) == T0 + 2 * MIN
    emptied = [
        api_create(B, 0, EmptyRoomTimeout=1),
        joined(B, 0, "PA1"),
        left(B, MIN, "PA1"),
        joined(B, 5 * MIN, "PA2"),
    ]
    state = None
    for event in emptied:
        state = fold(state, event)
    assert timer_due(state, T0 + 5 * MIN) == T0 + 2 * MIN


def test_no_timer_when_twilio_reports_the_room():
    state = fold(None, api_create(A, 0, StatusCallback="https://example.com/callbacks"))
    assert timer_due(state, T0 + 600 * MIN) is None
    callback_only = fold(None, cb("room-created", A, 0))
    assert timer_due(callback_only, T0 + 600 * MIN) is None


def test_no_timer_once_the_room_ended_or_failed():
    created = fold(None, api_create(A, 0))
    assert timer_due(fold(created, api_end(A, MIN)), T0 + 600 * MIN) is None
    assert timer_due(fold(created, cb("room-ended", A, MIN, room_status="failed")), T0 + 600 * MIN) is None
    loser = book_of(api_create(B, 0), api_create(A, 0)).rooms[A]
    assert status(loser) == "failed" and timer_due(loser, T0 + 600 * MIN) is None


def test_timer_event_ends_the_room_with_reason_timeout():
    state = fold(None, api_create(A, 0, UnusedRoomTimeout=1))
    due = timer_due(state, T0 + 10 * MIN)
    event = timer_event(state, due, T0 + 10 * MIN)
    assert event["type"] == "room-ended" and event["source"] == "timer" and event["end_reason"] == "timeout"
    assert event["room_sid"] == A and event["room_name"] == "demo" and event["account_sid"] == ACCOUNT
    assert event["occurred_at_ms"] == T0 + MIN and event["received_at"] == format_ms(T0 + 10 * MIN)
    # A second materializer (after a rebalance) emits the same record: same id, same instant.
    again = timer_event(state, timer_due(state, T0 + 20 * MIN), T0 + 20 * MIN)
    assert again["event_id"] == event["event_id"] and again["occurred_at_ms"] == event["occurred_at_ms"]
    ended = fold(state, event)
    doc = render(ended)
    assert doc["status"] == "completed" and doc["end_reason"] == "timeout"
    assert doc["end_time_ms"] == T0 + MIN and doc["duration"] == 60
    assert timer_due(ended, T0 + 600 * MIN) is None
    book = book_of(api_create(A, 0, UnusedRoomTimeout=1), event, api_create(B, 2 * MIN))
    assert status(book.rooms[B]) == "in-progress"  # the timeout freed the name

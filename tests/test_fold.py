"""The room-state reducer, by example: each event type's effect on the rendered room document.

Pure domain code only (no broker): records are built with the same builders the ingress and the
materializer use (`from_callback`, `room_created`, `room_ended`; tests/builders.py). Participants, tracks and
recordings: test_fold_members.py.
"""

from __future__ import annotations

import copy

import pytest

from service.events.record import format_ms
from service.state.fold import fold
from service.state.render import RESOURCE_FIELDS, render
from service.state.views import status
from tests.builders import (
    ACCOUNT,
    MIN,
    SID,
    T0,
    S,
    api_create,
    api_end,
    at,
    cb,
    doc_of,
    fold_all,
    participant,
    recording,
    track,
)

# ---------------------------------------------------------------- rooms


def test_api_create_renders_the_room_resource():
    doc = doc_of(api_create(0, MaxParticipants=7, EmptyRoomTimeout=3))
    assert doc["sid"] == SID and doc["account_sid"] == ACCOUNT
    assert doc["status"] == "in-progress" and doc["created_via"] == "api"
    assert doc["unique_name"] == "demo" and doc["type"] == "group"
    assert doc["max_participants"] == 7 and doc["empty_room_timeout"] == 3 and doc["unused_room_timeout"] == 5
    assert doc["enable_turn"] is True and doc["status_callback_method"] == "POST"
    assert doc["video_codecs"] == ["VP8"] and doc["media_region"] == "us1"
    assert doc["date_created"] == at(0) and doc["date_updated"] == at(0) and doc["date_created_ms"] == T0
    assert doc["end_time"] is None and doc["end_time_ms"] is None and doc["duration"] is None
    assert doc["end_reason"] is None and doc["failure_reason"] is None
    assert doc["participants"] == [] and doc["connected_participants"] == 0
    assert doc["peak_concurrent_participants"] == 0
    assert doc["published_tracks"] == {"audio": 0, "video": 0, "data": 0}
    assert doc["tracks"] == [] and doc["recordings"] == []
    assert doc["last_event"]["type"] == "room-created"
    assert doc["last_event"]["occurred_at"] == format_ms(T0)


def test_render_keys_are_the_resource_fields_plus_the_dashboard_fields():
    extra = {
        "created_via",
        "provider",
        "end_reason",
        "failure_reason",
        "date_created_ms",
        "end_time_ms",
        "participants",
        "connected_participants",
        "peak_concurrent_participants",
        "published_tracks",
        "tracks",
        "recordings",
        "recording_rules",
        "last_event",
    }
    for doc in (doc_of(api_create(0)), doc_of(cb("participant-connected", 0, ParticipantSid="PA1"))):
        assert set(doc) == set(RESOURCE_FIELDS) | extra


def test_callback_room_created():
    doc = doc_of(cb("room-created", 0, seq=0))
    assert doc["status"] == "in-progress" and doc["created_via"] == "callback"
    assert doc["account_sid"] == ACCOUNT and doc["type"] == "group" and doc["unique_name"] == "demo"
    assert doc["date_created"] == at(0)
    assert doc["last_event"]["sequence_number"] == 0
    assert doc["last_event"]["event_id"] == cb("room-created", 0, seq=0)["event_id"]


def test_room_never_seen_created_is_built_from_its_callbacks():
    """A room made outside this system: only its callbacks, not its room-created, ever arrive."""
    events = [
        participant("participant-connected", 10 * S, "PA1", "alice"),
        track("track-added", 11 * S, "MT1", "PA1", "video"),
        participant("participant-disconnected", 70 * S, "PA1", "alice", ParticipantDuration=60),
    ]
    doc = doc_of(*events)
    assert doc["sid"] == SID and doc["status"] == "in-progress" and doc["created_via"] == "callback"
    assert doc["account_sid"] == ACCOUNT and doc["unique_name"] == "demo" and doc["type"] == "group"
    assert doc["date_created"] == at(10 * S)  # the earliest thing known about it
    assert doc["max_participants"] is None  # configuration never seen
    assert doc["participants"][0]["identity"] == "alice"
    assert doc["last_event"]["type"] == "participant-disconnected"


def test_room_name_defaults_to_the_sid():
    doc = doc_of(cb("room-created", 0, name=None))
    assert doc["unique_name"] == SID


def test_room_type_and_name_survive_events_that_do_not_carry_them():
    """An API room-ended (no RoomType) for a callback-only room must not blank its type."""
    doc = doc_of(cb("room-created", 0), cb("participant-connected", S, ParticipantSid="PA1"), api_end(2 * S))
    assert doc["type"] == "group" and doc["unique_name"] == "demo" and doc["account_sid"] == ACCOUNT
    assert doc["status"] == "completed" and doc["end_reason"] == "api"


# ---------------------------------------------------------------- room-ended, duration, end_reason


def test_room_duration_from_twilio_wins_over_the_computed_one():
    doc = doc_of(cb("room-created", 0), cb("room-ended", 600 * S, room_status="completed", RoomDuration=599))
    assert doc["status"] == "completed" and doc["duration"] == 599
    assert doc["end_time"] == at(600 * S) and doc["end_time_ms"] == T0 + 600 * S
    assert doc["end_reason"] == "callback"


def test_duration_is_computed_when_twilio_sends_none():
    doc = doc_of(api_create(0), api_end(90 * S + 999))
    assert doc["status"] == "completed" and doc["duration"] == 90
    assert doc["end_time"] == at(90 * S) and doc["end_reason"] == "api"


@pytest.mark.parametrize(
    "end, reason",
    [
        (lambda t: api_end(t, reason="api"), "api"),
        (lambda t: api_end(t, reason="timeout"), "timeout"),
        (lambda t: cb("room-ended", t, room_status="completed"), "callback"),
    ],
)
def test_end_reason(end, reason):
    doc = doc_of(api_create(0), end(5 * MIN))
    assert doc["status"] == "completed" and doc["end_reason"] == reason
    assert doc["end_time"] == at(5 * MIN) and doc["duration"] == 300


def test_the_earliest_end_gives_end_time_and_reason_room_duration_comes_from_twilio():
    """The API ends the room; Twilio's room-ended (with RoomDuration) follows a moment later."""
    events = [api_create(0), api_end(60 * S), cb("room-ended", 60 * S + 400, room_status="completed", RoomDuration=61)]
    for order in (events, events[::-1]):
        doc = doc_of(*order)
        assert doc["end_reason"] == "api" and doc["end_time_ms"] == T0 + 60 * S and doc["duration"] == 61


def test_room_status_completed_on_other_callbacks_completes_the_room():
    """The room-ended callback was lost; a later callback still reports RoomStatus=completed."""
    doc = doc_of(
        cb("room-created", 0),
        participant("participant-connected", S, "PA1"),
        cb(
            "participant-disconnected",
            30 * S,
            room_status="completed",
            ParticipantSid="PA1",
            ParticipantStatus="disconnected",
            ParticipantDuration=29,
        ),
    )
    assert doc["status"] == "completed" and doc["end_reason"] == "callback"
    assert doc["end_time"] == at(30 * S) and doc["duration"] == 30
    # A room-ended that does arrive is preferred for the end instant.
    doc = doc_of(
        cb("room-created", 0),
        cb(
            "participant-disconnected",
            30 * S,
            room_status="completed",
            ParticipantSid="PA1",
            ParticipantStatus="disconnected",
        ),
        cb("room-ended", 31 * S, room_status="completed", RoomDuration=31),
    )
    assert doc["end_time"] == at(31 * S) and doc["duration"] == 31


# ---------------------------------------------------------------- failed, finality


def test_room_reported_failed_by_twilio():
    doc = doc_of(cb("room-created", 0), cb("room-ended", 2 * S, room_status="failed"))
    assert doc["status"] == "failed" and doc["failure_reason"] == "reported-by-twilio"
    assert doc["end_time"] == at(2 * S)


def test_failed_on_any_event_and_failed_is_final():
    events = [
        api_create(0),
        cb("participant-connected", S, room_status="failed", ParticipantSid="PA1"),
        participant("participant-connected", 5 * S, "PA2"),
        api_end(9 * S),
    ]
    doc = doc_of(*events)
    assert doc["status"] == "failed" and doc["failure_reason"] == "reported-by-twilio"
    assert doc["end_time"] == at(9 * S)  # the room-ended that followed still says when it ended
    assert doc["connected_participants"] == 0
    assert all(p["status"] == "disconnected" for p in doc["participants"])


def test_completed_is_final_a_late_participant_does_not_reopen_the_room():
    ended = fold_all(
        [
            api_create(0),
            participant("participant-connected", S, "PA1"),
            cb("room-ended", 60 * S, room_status="completed", RoomDuration=60),
        ]
    )
    late = [
        participant("participant-connected", 61 * S, "PA2", "late"),
        track("track-added", 62 * S, "MT9", "PA2", "video"),
        cb("room-created", 63 * S),
        api_create(64 * S),
    ]
    doc = render(fold_all(late, ended))
    assert doc["status"] == "completed" and doc["end_time"] == at(60 * S) and doc["duration"] == 60
    assert doc["connected_participants"] == 0 and doc["published_tracks"] == {"audio": 0, "video": 0, "data": 0}
    by_sid = {p["sid"]: p for p in doc["participants"]}
    assert by_sid["PA1"]["status"] == "disconnected" and by_sid["PA1"]["end_time"] == at(60 * S)
    assert by_sid["PA1"]["duration"] == 59
    # The late participant is kept, disconnected, and never ends before it started.
    assert by_sid["PA2"]["status"] == "disconnected"
    assert by_sid["PA2"]["end_time"] >= by_sid["PA2"]["start_time"] and by_sid["PA2"]["duration"] == 0
    assert doc["last_event"]["type"] == "room-created"


# ---------------------------------------------------------------- purity and duplicates


def _rich_history() -> list[dict]:
    return [
        api_create(0),
        participant("participant-connected", S, "PA1", "alice"),
        participant("participant-connected", 2 * S, "PA2", "bob"),
        track("track-added", 3 * S, "MT1", "PA1", "audio"),
        track("track-disabled", 4 * S, "MT1", "PA1", "audio"),
        recording("recording-started", 5 * S, "RT1"),
        recording("recording-completed", 9 * S, "RT1", Duration=4, Size=99),
        participant("participant-disconnected", 10 * S, "PA2", "bob", ParticipantDuration=8),
        cb("room-ended", 20 * S, room_status="completed", RoomDuration=20),
    ]


def test_fold_never_mutates_its_inputs():
    history = _rich_history()
    state = None
    for event in history:
        state_before = copy.deepcopy(state)
        event_before = copy.deepcopy(event)
        new = fold(state, event)
        assert state == state_before, f"fold mutated the state on {event['type']}"
        assert event == event_before, f"fold mutated the event {event['type']}"
        assert new is not state
        # Folding anything else into the new state leaves the old one alone too.
        for other in history:
            fold(new, other)
        render(new)
        assert new == fold_all(history[: history.index(event) + 1])
        state = new
    before = copy.deepcopy(state)
    render(state)
    assert state == before


def test_duplicates_and_redeliveries_change_nothing():
    history = _rich_history()
    once = doc_of(*history)
    redelivered = [dict(e, received_at=format_ms(T0 + 99 * S)) for e in history]
    assert doc_of(*history, *history[::-1], *redelivered) == once
    state = fold_all(history)
    for event in history:
        assert fold(state, event) == state


def test_status_helper_matches_the_document():
    assert status(fold_all(_rich_history())) == render(fold_all(_rich_history()))["status"] == "completed"


def test_a_state_kept_before_providers_restores_and_folds_as_twilio():
    """Changelog entries written before providers have no `provider` in the room state: they decode,
    render as twilio, and fold on."""
    from service.state import changelog

    state = fold_all([cb("room-created", 0)])
    old = {k: v for k, v in state.items() if k != "provider"}
    restored, version = changelog.decode_room(changelog.encode_room(old, 7))
    assert "provider" not in restored and version == 7
    assert render(restored)["provider"] == "twilio"
    after = fold(restored, cb("room-ended", 5 * S, room_status="completed"))
    assert render(after)["provider"] == "twilio" and render(after)["status"] == "completed"

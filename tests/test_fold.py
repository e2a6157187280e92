"""The room-state reducer, by example: each event type's effect on the rendered room document.

Pure domain code only (no broker): records are built with the same builders the ingress and the
materializer use (`from_callback`, `room_created`, `room_ended`).
"""
from __future__ import annotations

import copy
from functools import reduce

import pytest

from service.events.record import (
    format_ms,
    format_twilio_date,
    from_callback,
    parse_timestamp_ms,
    room_created,
    room_ended,
)
from service.rooms.params import parse_create_form
from service.state.fold import fold
from service.state.render import RESOURCE_FIELDS, render
from service.state.views import status

ACCOUNT = "AC" + "0" * 31 + "1"
SID = "RM" + "a" * 32
T0 = parse_timestamp_ms("2030-01-01T00:00:00.000Z")
S = 1000  # one second in ms
MIN = 60 * S


def at(offset_ms: int) -> str:
    return format_twilio_date(T0 + offset_ms)


def cb(event: str, t: int, *, seq: int | None = None, sid: str = SID, name: str | None = "demo",
       room_status: str = "in-progress", room_type: str | None = "group", received: int | None = None,
       **params) -> dict:
    """A Twilio status callback at T0 + t ms, as the ingress records it."""
    raw = {"AccountSid": ACCOUNT, "RoomSid": sid, "RoomName": name, "RoomStatus": room_status,
           "RoomType": room_type, "StatusCallbackEvent": event, "Timestamp": format_ms(T0 + t),
           "SequenceNumber": seq}
    raw.update(params)
    form = {k: [str(v)] for k, v in raw.items() if v is not None}
    return from_callback(form, T0 + t + 250 if received is None else received)


def participant(event: str, t: int, psid: str, identity: str | None = None, **params) -> dict:
    status_ = "disconnected" if event == "participant-disconnected" else "connected"
    return cb(event, t, ParticipantSid=psid, ParticipantIdentity=identity or psid.lower(),
              ParticipantStatus=status_, **params)


def track(event: str, t: int, tsid: str, psid: str = "PA1", kind: str = "audio", **params) -> dict:
    return cb(event, t, ParticipantSid=psid, ParticipantIdentity=psid.lower(), ParticipantStatus="connected",
              TrackSid=tsid, TrackKind=kind, **params)


def recording(event: str, t: int, rsid: str, psid: str = "PA1", **params) -> dict:
    return cb(event, t, ParticipantSid=psid, ParticipantIdentity=psid.lower(), RecordingSid=rsid,
              SourceSid="MT1", TrackName="mic", RecordingUri=f"/v1/Recordings/{rsid}", Container="mka",
              Codec="OPUS", Type="audio", OffsetFromTwilioVideoEpoch=100, **params)


def api_create(t: int = 0, sid: str = SID, **form) -> dict:
    raw = {"UniqueName": ["demo"]} | {k: [str(v)] for k, v in form.items()}
    config = parse_create_form(raw).to_dict() | {"account_sid": ACCOUNT, "sid": sid}
    return room_created(ACCOUNT, sid, config, T0 + t, raw)


def api_end(t: int, sid: str = SID, reason: str = "api") -> dict:
    return room_ended(ACCOUNT, sid, "demo", T0 + t, reason=reason, params={"Status": ["completed"]})


def fold_all(events, state=None):
    return reduce(fold, events, state)


def doc_of(*events) -> dict:
    return render(fold_all(events))


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
    extra = {"created_via", "end_reason", "failure_reason", "date_created_ms", "end_time_ms", "participants",
             "connected_participants", "peak_concurrent_participants", "published_tracks", "tracks",
             "recordings", "last_event"}
    for doc in (doc_of(api_create(0)), doc_of(cb("participant-connected", 0, ParticipantSid="PA1"))):
        assert set(doc) == set(RESOURCE_FIELDS) | extra
    assert "recording_rules" not in doc_of(api_create(0))


def test_callback_room_created():
    doc = doc_of(cb("room-created", 0, seq=0))
    assert doc["status"] == "in-progress" and doc["created_via"] == "callback"
    assert doc["account_sid"] == ACCOUNT and doc["type"] == "group" and doc["unique_name"] == "demo"
    assert doc["date_created"] == at(0)
    assert doc["last_event"]["sequence_number"] == 0
    assert doc["last_event"]["event_id"] == cb("room-created", 0, seq=0)["event_id"]


def test_room_never_seen_created_is_built_from_its_callbacks():
    """A room made outside this system: only its callbacks, not its room-created, ever arrive."""
    events = [participant("participant-connected", 10 * S, "PA1", "alice"),
              track("track-added", 11 * S, "MT1", "PA1", "video"),
              participant("participant-disconnected", 70 * S, "PA1", "alice", ParticipantDuration=60)]
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


@pytest.mark.parametrize("end, reason", [
    (lambda t: api_end(t, reason="api"), "api"),
    (lambda t: api_end(t, reason="timeout"), "timeout"),
    (lambda t: cb("room-ended", t, room_status="completed"), "callback"),
])
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
    doc = doc_of(cb("room-created", 0), participant("participant-connected", S, "PA1"),
                 cb("participant-disconnected", 30 * S, room_status="completed", ParticipantSid="PA1",
                    ParticipantStatus="disconnected", ParticipantDuration=29))
    assert doc["status"] == "completed" and doc["end_reason"] == "callback"
    assert doc["end_time"] == at(30 * S) and doc["duration"] == 30
    # A room-ended that does arrive is preferred for the end instant.
    doc = doc_of(cb("room-created", 0), cb("participant-disconnected", 30 * S, room_status="completed",
                                            ParticipantSid="PA1", ParticipantStatus="disconnected"),
                 cb("room-ended", 31 * S, room_status="completed", RoomDuration=31))
    assert doc["end_time"] == at(31 * S) and doc["duration"] == 31


# ---------------------------------------------------------------- failed, finality


def test_room_reported_failed_by_twilio():
    doc = doc_of(cb("room-created", 0), cb("room-ended", 2 * S, room_status="failed"))
    assert doc["status"] == "failed" and doc["failure_reason"] == "reported-by-twilio"
    assert doc["end_time"] == at(2 * S)


def test_failed_on_any_event_and_failed_is_final():
    events = [api_create(0), cb("participant-connected", S, room_status="failed", ParticipantSid="PA1"),
              participant("participant-connected", 5 * S, "PA2"), api_end(9 * S)]
    doc = doc_of(*events)
    assert doc["status"] == "failed" and doc["failure_reason"] == "reported-by-twilio"
    assert doc["end_time"] == at(9 * S)  # the room-ended that followed still says when it ended
    assert doc["connected_participants"] == 0
    assert all(p["status"] == "disconnected" for p in doc["participants"])


def test_completed_is_final_a_late_participant_does_not_reopen_the_room():
    ended = fold_all([api_create(0), participant("participant-connected", S, "PA1"),
                      cb("room-ended", 60 * S, room_status="completed", RoomDuration=60)])
    late = [participant("participant-connected", 61 * S, "PA2", "late"),
            track("track-added", 62 * S, "MT9", "PA2", "video"),
            cb("room-created", 63 * S), api_create(64 * S)]
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


# ---------------------------------------------------------------- participants


def test_participant_connected_and_disconnected():
    s = fold_all([api_create(0), participant("participant-connected", 10 * S, "PA1", "alice")])
    doc = render(s)
    assert doc["participants"] == [{"sid": "PA1", "identity": "alice", "status": "connected",
                                    "start_time": at(10 * S), "end_time": None, "duration": None}]
    assert doc["connected_participants"] == 1 and doc["peak_concurrent_participants"] == 1
    doc = render(fold(s, participant("participant-disconnected", 70 * S, "PA1", "alice", ParticipantDuration=61)))
    assert doc["participants"] == [{"sid": "PA1", "identity": "alice", "status": "disconnected",
                                    "start_time": at(10 * S), "end_time": at(70 * S), "duration": 61}]
    assert doc["connected_participants"] == 0 and doc["peak_concurrent_participants"] == 1
    assert doc["date_updated"] == at(70 * S)


def test_participant_duration_is_computed_without_participant_duration():
    doc = doc_of(participant("participant-connected", 10 * S, "PA1"),
                 participant("participant-disconnected", 45 * S + 500, "PA1"))
    assert doc["participants"][0]["duration"] == 35


def test_events_order_by_timestamp_not_arrival():
    connected = participant("participant-connected", 10 * S, "PA1", "alice")
    disconnected = participant("participant-disconnected", 20 * S, "PA1", "alice")
    doc = doc_of(disconnected, connected)  # arrival order reversed
    assert doc == doc_of(connected, disconnected)
    assert doc["participants"][0]["status"] == "disconnected"
    assert doc["last_event"]["type"] == "participant-disconnected" and doc["date_updated"] == at(20 * S)


def test_same_timestamp_is_ordered_by_sequence_number():
    a = cb("track-disabled", 5 * S, seq=2, ParticipantSid="PA1", TrackSid="MT1", TrackKind="audio")
    b = cb("track-enabled", 5 * S, seq=3, ParticipantSid="PA1", TrackSid="MT1", TrackKind="audio")
    for events in ((a, b), (b, a)):
        doc = doc_of(*events)
        assert doc["tracks"][0]["enabled"] is True
        assert doc["last_event"]["type"] == "track-enabled" and doc["last_event"]["sequence_number"] == 3


def test_peak_concurrency():
    events = [participant("participant-connected", 0, "PA1"), participant("participant-connected", 5 * S, "PA2"),
              participant("participant-disconnected", 10 * S, "PA1"),
              participant("participant-connected", 10 * S, "PA3"),  # joins the instant PA1 leaves
              participant("participant-disconnected", 15 * S, "PA2"),
              participant("participant-connected", 16 * S, "PA4"),
              participant("participant-disconnected", 20 * S, "PA3"),
              participant("participant-disconnected", 21 * S, "PA4")]
    doc = doc_of(*events)
    assert doc["peak_concurrent_participants"] == 2 and doc["connected_participants"] == 0
    doc = doc_of(*events, *(participant("participant-connected", t * S, f"PB{t}") for t in (1, 2, 3)))
    assert doc["peak_concurrent_participants"] == 5 and doc["connected_participants"] == 3


def test_peak_concurrency_ignores_a_disconnect_stamped_before_its_connect():
    """Clock skew: a leave stamped before the join must not hide somebody else's presence."""
    doc = doc_of(participant("participant-connected", 10 * S, "PA1"),
                 participant("participant-disconnected", 5 * S, "PA1"),
                 participant("participant-connected", 6 * S, "PA2"),
                 participant("participant-connected", 7 * S, "PA3"),
                 participant("participant-disconnected", 9 * S, "PA2"))
    assert doc["peak_concurrent_participants"] == 2  # PA2 and PA3 from 7 s to 9 s
    pa1 = doc["participants"][0]
    assert pa1["start_time"] == pa1["end_time"] == at(10 * S) and pa1["duration"] == 0
    assert all(p["end_time"] is None or p["end_time"] >= p["start_time"] for p in doc["participants"])


def test_participant_seen_only_through_a_track_event():
    doc = doc_of(track("track-added", 3 * S, "MT1", "PA7"))
    assert doc["participants"][0]["sid"] == "PA7" and doc["participants"][0]["start_time"] == at(3 * S)
    assert doc["connected_participants"] == 1 and doc["peak_concurrent_participants"] == 1


# ---------------------------------------------------------------- tracks


def test_tracks_published_by_kind_enabled_and_removed():
    s = fold_all([api_create(0), participant("participant-connected", S, "PA1"),
                  track("track-added", 2 * S, "MT1", kind="audio"), track("track-added", 2 * S, "MT2", kind="video"),
                  track("track-added", 2 * S, "MT3", kind="data"), track("track-added", 3 * S, "MT4", kind="video")])
    doc = render(s)
    assert doc["published_tracks"] == {"audio": 1, "video": 2, "data": 1}
    assert [t["sid"] for t in doc["tracks"]] == ["MT1", "MT2", "MT3", "MT4"]
    assert doc["tracks"][0] == {"sid": "MT1", "participant_sid": "PA1", "kind": "audio", "name": None,
                                "published": True, "enabled": True}

    s = fold(s, track("track-disabled", 4 * S, "MT2", kind="video"))
    assert render(s)["tracks"][1]["enabled"] is False
    assert render(s)["published_tracks"]["video"] == 2  # paused, still published
    s = fold(s, track("track-enabled", 5 * S, "MT2", kind="video"))
    assert render(s)["tracks"][1]["enabled"] is True
    s = fold(s, track("track-removed", 6 * S, "MT4", kind="video"))
    doc = render(s)
    assert doc["published_tracks"] == {"audio": 1, "video": 1, "data": 1}
    assert doc["tracks"][3]["published"] is False


def test_a_disabled_track_stays_disabled_when_its_enable_is_older():
    doc = doc_of(track("track-added", S, "MT1"), track("track-disabled", 3 * S, "MT1"),
                 track("track-enabled", 2 * S, "MT1"))
    assert doc["tracks"][0]["enabled"] is False


def test_tracks_of_a_disconnected_participant_are_not_published():
    doc = doc_of(participant("participant-connected", S, "PA1"), track("track-added", 2 * S, "MT1", kind="video"),
                 participant("participant-connected", S, "PA2"), track("track-added", 2 * S, "MT2", "PA2", "audio"),
                 participant("participant-disconnected", 9 * S, "PA1"))
    assert doc["published_tracks"] == {"audio": 1, "video": 0, "data": 0}
    assert {t["sid"]: t["published"] for t in doc["tracks"]} == {"MT1": False, "MT2": True}


def test_tracks_are_not_published_once_the_room_ended():
    doc = doc_of(track("track-added", S, "MT1"), cb("room-ended", 9 * S, room_status="completed"))
    assert doc["published_tracks"] == {"audio": 0, "video": 0, "data": 0}
    assert doc["tracks"][0]["published"] is False


# ---------------------------------------------------------------- recordings


def test_recording_started_then_completed():
    s = fold_all([api_create(0), recording("recording-started", 2 * S, "RT1")])
    assert render(s)["recordings"] == [{
        "sid": "RT1", "status": "processing", "participant_sid": "PA1", "source_sid": "MT1", "type": "audio",
        "codec": "OPUS", "container": "mka", "duration": None, "size": None, "media_uri": None, "failure": None}]
    s = fold(s, recording("recording-completed", 30 * S, "RT1", Duration=28, Size=123456,
                          MediaUri="https://example.com/media/RT1"))
    rec = render(s)["recordings"][0]
    assert rec["status"] == "completed" and rec["duration"] == 28 and rec["size"] == 123456
    assert rec["media_uri"] == "https://example.com/media/RT1" and rec["failure"] is None


def test_recording_failed_keeps_the_failed_operation():
    doc = doc_of(recording("recording-started", 2 * S, "RT1"),
                 recording("recording-failed", 3 * S, "RT1", FailedOperation="RecordingUpload"),
                 recording("recording-started", 2 * S, "RT2"),
                 recording("recording-failed", 2 * S + 1, "RT2", FailedOperation="RecordingStart"))
    assert [(r["sid"], r["status"], r["failure"]) for r in doc["recordings"]] == [
        ("RT1", "failed", "RecordingUpload"), ("RT2", "failed", "RecordingStart")]


def test_recording_completed_arriving_before_started_is_still_completed():
    doc = doc_of(recording("recording-completed", 30 * S, "RT1", Duration=28, Size=10),
                 recording("recording-started", 2 * S, "RT1"))
    assert doc["recordings"][0]["status"] == "completed" and doc["recordings"][0]["duration"] == 28


# ---------------------------------------------------------------- purity and duplicates


def _rich_history() -> list[dict]:
    return [api_create(0), participant("participant-connected", S, "PA1", "alice"),
            participant("participant-connected", 2 * S, "PA2", "bob"),
            track("track-added", 3 * S, "MT1", "PA1", "audio"), track("track-disabled", 4 * S, "MT1", "PA1", "audio"),
            recording("recording-started", 5 * S, "RT1"),
            recording("recording-completed", 9 * S, "RT1", Duration=4, Size=99),
            participant("participant-disconnected", 10 * S, "PA2", "bob", ParticipantDuration=8),
            cb("room-ended", 20 * S, room_status="completed", RoomDuration=20)]


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
        assert new == fold_all(history[:history.index(event) + 1])
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

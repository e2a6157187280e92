"""The room-state reducer, by example: each event type's effect on the rendered room document.

Pure domain code only (no broker): records are built with the same builders the ingress and the
materializer use (`from_callback`, `room_created`, `room_ended`; tests/builders.py). This file: participants,
tracks and recordings; the room itself: test_fold.py.
"""

from __future__ import annotations

from service.state.fold import fold
from service.state.render import render
from tests.builders import (
    S,
    api_create,
    at,
    cb,
    doc_of,
    fold_all,
    participant,
    recording,
    track,
)

# ---------------------------------------------------------------- participants


def test_participant_connected_and_disconnected():
    s = fold_all([api_create(0), participant("participant-connected", 10 * S, "PA1", "alice")])
    doc = render(s)
    assert doc["participants"] == [
        {
            "sid": "PA1",
            "identity": "alice",
            "status": "connected",
            "start_time": at(10 * S),
            "end_time": None,
            "duration": None,
        }
    ]
    assert doc["connected_participants"] == 1 and doc["peak_concurrent_participants"] == 1
    doc = render(fold(s, participant("participant-disconnected", 70 * S, "PA1", "alice", ParticipantDuration=61)))
    assert doc["participants"] == [
        {
            "sid": "PA1",
            "identity": "alice",
            "status": "disconnected",
            "start_time": at(10 * S),
            "end_time": at(70 * S),
            "duration": 61,
        }
    ]
    assert doc["connected_participants"] == 0 and doc["peak_concurrent_participants"] == 1
    assert doc["date_updated"] == at(70 * S)


def test_participant_duration_is_computed_without_participant_duration():
    doc = doc_of(
        participant("participant-connected", 10 * S, "PA1"),
        participant("participant-disconnected", 45 * S + 500, "PA1"),
    )
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
    events = [
        participant("participant-connected", 0, "PA1"),
        participant("participant-connected", 5 * S, "PA2"),
        participant("participant-disconnected", 10 * S, "PA1"),
        participant("participant-connected", 10 * S, "PA3"),  # joins the instant PA1 leaves
        participant("participant-disconnected", 15 * S, "PA2"),
        participant("participant-connected", 16 * S, "PA4"),
        participant("participant-disconnected", 20 * S, "PA3"),
        participant("participant-disconnected", 21 * S, "PA4"),
    ]
    doc = doc_of(*events)
    assert doc["peak_concurrent_participants"] == 2 and doc["connected_participants"] == 0
    doc = doc_of(*events, *(participant("participant-connected", t * S, f"PB{t}") for t in (1, 2, 3)))
    assert doc["peak_concurrent_participants"] == 5 and doc["connected_participants"] == 3


def test_peak_concurrency_ignores_a_disconnect_stamped_before_its_connect():
    """Clock skew: a leave stamped before the join must not hide somebody else's presence."""
    doc = doc_of(
        participant("participant-connected", 10 * S, "PA1"),
        participant("participant-disconnected", 5 * S, "PA1"),
        participant("participant-connected", 6 * S, "PA2"),
        participant("participant-connected", 7 * S, "PA3"),
        participant("participant-disconnected", 9 * S, "PA2"),
    )
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
    s = fold_all(
        [
            api_create(0),
            participant("participant-connected", S, "PA1"),
            track("track-added", 2 * S, "MT1", kind="audio"),
            track("track-added", 2 * S, "MT2", kind="video"),
            track("track-added", 2 * S, "MT3", kind="data"),
            track("track-added", 3 * S, "MT4", kind="video"),
        ]
    )
    doc = render(s)
    assert doc["published_tracks"] == {"audio": 1, "video": 2, "data": 1}
    assert [t["sid"] for t in doc["tracks"]] == ["MT1", "MT2", "MT3", "MT4"]
    assert doc["tracks"][0] == {
        "sid": "MT1",
        "participant_sid": "PA1",
        "kind": "audio",
        "name": None,
        "published": True,
        "enabled": True,
    }

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
    doc = doc_of(
        track("track-added", S, "MT1"), track("track-disabled", 3 * S, "MT1"), track("track-enabled", 2 * S, "MT1")
    )
    assert doc["tracks"][0]["enabled"] is False


def test_tracks_of_a_disconnected_participant_are_not_published():
    doc = doc_of(
        participant("participant-connected", S, "PA1"),
        track("track-added", 2 * S, "MT1", kind="video"),
        participant("participant-connected", S, "PA2"),
        track("track-added", 2 * S, "MT2", "PA2", "audio"),
        participant("participant-disconnected", 9 * S, "PA1"),
    )
    assert doc["published_tracks"] == {"audio": 1, "video": 0, "data": 0}
    assert {t["sid"]: t["published"] for t in doc["tracks"]} == {"MT1": False, "MT2": True}


def test_tracks_are_not_published_once_the_room_ended():
    doc = doc_of(track("track-added", S, "MT1"), cb("room-ended", 9 * S, room_status="completed"))
    assert doc["published_tracks"] == {"audio": 0, "video": 0, "data": 0}
    assert doc["tracks"][0]["published"] is False


# ---------------------------------------------------------------- recordings


def test_recording_started_then_completed():
    s = fold_all([api_create(0), recording("recording-started", 2 * S, "RT1")])
    assert render(s)["recordings"] == [
        {
            "sid": "RT1",
            "status": "processing",
            "participant_sid": "PA1",
            "source_sid": "MT1",
            "type": "audio",
            "codec": "OPUS",
            "container": "mka",
            "duration": None,
            "size": None,
            "media_uri": None,
            "failure": None,
            "track_name": "mic",
            "offset": 100,
            "media_external_location": None,
            "date_created": at(2 * S),
        }
    ]
    s = fold(
        s,
        recording(
            "recording-completed", 30 * S, "RT1", Duration=28, Size=123456, MediaUri="https://example.com/media/RT1"
        ),
    )
    rec = render(s)["recordings"][0]
    assert rec["status"] == "completed" and rec["duration"] == 28 and rec["size"] == 123456
    assert rec["media_uri"] == "https://example.com/media/RT1" and rec["failure"] is None


def test_recording_date_created_is_the_start_else_the_first_event():
    doc = doc_of(
        recording("recording-completed", 30 * S, "RT1"),
        recording("recording-failed", 40 * S, "RT2"),
        recording("recording-started", 2 * S, "RT1"),
    )
    assert [(r["sid"], r["date_created"]) for r in doc["recordings"]] == [("RT1", at(2 * S)), ("RT2", at(40 * S))]


def test_recording_rules_of_a_created_room():
    assert doc_of(api_create(0))["recording_rules"] == []  # no rule: nothing is recorded
    assert doc_of(api_create(0, RecordParticipantsOnConnect="true"))["recording_rules"] == [
        {"type": "include", "all": True}
    ]
    rules = '[{"type": "exclude", "all": true}]'
    assert doc_of(api_create(0, RecordParticipantsOnConnect="true", RecordingRules=rules))["recording_rules"] == [
        {"type": "exclude", "all": True}
    ]
    wrapped = '{"rules": [{"type": "include", "kind": "audio"}]}'
    assert doc_of(api_create(0, RecordingRules=wrapped))["recording_rules"] == [{"type": "include", "kind": "audio"}]
    # A room known only from callbacks: its configuration, so its rules, are unknown.
    assert doc_of(cb("participant-connected", 0, ParticipantSid="PA1"))["recording_rules"] is None


def test_recording_failed_keeps_the_failed_operation():
    doc = doc_of(
        recording("recording-started", 2 * S, "RT1"),
        recording("recording-failed", 3 * S, "RT1", FailedOperation="RecordingUpload"),
        recording("recording-started", 2 * S, "RT2"),
        recording("recording-failed", 2 * S + 1, "RT2", FailedOperation="RecordingStart"),
    )
    assert [(r["sid"], r["status"], r["failure"]) for r in doc["recordings"]] == [
        ("RT1", "failed", "RecordingUpload"),
        ("RT2", "failed", "RecordingStart"),
    ]


def test_recording_completed_arriving_before_started_is_still_completed():
    doc = doc_of(
        recording("recording-completed", 30 * S, "RT1", Duration=28, Size=10),
        recording("recording-started", 2 * S, "RT1"),
    )
    assert doc["recordings"][0]["status"] == "completed" and doc["recordings"][0]["duration"] == 28

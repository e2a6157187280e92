"""The provider adapters as pure functions (service/providers/): each documented event's mapping, and
the verification rules, without HTTP or Kafka."""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest
from livekit.api import TokenVerifier, WebhookReceiver

from service.events import record as records
from service.providers import WebhookRefused, livekit, zoom
from tests.helpers import event_schema_validator
from tests.provider_webhooks import (
    LIVEKIT_KEY,
    LIVEKIT_KEY_2,
    LIVEKIT_SECRET,
    LIVEKIT_SECRET_2,
    ZOOM_SECRET,
    ZOOM_SECRET_2,
    livekit_event,
    livekit_records,
    livekit_token,
    zoom_event,
    zoom_iso,
    zoom_records,
    zoom_signature,
    zoom_user,
)

T = 1_900_000_000  # seconds
ROOM = dict(room_sid="RM_unit", room_name="unit")
VALIDATOR = event_schema_validator()


def valid(rs: list[dict]) -> list[dict]:
    for r in rs:
        assert not [e.message for e in VALIDATOR.iter_errors(r)], r
    return rs


# ---------------------------------------------------------------- LiveKit mapping


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ("room_started", "room-created"),
        ("room_finished", "room-ended"),
        ("participant_joined", "participant-connected"),
        ("participant_left", "participant-disconnected"),
        ("participant_connection_aborted", "participant-disconnected"),
        ("track_published", "track-added"),
        ("track_unpublished", "track-removed"),
        ("track_subscribed_someday", "track_subscribed_someday"),  # unmapped: kept under its own name
    ],
)
def test_livekit_room_participant_and_track_events(event, kind):
    body = livekit_event(
        event,
        T + 30,
        "EV_1",
        creation_time=T,
        participant=("PA_a", "alice"),
        joined_at=T + 10,
        track=("TR_a", "audio", "mic"),
        **ROOM,
    )
    [r] = valid(livekit_records(body, 5, "AC1"))
    assert r["type"] == kind and r["provider"] == "livekit" and r["occurred_at_ms"] == (T + 30) * 1000
    assert r["room_sid"] == records.derived_sid("room", "livekit", "RM_unit") and r["room_name"] == "unit"
    assert r["end_reason"] == ("callback" if kind == "room-ended" else None)
    if kind == "room-ended":
        assert r["room"] == {"status": "completed", "type": None, "duration": 30}
    if kind == "participant-disconnected":
        assert r["participant"]["status"] == "disconnected" and r["participant"]["duration"] == 20
    assert r["track"] == {
        "sid": records.derived_sid("track", "livekit", "RM_unit", "TR_a"),
        "kind": "audio",
        "name": "mic",
    }


@pytest.mark.parametrize(
    ("event", "status", "kind"),
    [
        ("egress_started", "EGRESS_STARTING", "recording-started"),
        ("egress_updated", "EGRESS_ACTIVE", "recording-started"),
        ("egress_updated", "EGRESS_ENDING", "recording-started"),
        ("egress_ended", "EGRESS_COMPLETE", "recording-completed"),
        ("egress_ended", "EGRESS_LIMIT_REACHED", "recording-completed"),
        ("egress_ended", "EGRESS_FAILED", "recording-failed"),
        ("egress_ended", "EGRESS_ABORTED", "recording-failed"),
    ],
)
def test_livekit_egress_events_are_recordings(event, status, kind):
    egress = {
        "id": "EG_1",
        "status": status,
        "filename": "out/rec.MP4",
        "duration_s": 42,
        "size": 9,
        "location": "s3://b/rec.mp4",
    }
    if kind == "recording-failed":
        egress["error"] = "storage unreachable" if status == "EGRESS_FAILED" else ""
    [r] = valid(livekit_records(livekit_event(event, T, "EV_e", egress=egress, **ROOM), 0, None))
    assert r["type"] == kind and r["native"]["egress_id"] == "EG_1"
    rec = r["recording"]
    assert rec["sid"] == records.derived_sid("recording", "livekit", "EG_1")
    assert (rec["container"], rec["duration"], rec["size"], rec["media_external_location"]) == (
        "mp4",
        42,
        9,
        "s3://b/rec.mp4",
    )
    expected_failure = {"EGRESS_FAILED": "storage unreachable", "EGRESS_ABORTED": "EGRESS_ABORTED"}.get(status)
    assert rec["failed_operation"] == expected_failure
    assert r["room_sid"] == records.derived_sid("room", "livekit", "RM_unit")  # from egressInfo.roomId


def test_livekit_events_without_a_room():
    ingress = b'{"event": "ingress_started", "id": "EV_i", "createdAt": "5"}'
    assert livekit_records(ingress) == []
    with pytest.raises(WebhookRefused) as info:
        livekit_records(b'{"event": "participant_joined", "id": "EV_p", "participant": {"sid": "PA_1"}}')
    assert info.value.status == 400


def test_livekit_event_ids_are_deterministic_per_livekit_event():
    a = livekit_event("participant_joined", T, "EV_same", participant=("PA_a", "a"), **ROOM)
    again = livekit_event("participant_joined", T, "EV_same", participant=("PA_a", "a"), **ROOM)
    other = livekit_event("participant_joined", T, "EV_other", participant=("PA_a", "a"), **ROOM)
    ids = [livekit_records(b, received)[0]["event_id"] for b, received in ((a, 1), (again, 99), (other, 1))]
    assert ids[0] == ids[1] != ids[2]
    # Without an id (older servers), what identifies the event.
    no_id = livekit_event("participant_joined", T, "", participant=("PA_a", "a"), **ROOM)
    assert livekit_records(no_id)[0]["event_id"] == livekit_records(no_id, 5)[0]["event_id"]


# ---------------------------------------------------------------- LiveKit verification (livekit-api's receiver)


def receivers():
    return (
        WebhookReceiver(TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET)),
        WebhookReceiver(TokenVerifier(LIVEKIT_KEY_2, LIVEKIT_SECRET_2)),
    )


def test_livekit_verify_uses_livekit_apis_receiver_for_each_key_pair():
    body = livekit_event("room_started", T, "EV_v", **ROOM)
    event, payload = livekit.verify(receivers(), body, livekit_token(body))
    assert event.event == "room_started" and payload == orjson.loads(body)
    assert livekit.verify(
        receivers(), body, "Bearer " + livekit_token(body, key=LIVEKIT_KEY_2, secret=LIVEKIT_SECRET_2)
    )
    for token in (
        None,
        "",
        livekit_token(body, ttl_s=-600),
        livekit_token(body + b" "),
        livekit_token(body, secret="x" * 32),
    ):
        with pytest.raises(WebhookRefused) as info:
            livekit.verify(receivers(), body, token)
        assert info.value.status == 403
    with pytest.raises(WebhookRefused) as info:
        livekit.verify(receivers(), b"\xff\xfe", livekit_token(b"\xff\xfe"))
    assert info.value.status == 400


# ---------------------------------------------------------------- Zoom mapping


SESSION = dict(session_id="unit==", session_name="unit-session")


def test_zoom_session_and_user_events():
    start, end = T * 1000, (T + 95) * 1000
    [started] = valid(zoom_records(zoom_event("session.started", start, start_time=zoom_iso(start), **SESSION)))
    assert started["type"] == "room-created" and started["room"]["status"] == "in-progress"
    [ended] = valid(
        zoom_records(
            zoom_event("session.ended", end + 7, start_time=zoom_iso(start), end_time=zoom_iso(end), **SESSION)
        )
    )
    assert ended["type"] == "room-ended" and ended["room"]["duration"] == 95 and ended["occurred_at_ms"] == end + 7
    joined_body = zoom_event("session.user_joined", start + 1, user=zoom_user("42", "Ann", "ann-key"), **SESSION)
    [joined] = valid(zoom_records(joined_body))
    assert joined["participant"] == {
        "sid": records.derived_sid("participant", "zoom", "unit==", "42"),
        "identity": "ann-key",
        "status": "connected",
        "duration": None,
    }
    [left] = valid(zoom_records(zoom_event("session.user_left", start + 2, user=zoom_user("42", "Ann"), **SESSION)))
    assert left["type"] == "participant-disconnected" and left["participant"]["identity"] == "Ann"
    assert left["participant"]["sid"] == joined["participant"]["sid"]
    assert {r["room_sid"] for r in (started, ended, joined, left)} == {records.derived_sid("room", "zoom", "unit==")}
    assert {r["room_name"] for r in (started, ended, joined, left)} == {"unit-session"}
    # The same webhook, redelivered later: the same record id.
    assert zoom_records(joined_body, 1)[0]["event_id"] == zoom_records(joined_body, 9)[0]["event_id"]
    # Without a session name, the room SID is the key.
    [nameless] = zoom_records(zoom_event("session.started", start, session_id="unit==", session_name=None))
    assert nameless["room_name"] == nameless["room_sid"]


def test_zoom_recording_completed_is_one_record_per_media_file():
    files = [
        {
            "id": "v",
            "file_type": "MP4",
            "file_extension": "MP4",
            "file_size": 10,
            "recording_start": zoom_iso(0),
            "recording_end": zoom_iso(61_000),
            "download_url": "https://z/v",
            "recording_type": "gallery_view",
        },
        {"id": "t", "file_type": "TRANSCRIPT", "file_extension": "VTT"},
    ]
    audio = [{"id": "a", "file_type": "M4A", "file_extension": "M4A", "file_size": 3}]
    body = zoom_event(
        "session.recording_completed", T * 1000, recording_files=files, participant_audio_files=audio, **SESSION
    )
    rs = valid(zoom_records(body))
    assert [(r["recording"]["type"], r["native"]["recording_id"]) for r in rs] == [("video", "v"), ("audio", "a")]
    video = rs[0]["recording"]
    assert (video["duration"], video["size"], video["container"], video["media_uri"], video["track_name"]) == (
        61,
        10,
        "mp4",
        "https://z/v",
        "gallery_view",
    )
    assert len({r["event_id"] for r in rs}) == 2
    # No media file: one record, no recording.
    [r] = valid(zoom_records(zoom_event("session.recording_completed", T * 1000, recording_files=files[1:], **SESSION)))
    assert r["type"] == "recording-completed" and r["recording"] is None


def test_zoom_events_without_a_session():
    assert zoom_records(orjson.dumps({"event": "session.alert", "event_ts": 1, "payload": {"object": {}}})) == []
    with pytest.raises(WebhookRefused):
        zoom_records(orjson.dumps({"event": "session.started", "event_ts": 1, "payload": {"object": {}}}))


# ---------------------------------------------------------------- Zoom verification


def test_zoom_signature_is_the_documented_hmac():
    body, ts = b'{"event":"x"}', "1700000000"
    expected = "v0=" + hmac.new(ZOOM_SECRET.encode(), b"v0:1700000000:" + body, hashlib.sha256).hexdigest()
    assert zoom.signature(ZOOM_SECRET, ts, body) == expected == zoom_signature(body, ts)


def test_zoom_verify_window_and_rotation():
    body, ts = b'{"event":"x"}', 1_700_000_000
    now_ms, window = ts * 1000, 300_000
    secrets = (ZOOM_SECRET, ZOOM_SECRET_2)
    assert zoom.verify(secrets, body, zoom_signature(body, str(ts)), str(ts), now_ms, window) == ZOOM_SECRET
    assert (
        zoom.verify(secrets, body, zoom_signature(body, str(ts), ZOOM_SECRET_2), str(ts), now_ms, window)
        == ZOOM_SECRET_2
    )
    # The window's edges, both ways.
    for skew_s, ok in ((300, True), (-300, True), (301, False), (-301, False)):
        stamp = str(ts + skew_s)
        if ok:
            zoom.verify(secrets, body, zoom_signature(body, stamp), stamp, now_ms, window)
        else:
            with pytest.raises(WebhookRefused):
                zoom.verify(secrets, body, zoom_signature(body, stamp), stamp, now_ms, window)
    with pytest.raises(WebhookRefused):
        zoom.verify(secrets, body, zoom_signature(body, "1:2"), "1:2", now_ms, window)


def test_zoom_url_validation_answer():
    doc = {"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}}
    assert zoom.challenge(ZOOM_SECRET, doc) == {
        "plainToken": "abc",
        "encryptedToken": hmac.new(ZOOM_SECRET.encode(), b"abc", hashlib.sha256).hexdigest(),
    }

"""The room-event record (pure): building it from callbacks and commands, ids, keys, time, encoding."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from service.events import record as records
from tests import streams
from tests.helpers import ACCOUNT_SID, event_schema_validator

VALIDATOR = event_schema_validator()
ROOM = "RM" + "ab" * 16


def cb(**params: str) -> dict[str, list[str]]:
    base = {
        "AccountSid": ACCOUNT_SID,
        "RoomSid": ROOM,
        "RoomName": "daily",
        "RoomType": "group",
        "RoomStatus": "in-progress",
        "StatusCallbackEvent": "room-created",
        "Timestamp": "2025-10-27T18:16:01.876Z",
        "SequenceNumber": "0",
    }
    base.update(params)
    return {k: [v] for k, v in base.items() if v is not None}


def assert_valid(record: dict) -> None:
    errors = [e.message for e in VALIDATOR.iter_errors(orjson.loads(records.encode(record)))]
    assert not errors, errors


# ---------------------------------------------------------------- callbacks


def test_participant_callback_typed_fields():
    r = records.from_callback(
        cb(
            StatusCallbackEvent="participant-disconnected",
            ParticipantSid="PA1",
            ParticipantIdentity="alice",
            ParticipantStatus="disconnected",
            ParticipantDuration="42",
            SequenceNumber="7",
        ),
        1_800_000_000_123,
    )
    assert r["schema_version"] == 2 and r["source"] == "callback"
    assert r["provider"] == "twilio" and r["native"] is None
    assert r["type"] == "participant-disconnected"
    assert (r["account_sid"], r["room_sid"], r["room_name"]) == (ACCOUNT_SID, ROOM, "daily")
    assert r["occurred_at"] == "2025-10-27T18:16:01.876Z"
    assert r["occurred_at_ms"] == 1761588961876
    assert r["received_at"] == "2027-01-15T08:00:00.123Z"
    assert r["sequence_number"] == 7
    assert r["room"] == {"status": "in-progress", "type": "group", "duration": None}
    assert r["participant"] == {"sid": "PA1", "identity": "alice", "status": "disconnected", "duration": 42}
    assert r["track"] is None and r["recording"] is None and r["config"] is None and r["end_reason"] is None
    assert_valid(r)


def test_track_and_recording_callbacks():
    track = records.from_callback(
        cb(StatusCallbackEvent="track-added", ParticipantSid="PA1", TrackSid="MT1", TrackKind="audio", TrackName="mic"),
        0,
    )
    assert track["track"] == {"sid": "MT1", "kind": "audio", "name": "mic"}
    rec = records.from_callback(
        cb(
            StatusCallbackEvent="recording-completed",
            ParticipantSid="PA1",
            RecordingSid="RT1",
            SourceSid="MT1",
            TrackName="mic",
            RecordingUri="/v1/Recordings/RT1",
            MediaUri="https://m/RT1",
            Container="mka",
            Codec="OPUS",
            Type="audio",
            Duration="12",
            Size="3456",
            OffsetFromTwilioVideoEpoch="1000",
            MediaExternalLocation="s3://b/k",
        ),
        0,
    )
    assert rec["recording"] == {
        "sid": "RT1",
        "source_sid": "MT1",
        "track_name": "mic",
        "uri": "/v1/Recordings/RT1",
        "media_uri": "https://m/RT1",
        "media_external_location": "s3://b/k",
        "container": "mka",
        "codec": "OPUS",
        "type": "audio",
        "duration": 12,
        "size": 3456,
        "offset_from_twilio_video_epoch": 1000,
        "failed_operation": None,
    }
    assert rec["track"] is None  # a recording names its source track, it is not a track event
    ended = records.from_callback(cb(StatusCallbackEvent="room-ended", RoomStatus="completed", RoomDuration="600"), 0)
    assert ended["end_reason"] == "callback" and ended["room"]["duration"] == 600
    for r in (track, rec, ended):
        assert_valid(r)


def test_unknown_events_and_params_are_kept():
    r = records.from_callback(cb(StatusCallbackEvent="room-transcoded", Whatever="x", Empty=""), 0)
    assert r["type"] == "room-transcoded"
    assert r["params"]["Whatever"] == "x" and r["params"]["Empty"] == ""
    multi = records.from_callback({**cb(), "Tag": ["b", "a"]}, 0)
    assert multi["params"]["Tag"] == ["b", "a"]
    assert_valid(r)
    assert_valid(multi)


@pytest.mark.parametrize(
    "timestamp, expected",
    [
        ("2025-10-27T18:16:01.876Z", "2025-10-27T18:16:01.876Z"),
        ("2025-10-27T18:16:01Z", "2025-10-27T18:16:01.000Z"),
        ("2025-10-27T18:16:01.876543Z", "2025-10-27T18:16:01.877Z"),  # ms precision, rounded
        ("2025-10-27T20:16:01.5+02:00", "2025-10-27T18:16:01.500Z"),
        ("2025-10-27T18:16:01.876", "2025-10-27T18:16:01.876Z"),  # no offset: UTC
    ],
)
def test_occurred_at_has_millisecond_precision_in_utc(timestamp, expected):
    r = records.from_callback(cb(Timestamp=timestamp), 0)
    assert r["occurred_at"] == expected
    assert records.format_ms(r["occurred_at_ms"]) == expected


def test_missing_timestamp_falls_back_to_receive_time_and_bad_one_is_refused():
    r = records.from_callback(cb(Timestamp=None), 1_700_000_000_001)
    assert r["occurred_at"] == r["received_at"] == "2023-11-14T22:13:20.001Z"
    with pytest.raises(records.RecordError):
        records.from_callback(cb(Timestamp="not a time"), 0)


@pytest.mark.parametrize("missing", ["RoomSid", "StatusCallbackEvent"])
def test_required_callback_params(missing):
    with pytest.raises(records.RecordError):
        records.from_callback(cb(**{missing: None}), 0)
    with pytest.raises(records.RecordError):
        records.from_callback(cb(**{missing: ""}), 0)


def test_room_name_defaults_to_the_sid_and_odd_numbers_become_null():
    r = records.from_callback(cb(RoomName=None, SequenceNumber="n/a", RoomDuration="12.0"), 0)
    assert r["room_name"] == ROOM
    assert r["sequence_number"] is None and r["room"]["duration"] == 12
    assert_valid(r)


# ---------------------------------------------------------------- event ids


def test_event_id_is_deterministic_and_order_independent():
    params = cb(StatusCallbackEvent="participant-connected", ParticipantSid="PA1")
    shuffled = dict(sorted(params.items(), reverse=True))
    a, b = records.from_callback(params, 1), records.from_callback(shuffled, 999_999)
    assert a["event_id"] == b["event_id"]  # receive time is not part of it
    assert records.from_callback(cb(SequenceNumber="1"), 1)["event_id"] != records.from_callback(cb(), 1)["event_id"]
    assert records.from_callback(cb(Extra="1"), 1)["event_id"] != records.from_callback(cb(), 1)["event_id"]


def test_command_ids_are_deterministic_and_distinct():
    created = records.room_created(ACCOUNT_SID, ROOM, {"unique_name": "daily", "type": "group"}, 5, {})
    again = records.room_created(ACCOUNT_SID, ROOM, {"unique_name": "daily", "type": "group"}, 6, {})
    ended_api = records.room_ended(ACCOUNT_SID, ROOM, "daily", 7, reason="api")
    ended_timer = records.room_ended(ACCOUNT_SID, ROOM, "daily", 8, reason="timeout")
    assert created["event_id"] == again["event_id"]
    ids = {
        created["event_id"],
        ended_api["event_id"],
        ended_timer["event_id"],
        records.from_callback(cb(), 0)["event_id"],
    }
    assert len(ids) == 4
    assert (ended_api["source"], ended_api["end_reason"]) == ("api", "api")
    assert (ended_timer["source"], ended_timer["end_reason"]) == ("timer", "timeout")
    with pytest.raises(ValueError):
        records.room_ended(ACCOUNT_SID, ROOM, "daily", 8, reason="callback")
    for r in (created, ended_api, ended_timer):
        assert_valid(r)


# ---------------------------------------------------------------- keys


def test_every_record_of_a_room_and_its_unique_name_has_one_key():
    named = [
        records.room_created(ACCOUNT_SID, ROOM, {"unique_name": "daily"}, 1, {"UniqueName": ["daily"]}),
        records.from_callback(cb(StatusCallbackEvent="participant-connected", ParticipantSid="PA1"), 2),
        records.from_callback(cb(StatusCallbackEvent="room-ended"), 3),
        records.room_ended(ACCOUNT_SID, ROOM, "daily", 4, reason="api"),
        records.room_ended(ACCOUNT_SID, ROOM, "daily", 5, reason="timeout"),
        # Another room reusing the name: same key, so the same partition decides who holds it.
        records.room_created(ACCOUNT_SID, "RM" + "cd" * 16, {"unique_name": "daily"}, 6, {}),
    ]
    assert {records.partition_key(r) for r in named} == {b"daily"}
    unnamed = [
        records.room_created(ACCOUNT_SID, ROOM, {"unique_name": None}, 1, {}),
        records.from_callback(cb(RoomName=ROOM), 2),
        records.from_callback(cb(RoomName=None), 3),
    ]
    assert {records.partition_key(r) for r in unnamed} == {ROOM.encode()}


# ---------------------------------------------------------------- encoding


def test_encode_decode_round_trip_and_poison():
    r = records.from_callback(cb(Name="é ✓"), 0)
    raw = records.encode(r)
    assert raw == orjson.dumps(r)
    assert records.decode(raw) == r
    bad_ones = (
        b"\xff",
        b"[]",
        orjson.dumps({**r, "schema_version": 3}),
        orjson.dumps({**r, "schema_version": True}),
        orjson.dumps({**r, "event_id": ""}),
        orjson.dumps({**r, "provider": ""}),
        orjson.dumps({**r, "provider": 7}),
    )
    for bad in bad_ones:
        for decoder in (records.decode, records.decode_for_fold):
            with pytest.raises(records.RecordError):
                decoder(bad)


def test_version_1_records_are_read_as_twilio_records():
    """Topics written before providers hold version 1 records: both decoders take them, and they fold
    to the same room as the version 2 record of the same callback."""
    from service.state.fold import fold
    from service.state.render import render

    v2 = records.from_callback(cb(StatusCallbackEvent="participant-connected", ParticipantSid="PA1"), 5)
    v1 = {k: v for k, v in v2.items() if k not in ("provider", "native")} | {"schema_version": 1}
    raw = orjson.dumps(v1)
    assert records.decode(raw) == v1 and records.provider_of(records.decode(raw)) == "twilio"
    slim = records.decode_for_fold(raw)
    assert render(fold(None, slim)) == render(fold(None, records.decode_for_fold(records.encode(v2))))
    assert render(fold(None, slim))["provider"] == "twilio"


def test_every_record_of_realistic_histories_validates():
    for event in streams.interleaved(5, seed=11, extra_events=1):
        assert_valid(event)


# ---------------------------------------------------------------- properties

_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@hsettings(max_examples=150, deadline=None)
@given(
    extra=st.dictionaries(_names, st.lists(_values, min_size=1, max_size=3), max_size=6),
    event=_names,
    seed=st.integers(0, 1000),
)
def test_any_signed_callback_becomes_a_valid_record_with_a_stable_id(extra, event, seed):
    params = {**extra, **cb(StatusCallbackEvent=event)}
    r = records.from_callback(params, 1_234)
    assert_valid(r)
    assert r["type"] == event
    items = list(params.items())
    random.Random(seed).shuffle(items)
    assert records.from_callback(dict(items), 99)["event_id"] == r["event_id"]
    assert records.decode(records.encode(r)) == r


def test_decode_for_fold_keeps_what_the_fold_reads_and_refuses_what_decode_refuses():
    from service.events import record as records
    from service.state.fold import fold
    from service.state.render import render

    params = {
        "AccountSid": ["AC" + "a1" * 16],
        "RoomSid": ["RM" + "1" * 32],
        "RoomName": ["n"],
        "StatusCallbackEvent": ["participant-connected"],
        "ParticipantSid": ["PA" + "2" * 32],
        "ParticipantIdentity": ["alice"],
        "Timestamp": ["2030-01-01T00:00:00.123Z"],
        "SequenceNumber": ["4"],
    }
    raw = records.encode(records.from_callback(params, 1_893_456_000_200))
    full, slim = records.decode(raw), records.decode_for_fold(raw)
    assert "params" not in slim and set(slim) < set(full)
    assert render(fold(None, slim)) == render(fold(None, full))
    cases = (
        (b"\xff", "undecodable", "undecodable"),
        (b"[1]", "not a JSON object", "undecodable"),
        (b'{"schema_version": 99, "event_id": "x"}', "schema_version 99", "schema_version 99"),
        (b'{"schema_version": 1, "event_id": "x", "type": "t", "room_sid": ""}', "lacks", "lacks"),
    )
    for bad, from_decode, from_fold in cases:
        for decoder, message in ((records.decode, from_decode), (records.decode_for_fold, from_fold)):
            try:
                decoder(bad)
            except records.RecordError as exc:
                assert message in str(exc), (decoder.__name__, bad, str(exc))
            else:
                raise AssertionError(f"{decoder.__name__} accepted {bad!r}")


def test_shapes_the_fold_cannot_take_are_record_errors_for_both_decoders():
    """Decodable but malformed: refused at the decode boundary as RecordError (poison), so that any
    other error while folding is a bug, never a reason to dead-letter."""
    good = records.from_callback(
        cb(StatusCallbackEvent="participant-connected", ParticipantSid="PA1", TrackSid="MT1", RecordingSid="RT1"), 0
    )
    assert records.decode_for_fold(records.encode(good))["participant"]["sid"] == "PA1"
    created = records.room_created(ACCOUNT_SID, ROOM, {"unique_name": "daily", "unused_room_timeout": 3}, 0, {})
    assert records.decode_for_fold(records.encode(created))["config"]["unique_name"] == "daily"
    # (record, what the error names, whether decode() refuses it too: it checks identity, not types)
    cases = [
        (good | {"participant": {"identity": "x"}}, "KeyError", True),
        (good | {"track": {"kind": "audio"}}, "KeyError", True),
        (good | {"recording": {"sid": 5}}, "recording", True),
        (good | {"participant": "PA1"}, "participant", True),
        (good | {"room": {"status": "in-progress", "duration": "600"}}, "duration", False),
        (good | {"occurred_at_ms": "soon"}, "occurred_at_ms", False),
        (created | {"config": {"unique_name": ["daily"]}}, "unique_name", True),
        (created | {"config": {"unused_room_timeout": "ten"}}, "unused_room_timeout", True),
    ]
    for bad, message, refused_by_decode in cases:
        raw = orjson.dumps(bad)
        with pytest.raises(records.RecordError, match=message):
            records.decode_for_fold(raw)
        if refused_by_decode:
            with pytest.raises(records.RecordError, match=message):
                records.decode(raw)

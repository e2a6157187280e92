"""Table-driven tests for service.rooms.params (create-room parameters and room update status).

Rows come from the seed (shared/create-room-seed.txt) and twilio-video.md 3.2-3.6: one row per rule,
the accepted edge values and the rejected ones with the exact Twilio error code. Every form row is
also run through the JSON parser (same values, JSON-shaped) to prove the single validation path.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, quote

import pytest

from service.rooms.errors import TwilioError
from service.rooms.params import (
    CALLBACK_METHODS,
    RESOURCE_KEYS,
    ROOM_TYPES,
    RoomParams,
    parse_create_form,
    parse_create_json,
    parse_update_status,
)

# The seed's curl body and JSON request example, verbatim.
SEED_CURL_BODY = (
    "AudioOnly=true&EmptyRoomTimeout=42&EnableTurn=true&LargeRoom=true&MaxParticipantDuration=42"
    "&MaxParticipants=42&MediaRegion=string&RecordParticipantsOnConnect=true"
    "&StatusCallback=https%3A%2F%2Fexample.com&StatusCallbackMethod=HEAD&Type=go&UniqueName=string"
    "&UnusedRoomTimeout=42&VideoCodecs=VP8"
)
SEED_JSON = {
    "AudioOnly": True,
    "EmptyRoomTimeout": 42,
    "EnableTurn": True,
    "LargeRoom": True,
    "MaxParticipantDuration": 42,
    "MaxParticipants": 42,
    "MediaRegion": "string",
    "RecordParticipantsOnConnect": True,
    "StatusCallback": "https://example.com",
    "StatusCallbackMethod": "HEAD",
    "Type": "go",
    "UniqueName": "string",
    "UnusedRoomTimeout": 42,
    "VideoCodecs": ["VP8"],
}
# The seed's example adjusted to valid values: Type group (AudioOnly is group-only, 42 > 2 for go)
# and a real media region instead of the placeholder "string".
SEED_VALID = SEED_CURL_BODY.replace("Type=go", "Type=group").replace("MediaRegion=string", "MediaRegion=us1")


def form(body: str) -> dict[str, list[str]]:
    """A form body as the HTTP layer hands it over: key -> list of values, blanks kept."""
    return parse_qs(body, keep_blank_values=True)


def as_json(body: str) -> dict:
    """The same parameters JSON-shaped: scalars as their first value, VideoCodecs as a list."""
    return {k: (v if k == "VideoCodecs" else v[0]) for k, v in form(body).items()}


PARSERS = {
    "form": lambda body: parse_create_form(form(body)),
    "json": lambda body: parse_create_json(as_json(body)),
}


def reject(parse, arg) -> TwilioError:
    with pytest.raises(TwilioError) as info:
        parse(arg)
    err = info.value
    assert err.status == 400
    assert err.to_json()["status"] == 400
    assert err.message
    return err


# ------------------------------------------------------------------------------------------------
# Accepted: (body, expected attributes)

ACCEPT = [
    # defaults per type
    (
        "",
        dict(
            type="group",
            max_participants=50,
            media_region="us1",
            video_codecs=("VP8",),
            max_concurrent_published_tracks=170,
            unique_name=None,
            status_callback=None,
            status_callback_method="POST",
            max_participant_duration=14400,
            empty_room_timeout=5,
            unused_room_timeout=5,
            audio_only=False,
            large_room=False,
            record_participants_on_connect=False,
            recording_rules=None,
            enable_turn=True,
        ),
    ),
    ("Type=group", dict(type="group", max_participants=50, media_region="us1")),
    (
        "Type=peer-to-peer",
        dict(max_participants=10, media_region=None, video_codecs=("VP8",), max_concurrent_published_tracks=0),
    ),
    ("Type=group-small", dict(max_participants=4, media_region="us1", max_concurrent_published_tracks=170)),
    ("Type=go", dict(max_participants=2, media_region="us1", max_concurrent_published_tracks=0)),
    # MaxParticipants edges per type
    ("Type=group&MaxParticipants=1", dict(max_participants=1)),
    ("Type=group&MaxParticipants=50", dict(max_participants=50)),
    ("Type=peer-to-peer&MaxParticipants=10", dict(max_participants=10)),
    ("Type=group-small&MaxParticipants=4", dict(max_participants=4)),
    ("Type=go&MaxParticipants=2", dict(max_participants=2)),
    ("MaxParticipants=+7", dict(max_participants=7)),
    ("MaxParticipants=%2007%20", dict(max_participants=7)),  # " 07 "
    ("MaxParticipants=", dict(max_participants=50)),  # empty = not given
    # MaxParticipantDuration edges
    ("MaxParticipantDuration=1", dict(max_participant_duration=1)),
    ("MaxParticipantDuration=86400", dict(max_participant_duration=86400)),
    # timeouts: whole minutes 1..60
    ("EmptyRoomTimeout=1&UnusedRoomTimeout=60", dict(empty_room_timeout=1, unused_room_timeout=60)),
    ("EmptyRoomTimeout=60&UnusedRoomTimeout=1", dict(empty_room_timeout=60, unused_room_timeout=1)),
    # booleans, case-insensitive
    ("AudioOnly=TRUE", dict(audio_only=True, video_codecs=())),
    ("AudioOnly=False&LargeRoom=True", dict(audio_only=False, large_room=True, max_concurrent_published_tracks=16)),
    ("Type=go&AudioOnly=false", dict(audio_only=False)),
    ("RecordParticipantsOnConnect=true", dict(record_participants_on_connect=True)),
    ("Type=peer-to-peer&RecordParticipantsOnConnect=false", dict(record_participants_on_connect=False)),
    ("EnableTurn=false", dict(enable_turn=True)),
    ("EnableTurn=true", dict(enable_turn=True)),
    ("Type=peer-to-peer&LargeRoom=true", dict(large_room=True, max_concurrent_published_tracks=0)),
    # StatusCallback / StatusCallbackMethod
    ("StatusCallback=https%3A%2F%2Fexample.com", dict(status_callback="https://example.com")),
    (
        "StatusCallback=http://user:pw@10.0.0.1:8080/cb?x=1#rc=2",
        dict(status_callback="http://user:pw@10.0.0.1:8080/cb?x=1#rc=2"),
    ),
    ("StatusCallback=HTTPS://[::1]/cb", dict(status_callback="HTTPS://[::1]/cb")),
    ("StatusCallback=", dict(status_callback=None)),
    *[(f"StatusCallbackMethod={m}", dict(status_callback_method=m)) for m in CALLBACK_METHODS],
    ("StatusCallbackMethod=get", dict(status_callback_method="GET")),
    ("StatusCallbackMethod=", dict(status_callback_method="POST")),
    # UniqueName
    ("UniqueName=" + "a" * 128, dict(unique_name="a" * 128)),
    ("UniqueName=" + quote("é" * 128), dict(unique_name="é" * 128)),  # 128 chars, 256 bytes
    ("UniqueName=" + quote("Daily stand-up / 🎥 #1"), dict(unique_name="Daily stand-up / 🎥 #1")),
    ("UniqueName=", dict(unique_name=None)),
    ("UniqueName=RM1234", dict(unique_name="RM1234")),
    # VideoCodecs: repeated keys, comma list, case, duplicates
    ("VideoCodecs=VP8&VideoCodecs=H264", dict(video_codecs=("VP8", "H264"))),
    ("VideoCodecs=H264&VideoCodecs=VP8", dict(video_codecs=("H264", "VP8"))),
    ("VideoCodecs=H264", dict(video_codecs=("H264",))),
    ("VideoCodecs=vp8,h264", dict(video_codecs=("VP8", "H264"))),
    ("VideoCodecs=VP8&VideoCodecs=VP8", dict(video_codecs=("VP8",))),
    ("VideoCodecs=", dict(video_codecs=("VP8",))),
    ("Type=peer-to-peer&VideoCodecs=", dict(video_codecs=("VP8",))),
    ("AudioOnly=true&VideoCodecs=H264", dict(audio_only=True, video_codecs=())),
    ("Type=go&VideoCodecs=H264", dict(video_codecs=("H264",))),
    # MediaRegion
    ("MediaRegion=gll", dict(media_region="gll")),
    ("MediaRegion=DE1", dict(media_region="de1")),
    ("Type=group-small&MediaRegion=us2", dict(media_region="us2")),
    (
        "Type=go&MediaRegion=ie1&RecordParticipantsOnConnect=true",
        dict(media_region="ie1", record_participants_on_connect=True),
    ),
    ("Type=peer-to-peer&MediaRegion=", dict(media_region=None)),
    # RecordingRules
    (
        "RecordingRules=" + quote('[{"type":"exclude","all":true}]'),
        dict(recording_rules=[{"type": "exclude", "all": True}]),
    ),
    (
        "RecordingRules=" + quote('{"rules":[{"type":"include","publisher":"alice","kind":"audio"}]}'),
        dict(recording_rules={"rules": [{"type": "include", "publisher": "alice", "kind": "audio"}]}),
    ),
    (
        "RecordingRules=" + quote('[{"type":"include","track":"screen"},{"type":"exclude","kind":"data"}]'),
        dict(recording_rules=[{"type": "include", "track": "screen"}, {"type": "exclude", "kind": "data"}]),
    ),
    ("RecordingRules=%5B%5D", dict(recording_rules=[])),
    # the OpenAPI example sends the JSON percent-encoded once more
    (
        "RecordingRules=%255B%257B%2522type%2522%253A%2522exclude%2522%252C%2522all%2522%253A%2520true%257D%255D",
        dict(recording_rules=[{"type": "exclude", "all": True}]),
    ),
    ("RecordingRules=", dict(recording_rules=None)),
    # unknown parameters are ignored; first value of a scalar wins
    ("Foo=bar&TranscribeParticipantsOnConnect=maybe&Type=group", dict(type="group")),
    ("Type=group-small&Type=go&MaxParticipants=3&MaxParticipants=99", dict(type="group-small", max_participants=3)),
    # the seed's example with valid values
    (
        SEED_VALID,
        dict(
            type="group",
            audio_only=True,
            large_room=True,
            unique_name="string",
            empty_room_timeout=42,
            unused_room_timeout=42,
            max_participant_duration=42,
            max_participants=42,
            media_region="us1",
            record_participants_on_connect=True,
            status_callback="https://example.com",
            status_callback_method="HEAD",
            video_codecs=(),
            enable_turn=True,
            max_concurrent_published_tracks=16,
        ),
    ),
    (
        SEED_CURL_BODY.replace("MaxParticipants=42", "MaxParticipants=2")
        .replace("AudioOnly=true", "AudioOnly=false")
        .replace("MediaRegion=string", "MediaRegion=us1"),
        dict(
            type="go",
            max_participants=2,
            video_codecs=("VP8",),
            media_region="us1",
            record_participants_on_connect=True,
            max_concurrent_published_tracks=0,
        ),
    ),
]


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("body,expected", ACCEPT, ids=[b[:60] or "<empty>" for b, _ in ACCEPT])
def test_accepts(parser, body, expected):
    params = PARSERS[parser](body)
    got = {name: getattr(params, name) for name in expected}
    assert got == expected


# ------------------------------------------------------------------------------------------------
# Rejected: (body, exact code)

REJECT = [
    # Type
    ("Type=conference", 53108),
    ("Type=Group", 53108),
    ("Type=p2p", 53108),
    # MaxParticipants: 1..max for the type, integers only
    ("MaxParticipants=0", 53107),
    ("MaxParticipants=-1", 53107),
    ("MaxParticipants=51", 53107),
    ("Type=peer-to-peer&MaxParticipants=11", 53107),
    ("Type=group-small&MaxParticipants=5", 53107),
    ("Type=go&MaxParticipants=3", 53107),
    ("MaxParticipants=2.5", 53107),
    ("MaxParticipants=10.0", 53107),
    ("MaxParticipants=abc", 53107),
    ("MaxParticipants=1e1", 53107),
    ("MaxParticipants=" + quote("٥"), 53107),  # a non-ASCII digit
    ("MaxParticipants=" + "9" * 5000, 53107),
    ("LargeRoom=true&MaxParticipants=90", 53107),
    # the seed's example as written: Type=go with MaxParticipants=42
    (SEED_CURL_BODY, 53107),
    # MaxParticipantDuration
    ("MaxParticipantDuration=0", 53123),
    ("MaxParticipantDuration=86401", 53123),
    ("MaxParticipantDuration=-5", 53123),
    ("MaxParticipantDuration=3600.5", 53123),
    ("MaxParticipantDuration=4h", 53123),
    # timeouts
    ("EmptyRoomTimeout=0", 53109),
    ("EmptyRoomTimeout=61", 53109),
    ("EmptyRoomTimeout=1.5", 53109),
    ("EmptyRoomTimeout=abc", 53109),
    ("UnusedRoomTimeout=0", 53109),
    ("UnusedRoomTimeout=61", 53109),
    ("UnusedRoomTimeout=1.5", 53109),
    ("UnusedRoomTimeout=abc", 53109),
    # booleans
    ("AudioOnly=yes", 53114),
    ("AudioOnly=1", 53114),
    ("EnableTurn=maybe", 53114),
    ("LargeRoom=on", 53114),
    ("RecordParticipantsOnConnect=0", 53114),
    # AudioOnly only for group rooms
    ("Type=go&AudioOnly=true", 53124),
    ("Type=peer-to-peer&AudioOnly=true", 53124),
    ("Type=group-small&AudioOnly=true", 53124),
    (SEED_CURL_BODY.replace("MaxParticipants=42", "MaxParticipants=2"), 53124),
    # not for peer-to-peer
    ("Type=peer-to-peer&MediaRegion=us1", 53114),
    ("Type=peer-to-peer&MediaRegion=nowhere", 53114),
    ("Type=peer-to-peer&RecordParticipantsOnConnect=true", 53114),
    ("Type=peer-to-peer&VideoCodecs=VP8", 53114),
    ("Type=peer-to-peer&VideoCodecs=H264&VideoCodecs=VP8", 53114),
    # VideoCodecs values
    ("VideoCodecs=AV1", 53114),
    ("VideoCodecs=VP8&VideoCodecs=VP9", 53114),
    ("VideoCodecs=VP8,H265", 53114),
    # MediaRegion values
    ("MediaRegion=string", 53115),
    ("MediaRegion=eu1", 53115),
    (SEED_VALID.replace("MediaRegion=us1", "MediaRegion=string"), 53115),
    # StatusCallback: absolute http(s) URL with a host
    ("StatusCallback=example.com/cb", 53111),
    ("StatusCallback=/relative/cb", 53111),
    ("StatusCallback=ftp://example.com/cb", 53111),
    ("StatusCallback=javascript:alert(1)", 53111),
    ("StatusCallback=https://", 53111),
    ("StatusCallback=https:///path", 53111),
    ("StatusCallback=https://exa mple.com/", 53111),
    ("StatusCallback=https://example.com:port/", 53111),
    ("StatusCallback=https://[::1/", 53111),
    ("StatusCallback=https://example.com/%0Acb", 53111),  # a decoded newline
    # StatusCallbackMethod
    ("StatusCallbackMethod=OPTIONS", 53110),
    ("StatusCallbackMethod=CONNECT", 53110),
    ("StatusCallbackMethod=P0ST", 53110),
    # UniqueName
    ("UniqueName=" + "a" * 129, 53101),
    ("UniqueName=" + quote("é" * 129), 53101),
    ("UniqueName=bad%00name", 53102),
    ("UniqueName=line%0Abreak", 53102),
    ("UniqueName=tab%09", 53102),
    ("UniqueName=del%7F", 53102),
    ("UniqueName=c1%C2%85", 53102),  # U+0085 (C1 control)
    ("UniqueName=bad%FFutf8", 53102),  # invalid UTF-8 -> U+FFFD after decoding
    ("UniqueName=RM" + "a" * 32, 53100),
    ("UniqueName=RM" + "0123456789ABCDEF" * 2, 53100),
    # RecordingRules
    ("RecordingRules=not-json", 53120),
    ("RecordingRules=" + quote('{"type":"exclude","all":true}'), 53120),  # a rule, not a list
    ("RecordingRules=" + quote('{"rules":{"type":"exclude"}}'), 53120),
    ("RecordingRules=" + quote('{"rules":[],"extra":1}'), 53120),
    ("RecordingRules=42", 53120),
    ("RecordingRules=" + quote('["exclude"]'), 53120),
    ("RecordingRules=" + quote('[{"type":"record","all":true}]'), 53120),
    ("RecordingRules=" + quote('[{"all":true}]'), 53120),
    ("RecordingRules=" + quote('[{"type":"include"}]'), 53120),
    ("RecordingRules=" + quote('[{"type":"include","all":false}]'), 53120),
    ("RecordingRules=" + quote('[{"type":"include","all":true,"kind":"audio"}]'), 53120),
    ("RecordingRules=" + quote('[{"type":"include","kind":"screen"}]'), 53120),
    ("RecordingRules=" + quote('[{"type":"include","publisher":""}]'), 53120),
    ("RecordingRules=" + quote('[{"type":"include","track":7}]'), 53120),
    ("RecordingRules=" + quote('[{"type":"include","publsher":"alice"}]'), 53120),
]


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("body,code", REJECT, ids=[f"{c}-{b[:50]}" for b, c in REJECT])
def test_rejects(parser, body, code):
    err = reject(PARSERS[parser], body)
    assert err.code == code, err.message
    assert err.to_json()["code"] == code


# ------------------------------------------------------------------------------------------------
# JSON specifics: real JSON types, and the types that cannot mean a parameter.


def test_seed_json_example_as_written_is_rejected_for_max_participants():
    err = reject(parse_create_json, SEED_JSON)
    assert err.code == 53107
    assert "MaxParticipants is out of range" in err.message
    assert "42" in err.message and "go" in err.message


def test_seed_json_example_with_valid_values():
    body = dict(SEED_JSON, Type="group", MediaRegion="us1")
    params = parse_create_json(body)
    assert params == parse_create_form(form(SEED_VALID))
    assert params.to_dict() == {
        "type": "group",
        "unique_name": "string",
        "status_callback": "https://example.com",
        "status_callback_method": "HEAD",
        "max_participants": 42,
        "max_participant_duration": 42,
        "max_concurrent_published_tracks": 16,
        "record_participants_on_connect": True,
        "video_codecs": [],
        "media_region": "us1",
        "audio_only": True,
        "empty_room_timeout": 42,
        "unused_room_timeout": 42,
        "large_room": True,
        "enable_turn": True,
        "recording_rules": None,
    }


JSON_ACCEPT = [
    ({"MaxParticipants": 5.0}, dict(max_participants=5)),
    ({"MaxParticipants": "5", "AudioOnly": "true"}, dict(max_participants=5, audio_only=True)),
    ({"VideoCodecs": "H264"}, dict(video_codecs=("H264",))),
    ({"VideoCodecs": ["VP8", "H264"]}, dict(video_codecs=("VP8", "H264"))),
    ({"VideoCodecs": []}, dict(video_codecs=("VP8",))),
    (
        {"Type": None, "UniqueName": None, "StatusCallback": None},
        dict(type="group", unique_name=None, status_callback=None),
    ),
    ({"RecordingRules": [{"type": "exclude", "all": True}]}, dict(recording_rules=[{"type": "exclude", "all": True}])),
    (
        {"RecordingRules": {"rules": [{"type": "include", "kind": "video"}]}},
        dict(recording_rules={"rules": [{"type": "include", "kind": "video"}]}),
    ),
    ({"RecordingRules": '[{"type":"exclude","all":true}]'}, dict(recording_rules=[{"type": "exclude", "all": True}])),
    ({"Unknown": {"nested": [1, 2]}, "Type": "go"}, dict(type="go")),
    ({"EnableTurn": False}, dict(enable_turn=True)),
]


@pytest.mark.parametrize("body,expected", JSON_ACCEPT, ids=[json.dumps(b)[:60] for b, _ in JSON_ACCEPT])
def test_json_accepts(body, expected):
    params = parse_create_json(body)
    assert {name: getattr(params, name) for name in expected} == expected


JSON_REJECT = [
    ({"MaxParticipants": True}, 53107),
    ({"MaxParticipants": 2.5}, 53107),
    ({"MaxParticipants": [5]}, 53107),
    ({"MaxParticipants": float("inf")}, 53107),
    ({"EmptyRoomTimeout": 1.5}, 53109),
    ({"UnusedRoomTimeout": {"minutes": 5}}, 53109),
    ({"MaxParticipantDuration": 86400.5}, 53123),
    ({"AudioOnly": 1}, 53114),
    ({"LargeRoom": "yes"}, 53114),
    ({"EnableTurn": None, "RecordParticipantsOnConnect": [True]}, 53114),
    ({"VideoCodecs": [8]}, 53114),
    ({"VideoCodecs": ["VP8", "AV1"]}, 53114),
    ({"Type": ["group"]}, 53108),
    ({"Type": 1}, 53108),
    ({"UniqueName": 42}, 53100),
    ({"UniqueName": {"name": "x"}}, 53100),
    ({"StatusCallback": ["https://example.com"]}, 53111),
    ({"StatusCallbackMethod": True}, 53110),
    ({"MediaRegion": 1}, 53115),
    ({"RecordingRules": 7}, 53120),
    ({"RecordingRules": [{"type": "include"}]}, 53120),
    ({"RecordingRules": {"type": "include", "all": True}}, 53120),
]


@pytest.mark.parametrize("body,code", JSON_REJECT, ids=[f"{c}-{json.dumps(b)[:50]}" for b, c in JSON_REJECT])
def test_json_rejects(body, code):
    assert reject(parse_create_json, body).code == code


@pytest.mark.parametrize("body", [[], "Type=group", None, 42])
def test_json_body_must_be_an_object(body):
    assert reject(parse_create_json, body).code == 53114


# ------------------------------------------------------------------------------------------------
# Form input shapes, messages, the value object


class MultiDictLike:
    """Just enough of aiohttp's MultiDictProxy: keys() repeats, [] gives the first, getall()."""

    def __init__(self, pairs):
        self._pairs = pairs

    def keys(self):
        return [k for k, _ in self._pairs]

    def __getitem__(self, key):
        return next(v for k, v in self._pairs if k == key)

    def getall(self, key):
        return [v for k, v in self._pairs if k == key]


def test_form_accepts_multidict_and_plain_strings():
    md = MultiDictLike([("VideoCodecs", "H264"), ("Type", "group-small"), ("VideoCodecs", "VP8")])
    params = parse_create_form(md)
    assert params.video_codecs == ("H264", "VP8") and params.type == "group-small"
    assert parse_create_form({"Type": "go", "MaxParticipants": "2"}).max_participants == 2
    assert parse_create_form({"UniqueName": [b"caf\xc3\xa9"]}).unique_name == "café"
    assert reject(parse_create_form, {"UniqueName": [b"caf\xe9"]}).code == 53102


@pytest.mark.parametrize(
    "body,fragments",
    [
        ("MaxParticipants=51", ["MaxParticipants is out of range", "'51'", "1 to 50", "group"]),
        ("EmptyRoomTimeout=1.5", ["Timeout is out of range", "EmptyRoomTimeout", "'1.5'"]),
        ("MaxParticipantDuration=0", ["MaxParticipantDuration is out of range", "86400"]),
        ("Type=party", ["RoomType is not valid", "'party'"]),
        ("StatusCallbackMethod=OPTIONS", ["StatusCallbackMethod is invalid", "'OPTIONS'"]),
        ("StatusCallback=ftp://x", ["StatusCallback is invalid", "'ftp://x'"]),
        ("UniqueName=" + "a" * 129, ["Room name is too long", "129", "128"]),
        ("UniqueName=a%00", ["Room name contains invalid characters"]),
        ("Type=go&AudioOnly=true", ["AudioOnly", "go"]),
        ("Type=peer-to-peer&MediaRegion=us1", ["incompatible with the Room type", "MediaRegion"]),
        ("AudioOnly=yes", ["AudioOnly", "'yes'", "true or false"]),
        ("VideoCodecs=AV1", ["VideoCodecs", "'AV1'"]),
        ("MediaRegion=string", ["MediaRegion is invalid", "'string'"]),
        ("RecordingRules=%7B", ["Invalid Recording Rule(s)", "JSON"]),
    ],
)
def test_error_messages_name_parameter_and_value(body, fragments):
    message = reject(PARSERS["form"], body).message
    for fragment in fragments:
        assert fragment in message


def test_long_values_are_cut_in_messages():
    message = reject(PARSERS["form"], "StatusCallbackMethod=" + "X" * 1000).message
    assert len(message) < 200


def test_to_dict_keys_and_types():
    params = parse_create_form(form("VideoCodecs=VP8&VideoCodecs=H264&RecordingRules=%5B%5D"))
    data = params.to_dict()
    assert set(data) == set(RESOURCE_KEYS) | {"recording_rules"}
    assert len(RESOURCE_KEYS) == 15
    assert data["video_codecs"] == ["VP8", "H264"] and isinstance(data["video_codecs"], list)
    json.dumps(data)  # plain JSON types only
    data["recording_rules"].append("mutated")
    assert params.recording_rules == []  # to_dict hands out a copy
    assert RoomParams.from_dict(params.to_dict()) == params


@pytest.mark.parametrize("room_type", ROOM_TYPES)
def test_defaults_round_trip_for_every_type(room_type):
    params = parse_create_form({"Type": [room_type]})
    assert RoomParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params
    assert parse_create_json({"Type": room_type}) == params


def test_params_are_frozen():
    params = parse_create_form({})
    with pytest.raises(AttributeError):
        params.type = "go"  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------
# POST /v1/Rooms/{Sid}: Status


@pytest.mark.parametrize(
    "body",
    [
        {"Status": ["completed"]},
        {"Status": ["COMPLETED "]},
        {"Status": "completed"},
        {"Status": ["completed", "failed"]},
        {"Status": ["completed"], "Other": ["x"]},
    ],
)
def test_update_status_completed(body):
    assert parse_update_status(body) == "completed"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"Status": []},
        {"Status": [""]},
        {"Status": ["in-progress"]},
        {"Status": ["failed"]},
        {"Status": ["done"]},
        {"status": ["completed"]},
    ],
)
def test_update_status_rejected(body):
    err = reject(parse_update_status, body)
    assert err.code == 53112
    assert err.message.startswith("Status is invalid")

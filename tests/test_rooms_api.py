"""The Rooms REST API over HTTP against a running ingress + materializer on the real broker:
create (form and JSON), validation (400, nothing published), fetch by SID and unique name, list
filters and paging, complete, participants from signed callbacks, auth, and the pure paging helpers.

One system serves the whole module (starting one costs a consumer-group join); every test uses its
own unique names, and list assertions never assume the list holds only their rooms.
"""

from __future__ import annotations

import re
import time
import uuid
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from service.callbacks.signature import compute_signature
from service.events import cloudevents, record as records
from service.kafka.producer import Publisher
from service.kafka.topics import ensure_topics
from service.metrics import Metrics
from service.rooms.errors import TwilioError
from service.rooms.resource import Window, decode_token, encode_token, page_meta, window
from service.state.render import RESOURCE_FIELDS
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, basic_auth, make_settings, running_system, wait_until

PUBLIC = "https://rooms.example.test"
SECONDARY = "secondary-test-token"
SID = re.compile(r"^RM[0-9a-f]{32}$")
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
async def system(kafka_bootstrap):
    cfg = make_settings(kafka_bootstrap, public_url=PUBLIC, twilio_auth_token_secondary=SECONDARY)
    await ensure_topics(cfg)
    async with running_system(cfg) as (ingress, _), aiohttp.ClientSession() as http:
        yield SimpleNamespace(cfg=cfg, ingress=ingress, http=http, base=ingress.url)


def name(prefix: str = "room") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def call(s, method: str, path: str, *, data=None, json=None, headers=None, auth: bool = True):
    """(status, parsed JSON body) for a request to the ingress; `path` may be a public URL."""
    url = path.replace(PUBLIC, s.base) if path.startswith(PUBLIC) else s.base + path
    hdrs = dict(basic_auth()) if auth else {}
    hdrs.update(headers or {})
    if json is not None:
        data = orjson.dumps(json)
        hdrs.setdefault("Content-Type", "application/json")
    async with s.http.request(method, url, data=data, headers=hdrs) as resp:
        text = await resp.text()
        assert resp.content_type == "application/json", (resp.status, text)
        return resp.status, orjson.loads(text)


def assert_error(status: int, body: dict, http_status: int, code: int) -> None:
    assert (status, body.get("code")) == (http_status, code), body
    assert set(body) == {"code", "message", "more_info", "status"}
    assert body["status"] == http_status and body["message"]
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


async def events_end(cfg) -> int:
    """Total records on the events topic (sum of end offsets): did a request publish anything?"""
    consumer = AIOKafkaConsumer(bootstrap_servers=cfg.kafka_bootstrap_servers)
    await consumer.start()
    try:
        tps = [TopicPartition(cfg.events_topic, p) for p in range(cfg.topic_partitions)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def create(s, **form) -> dict:
    status, body = await call(s, "POST", "/v1/Rooms", data=form)
    assert status == 201, body
    return body


# ---------------------------------------------------------------- create


async def test_create_returns_the_full_resource(system):
    unique = name()
    status, room = await call(system, "POST", "/v1/Rooms", data={"UniqueName": unique, "Type": "group"})
    assert status == 201, room
    assert set(room) == set(RESOURCE_FIELDS) | {"url", "links"}
    assert SID.match(room["sid"])
    assert room["account_sid"] == ACCOUNT_SID
    assert room["url"] == f"{PUBLIC}/v1/Rooms/{room['sid']}"
    assert room["links"] == {
        k: f"{room['url']}/{v}"
        for k, v in (
            ("participants", "Participants"),
            ("recordings", "Recordings"),
            ("recording_rules", "RecordingRules"),
            ("transcriptions", "Transcriptions"),
        )
    }
    assert DATE.match(room["date_created"]) and DATE.match(room["date_updated"])
    assert abs(records.parse_timestamp_ms(room["date_created"]) - time.time() * 1000) < 60_000
    assert room["status"] == "in-progress"
    assert room["end_time"] is None and room["duration"] is None
    assert room["unique_name"] == unique
    assert room["enable_turn"] is True
    assert room["status_callback"] is None and room["status_callback_method"] == "POST"
    assert (
        room["max_participants"],
        room["max_participant_duration"],
        room["empty_room_timeout"],
        room["unused_room_timeout"],
        room["video_codecs"],
        room["media_region"],
    ) == (50, 14400, 5, 5, ["VP8"], "us1")

    # Read-your-writes from the instance that answered the 201: by SID and by unique name.
    for key in (room["sid"], unique):
        status, fetched = await call(system, "GET", f"/v1/Rooms/{key}")
        assert (status, fetched) == (200, room)


@pytest.mark.parametrize(
    "room_type, max_participants, region",
    [("group", 50, "us1"), ("group-small", 4, "us1"), ("peer-to-peer", 10, None), ("go", 2, "us1")],
)
async def test_create_each_type_with_its_defaults(system, room_type, max_participants, region):
    room = await create(system, Type=room_type)
    assert (room["type"], room["max_participants"], room["media_region"]) == (room_type, max_participants, region)
    assert room["unique_name"] == room["sid"]  # defaults to the SID


async def test_create_with_every_parameter_form_and_json(system):
    form = [
        ("Type", "group"),
        ("UniqueName", name()),
        ("StatusCallback", "https://example.com/cb"),
        ("StatusCallbackMethod", "head"),
        ("MaxParticipants", "42"),
        ("MaxParticipantDuration", "600"),
        ("EmptyRoomTimeout", "7"),
        ("UnusedRoomTimeout", "9"),
        ("AudioOnly", "false"),
        ("EnableTurn", "true"),
        ("LargeRoom", "true"),
        ("RecordParticipantsOnConnect", "true"),
        ("VideoCodecs", "VP8"),
        ("VideoCodecs", "H264"),
        ("MediaRegion", "de1"),
        ("RecordingRules", '[{"type":"include","all":true}]'),
    ]
    status, room = await call(system, "POST", "/v1/Rooms", data=aiohttp.FormData(form))
    assert status == 201, room
    expected = {
        "type": "group",
        "status_callback": "https://example.com/cb",
        "status_callback_method": "HEAD",
        "max_participants": 42,
        "max_participant_duration": 600,
        "empty_room_timeout": 7,
        "unused_room_timeout": 9,
        "audio_only": False,
        "large_room": True,
        "record_participants_on_connect": True,
        "video_codecs": ["VP8", "H264"],
        "media_region": "de1",
        "max_concurrent_published_tracks": 16,
    }
    assert {k: room[k] for k in expected} == expected

    body = {
        "Type": "group",
        "UniqueName": name(),
        "MaxParticipants": 42,
        "MaxParticipantDuration": 600,
        "EmptyRoomTimeout": 7,
        "UnusedRoomTimeout": 9,
        "AudioOnly": False,
        "EnableTurn": True,
        "LargeRoom": True,
        "RecordParticipantsOnConnect": True,
        "VideoCodecs": ["VP8", "H264"],
        "MediaRegion": "de1",
        "StatusCallback": "https://example.com/cb",
        "StatusCallbackMethod": "HEAD",
        "RecordingRules": [{"type": "include", "all": True}],
    }
    status, room = await call(system, "POST", "/v1/Rooms", json=body)
    assert status == 201, room
    assert {k: room[k] for k in expected} == expected and room["unique_name"] == body["UniqueName"]

    # An empty body: every default.
    status, room = await call(system, "POST", "/v1/Rooms")
    assert status == 201 and room["type"] == "group"


INVALID_FORMS = [
    ({"Type": "conference"}, 53108),
    ({"Type": "go", "MaxParticipants": "3"}, 53107),
    ({"MaxParticipants": "51"}, 53107),
    ({"MaxParticipants": "1.5"}, 53107),
    ({"UniqueName": "x" * 129}, 53101),
    ({"UniqueName": "RM" + "0" * 32}, 53100),
    ({"UniqueName": "bad\x07name"}, 53102),
    ({"StatusCallback": "ftp://example.com"}, 53111),
    ({"StatusCallbackMethod": "TRACE"}, 53110),
    ({"EmptyRoomTimeout": "0"}, 53109),
    ({"UnusedRoomTimeout": "61"}, 53109),
    ({"MaxParticipantDuration": "86401"}, 53123),
    ({"Type": "group-small", "AudioOnly": "true"}, 53124),
    ({"Type": "peer-to-peer", "MediaRegion": "us1"}, 53114),
    ({"VideoCodecs": "VP9"}, 53114),
    ({"AudioOnly": "yes"}, 53114),
    ({"MediaRegion": "string"}, 53115),
    ({"RecordingRules": "[{"}, 53120),
]


async def test_invalid_creates_are_400_and_publish_nothing(system):
    before = await events_end(system.cfg)
    for form, code in INVALID_FORMS:
        status, body = await call(system, "POST", "/v1/Rooms", data=form)
        assert_error(status, body, 400, code)
    # The same rules for JSON bodies, and JSON-only shape errors.
    for body_json, code in [
        ({"MaxParticipants": True}, 53107),
        ({"Type": ["group"]}, 53108),
        ({"UniqueName": 5}, 53100),
        ({"MaxParticipants": 99}, 53107),
    ]:
        status, body = await call(system, "POST", "/v1/Rooms", json=body_json)
        assert_error(status, body, 400, code)
    # Bytes that are not UTF-8 in the name: reported, never published.
    status, body = await call(
        system,
        "POST",
        "/v1/Rooms",
        data=b"UniqueName=a%FFb",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(status, body, 400, 53102)
    status, body = await call(
        system,
        "POST",
        "/v1/Rooms",
        data=b"UniqueName=a\xffb",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(status, body, 400, 53102)
    # Malformed bodies.
    for raw, ctype, http_status in [
        (b"{nope", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"UniqueName=x", "text/plain", 415),
    ]:
        status, body = await call(system, "POST", "/v1/Rooms", data=raw, headers={"Content-Type": ctype})
        assert_error(status, body, http_status, 20001)
    status, body = await call(system, "POST", "/v1/Rooms", data={"UniqueName": "x" * 70_000})
    assert_error(status, body, 413, 20001)
    assert await events_end(system.cfg) == before


async def test_duplicate_unique_name_then_free_once_completed(system):
    unique = name("dup")
    first = await create(system, UniqueName=unique)
    before = await events_end(system.cfg)
    status, body = await call(system, "POST", "/v1/Rooms", data={"UniqueName": unique, "Type": "go"})
    assert_error(status, body, 400, 53113)
    assert await events_end(system.cfg) == before  # refused from the read view: nothing published

    status, done = await call(system, "POST", f"/v1/Rooms/{unique}", data={"Status": "completed"})
    assert status == 202 and done["sid"] == first["sid"]
    second = await create(system, UniqueName=unique)
    assert second["sid"] != first["sid"]
    status, body = await call(system, "GET", f"/v1/Rooms/{unique}")
    assert (status, body["sid"]) == (200, second["sid"])  # the name now means the new room


async def test_a_room_that_lost_the_name_race_is_invisible(system):
    """Two creates for one name reach the log (e.g. from two ingress instances); the loser is hidden."""
    cfg, unique = system.cfg, name("race")
    publisher = Publisher(cfg, Metrics())
    await publisher.start()
    sids = ["RM" + uuid.uuid4().hex for _ in range(2)]
    try:
        for sid in sids:
            config = {"type": "group", "unique_name": unique, "sid": sid, "account_sid": ACCOUNT_SID}
            event = records.room_created(ACCOUNT_SID, sid, config, int(time.time() * 1000), {})
            await publisher.publish(
                cfg.events_topic, records.partition_key(event), records.encode(event), cloudevents.event_headers(event)
            )
    finally:
        await publisher.stop()
    docs = system.ingress.follower.index.docs
    await wait_until(lambda: all(sid in docs for sid in sids))
    winner, loser = sids
    assert docs[winner]["status"] == "in-progress" and docs[loser]["status"] == "failed"

    status, body = await call(system, "GET", f"/v1/Rooms/{loser}")
    assert_error(status, body, 404, 20404)
    status, body = await call(system, "POST", f"/v1/Rooms/{loser}", data={"Status": "completed"})
    assert_error(status, body, 404, 20404)
    status, page = await call(system, "GET", f"/v1/Rooms?Status=failed&UniqueName={unique}")
    assert page["rooms"] == []
    status, room = await call(system, "GET", f"/v1/Rooms/{unique}")
    assert room["sid"] == winner


# ---------------------------------------------------------------- fetch / update


async def test_unknown_rooms_and_subresources_are_404(system):
    for path in (
        "/v1/Rooms/RM" + "f" * 32,
        "/v1/Rooms/no-such-name",
        "/v1/Rooms/no-such-name/Participants",
        "/v1/Rooms/RM" + "f" * 32 + "/Participants/PA" + "0" * 32,
    ):
        status, body = await call(system, "GET", path)
        assert_error(status, body, 404, 20404)
    room = await create(system)
    # Every sub-resource a room links to is served (tests/test_room_subresources.py); what it does not
    # link to is Twilio's JSON 404.
    for link in room["links"].values():
        status, _ = await call(system, "GET", link)
        assert status == 200, link
    for sub in ("Recordings/RT" + "0" * 32, "Transcriptions/video_extension_x", "Nope"):
        status, body = await call(system, "GET", f"/v1/Rooms/{room['sid']}/{sub}")
        assert_error(status, body, 404, 20404)
    for sub in ("Recordings", "RecordingRules", "Transcriptions"):
        status, body = await call(system, "GET", f"/v1/Rooms/no-such-name/{sub}")
        assert_error(status, body, 404, 20404)


async def test_complete_a_room(system):
    unique = name("done")
    room = await create(system, UniqueName=unique)
    for form, code in [({"Status": "in-progress"}, 53112), ({"Status": "failed"}, 53112), ({}, 53112)]:
        status, body = await call(system, "POST", f"/v1/Rooms/{room['sid']}", data=form)
        assert_error(status, body, 400, code)
    status, body = await call(system, "POST", "/v1/Rooms/RM" + "e" * 32, data={"Status": "completed"})
    assert_error(status, body, 404, 20404)

    status, done = await call(system, "POST", f"/v1/Rooms/{room['sid']}", json={"Status": "completed"})
    assert status == 202, done
    assert done["status"] == "completed" and DATE.match(done["end_time"])
    assert isinstance(done["duration"], int) and 0 <= done["duration"] < 60
    assert done["end_time"] >= done["date_created"]
    # Read-your-writes, and the name no longer resolves.
    status, fetched = await call(system, "GET", f"/v1/Rooms/{room['sid']}")
    assert (status, fetched) == (200, done)
    status, body = await call(system, "GET", f"/v1/Rooms/{unique}")
    assert_error(status, body, 404, 20404)
    status, body = await call(system, "POST", f"/v1/Rooms/{room['sid']}", data={"Status": "completed"})
    assert_error(status, body, 400, 53118)
    status, body = await call(system, "POST", f"/v1/Rooms/{room['sid']}", data={"Status": "in-progress"})
    assert_error(status, body, 400, 53112)


# ---------------------------------------------------------------- list


async def test_list_filters(system):
    unique = name("lst")
    a = await create(system, UniqueName=unique)
    await call(system, "POST", f"/v1/Rooms/{a['sid']}", data={"Status": "completed"})
    b = await create(system, UniqueName=unique)

    status, page = await call(system, "GET", f"/v1/Rooms?UniqueName={unique}")
    assert status == 200
    assert [r["sid"] for r in page["rooms"]] == [b["sid"]]  # Status defaults to in-progress
    assert page["meta"]["url"] == f"{PUBLIC}/v1/Rooms?UniqueName={unique}&PageSize=50&Page=0"
    assert page["meta"]["key"] == "rooms" and page["meta"]["previous_page_url"] is None
    status, page = await call(system, "GET", f"/v1/Rooms?UniqueName={unique}&Status=completed")
    assert [(r["sid"], r["status"]) for r in page["rooms"]] == [(a["sid"], "completed")]
    status, page = await call(system, "GET", f"/v1/Rooms?UniqueName={unique}&Status=failed")
    assert page["rooms"] == []

    created = b["date_created"]
    day = created[:10]
    cases = [
        (f"DateCreatedAfter={created}", True),
        (f"DateCreatedBefore={created}", False),
        (f"DateCreatedAfter={day}", True),
        (f"DateCreatedBefore={day}", False),
        ("DateCreatedAfter=2999-01-01", False),
        ("DateCreatedBefore=2999-01-01T00:00:00Z", True),
        (f"DateCreatedAfter={created[:-1]}%2B00:00", True),
        (f"DateCreatedAfter={created[:-1]}+00:00", True),
        ("DateCreatedBefore=2000-01-01", False),
    ]
    for query, included in cases:
        status, page = await call(system, "GET", f"/v1/Rooms?UniqueName={unique}&{query}")
        assert status == 200, (query, page)
        assert [r["sid"] for r in page["rooms"]] == ([b["sid"]] if included else []), query

    for query in (
        "Status=open",
        "PageSize=0",
        "PageSize=-1",
        "PageSize=ten",
        "Page=-1",
        "PageToken=bogus",
        "PageToken=PA" + "x" * 8,
        "DateCreatedAfter=yesterday",
        "DateCreatedBefore=2024-13-01",
    ):
        status, body = await call(system, "GET", f"/v1/Rooms?{query}")
        assert_error(status, body, 400, 20001)
    status, page = await call(system, "GET", "/v1/Rooms?PageSize=5000")
    assert status == 200 and page["meta"]["page_size"] == 1000  # clamped, as twilio-python may ask for more


async def test_list_paging_follows_links_and_is_stable_under_inserts(system):
    for _ in range(5):
        await create(system, Type="go")
    status, everything = await call(system, "GET", "/v1/Rooms?PageSize=1000")
    expected = [r["sid"] for r in everything["rooms"]]
    assert len(expected) >= 5 and everything["meta"]["next_page_url"] is None

    # Newest first.
    created = [r["date_created"] for r in everything["rooms"]]
    assert created == sorted(created, reverse=True)

    seen, pages, url = [], [], "/v1/Rooms?PageSize=2"
    while url:
        status, page = await call(system, "GET", url)
        assert status == 200 and len(page["rooms"]) <= 2
        pages.append(page)
        seen.extend(r["sid"] for r in page["rooms"])
        if len(pages) == 1:  # a room created while paging lands before the cursor: no repeat, no skip
            await create(system, Type="go")
        url = page["meta"]["next_page_url"]
        assert url is None or url.startswith(f"{PUBLIC}/v1/Rooms?PageSize=2&Page={len(pages)}&PageToken=PA")
    assert seen == expected
    assert [p["meta"]["page"] for p in pages] == list(range(len(pages)))

    # previous_page_url from the second page gives the first page back.
    status, back = await call(system, "GET", pages[1]["meta"]["previous_page_url"])
    assert [r["sid"] for r in back["rooms"]] == [r["sid"] for r in pages[0]["rooms"]]
    assert back["meta"]["page"] == 0

    # Page without a token is an offset; an offset past the end is empty with a way back.
    status, third = await call(system, "GET", "/v1/Rooms?PageSize=2&Page=1")
    assert len(third["rooms"]) == 2
    status, past = await call(system, "GET", "/v1/Rooms?PageSize=2&Page=100000")
    assert past["rooms"] == [] and past["meta"]["next_page_url"] is None
    assert past["meta"]["previous_page_url"] == f"{PUBLIC}/v1/Rooms?PageSize=2&Page=0"


# ---------------------------------------------------------------- participants


def _participant_params(room: dict, event: str, psid: str, identity: str, ts: str, seq: int, **extra) -> dict:
    return {
        "AccountSid": ACCOUNT_SID,
        "RoomSid": room["sid"],
        "RoomName": room["unique_name"],
        "RoomStatus": "in-progress",
        "RoomType": room["type"],
        "StatusCallbackEvent": event,
        "ParticipantSid": psid,
        "ParticipantIdentity": identity,
        "Timestamp": ts,
        "SequenceNumber": str(seq),
        **extra,
    }


async def post_callback(s, params: dict) -> None:
    # Twilio signs the public URL it called.
    signature = compute_signature(PUBLIC + s.cfg.callback_path, {k: [v] for k, v in params.items()}, AUTH_TOKEN)
    async with s.http.post(
        s.base + s.cfg.callback_path, data=params, headers={"X-Twilio-Signature": signature}
    ) as resp:
        assert resp.status == 204, await resp.text()


async def test_participants_from_signed_callbacks(system):
    room = await create(system, UniqueName=name("people"))
    alice, bob = "PA" + uuid.uuid4().hex, "PA" + uuid.uuid4().hex
    t0 = int(time.time()) * 1000
    at = lambda seconds: records.format_ms(t0 + seconds * 1000)  # noqa: E731  callback Timestamp
    shown = lambda seconds: records.format_twilio_date(t0 + seconds * 1000)  # noqa: E731  resource date
    await post_callback(
        system,
        _participant_params(room, "participant-connected", alice, "alice", at(1), 1, ParticipantStatus="connected"),
    )
    await post_callback(
        system, _participant_params(room, "participant-connected", bob, "bob", at(2), 2, ParticipantStatus="connected")
    )
    await post_callback(
        system,
        _participant_params(
            room,
            "participant-disconnected",
            bob,
            "bob",
            at(62),
            3,
            ParticipantStatus="disconnected",
            ParticipantDuration="60",
        ),
    )
    docs = system.ingress.follower.index.docs
    await wait_until(
        lambda: (
            [p["status"] for p in docs[room["sid"]]["participants"]].count("disconnected") == 1
            and len(docs[room["sid"]]["participants"]) == 2
        )
    )

    base = f"/v1/Rooms/{room['sid']}/Participants"
    status, page = await call(system, "GET", base)  # default for an in-progress room: connected
    assert status == 200 and [p["sid"] for p in page["participants"]] == [alice]
    p = page["participants"][0]
    assert p == {
        "sid": alice,
        "room_sid": room["sid"],
        "account_sid": ACCOUNT_SID,
        "status": "connected",
        "identity": "alice",
        "date_created": shown(1),
        "date_updated": shown(1),
        "start_time": shown(1),
        "end_time": None,
        "duration": None,
        "url": f"{PUBLIC}{base}/{alice}",
        "links": {
            "published_tracks": f"{PUBLIC}{base}/{alice}/PublishedTracks",
            "subscribed_tracks": f"{PUBLIC}{base}/{alice}/SubscribedTracks",
            "subscribe_rules": f"{PUBLIC}{base}/{alice}/SubscribeRules",
            "anonymize": f"{PUBLIC}{base}/{alice}/Anonymize",
        },
    }
    assert page["meta"]["key"] == "participants"

    status, page = await call(system, "GET", f"/v1/Rooms/{room['unique_name']}/Participants?Status=disconnected")
    assert [(p["sid"], p["end_time"], p["duration"]) for p in page["participants"]] == [(bob, shown(62), 60)]
    status, page = await call(system, "GET", f"{base}?Status=connected&Identity=bob")
    assert page["participants"] == []
    status, page = await call(system, "GET", f"{base}?Status=disconnected&DateCreatedAfter={shown(3)}")
    assert page["participants"] == []

    for key, sid in ((bob, bob), (alice, alice), ("alice", alice)):  # by SID, or identity while connected
        status, body = await call(system, "GET", f"{base}/{key}")
        assert (status, body["sid"]) == (200, sid)
    for key in ("bob", "PA" + "0" * 32):
        status, body = await call(system, "GET", f"{base}/{key}")
        assert_error(status, body, 404, 20404)
    status, body = await call(system, "GET", f"{base}?Status=gone")
    assert_error(status, body, 400, 20001)

    # Paging over participants, then a completed room lists everyone as disconnected.
    await call(system, "POST", f"/v1/Rooms/{room['sid']}", data={"Status": "completed"})
    status, first = await call(system, "GET", f"{base}?PageSize=1")
    assert [p["sid"] for p in first["participants"]] == [alice]
    assert first["participants"][0]["status"] == "disconnected" and first["participants"][0]["end_time"]
    status, second = await call(system, "GET", first["meta"]["next_page_url"])
    assert [p["sid"] for p in second["participants"]] == [bob] and second["meta"]["next_page_url"] is None


# ---------------------------------------------------------------- auth and logs


async def test_auth_is_required_everywhere(system, monkeypatch):
    import service.http.middleware as app_module

    logged = []

    class Recorder:
        def __getattr__(self, level):
            return lambda *args, **kwargs: logged.append((level, args, kwargs))

    monkeypatch.setattr(app_module, "log", Recorder())
    # The request log line has its own fast path (service/logs.py request_line).
    monkeypatch.setattr(app_module.logs, "request_line", lambda *args, **kwargs: logged.append(("info", args, kwargs)))
    secret_headers = [
        {},
        basic_auth(token="wrong-token"),
        basic_auth(sid="AC" + "b" * 32),
        {"Authorization": "Bearer " + AUTH_TOKEN},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "basic"},
    ]
    room = await create(system)
    requests = [
        ("POST", "/v1/Rooms", {"Type": "bogus"}),
        ("GET", "/v1/Rooms", None),
        ("GET", f"/v1/Rooms/{room['sid']}", None),
        ("GET", "/v1/Rooms/RM" + "0" * 32, None),
        ("POST", f"/v1/Rooms/{room['sid']}", {"Status": "completed"}),
        ("GET", f"/v1/Rooms/{room['sid']}/Participants", None),
        ("GET", f"/v1/Rooms/{room['sid']}/Participants/PA" + "0" * 32, None),
        ("GET", f"/v1/Rooms/{room['sid']}/Recordings", None),
    ]
    before = await events_end(system.cfg)
    for headers in secret_headers:
        for method, path, form in requests:
            status, body = await call(system, method, path, data=form, headers=headers, auth=False)
            assert_error(status, body, 401, 20003)
    assert await events_end(system.cfg) == before

    # The secondary token (rotation) works too.
    status, _ = await call(system, "GET", f"/v1/Rooms/{room['sid']}", headers=basic_auth(token=SECONDARY), auth=False)
    assert status == 200
    # Nothing secret reached a log line.
    assert logged, "the request log was expected to record these requests"
    text = repr(logged)
    for secret in (AUTH_TOKEN, SECONDARY, basic_auth()["Authorization"][6:], "Authorization", "Basic "):
        assert secret not in text


# ---------------------------------------------------------------- paging helpers (pure)


def test_window_by_offset_and_by_token():
    items = list(range(10))
    key = lambda i: (i,)  # noqa: E731
    assert window(items, key, 3) == Window([0, 1, 2], False, True)
    assert window(items, key, 3, offset=9) == Window([9], True, False)
    assert window(items, key, 3, token=("A", (2,))) == Window([3, 4, 5], True, True)
    assert window(items, key, 3, token=("A", (2.5,))) == Window([3, 4, 5], True, True)  # the key left the list
    assert window(items, key, 3, token=("B", (3,))) == Window([0, 1, 2], False, True)
    assert window(items, key, 3, token=("B", (2,))) == Window([0, 1], False, True)
    assert window(items, key, 3, token=("A", (9,))) == Window([], True, False)
    assert window([], key, 3) == Window([], False, False)


def test_tokens_round_trip_and_reject_strangers():
    token = encode_token("A", (-1700000000000, "RM" + "a" * 32))
    assert re.fullmatch(r"PA[A-Za-z0-9_-]+", token)
    assert decode_token(token, (int, str)) == ("A", (-1700000000000, "RM" + "a" * 32))
    for bad in ("", "PA", "PX" + token[2:], token[:-3], token, "PA" + "!" * 10, "PB" + "W10"):  # W10 = "[]"
        with pytest.raises(TwilioError) as info:
            decode_token(bad, (int, str) if bad != token else (str, str))
        assert info.value.code == 20001 and info.value.status == 400


def test_page_meta_urls():
    items = [{"k": i} for i in range(5)]
    key = lambda d: (d["k"],)  # noqa: E731
    win = window(items, key, 2, token=("A", (1,)))
    meta = page_meta("https://h/v1/Rooms", "rooms", [("Status", "completed")], 1, 2, "TOKEN", win, key)
    assert meta["first_page_url"] == "https://h/v1/Rooms?Status=completed&PageSize=2&Page=0"
    assert meta["url"] == "https://h/v1/Rooms?Status=completed&PageSize=2&Page=1&PageToken=TOKEN"
    assert meta["next_page_url"] == (
        "https://h/v1/Rooms?Status=completed&PageSize=2&Page=2&PageToken=" + encode_token("A", (3,))
    )
    assert meta["previous_page_url"] == (
        "https://h/v1/Rooms?Status=completed&PageSize=2&Page=0&PageToken=" + encode_token("B", (2,))
    )
    query = parse_qs(urlsplit(meta["next_page_url"]).query)
    assert decode_token(query["PageToken"][0], (int,)) == ("A", (3,))
    assert meta["key"] == "rooms" and meta["page"] == 1 and meta["page_size"] == 2

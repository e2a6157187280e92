"""End to end with the official `twilio` Python SDK pointed at the running service.

The SDK is synchronous (requests): every call runs in a worker thread (asyncio.to_thread) so the
in-process ingress and materializer keep running on the event loop.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from service.callbacks.signature import compute_signature
from service.events.record import format_ms
from service.kafka.topics import ensure_topics
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, make_settings, running_system, wait_until

TYPES = {"group": 50, "group-small": 4, "peer-to-peer": 10, "go": 2}


@pytest.fixture(scope="module")
async def system(kafka_bootstrap):
    cfg = make_settings(kafka_bootstrap)
    await ensure_topics(cfg)
    async with running_system(cfg) as (ingress, _):
        yield cfg, ingress


def sdk(url: str, token: str = AUTH_TOKEN) -> Client:
    client = Client(ACCOUNT_SID, token)
    client.video.base_url = url  # twilio-video.md 2.5: after first touching client.video
    return client


async def run(fn, *args, **kwargs):
    return await asyncio.to_thread(fn, *args, **kwargs)


async def expect_error(http_status: int, code: int, fn, *args, **kwargs) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as info:
        await run(fn, *args, **kwargs)
    assert (info.value.status, info.value.code) == (http_status, code), info.value
    return info.value


async def test_rooms_through_the_sdk(system):
    cfg, ingress = system
    client = sdk(ingress.url)
    rooms = client.video.v1.rooms
    prefix = uuid.uuid4().hex[:8]
    started = datetime.now(timezone.utc).replace(microsecond=0)

    # Create one room of each type; fetch each by SID and by unique name.
    created = {}
    for room_type, max_participants in TYPES.items():
        room = await run(rooms.create, type=room_type, unique_name=f"{prefix}-{room_type}")
        assert re.fullmatch(r"RM[0-9a-f]{32}", room.sid)
        assert (room.type, room.status, room.max_participants) == (room_type, "in-progress", max_participants)
        assert room.account_sid == ACCOUNT_SID and room.enable_turn is True
        assert room.url == f"{ingress.url}/v1/Rooms/{room.sid}"
        assert room.end_time is None and room.duration is None
        assert isinstance(room.date_created, datetime) and room.date_created.tzinfo is not None
        for key in (room.sid, room.unique_name):
            fetched = await run(rooms(key).fetch)
            assert (fetched.sid, fetched.unique_name, fetched.type) == (room.sid, room.unique_name, room_type)
        created[room_type] = room

    # Every parameter as the SDK serializes it (booleans, repeated VideoCodecs, JSON RecordingRules).
    full = await run(
        rooms.create,
        type="group",
        unique_name=f"{prefix}-full",
        audio_only=True,
        enable_turn=True,
        status_callback="https://example.com/callbacks",
        status_callback_method="POST",
        max_participants=20,
        max_participant_duration=3600,
        empty_room_timeout=10,
        unused_room_timeout=15,
        large_room=False,
        record_participants_on_connect=True,
        video_codecs=["VP8", "H264"],
        media_region="ie1",
        recording_rules={"rules": [{"type": "include", "kind": "audio"}]},
    )
    assert (
        full.audio_only,
        full.video_codecs,
        full.media_region,
        full.max_participants,
        full.max_participant_duration,
        full.empty_room_timeout,
        full.unused_room_timeout,
        full.record_participants_on_connect,
        full.status_callback,
    ) == (True, [], "ie1", 20, 3600, 10, 15, True, "https://example.com/callbacks")
    plain = await run(rooms.create)  # no parameters at all
    assert plain.unique_name == plain.sid and plain.type == "group"

    # Errors surface as TwilioRestException with Twilio's code.
    await expect_error(400, 53113, rooms.create, unique_name=f"{prefix}-group")
    await expect_error(400, 53107, rooms.create, type="group-small", max_participants=5)
    await expect_error(400, 53109, rooms.create, empty_room_timeout=61)
    await expect_error(400, 53123, rooms.create, max_participant_duration=86401)
    await expect_error(400, 53108, rooms.create, type="huge")
    await expect_error(404, 20404, rooms("RM" + "0" * 32).fetch)
    await expect_error(404, 20404, rooms("no-such-room").fetch)
    await expect_error(401, 20003, sdk(ingress.url, token="wrong").video.v1.rooms(created["group"].sid).fetch)

    # Complete a room: end_time and duration appear; a second completion is 53118.
    done = await run(rooms(created["go"].sid).update, status="completed")
    assert done.status == "completed" and isinstance(done.end_time, datetime) and isinstance(done.duration, int)
    await expect_error(400, 53118, rooms(created["go"].sid).update, status="completed")
    await expect_error(400, 53112, rooms(created["group"].sid).update, status="failed")
    await expect_error(404, 20404, rooms(f"{prefix}-go").fetch)  # a name resolves only while in progress
    again = await run(rooms.create, type="go", unique_name=f"{prefix}-go")  # and is free again
    assert again.sid != created["go"].sid

    # Lists: the default Status is in-progress, as at Twilio; filters; paging through several pages.
    in_progress = {created[t].sid for t in ("group", "group-small", "peer-to-peer")} | {full.sid, plain.sid, again.sid}
    listed = await run(rooms.list, page_size=2)  # follows next_page_url: three pages
    assert [r.sid for r in listed] == [r.sid for r in await run(rooms.list, page_size=1000)]
    assert {r.sid for r in listed} == in_progress and all(r.status == "in-progress" for r in listed)
    assert [r.date_created for r in listed] == sorted((r.date_created for r in listed), reverse=True)
    assert len(await run(rooms.list, limit=3, page_size=2)) == 3
    assert len(await run(rooms.list, limit=5)) == 5  # PageSize=5 from the limit
    streamed = [r.sid for r in await run(lambda: list(rooms.stream(page_size=4)))]
    assert streamed == [r.sid for r in listed]

    assert [r.sid for r in await run(rooms.list, status="completed")] == [created["go"].sid]
    assert [r.sid for r in await run(rooms.list, unique_name=f"{prefix}-go")] == [again.sid]
    assert [r.sid for r in await run(rooms.list, unique_name=f"{prefix}-go", status="completed")] == [created["go"].sid]
    # DateCreatedAfter/Before as the SDK sends them (YYYY-MM-DDTHH:MM:SSZ): [after, before).
    assert {r.sid for r in await run(rooms.list, date_created_after=started)} == in_progress
    assert await run(rooms.list, date_created_after=started + timedelta(hours=1)) == []
    assert await run(rooms.list, date_created_before=started) == []
    newest = listed[0]
    assert newest.sid not in {r.sid for r in await run(rooms.list, date_created_before=newest.date_created)}
    assert newest.sid in {r.sid for r in await run(rooms.list, date_created_after=newest.date_created)}

    # Explicit pages: next and previous work when followed.
    first = await run(rooms.page, page_size=2)
    assert first.previous_page_url is None and first.next_page_url.startswith(ingress.url)
    second = await run(first.next_page)
    back = await run(second.previous_page)
    first_sids, second_sids = [r.sid for r in first], [r.sid for r in second]  # a Page iterates once
    assert [r.sid for r in back] == first_sids
    assert first_sids + second_sids == [r.sid for r in listed][:4]


async def test_participants_through_the_sdk(system):
    cfg, ingress = system
    client = sdk(ingress.url)
    room = await run(client.video.v1.rooms.create, unique_name=f"people-{uuid.uuid4().hex[:8]}")
    alice, bob = "PA" + uuid.uuid4().hex, "PA" + uuid.uuid4().hex
    now_ms = int(datetime.now(timezone.utc).timestamp()) * 1000
    url = f"{ingress.url}{cfg.callback_path}"
    events = [
        ("participant-connected", alice, "alice", 1),
        ("participant-connected", bob, "bob", 2),
        ("participant-disconnected", bob, "bob", 30),
    ]
    async with aiohttp.ClientSession() as http:
        for seq, (event, psid, identity, offset_s) in enumerate(events, 1):
            params = {
                "AccountSid": ACCOUNT_SID,
                "RoomSid": room.sid,
                "RoomName": room.unique_name,
                "RoomStatus": "in-progress",
                "RoomType": "group",
                "StatusCallbackEvent": event,
                "ParticipantSid": psid,
                "ParticipantIdentity": identity,
                "ParticipantStatus": "disconnected" if "dis" in event else "connected",
                "Timestamp": format_ms(now_ms + offset_s * 1000),
                "SequenceNumber": str(seq),
            }
            if "dis" in event:
                params["ParticipantDuration"] = "28"
            signature = compute_signature(url, {k: [v] for k, v in params.items()}, AUTH_TOKEN)
            async with http.post(url, data=params, headers={"X-Twilio-Signature": signature}) as resp:
                assert resp.status == 204, await resp.text()
    docs = ingress.follower.index.docs
    await wait_until(lambda: any(p["status"] == "disconnected" for p in docs[room.sid]["participants"]))

    participants = client.video.v1.rooms(room.sid).participants
    connected = await run(participants.list)  # Twilio's default for an in-progress room: connected
    assert [(p.sid, p.identity, p.status) for p in connected] == [(alice, "alice", "connected")]
    gone = await run(participants.list, status="disconnected")
    assert [(p.sid, p.identity, p.duration) for p in gone] == [(bob, "bob", 28)]
    assert isinstance(gone[0].end_time, datetime) and gone[0].room_sid == room.sid
    fetched = await run(participants(alice).fetch)
    assert (fetched.sid, fetched.identity, fetched.end_time) == (alice, "alice", None)
    assert (await run(participants("alice").fetch)).sid == alice  # identity while connected
    await expect_error(404, 20404, participants("PA" + "0" * 32).fetch)
    by_name = await run(client.video.v1.rooms(room.unique_name).participants.list, identity="alice")
    assert [p.sid for p in by_name] == [alice]


async def test_recordings_rules_and_transcriptions_through_the_sdk(system):
    """Every sub-resource a room links to answers the SDK: recordings (from recording-* callbacks),
    recording rules (from the create parameters), transcriptions (empty)."""
    cfg, ingress = system
    client = sdk(ingress.url)
    rooms = client.video.v1.rooms
    room = await run(rooms.create, unique_name=f"rec-{uuid.uuid4().hex[:8]}", record_participants_on_connect=True)
    plain = await run(rooms.create)
    ruled = await run(rooms.create, recording_rules={"rules": [{"type": "include", "kind": "audio"}]})
    assert await run(room.recordings.list) == []  # from the room instance, as an SDK user would

    psid, audio, video = "PA" + uuid.uuid4().hex, "RT" + uuid.uuid4().hex, "RT" + uuid.uuid4().hex
    mic, cam = "MT" + uuid.uuid4().hex, "MT" + uuid.uuid4().hex
    now_ms = int(datetime.now(timezone.utc).timestamp()) * 1000
    url = f"{ingress.url}{cfg.callback_path}"
    events = [
        ("recording-started", audio, mic, "audio", "OPUS", "mka", 1, {}),
        ("recording-started", video, cam, "video", "VP8", "mkv", 2, {}),
        (
            "recording-completed",
            audio,
            mic,
            "audio",
            "OPUS",
            "mka",
            40,
            {"Duration": "38", "Size": "123456", "MediaUri": f"/v1/Recordings/{audio}/Media"},
        ),
    ]
    async with aiohttp.ClientSession() as http:
        for seq, (event, rsid, source, kind, codec, container, offset_s, extra) in enumerate(events, 1):
            params = {
                "AccountSid": ACCOUNT_SID,
                "RoomSid": room.sid,
                "RoomName": room.unique_name,
                "RoomType": "group",
                "StatusCallbackEvent": event,
                "RecordingSid": rsid,
                "ParticipantSid": psid,
                "ParticipantIdentity": "alice",
                "SourceSid": source,
                "TrackName": kind,
                "Container": container,
                "Codec": codec,
                "Type": kind,
                "OffsetFromTwilioVideoEpoch": "1000",
                "RecordingUri": f"/v1/Recordings/{rsid}",
                "Timestamp": format_ms(now_ms + offset_s * 1000),
                "SequenceNumber": str(seq),
            } | extra
            signature = compute_signature(url, {k: [v] for k, v in params.items()}, AUTH_TOKEN)
            async with http.post(url, data=params, headers={"X-Twilio-Signature": signature}) as resp:
                assert resp.status == 204, await resp.text()
    docs = ingress.follower.index.docs
    await wait_until(lambda: {r["status"] for r in docs[room.sid]["recordings"]} == {"completed", "processing"})

    recordings = client.video.v1.rooms(room.sid).recordings
    listed = await run(recordings.list)
    assert [(r.sid, r.status, r.type, r.codec, r.container_format, r.source_sid) for r in listed] == [
        (audio, "completed", "audio", "OPUS", "mka", mic),
        (video, "processing", "video", "VP8", "mkv", cam),
    ]
    done = listed[0]
    assert (done.duration, done.size, done.room_sid, done.track_name, done.offset) == (
        38,
        123456,
        room.sid,
        "audio",
        1000,
    )
    assert done.grouping_sids == {"room_sid": room.sid, "participant_sid": psid}
    assert isinstance(done.date_created, datetime) and done.date_created.timestamp() == (now_ms + 1000) / 1000
    assert done.links == {"media": f"https://video.twilio.com/v1/Recordings/{audio}/Media"}
    assert [r.sid for r in await run(recordings.list, status="completed")] == [audio]
    assert [r.sid for r in await run(recordings.list, source_sid=cam)] == [video]
    assert [r.sid for r in await run(recordings.list, page_size=1)] == [audio, video]  # follows next_page_url
    fetched = await run(recordings(video).fetch)
    assert (fetched.sid, fetched.status, fetched.duration, fetched.links) == (video, "processing", None, {})
    await expect_error(404, 20404, recordings("RT" + "0" * 32).fetch)

    # Recording rules: from RecordParticipantsOnConnect, from RecordingRules, or none.
    rules = await run(client.video.v1.rooms(room.sid).recording_rules.fetch)
    assert (rules.room_sid, rules.rules) == (room.sid, [{"type": "include", "all": True}])
    assert isinstance(rules.date_created, datetime)
    assert (await run(client.video.v1.rooms(ruled.sid).recording_rules.fetch)).rules == [
        {"type": "include", "kind": "audio"}
    ]
    assert (await run(client.video.v1.rooms(plain.sid).recording_rules.fetch)).rules == []

    # Transcriptions: an empty list until a provider sends them.
    assert await run(client.video.v1.rooms(room.sid).transcriptions.list) == []
    with pytest.raises(TwilioException, match="HTTP 404"):  # the SDK's list raises this for any non-200
        await run(client.video.v1.rooms("RM" + "0" * 32).transcriptions.list)

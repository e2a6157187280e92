"""The first slice, end to end over HTTP: create -> topic -> materializer -> state topic -> GET;
then a signed room-ended callback -> completed."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer

from service.callbacks.signature import compute_signature
from service.events.record import decode
from tests.helpers import AUTH_TOKEN, basic_auth, running_system, wait_until


async def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 15.0):
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(out) < expected:
            assert asyncio.get_running_loop().time() < deadline, f"only {len(out)} of {expected} records"
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(messages)
    finally:
        await consumer.stop()
    return out


def signed(url: str, params: dict[str, str]) -> dict[str, str]:
    return {"X-Twilio-Signature": compute_signature(url, {k: [v] for k, v in params.items()}, AUTH_TOKEN)}


async def test_create_fetch_and_end_by_callback(settings):
    async with running_system(settings) as (ingress, _), aiohttp.ClientSession() as http:
        base = ingress.url
        # Form-encoded, as Twilio's SDKs send it.
        async with http.post(
            f"{base}/v1/Rooms", data={"Type": "group", "UniqueName": "demo"}, headers=basic_auth()
        ) as resp:
            assert resp.status == 201, await resp.text()
            room = await resp.json()
        assert room["status"] == "in-progress"
        assert room["unique_name"] == "demo"
        assert room["end_time"] is None and room["duration"] is None
        sid = room["sid"]

        # Read-your-writes: readable right after the 201, by SID and by unique name.
        for key in (sid, "demo"):
            async with http.get(f"{base}/v1/Rooms/{key}", headers=basic_auth()) as resp:
                assert resp.status == 200
                assert (await resp.json())["sid"] == sid

        # JSON body, as in the seed's request example.
        async with http.post(
            f"{base}/v1/Rooms",
            data=orjson.dumps({"Type": "group", "MaxParticipants": 7}),
            headers=basic_auth() | {"Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 201, await resp.text()
            second = await resp.json()
        assert second["max_participants"] == 7 and second["unique_name"] == second["sid"]

        # A signed room-ended status callback completes the room.
        params = {
            "AccountSid": settings.twilio_account_sid,
            "RoomSid": sid,
            "RoomName": "demo",
            "RoomStatus": "completed",
            "RoomType": "group",
            "StatusCallbackEvent": "room-ended",
            "Timestamp": "2030-01-01T00:10:00.000Z",
            "RoomDuration": "600",
            "SequenceNumber": "3",
        }
        url = f"{base}{settings.callback_path}"
        async with http.post(url, data=params, headers=signed(url, params)) as resp:
            assert resp.status == 204, await resp.text()

        # The ingress's read view follows the state topic; wait for the completed document.
        await wait_until(lambda: ingress.follower.index.docs[sid]["status"] == "completed")
        async with http.get(f"{base}/v1/Rooms/{sid}", headers=basic_auth()) as resp:
            done = await resp.json()
        assert done["status"] == "completed"
        assert done["duration"] == 600
        assert done["end_time"] == "2030-01-01T00:10:00Z"

        # The name is free again once its room is completed.
        async with http.post(f"{base}/v1/Rooms", data={"UniqueName": "demo"}, headers=basic_auth()) as resp:
            assert resp.status == 201, await resp.text()

    # Everything went through the broker: the records are on the events topic.
    records = [decode(m.value) for m in await read_all(settings.kafka_bootstrap_servers, settings.events_topic, 4)]
    assert sorted(r["type"] for r in records) == ["room-created", "room-created", "room-created", "room-ended"]
    assert {r["source"] for r in records} == {"api", "callback"}


async def test_bad_auth_and_bad_signature_are_refused(settings):
    async with running_system(settings) as (ingress, _), aiohttp.ClientSession() as http:
        async with http.post(
            f"{ingress.url}/v1/Rooms", data={"Type": "group"}, headers=basic_auth(token="wrong")
        ) as resp:
            assert resp.status == 401
            assert (await resp.json())["code"] == 20003
        params = {"RoomSid": "RM" + "0" * 32, "StatusCallbackEvent": "room-ended"}
        url = f"{ingress.url}{settings.callback_path}"
        async with http.post(url, data=params, headers={"X-Twilio-Signature": "bm90LXZhbGlk"}) as resp:
            assert resp.status == 403

"""The SSE stream for dashboards (snapshot, live changes, resume with Last-Event-ID) and the
materializer's room timers."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson

from tests.helpers import basic_auth, read_topic, running_system, wait_until


async def read_events(response: aiohttp.ClientResponse, until, timeout: float = 20.0) -> list[dict]:
    """Parse SSE frames until `until(events)` holds."""
    events: list[dict] = []
    frame: dict = {}

    async def pump():
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if not line:
                if frame:
                    events.append(dict(frame))
                    frame.clear()
                    if until(events):
                        return
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            frame[key] = orjson.loads(value) if key == "data" else value
            if key == "data":
                frame["data_text"] = value

    await asyncio.wait_for(pump(), timeout)
    return events


async def create(http, base, name):
    async with http.post(f"{base}/v1/Rooms", data={"UniqueName": name}, headers=basic_auth()) as resp:
        assert resp.status == 201, await resp.text()
        return (await resp.json())["sid"]


async def test_stream_snapshot_live_changes_and_resume(settings):
    async with running_system(settings) as (ingress, _), aiohttp.ClientSession() as http:
        base = ingress.url
        first = await create(http, base, "stream-a")
        url = f"{base}/v1/Streams/Rooms"
        async with http.get(url, headers=basic_auth()) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            snapshot = await read_events(resp, lambda ev: ev[-1]["event"] == "snapshot-complete")
            assert [e["data"]["sid"] for e in snapshot if e["event"] == "room"] == [first]
            second = await create(http, base, "stream-b")
            live = await read_events(resp, lambda ev: any(e["data"].get("sid") == second for e in ev))
            last_id = live[-1]["id"]
            assert live[-1]["data"]["status"] == "in-progress"
        # Each room event's data is the room's document as the state topic holds it, byte for byte.
        latest = {m.key: m.value for m in await read_topic(settings.kafka_bootstrap_servers, settings.state_topic)}
        for event in snapshot + live:
            if event["event"] == "room":
                assert event["data_text"].encode() == latest[event["data"]["sid"].encode()]
        # While the dashboard is away: one room completes, another is created.
        async with http.post(f"{base}/v1/Rooms/{first}", data={"Status": "completed"}, headers=basic_auth()) as r:
            assert r.status == 202
        third = await create(http, base, "stream-c")
        async with http.get(url, headers=basic_auth() | {"Last-Event-ID": last_id}) as resp:
            resumed = await read_events(resp, lambda ev: ev[-1]["event"] == "resume-complete")
        rooms = [(e["data"]["sid"], e["data"]["status"]) for e in resumed if e["event"] == "room"]
        assert sorted(rooms) == sorted([(first, "completed"), (third, "in-progress")])  # nothing missed or repeated


async def test_stream_requires_auth(settings):
    async with running_system(settings) as (ingress, _), aiohttp.ClientSession() as http:
        async with http.get(f"{ingress.url}/v1/Streams/Rooms") as resp:
            assert resp.status == 401
            assert (await resp.json())["code"] == 20003


async def test_unused_room_is_ended_by_its_timer(settings):
    # The materializer's clock runs two hours ahead: an unused room's 5-minute timeout has passed.
    async with (
        running_system(settings, clock=lambda: time.time() + 7200) as (ingress, _),
        aiohttp.ClientSession() as http,
    ):
        async with http.post(
            f"{ingress.url}/v1/Rooms", data={"UniqueName": "lonely", "UnusedRoomTimeout": "3"}, headers=basic_auth()
        ) as resp:
            room = await resp.json()
        # With a StatusCallback, Twilio is the authority and reports room-ended itself: no timer.
        async with http.post(
            f"{ingress.url}/v1/Rooms",
            data={"UniqueName": "watched", "StatusCallback": "https://example.com/cb"},
            headers=basic_auth(),
        ) as resp:
            watched = await resp.json()
        docs = ingress.follower.index.docs
        await wait_until(lambda: docs[room["sid"]]["status"] == "completed", timeout=20)
        ended = docs[room["sid"]]
        assert ended["end_reason"] == "timeout"
        assert ended["duration"] == 180  # UnusedRoomTimeout minutes after creation
        assert docs[watched["sid"]]["status"] == "in-progress"


async def test_timers_can_be_turned_off(settings):
    cfg = settings.with_overrides(timers_enabled=False)
    async with (
        running_system(cfg, clock=lambda: time.time() + 7200) as (ingress, (service,)),
        aiohttp.ClientSession() as http,
    ):
        async with http.post(f"{ingress.url}/v1/Rooms", data={"UniqueName": "kept"}, headers=basic_auth()) as resp:
            sid = (await resp.json())["sid"]
        await service.materializer.scan_timers_now()  # the scan runs now, not a second from now
        await wait_until(lambda: service.materializer.ready)
        assert ingress.follower.index.docs[sid]["status"] == "in-progress"
        assert service.materializer.timers_sent == set()

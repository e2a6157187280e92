"""Retention and history together, end to end: an ended room leaves the hot state by event time
(the materializer's own tombstone, no hand-made one), and the Rooms API and the twilio SDK still
serve it, from PostgreSQL, with the same JSON, also after every process restarts."""

from __future__ import annotations

import time

import aiohttp
from aiokafka.partitioner import DefaultPartitioner

from service.kafka.broker import free_port
from tests.helpers import basic_auth, wait_until
from tests.test_history import public, run, sdk, start_all, stop_all, wait_until_archived


def name_on_partition(partition: int, partitions: int, prefix: str) -> str:
    every = list(range(partitions))
    for i in range(10_000):
        name = f"{prefix}-{i}"
        if DefaultPartitioner()(name.encode(), every, every) == partition:
            return name
    raise AssertionError("no name for the partition")


async def test_an_ended_room_retires_and_is_served_from_history(settings, database_url):
    port = free_port()
    cfg = settings.with_overrides(database_url=database_url, port=port, retain_ended_ms=1, timers_enabled=False)
    base = f"http://127.0.0.1:{port}"
    parts = await start_all(cfg)
    try:
        rooms = sdk(base).video.v1.rooms
        old = await run(rooms.create, unique_name=f"old-{time.time_ns()}", type="group")
        done = await run(rooms(old.sid).update, status="completed")
        ingress = parts[0]
        hot = ingress.follower.index.docs
        await wait_until(lambda: hot.get(old.sid, {}).get("status") == "completed")
        end_ms = hot[old.sid]["end_time_ms"]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/v1/Rooms/{old.sid}", headers=basic_auth()) as resp:
                before = await resp.json()
        await wait_until_archived(database_url, {old.sid: public(hot[old.sid])})

        # Event time moves on in the old room's partition: a room created there now retires it.
        partition = hot[old.sid]["_partition"]
        await wait_until(lambda: time.time() * 1000 > end_ms + 5)
        newer = await run(rooms.create, unique_name=name_on_partition(partition, cfg.topic_partitions, "newer"))
        await wait_until(lambda: old.sid not in hot, timeout=30)
        assert newer.sid in hot
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/v1/Rooms/{old.sid}", headers=basic_auth()) as resp:
                assert resp.status == 200 and await resp.json() == before

        await stop_all(parts)
        parts = await start_all(cfg)
        assert old.sid not in parts[0].follower.index.docs
        fetched = await run(sdk(base).video.v1.rooms(old.sid).fetch)
        assert (fetched.sid, fetched.status, fetched.unique_name) == (old.sid, "completed", old.unique_name)
        assert fetched.end_time == done.end_time
        listed = await run(sdk(base).video.v1.rooms.list, status="completed", unique_name=old.unique_name)
        assert [r.sid for r in listed] == [old.sid]
    finally:
        await stop_all(parts)

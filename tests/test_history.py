"""Room history end to end, on the real broker and a real PostgreSQL:

* rooms leave the hot state (a tombstone on the state topic), every process restarts, and the
  twilio SDK still fetches and lists them, with the same JSON as before;
* PostgreSQL killed (pg_ctl -m immediate) while callbacks flow: afterwards no room row is missing
  or stale, and the ingress never stopped answering;
* replaying the whole state topic into an empty database gives identical rows;
* the three example queries of docs/history.md (and the Grafana panel's) on real data;
* without a history store the 404 message and the start log say so.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import sys
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from twilio.rest import Client

from service.callbacks.signature import compute_signature
from service.events.record import format_ms, parse_timestamp_ms
from service.history.store import HistoryStore, HistoryUnavailable
from service.kafka.broker import free_port
from service.kafka.topics import ensure_topics
from service.metrics import Metrics
from service.runtime import ArchiveService, IngressServer, MaterializerService
from service.state.fold import fold
from service.state.render import render
from tests.helpers import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    basic_auth,
    create_database,
    make_settings,
    read_topic,
    running_system,
    service_env,
    wait_ready,
    wait_until,
)
from tests.streams import publish, room_history
from tests.test_openapi import Checker

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- helpers


async def start_all(cfg):
    """Ingress, materializer and archive, each started and ready (in-process, real broker and database)."""
    ingress = IngressServer(cfg, Metrics())
    materializer = MaterializerService(cfg, Metrics(), serve_health=False)
    archive = ArchiveService(cfg, Metrics(), serve_health=False)
    await materializer.start()
    await archive.start()
    await ingress.start()
    await wait_until(lambda: materializer.materializer.ready and archive.archive.ready, timeout=30)
    await wait_until(lambda: ingress.follower.caught_up.is_set(), timeout=30)
    return ingress, materializer, archive


async def stop_all(parts) -> None:
    for part in parts:
        await part.stop()


async def db_rows(url: str, sql: str, *args) -> list[dict]:
    store = HistoryStore(url)
    try:
        return [dict(r) for r in await store._run(lambda conn: conn.fetch(sql, *args))]  # noqa: SLF001
    finally:
        await store.close()


def public(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


async def latest_state(cfg) -> dict[str, dict]:
    """Each room's latest document on the state topic (rooms whose latest record is a tombstone: none)."""
    latest: dict[str, dict | None] = {}
    for message in await read_topic(cfg.kafka_bootstrap_servers, cfg.state_topic):
        key = message.key.decode()
        if not key.startswith("__"):
            latest[key] = None if message.value is None else orjson.loads(message.value)
    return {sid: doc for sid, doc in latest.items() if doc is not None}


async def archived_docs(url: str) -> dict[str, dict]:
    return {r["sid"]: r["doc"] for r in await db_rows(url, "SELECT sid, doc FROM rooms")}


async def tombstone(cfg, docs, *sids: str) -> None:
    """A tombstone as retention writes it: on the partition the room's documents are on (the
    materializer writes them to the room's events partition, whatever the SID hashes to)."""
    producer = AIOKafkaProducer(bootstrap_servers=cfg.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for sid in sids:
            partition = docs.summary(sid).partition
            await producer.send_and_wait(cfg.state_topic, None, key=sid.encode(), partition=partition)
    finally:
        await producer.stop()


def signed_callback(cfg, url: str, params: dict) -> tuple[dict, dict]:
    signature = compute_signature(url, {k: [v] for k, v in params.items()}, cfg.twilio_auth_token)
    return params, {"X-Twilio-Signature": signature}


def sdk(url: str) -> Client:
    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    client.video.base_url = url
    return client


async def run(fn, *args, **kwargs):
    return await asyncio.to_thread(fn, *args, **kwargs)


# ---------------------------------------------------------------- leaving the hot state, restarting


async def test_rooms_that_left_the_hot_state_are_served_from_history_after_a_restart(
    settings, database_url, postgres_server
):
    port = free_port()
    cfg = settings.with_overrides(database_url=database_url, port=port)
    base = f"http://127.0.0.1:{port}"
    parts = await start_all(cfg)
    try:
        rooms = sdk(base).video.v1.rooms
        prefix = uuid.uuid4().hex[:8]

        # Four rooms: two end and then leave the hot state, one ends and stays, one stays in progress.
        old_a = await run(rooms.create, unique_name=f"{prefix}-a", type="group")
        old_b = await run(rooms.create, unique_name=f"{prefix}-b", type="go")
        kept = await run(rooms.create, unique_name=f"{prefix}-kept")
        live = await run(rooms.create, unique_name=f"{prefix}-live")
        alice, bob = "PA" + uuid.uuid4().hex, "PA" + uuid.uuid4().hex
        now_ms = int(datetime.now(timezone.utc).timestamp()) * 1000
        url = base + cfg.callback_path
        async with aiohttp.ClientSession() as http:
            for seq, (event, psid, who, at) in enumerate(
                [
                    ("participant-connected", alice, "alice", 1),
                    ("participant-connected", bob, "bob", 2),
                    ("participant-disconnected", bob, "bob", 20),
                ],
                1,
            ):
                params, headers = signed_callback(
                    cfg,
                    url,
                    {
                        "AccountSid": ACCOUNT_SID,
                        "RoomSid": old_a.sid,
                        "RoomName": old_a.unique_name,
                        "RoomType": "group",
                        "RoomStatus": "in-progress",
                        "StatusCallbackEvent": event,
                        "ParticipantSid": psid,
                        "ParticipantIdentity": who,
                        "ParticipantStatus": "disconnected" if "dis" in event else "connected",
                        "Timestamp": format_ms(now_ms + at * 1000),
                        "SequenceNumber": str(seq),
                    },
                )
                async with http.post(url, data=params, headers=headers) as resp:
                    assert resp.status == 204, await resp.text()
        for room in (old_a, old_b, kept):
            assert (await run(rooms(room.sid).update, status="completed")).status == "completed"
        ingress = parts[0]
        await wait_until(lambda: len(ingress.follower.index.docs[old_a.sid]["participants"]) == 2)

        paths = [
            f"/v1/Rooms/{old_a.sid}",
            f"/v1/Rooms/{old_b.sid}",
            f"/v1/Rooms/{kept.sid}",
            f"/v1/Rooms/{old_a.sid}/Participants",
            f"/v1/Rooms/{old_a.sid}/Participants?Status=connected",
            f"/v1/Rooms/{old_a.sid}/Participants/{alice}",
            f"/v1/Rooms/{old_a.sid}/Participants/{bob}",
            "/v1/Rooms?Status=completed",
            f"/v1/Rooms?Status=completed&UniqueName={prefix}-a",
            f"/v1/Rooms?Status=completed&DateCreatedAfter={old_a.date_created.strftime('%Y-%m-%dT%H:%M:%SZ')}",
            "/v1/Rooms",
            f"/v1/Rooms/{live.unique_name}",
        ]

        async def snapshot(http) -> dict[str, dict]:
            out = {}
            for path in paths:
                async with http.get(base + path, headers=basic_auth()) as resp:
                    assert resp.status == 200, (path, resp.status, await resp.text())
                    out[path] = await resp.json()
            # Every page of the completed list, following the links as clients do.
            link, pages = base + "/v1/Rooms?Status=completed&PageSize=1", []
            while link:
                async with http.get(link, headers=basic_auth()) as resp:
                    page = await resp.json()
                pages.append(page)
                link = page["meta"]["next_page_url"]
            back = pages[-1]["meta"]["previous_page_url"]
            async with http.get(back, headers=basic_auth()) as resp:
                out["previous"] = await resp.json()
            out["pages"] = pages
            return out

        async with aiohttp.ClientSession() as http:
            before = await snapshot(http)
            assert [p["rooms"][0]["sid"] for p in before["pages"]] == [kept.sid, old_b.sid, old_a.sid]

            # The archive has the rooms' latest documents; then they leave the hot state.
            hot = ingress.follower.index.docs
            await wait_until_archived(database_url, {s: public(hot[s]) for s in (old_a.sid, old_b.sid, kept.sid)})
            await tombstone(cfg, hot, old_a.sid, old_b.sid)
            await wait_until(lambda: old_a.sid not in hot and old_b.sid not in hot)
            assert kept.sid in hot and live.sid in hot
            assert await snapshot(http) == before  # now from the history store: the same JSON

            # Restart every process: ingress, materializer, archive, and PostgreSQL itself.
            await stop_all(parts)
            parts = []
            server = postgres_server[0]
            if server is not None:
                await asyncio.to_thread(server.stop)
                await asyncio.to_thread(server.start)
            parts = await start_all(cfg)
            ingress = parts[0]
            assert old_a.sid not in ingress.follower.index.docs  # the tombstones are on the topic
            assert await snapshot(http) == before

            # The official SDK reads them back.
            client = sdk(base)
            fetched = await run(client.video.v1.rooms(old_a.sid).fetch)
            assert (fetched.sid, fetched.status, fetched.unique_name, fetched.type) == (
                old_a.sid,
                "completed",
                old_a.unique_name,
                "group",
            )
            assert fetched.end_time is not None and isinstance(fetched.duration, int)
            assert [r.sid for r in await run(client.video.v1.rooms.list, status="completed")] == [
                kept.sid,
                old_b.sid,
                old_a.sid,
            ]
            assert [r.sid for r in await run(client.video.v1.rooms.list, status="completed", page_size=1)] == [
                kept.sid,
                old_b.sid,
                old_a.sid,
            ]
            assert [
                r.sid for r in await run(client.video.v1.rooms.list, unique_name=f"{prefix}-b", status="completed")
            ] == [old_b.sid]
            people = await run(client.video.v1.rooms(old_a.sid).participants.list)
            assert sorted((p.identity, p.status) for p in people) == [
                ("alice", "disconnected"),
                ("bob", "disconnected"),
            ]
            assert (await run(client.video.v1.rooms(old_a.sid).participants(bob).fetch)).duration == 18
            assert [r.sid for r in await run(client.video.v1.rooms.list)] == [live.sid]  # in progress: the hot view

            # The responses from history conform to the OpenAPI document (as test_openapi checks).
            async with http.get(f"{base}/openapi.json") as resp:
                check = Checker(http, base, await resp.json())
            assert (await check("GET", f"/v1/Rooms/{old_a.sid}", "/v1/Rooms/{Sid}"))[0] == 200
            assert (await check("GET", "/v1/Rooms", "/v1/Rooms", query=[("Status", "completed"), ("PageSize", "1")]))[
                0
            ] == 200
            assert (await check("GET", f"/v1/Rooms/{old_a.sid}/Participants", "/v1/Rooms/{RoomSid}/Participants"))[
                0
            ] == 200
            assert (
                await check(
                    "GET", f"/v1/Rooms/{old_a.sid}/Participants/{alice}", "/v1/Rooms/{RoomSid}/Participants/{Sid}"
                )
            )[0] == 200
            # A completed room in history cannot be completed again; a room nowhere is a plain 404.
            status, body = await check(
                "POST", f"/v1/Rooms/{old_a.sid}", "/v1/Rooms/{Sid}", form={"Status": "completed"}
            )
            assert (status, body["code"]) == (400, 53118)
            status, body = await check("GET", "/v1/Rooms/RM" + "0" * 32, "/v1/Rooms/{Sid}")
            assert status == 404 and "history" not in body["message"]

            # The database away: reads that need it answer 503 (Twilio's shape); the rest goes on.
            if server is not None:
                await asyncio.to_thread(server.stop, "immediate")
                try:
                    status, body = await check("GET", f"/v1/Rooms/{old_a.sid}", "/v1/Rooms/{Sid}")
                    assert (status, body["code"]) == (503, 20503)
                    status, _ = await check("GET", "/v1/Rooms", "/v1/Rooms", query=[("Status", "completed")])
                    assert status == 503
                    assert (await check("GET", f"/v1/Rooms/{kept.sid}", "/v1/Rooms/{Sid}"))[0] == 200
                    assert (await check("GET", "/v1/Rooms", "/v1/Rooms"))[0] == 200
                    again = await run(client.video.v1.rooms.create, unique_name=f"{prefix}-during-outage")
                    assert again.status == "in-progress"
                finally:
                    await asyncio.to_thread(server.start)
                assert (await check("GET", f"/v1/Rooms/{old_a.sid}", "/v1/Rooms/{Sid}"))[0] == 200
    finally:
        await stop_all(parts)


async def wait_until_archived(url: str, expected: dict[str, dict], timeout: float = 30.0) -> None:
    """Until the history rows of `expected`'s rooms hold exactly those documents."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            held = await archived_docs(url)
        except HistoryUnavailable:  # the archive has not applied the schema yet
            held = {}
        missing = [sid for sid, doc in expected.items() if held.get(sid) != doc]
        if not missing:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{len(missing)} room(s) not archived as expected, e.g. {missing[:3]}")
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------- retired: the stream and the API


async def test_a_retired_room_leaves_the_stream_and_is_served_from_history(settings, database_url):
    """A room retired from the hot state (a tombstone on the state topic, as retention writes it):
    the view drops it, the SSE stream says `room-retired`, and the API serves it from the history
    store with the same JSON, in fetches and lists."""
    port = free_port()
    cfg = settings.with_overrides(database_url=database_url, port=port)
    base = f"http://127.0.0.1:{port}"
    url = base + cfg.callback_path
    name = "retired-" + uuid.uuid4().hex[:8]
    sid = "RM" + uuid.uuid4().hex
    t0 = int(datetime.now(timezone.utc).timestamp()) * 1000 - 3600_000

    async def callback(http, event: str, at_ms: int, status: str) -> None:
        params, headers = signed_callback(
            cfg,
            url,
            {
                "AccountSid": ACCOUNT_SID,
                "RoomSid": sid,
                "RoomName": name,
                "RoomType": "group",
                "RoomStatus": status,
                "StatusCallbackEvent": event,
                "Timestamp": format_ms(at_ms),
            },
        )
        async with http.post(url, data=params, headers=headers) as resp:
            assert resp.status == 204, await resp.text()

    async with running_system(cfg, archive=True) as (ingress, _):
        hot = ingress.follower.index.docs
        async with aiohttp.ClientSession() as http:
            await callback(http, "room-created", t0, "in-progress")
            await callback(http, "room-ended", t0 + 60_000, "completed")
            await wait_until(lambda: sid in hot and hot[sid]["status"] == "completed")
            reads = (f"/v1/Rooms/{sid}", f"/v1/Rooms/{name}", f"/v1/Rooms?Status=completed&UniqueName={name}")
            before = {}
            for path in reads:
                async with http.get(base + path, headers=basic_auth()) as resp:
                    before[path] = (resp.status, await resp.json())
            assert before[f"/v1/Rooms/{name}"][0] == 404  # a name resolves only while in progress
            await wait_until_archived(database_url, {sid: public(hot[sid])})

            async with http.get(f"{base}/v1/Streams/Rooms", headers=basic_auth()) as stream:
                assert stream.status == 200
                await tombstone(cfg, hot, sid)
                retired = await asyncio.wait_for(next_event(stream, "room-retired"), 20)
            assert retired == {"sid": sid} and sid not in hot

            for path in reads:
                async with http.get(base + path, headers=basic_auth()) as resp:
                    assert (resp.status, await resp.json()) == before[path], path


async def next_event(stream, name: str) -> dict:
    """The data of the next Server-Sent Event called `name` on an open stream response."""
    event = None
    async for raw in stream.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:") and event == name:
            return json.loads(line.partition(":")[2])
        elif not line:
            event = None
    raise AssertionError(f"the stream ended before a {name!r} event")


# ---------------------------------------------------------------- PostgreSQL killed mid-stream


async def test_postgres_killed_mid_stream_loses_no_room(settings, database_url, embedded_postgres):
    cfg = settings.with_overrides(database_url=database_url)
    async with running_system(cfg, archive=True) as (ingress, services):
        archive = services[-1].archive
        url = ingress.url + cfg.callback_path
        rng = random.Random(11)
        # 24 rooms' callbacks, interleaved, sent one by one as Twilio would.
        histories = [room_history(1000 + i, rng, participants=2) for i in range(24)]
        callbacks = []
        while histories:
            history = rng.choice(histories)
            callbacks.append(history.pop(0))
            if not history:
                histories.remove(history)
        sent = 0
        refused = []

        async def send_all(http):
            nonlocal sent
            for event in callbacks:
                params = {k: v if isinstance(v, str) else v[0] for k, v in event["params"].items()}
                params, headers = signed_callback(cfg, url, params)
                async with http.post(url, data=params, headers=headers) as resp:
                    if resp.status != 204:
                        refused.append(resp.status)
                sent += 1
                await asyncio.sleep(0.005)

        async with aiohttp.ClientSession() as http:
            flow = asyncio.create_task(send_all(http))
            await wait_until(lambda: archive.written >= 10, timeout=30)
            await asyncio.to_thread(embedded_postgres.stop, "immediate")  # a crash, as far as clients can tell
            at_kill = sent
            await wait_until(lambda: archive.paused, timeout=30)
            await wait_until(lambda: sent >= min(len(callbacks), at_kill + 40), timeout=30)  # still flowing
            await asyncio.to_thread(embedded_postgres.start)
            await flow
        assert at_kill < len(callbacks), "PostgreSQL was stopped after the callbacks ended"
        assert refused == [], "the ingress must not depend on the history store"

        # Every room's row holds its latest document: none missing, none stale.
        docs = ingress.follower.index.docs
        await wait_until(lambda: len(docs) == 24 and all(d["status"] == "completed" for d in docs.values()))
        expected = await latest_state(cfg)
        assert len(expected) == 24
        await wait_until_archived(database_url, expected, timeout=60)
        assert not archive.paused
        counts = await db_rows(database_url, "SELECT count(*) AS n FROM participants")
        assert counts[0]["n"] == sum(len(d["participants"]) for d in expected.values())


# ---------------------------------------------------------------- replay, analyst queries, Grafana

SPREAD = [0, 1, 2, 3, 3 * 3600 + 5, 3 * 3600 + 6, 86400 + 7, 86400 + 8, 2 * 86400 + 9, 2 * 86400 + 10]


@pytest.fixture(scope="module")
async def archived(kafka_bootstrap, postgres_server):
    """Ten rooms over three days (one still in progress) through the whole pipeline into a database."""
    url = await create_database(postgres_server[1])
    cfg = make_settings(kafka_bootstrap, database_url=url)
    await ensure_topics(cfg)
    rng = random.Random(5)
    events, finals = [], {}
    for n, index in enumerate(SPREAD):
        history = room_history(index, rng, participants=1 + n % 4)
        if n == 4:
            history = [e for e in history if e["type"] != "room-ended"]  # still in progress
        state = None
        for event in history:
            state = fold(state, event)
        finals[state["sid"]] = render(state)
        events += history
    rng.shuffle(events)  # any order folds to the same rooms
    async with running_system(cfg, archive=True):
        await publish(cfg.kafka_bootstrap_servers, cfg.events_topic, events)

        async def caught_up():
            held = await archived_docs(url)
            return all(
                sid in held
                and held[sid]["date_updated"] == doc["date_updated"]
                and held[sid]["status"] == doc["status"]
                and len(held[sid]["participants"]) == len(doc["participants"])
                for sid, doc in finals.items()
            )

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not await caught_up():
            assert loop.time() < deadline, "the archive did not catch up"
            await asyncio.sleep(0.1)
        await wait_until_archived(url, await latest_state(cfg))
    yield cfg, url, finals


async def test_replaying_the_state_topic_into_an_empty_database_gives_identical_rows(archived, postgres_server):
    cfg, url, _ = archived
    fresh = await create_database(postgres_server[1])
    replay = cfg.with_overrides(database_url=fresh, archive_group=f"replay-{uuid.uuid4().hex[:8]}")
    service = ArchiveService(replay, Metrics(), serve_health=False)
    await service.start()
    try:
        await wait_until_archived(fresh, await archived_docs(url))
    finally:
        await service.stop()
    for table, order in (("rooms", "sid"), ("participants", "room_sid, sid")):
        original = await db_rows(url, f"SELECT * FROM {table} ORDER BY {order}")
        replayed = await db_rows(fresh, f"SELECT * FROM {table} ORDER BY {order}")
        assert replayed == original and original


def doc_queries() -> list[str]:
    """The SQL blocks under "Example queries" in docs/history.md, in order."""
    text = (ROOT / "docs" / "history.md").read_text()
    section = text.split("## Example queries", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sql\n(.*?)```", section, re.S)


def percentile_cont(values: list[float], p: float) -> float:
    values = sorted(values)
    at = p * (len(values) - 1)
    low = int(at)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (at - low)


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


async def test_the_example_queries_of_the_docs_on_real_data(archived):
    _, url, finals = archived
    per_day, durations, peaks = doc_queries()

    # Rooms per day and status.
    want = Counter(
        (utc(d["date_created_ms"]).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None), d["status"])
        for d in finals.values()
    )
    got = {(r["day"], r["status"]): r["rooms"] for r in await db_rows(url, per_day)}
    assert got == dict(want) and len({day for day, _ in got}) == 3 and ("in-progress" in {s for _, s in got})

    # p50 / p95 room duration of completed rooms.
    done = [d["duration"] for d in finals.values() if d["status"] == "completed"]
    row = (await db_rows(url, durations))[0]
    assert row["rooms"] == len(done) == 9
    assert row["p50_seconds"] == pytest.approx(percentile_cont(done, 0.5))
    assert row["p95_seconds"] == pytest.approx(percentile_cont(done, 0.95))

    # Peak concurrent participants per hour: checked by counting, at every join or leave, who is connected.
    sessions = [
        (parse_timestamp_ms(p["start_time"]), parse_timestamp_ms(p["end_time"]) if p["end_time"] else None)
        for d in finals.values()
        for p in d["participants"]
    ]
    expected: dict[datetime, int] = defaultdict(int)
    for instant in {t for s in sessions for t in s if t is not None}:
        connected = sum(1 for start, end in sessions if start <= instant and (end is None or instant < end))
        hour = utc(instant).replace(minute=0, second=0, microsecond=0, tzinfo=None)
        expected[hour] = max(expected[hour], connected)
    got = {r["hour"]: r["peak_participants"] for r in await db_rows(url, peaks)}
    assert got == dict(expected)
    # Rooms of one hour overlap here: the hourly peak exceeds any single room's own peak.
    assert max(got.values()) > max(d["peak_concurrent_participants"] for d in finals.values())


async def test_the_grafana_panel_query(archived):
    _, url, finals = archived
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "history.json").read_text())
    panels = [p for p in dashboard["panels"] if p.get("datasource", {}).get("type") == "grafana-postgresql-datasource"]
    assert len(panels) == 1 and panels[0]["title"] == "Rooms per hour"
    sql = panels[0]["targets"][0]["rawSql"]
    # Grafana's time-range macro, as Grafana expands it for "the last ten years and the next ten".
    sql = sql.replace(
        "$__timeFilter(date_created)",
        "date_created BETWEEN now() - interval '10 years' AND now() + interval '10 years'",
    )
    got = {r["time"]: r["rooms"] for r in await db_rows(url, sql)}
    want = Counter(utc(d["date_created_ms"]).replace(minute=0, second=0, microsecond=0) for d in finals.values())
    assert got == dict(want)


# ---------------------------------------------------------------- the archive skips what is not a room


async def test_archive_skips_tombstones_checkpoints_and_garbage(settings, database_url):
    cfg = settings.with_overrides(database_url=database_url)
    docs = [render(fold(None, e)) for e in room_history(77, random.Random(1))[:1]]
    producer = AIOKafkaProducer(bootstrap_servers=cfg.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        sid = docs[0]["sid"]
        await producer.send_and_wait(cfg.state_topic, orjson.dumps(docs[0]), key=sid.encode())
        await producer.send_and_wait(cfg.state_topic, None, key=sid.encode())  # left the hot state: row kept
        await producer.send_and_wait(cfg.state_topic, b'{"partitions": {"0": 12}}', key=b"__checkpoint-0")
        await producer.send_and_wait(cfg.state_topic, b"not json", key=b"RMgarbage")
        await producer.send_and_wait(cfg.state_topic, orjson.dumps({"sid": None}), key=b"RMnosid")
    finally:
        await producer.stop()
    metrics = Metrics()
    service = ArchiveService(cfg, metrics, serve_health=False)
    await service.start()
    try:
        await wait_until_archived(database_url, {sid: docs[0]})

        def skipped(reason):
            return metrics.archive_skipped.labels(reason)._value.get()  # noqa: SLF001

        await wait_until(lambda: skipped("tombstone") == 1 and skipped("checkpoint") == 1 and skipped("invalid") == 2)
        # Offsets are committed after the write: a new member of the group starts after these records.
        consumer = service.archive.consumer
        committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
        assert sum(v or 0 for v in committed.values()) == 5
    finally:
        await service.stop()
    assert [r["sid"] for r in await db_rows(database_url, "SELECT sid FROM rooms")] == [sid]


# ---------------------------------------------------------------- the roles as processes


async def test_without_a_history_store_the_404_and_the_start_log_say_so(settings):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(settings, ROOMEVENTS_PORT=str(port), ROOMEVENTS_LOG_LEVEL="INFO", ROOMEVENTS_LOG_FORMAT="json")
    env.pop("ROOMEVENTS_DATABASE_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "ingress", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, base)
            async with http.get(f"{base}/v1/Rooms/RM{'0' * 32}", headers=basic_auth()) as resp:
                body = await resp.json()
            assert resp.status == 404 and body["code"] == 20404
            assert "no history store is configured (ROOMEVENTS_DATABASE_URL)" in body["message"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    listening = next(line for line in lines if line["event"] == "ingress listening")
    assert listening["history"].startswith("none (ROOMEVENTS_DATABASE_URL unset)")
    assert proc.returncode == 0


async def test_archive_role_as_a_process(settings, database_url):
    port = free_port()
    env = service_env(
        settings,
        ROOMEVENTS_DATABASE_URL=database_url,
        ROOMEVENTS_METRICS_PORT=str(port),
        ROOMEVENTS_ARCHIVE_GROUP=f"archive-{uuid.uuid4().hex[:6]}",
    )
    # The archive reads no Twilio credentials (settings role "archive").
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN_SECONDARY"):
        env.pop(name, None)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "service.cli", "archive", env=env)
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, f"http://127.0.0.1:{port}", timeout=30)
            async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                report = await resp.json()
            assert report["ready"] and report["migrated"] and not report["paused"]
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert "roomevents_archive_paused 0.0" in await resp.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0

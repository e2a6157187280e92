"""Restore benchmark: start-up cost against history, and read-view memory per held room.

For H and 4xH events of rooms that ended long ago (plus the same L live rooms, on every partition,
whose events move event time past the retention), one run each on fresh topics of the embedded broker:
  1. a first materializer folds everything (old rooms retire; snapshots are written), then stops;
  2. timed: (a) a new materializer from start to ready (its restore alone is printed too: the
     group join on Tansu costs ~half the session timeout whatever the history) and (b) a new
     read view (what every ingress runs) from start to caught up.
The ratios 4H/H must stay under 1.3: restore follows the rooms held, not the events ever written.

Then the read view's resident memory per held room: R typical rooms of 8 participants on a state
topic, loaded by a separate process; (RSS after - RSS of the same process over an empty topic) / R.

Run: .venv/bin/python bench/restore.py [--history 40000 --live 300 --rooms 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import orjson  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402
from aiokafka.partitioner import DefaultPartitioner  # noqa: E402

from service import logs  # noqa: E402
from service.events import cloudevents, record as records  # noqa: E402
from service.kafka.broker import EmbeddedBroker  # noqa: E402
from service.kafka.state_follower import StateFollower  # noqa: E402
from service.kafka.topics import ensure_topics  # noqa: E402
from service.metrics import Metrics  # noqa: E402
from service.runtime import MaterializerService  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.state.book import RoomBook  # noqa: E402
from tests import streams  # noqa: E402

HOUR = 3_600_000
PARTITIONS = 6


def settings_for(bootstrap: str) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    return Settings(
        kafka_bootstrap_servers=bootstrap,
        twilio_account_sid=streams.ACCOUNT,
        twilio_auth_token="bench",
        events_topic=f"bench-events-{suffix}",
        state_topic=f"bench-state-{suffix}",
        changelog_topic=f"bench-changelog-{suffix}",
        dead_letter_topic=f"bench-dlq-{suffix}",
        consumer_group=f"bench-group-{suffix}",
        topic_partitions=PARTITIONS,
        session_timeout_ms=6000,
        timers_enabled=False,
        retain_ended_ms=HOUR,
        linger_ms=5,
    )


def _live_callback(sid: str, name: str, event: str, at: int, **extra: str) -> dict:
    params = {
        "AccountSid": streams.ACCOUNT,
        "RoomSid": sid,
        "RoomName": name,
        "RoomType": "group",
        "RoomStatus": "in-progress",
        "StatusCallbackEvent": event,
        "Timestamp": records.format_ms(at),
        **extra,
    }
    return records.from_callback({k: [v] for k, v in params.items()}, at + 5)


def live_events(count: int, day_ms: int) -> list[dict]:
    """`count` live rooms, spread so that every partition has some, a day after the old rooms."""
    out = []
    for i in range(count):
        sid, name = f"RM{0xF0000000 + i:032x}", f"live-{i}"
        out.append(_live_callback(sid, name, "room-created", day_ms + i))
        out.append(
            _live_callback(
                sid,
                name,
                "participant-connected",
                day_ms + i + 1000,
                ParticipantSid=f"PA{i:032x}",
                ParticipantIdentity="user",
            )
        )
    return out


async def publish(bootstrap: str, topic: str, events: list[dict]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic, records.encode(e), key=records.partition_key(e), headers=cloudevents.event_headers(e)
            )
            for e in events
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


async def one_history(bootstrap: str, history_events: int, live: int) -> dict:
    cfg = settings_for(bootstrap)
    await ensure_topics(cfg)
    rng = random.Random(1)
    old: list[dict] = []
    index = 0
    while len(old) < history_events:
        old.extend(streams.room_history(index, rng, participants=2))
        index += 1
    day = streams.BASE_MS + 24 * HOUR
    events = old + live_events(live, day)
    await publish(bootstrap, cfg.events_topic, events)

    # 1. Fold everything once (and write snapshots), until every partition is consumed.
    first = MaterializerService(cfg, Metrics(), serve_health=False)
    started = time.perf_counter()
    await first.start()
    await wait_for(lambda: first.materializer.processed >= len(events), timeout=900)
    first_seconds = time.perf_counter() - started
    held = sum(len(book.rooms) for book in first.materializer.books.values())
    await first.stop()

    # 2a. A new materializer: start -> ready.
    second = MaterializerService(cfg, Metrics(), serve_health=False)
    started = time.perf_counter()
    await second.start()
    await wait_for(lambda: second.materializer.ready, timeout=300)
    materializer_ready = time.perf_counter() - started
    restored = second.materializer.last_restore
    await second.stop()
    # The restore alone, without the group join: what an assignment costs.
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from service.materializer.recovery import Recovery

    member = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=cfg.consumer_group, enable_auto_commit=False)
    await member.start()
    try:
        started = time.perf_counter()
        await Recovery(cfg, member).rebuild([TopicPartition(cfg.events_topic, p) for p in range(PARTITIONS)])
        restore_only = time.perf_counter() - started
    finally:
        await member.stop()

    # 2b. A new read view: start -> caught up.
    follower = StateFollower(cfg, Metrics())
    started = time.perf_counter()
    await follower.start()
    await follower.caught_up.wait()
    view_seconds = time.perf_counter() - started
    view_rooms = len(follower.index.docs)
    await follower.stop()
    return {
        "events": len(events),
        "old_rooms": index,
        "held": held,
        "first_fold_s": first_seconds,
        "materializer_ready_s": materializer_ready,
        "restore_s": restore_only,
        "restored_records": sum(r.records for r in restored.values()),
        "restore_sources": sorted({r.source for r in restored.values()}),
        "view_s": view_seconds,
        "view_rooms": view_rooms,
    }


# ---------------------------------------------------------------- memory per held room


def typical_documents(rooms: int) -> list[tuple[bytes, bytes]]:
    """`rooms` distinct documents shaped like a room of 8 participants with tracks and a recording."""
    book = RoomBook()
    book.apply_all(streams.room_history(1, random.Random(3), participants=8))
    from service.state.render import render

    template = orjson.dumps(render(book.rooms[f"RM{1:032x}"]) | {"version": 1}).decode()
    long_id, short_id = f"{1:032x}", f"{1:016x}"
    out = []
    for i in range(rooms):
        text = template.replace(long_id, f"{i:032x}").replace(short_id, f"{i:016x}").replace('"room-1"', f'"room-{i}"')
        out.append((f"RM{i:032x}".encode(), text.encode()))
    return out


VIEW_PROCESS = r"""
import asyncio, gc, sys
sys.path.insert(0, sys.argv[1])
from service.kafka.state_follower import StateFollower
from service.metrics import Metrics
from service.settings import Settings
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
async def main():
    cfg = Settings(kafka_bootstrap_servers=sys.argv[2], state_topic=sys.argv[3], changelog_topic=sys.argv[4])
    follower = StateFollower(cfg, Metrics())
    await follower.start()
    await follower.caught_up.wait()
    gc.collect()
    print(len(follower.index.docs), rss())
    await follower.stop()
asyncio.run(main())
"""


async def memory_per_room(bootstrap: str, rooms: int) -> dict:
    cfg = settings_for(bootstrap)
    await ensure_topics(cfg)
    empty = settings_for(bootstrap)
    await ensure_topics(empty)
    docs = typical_documents(rooms)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        partitioner = DefaultPartitioner()
        parts = list(range(PARTITIONS))
        futures = [
            await producer.send(cfg.state_topic, value, key=key, partition=partitioner(key, parts, parts))
            for key, value in docs
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def measure(c: Settings) -> tuple[int, int]:
        out = subprocess.run(
            [sys.executable, "-c", VIEW_PROCESS, root, bootstrap, c.state_topic, c.changelog_topic],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        )
        count, rss = out.stdout.split()[-2:]
        return int(count), int(rss)

    base_count, base_rss = await asyncio.to_thread(measure, empty)
    count, rss = await asyncio.to_thread(measure, cfg)
    return {
        "rooms": count,
        "doc_bytes": sum(len(v) for _, v in docs) // len(docs),
        "rss_base_mib": base_rss / 2**20,
        "rss_mib": rss / 2**20,
        "bytes_per_room": (rss - base_rss) / max(1, count - base_count),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, default=40_000, help="H: events of long-ended rooms")
    parser.add_argument("--live", type=int, default=300, help="L: live rooms")
    parser.add_argument("--rooms", type=int, default=100_000, help="rooms for the memory measurement")
    args = parser.parse_args()
    logs.setup("WARNING", "console")
    broker = EmbeddedBroker().start()
    try:
        small = await one_history(broker.bootstrap_servers, args.history, args.live)
        large = await one_history(broker.bootstrap_servers, 4 * args.history, args.live)
        print(f"\nrestore against history (embedded Tansu, {PARTITIONS} partitions, L={args.live} live rooms)\n")
        print("| | H | 4H | 4H / H |")
        print("|---|---:|---:|---:|")
        rows = [
            ("events on the topic", "events", "{:,}"),
            ("rooms ever", "old_rooms", "{:,}"),
            ("rooms held after the first run", "held", "{:,}"),
            ("first fold of everything (s)", "first_fold_s", "{:.2f}"),
            ("materializer start -> ready (s)", "materializer_ready_s", "{:.2f}"),
            ("materializer restore alone (s)", "restore_s", "{:.3f}"),
            ("changelog records read by the restore", "restored_records", "{:,}"),
            ("read view start -> caught up (s)", "view_s", "{:.3f}"),
            ("rooms in the read view", "view_rooms", "{:,}"),
        ]
        for label, key, fmt in rows:
            a, b = small[key], large[key]
            ratio = f"{b / a:.2f}" if isinstance(a, (int, float)) and a else "-"
            print(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {ratio} |")
        print(f"\nrestore sources: H {small['restore_sources']}, 4H {large['restore_sources']}")
        for key, label in (
            ("materializer_ready_s", "materializer start->ready"),
            ("restore_s", "restore alone"),
            ("view_s", "read view start->caught up"),
        ):
            ratio = large[key] / small[key]
            print(f"ratio 4H/H, {label}: {ratio:.2f} ({'ok' if ratio < 1.3 else 'OVER 1.3'})")
        memory = await memory_per_room(broker.bootstrap_servers, args.rooms)
        print(
            f"\nread view memory: {memory['rooms']:,} rooms of 8 participants "
            f"({memory['doc_bytes']:,} bytes of JSON each): RSS {memory['rss_base_mib']:.0f} MiB empty, "
            f"{memory['rss_mib']:.0f} MiB loaded: {memory['bytes_per_room']:,.0f} bytes per held room "
            f"({'ok' if memory['bytes_per_room'] <= 2000 else 'OVER 2 KB'})"
        )
    finally:
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())

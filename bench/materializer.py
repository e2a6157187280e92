"""Materializer benchmark: fold N events over R rooms to final state, against the embedded broker.

In the same run, a bare consumer reads the same records and does nothing: the ceiling. Prints
events/s for both and the ratio. Run: .venv/bin/python bench/materializer.py [--events 1000000 --rooms 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from service import logs  # noqa: E402
from service.events import (
    cloudevents,  # noqa: E402
    record as records,
)
from service.kafka.broker import EmbeddedBroker  # noqa: E402
from service.kafka.topics import ensure_topics  # noqa: E402
from service.metrics import Metrics  # noqa: E402
from service.runtime import MaterializerService, settle_gc  # noqa: E402
from service.settings import Settings  # noqa: E402

ACCOUNT = "AC" + "b2" * 16


def generate(events: int, rooms: int, seed: int = 1):
    """Realistic callbacks spread over `rooms` rooms: participants join, publish, toggle, leave."""
    rng = random.Random(seed)
    per_room = events // rooms
    base = 1_900_000_000_000
    kinds = ("track-enabled", "track-disabled")
    for n in range(events):
        room = n % rooms
        step = n // rooms
        sid = f"RM{room:032x}"
        p = step % 8
        psid = f"PA{room:016x}{p:016x}"
        at = base + room * 7 + step * 1000
        if step == 0:
            event, extra = "room-created", {}
        elif step == per_room - 1:
            event, extra = "room-ended", {"RoomDuration": str(step)}
        elif step <= 8:
            event, extra = (
                "participant-connected",
                {"ParticipantSid": psid, "ParticipantIdentity": f"u{p}", "ParticipantStatus": "connected"},
            )
        elif step <= 16:
            event, extra = (
                "track-added",
                {
                    "ParticipantSid": psid,
                    "ParticipantIdentity": f"u{p}",
                    "ParticipantStatus": "connected",
                    "TrackSid": f"MT{room:016x}{p:016x}",
                    "TrackKind": rng.choice(("audio", "video")),
                },
            )
        else:
            event, extra = (
                rng.choice(kinds),
                {
                    "ParticipantSid": psid,
                    "ParticipantIdentity": f"u{p}",
                    "ParticipantStatus": "connected",
                    "TrackSid": f"MT{room:016x}{p:016x}",
                    "TrackKind": "audio",
                },
            )
        params = {
            "AccountSid": ACCOUNT,
            "RoomSid": sid,
            "RoomName": sid,
            "RoomType": "group",
            "RoomStatus": "in-progress",
            "StatusCallbackEvent": event,
            "Timestamp": records.format_ms(at),
            "SequenceNumber": str(step),
            **extra,
        }
        yield records.from_callback({k: [v] for k, v in params.items()}, at + 3)


async def preload(settings: Settings, events: int, rooms: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    try:
        pending = []
        for event in generate(events, rooms):
            pending.append(
                await producer.send(
                    settings.events_topic,
                    records.encode(event),
                    key=records.partition_key(event),
                    headers=cloudevents.event_headers(event),
                )
            )
            if len(pending) >= 50_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def ceiling(settings: Settings, events: int) -> float:
    consumer = AIOKafkaConsumer(
        settings.events_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.consumer_group + "-ceiling",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_partition_fetch_bytes=4 << 20,
    )
    await consumer.start()
    seen = 0
    started = None
    try:
        while seen < events:
            batches = await consumer.getmany(timeout_ms=200, max_records=20000)
            if batches and started is None:
                started = time.perf_counter()
            for messages in batches.values():
                seen += len(messages)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def materialize(settings: Settings, events: int) -> tuple[float, int]:
    """From the moment the materializer owns its partitions (rebuilt, ready to fold) until every
    event's offset is committed, i.e. folded and its rooms' states and changelog acknowledged."""
    service = MaterializerService(settings, Metrics(), serve_health=False)
    await service.start()
    m = service.materializer
    try:
        while not m.ready:
            await asyncio.sleep(0.001)
        started = time.perf_counter()
        while sum(m.committed.values()) < events:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        rooms = sum(len(b.rooms) for b in m.books.values())
        return elapsed, rooms
    finally:
        await service.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rooms", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    logs.setup("WARNING", "console")
    broker = EmbeddedBroker().start()
    try:
        settings = Settings(
            kafka_bootstrap_servers=broker.bootstrap_servers,
            twilio_account_sid=ACCOUNT,
            twilio_auth_token="bench",
            events_topic="bench-events",
            state_topic="bench-state",
            dead_letter_topic="bench-dlq",
            consumer_group="bench-materializer",
            topic_partitions=args.partitions,
            session_timeout_ms=6000,
            timers_enabled=False,
        )
        await ensure_topics(settings)
        t = time.perf_counter()
        await preload(settings, args.events, args.rooms)
        print(
            f"preloaded {args.events:,} events over {args.rooms:,} rooms in {time.perf_counter() - t:.1f}s", flush=True
        )
        # Both runs under the collector settings the roomevents processes use (service/runtime.py).
        settle_gc()
        ceiling_s = await ceiling(settings, args.events)
        fold_s, rooms = await materialize(settings, args.events)
        assert rooms == args.rooms, rooms
        ceil_rate, fold_rate = args.events / ceiling_s, args.events / fold_s
        print()
        print("| run | events | seconds | events/s |")
        print("|---|---:|---:|---:|")
        print(f"| bare consumer (ceiling) | {args.events:,} | {ceiling_s:.2f} | {ceil_rate:,.0f} |")
        print(f"| materializer (fold + publish state + commit) | {args.events:,} | {fold_s:.2f} | {fold_rate:,.0f} |")
        print(f"\nratio materializer / ceiling: {fold_rate / ceil_rate:.2f}   (targets: >= 100,000 events/s, >= 0.60)")
    finally:
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())

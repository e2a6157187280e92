"""Test helpers: realistic room histories as records, and publishing them straight to the events topic
(as the ingress would), for the materializer tests and benchmarks."""

from __future__ import annotations

import random
from typing import Iterator

from aiokafka import AIOKafkaProducer

from service.events import cloudevents, record as records

ACCOUNT = "AC" + "a1" * 16
BASE_MS = 1_900_000_000_000


def _ts(ms: int) -> str:
    return records.format_ms(ms)


def room_history(index: int, rng: random.Random, participants: int = 3, extra_events: int = 0) -> list[dict]:
    """One room's callbacks: created, participants with tracks (and a recording), then ended."""
    sid = f"RM{index:032x}"
    name = f"room-{index}"
    t = BASE_MS + index * 1000
    seq = 0
    out: list[dict] = []

    def cb(event: str, at: int, **extra) -> None:
        nonlocal seq
        seq += 1
        params = {
            "AccountSid": ACCOUNT,
            "RoomSid": sid,
            "RoomName": name,
            "RoomType": "group",
            "RoomStatus": "completed" if event == "room-ended" else "in-progress",
            "StatusCallbackEvent": event,
            "Timestamp": _ts(at),
            "SequenceNumber": str(seq),
            **extra,
        }
        out.append(records.from_callback({k: [v] for k, v in params.items()}, at + 5))

    cb("room-created", t)
    end = t + 60_000
    for p in range(participants):
        psid = f"PA{index:016x}{p:016x}"
        joined = t + 1000 + rng.randrange(10_000)
        left = joined + 5000 + rng.randrange(30_000)
        end = max(end, left + 1000)
        who = {"ParticipantSid": psid, "ParticipantIdentity": f"user-{p}"}
        cb("participant-connected", joined, ParticipantStatus="connected", **who)
        for k, kind in enumerate(("audio", "video")):
            tsid = f"MT{index:016x}{p:08x}{k:08x}"
            cb("track-added", joined + 10 + k, ParticipantStatus="connected", TrackSid=tsid, TrackKind=kind, **who)
            for n in range(extra_events):
                cb(
                    "track-disabled" if n % 2 == 0 else "track-enabled",
                    joined + 20 + n,
                    ParticipantStatus="connected",
                    TrackSid=tsid,
                    TrackKind=kind,
                    **who,
                )
            cb("track-removed", left - 10 + k, ParticipantStatus="connected", TrackSid=tsid, TrackKind=kind, **who)
        if p == 0:
            rsid = f"RT{index:032x}"
            cb(
                "recording-started",
                joined + 50,
                RecordingSid=rsid,
                SourceSid=f"MT{index:016x}{0:08x}{0:08x}",
                Type="audio",
                Container="mka",
                Codec="OPUS",
                **who,
            )
            cb(
                "recording-completed",
                left,
                RecordingSid=rsid,
                Duration=str((left - joined) // 1000),
                Size="12345",
                Type="audio",
                Container="mka",
                Codec="OPUS",
                **who,
            )
        cb(
            "participant-disconnected",
            left,
            ParticipantStatus="disconnected",
            ParticipantDuration=str((left - joined) // 1000),
            **who,
        )
    cb("room-ended", end, RoomDuration=str((end - t) // 1000))
    return out


def interleaved(rooms: int, seed: int = 7, **kwargs) -> list[dict]:
    """Histories of several rooms, interleaved, each room's own events in their time order."""
    rng = random.Random(seed)
    queues = [room_history(i, rng, **kwargs) for i in range(rooms)]
    out = []
    while queues:
        q = rng.choice(queues)
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


async def publish(bootstrap: str, topic: str, events: list[dict]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic, records.encode(e), key=records.partition_key(e), headers=cloudevents.event_headers(e)
            )
            for e in events
        ]
        for f in futures:
            await f
    finally:
        await producer.stop()


def iter_chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]

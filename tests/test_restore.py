"""Restore from the changelog, across a retirement boundary (issue: bounded cost over time).

A materializer folds history A (rooms that ended long ago in event time, and live rooms whose
events move event time on, so A's ended rooms retire); it stops; history B arrives (new rooms,
more events of live rooms, and late events of retired rooms); a new materializer restores each
partition from the changelog's latest snapshot, not by replaying A, and the final hot state equals
one clean fold of A + B with retention. The late events never bring a retired room back: they are
dead-lettered with their reason.
"""

from __future__ import annotations

import random

import orjson
from aiokafka.partitioner import DefaultPartitioner

from service.events.record import format_ms, from_callback, partition_key
from service.kafka.checkpoints import CHECKPOINT_KEY
from service.kafka.state_follower import StateFollower
from service.materializer import changelog as changelog_module
from service.metrics import Metrics
from service.runtime import MaterializerService
from service.state.book import RoomBook
from service.state.render import render
from tests import streams
from tests.helpers import read_topic, wait_until

HOUR = 3_600_000
RETAIN = HOUR
ACCOUNT = streams.ACCOUNT


def callback(sid: str, name: str, event: str, at_ms: int, **extra: str) -> dict:
    params = {
        "AccountSid": ACCOUNT,
        "RoomSid": sid,
        "RoomName": name,
        "RoomType": "group",
        "StatusCallbackEvent": event,
        "Timestamp": format_ms(at_ms),
        "RoomStatus": "completed" if event == "room-ended" else "in-progress",
        **extra,
    }
    return from_callback({k: [v] for k, v in params.items()}, at_ms + 5)


def live_room(index: int, start_ms: int, participants: int) -> list[dict]:
    sid, name = f"RM{index + 0xF000:032x}", f"live-{index}"
    out = [callback(sid, name, "room-created", start_ms)]
    for p in range(participants):
        out.append(
            callback(
                sid,
                name,
                "participant-connected",
                start_ms + 1000 * (p + 1),
                ParticipantSid=f"PA{index:016x}{p:016x}",
                ParticipantIdentity=f"user-{p}",
            )
        )
    return out


def first_on_each_partition(partitions: int) -> list[int]:
    """Indices of live rooms whose names fall on each partition once."""
    found: dict[int, int] = {}
    for i in range(1000):
        p = DefaultPartitioner()(f"live-{i}".encode(), list(range(partitions)), list(range(partitions)))
        found.setdefault(p, i)
        if len(found) == partitions:
            return sorted(found.values())
    raise AssertionError("no names for every partition")


def expected_hot_state(log: list[dict], partitions: int) -> tuple[dict[str, dict], dict[str, int]]:
    """One clean fold of the log with retention, per partition in publish order: documents and versions."""
    books: dict[int, RoomBook] = {}
    offsets: dict[int, int] = {}
    all_partitions = list(range(partitions))
    for event in log:
        p = DefaultPartitioner()(partition_key(event), all_partitions, all_partitions)
        offset = offsets.get(p, 0)
        offsets[p] = offset + 1
        books.setdefault(p, RoomBook(RETAIN)).take(event, offset)
    docs, versions = {}, {}
    for book in books.values():
        book.retire_due()
        for sid, state in book.rooms.items():
            docs[sid] = render(state)
            versions[sid] = book.versions[sid]
    return docs, versions


def public(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if not k.startswith("_") and k != "version"}


async def test_restore_reads_the_changelog_snapshot_not_the_history(settings, monkeypatch):
    monkeypatch.setattr(changelog_module, "SNAPSHOT_MIN_RECORDS", 20)  # snapshots in a small test
    settings = settings.with_overrides(timers_enabled=False, retain_ended_ms=RETAIN)
    rng = random.Random(7)
    # History A: 30 rooms that ended at streams.BASE_MS (+ minutes), then live rooms a day later.
    old_rooms = [streams.room_history(i, rng, participants=2) for i in range(30)]
    history_a = [e for room in old_rooms for e in room]
    day = streams.BASE_MS + 24 * HOUR
    # Event time is per partition (a quiet partition retires nothing): a live room on each.
    live_a = first_on_each_partition(settings.topic_partitions)
    history_a += [e for i in live_a for e in live_room(i, day, participants=2)]
    # History B: more of the live rooms, new rooms, and late events of three retired rooms.
    history_b = [e for i in (100, 101) for e in live_room(i, day + HOUR, participants=1)]
    history_b += [
        callback(
            f"RM{i + 0xF000:032x}",
            f"live-{i}",
            "participant-disconnected",
            day + HOUR + 5,
            ParticipantSid=f"PA{i:016x}{0:016x}",
            ParticipantIdentity="user-0",
        )
        for i in range(2)
    ]
    late = [
        callback(
            f"RM{i:032x}",
            f"room-{i}",
            "participant-connected",
            streams.BASE_MS + i * 1000 + 30_000,
            ParticipantSid=f"PA{i:016x}{9:016x}",
            ParticipantIdentity="late",
        )
        for i in range(3)
    ]
    history_b += late
    expected, versions = expected_hot_state(history_a + history_b, settings.topic_partitions)
    held = {f"RM{i + 0xF000:032x}" for i in (*live_a, 100, 101)}
    assert set(expected) == held  # only the live rooms are held

    follower = StateFollower(settings, Metrics())
    await follower.start()
    first = MaterializerService(settings, Metrics(), serve_health=False)
    await first.start()
    try:
        await streams.publish(settings.kafka_bootstrap_servers, settings.events_topic, history_a)
        # A's old rooms come and go (retired), the live ones stay.
        await wait_until(
            lambda: (
                sum(1 for d in follower.index.docs.summaries() if d.status == "in-progress") == len(live_a)
                and len(follower.index.docs) == len(live_a)
            ),
            timeout=60,
        )
    finally:
        await first.stop()
    await streams.publish(settings.kafka_bootstrap_servers, settings.events_topic, history_b)

    second = MaterializerService(settings, Metrics(), serve_health=False)
    await second.start()
    try:
        await wait_until(lambda: second.materializer.ready, timeout=30)
        restored = second.materializer.last_restore
        assert {r.source for r in restored.values()} == {"changelog"}, restored
        # The snapshot holds the rooms still held (a few), not A's 30 retired rooms or their events.
        read = sum(r.records for r in restored.values())
        assert read < len(history_a) // 4, (read, len(history_a))
        await wait_until(
            lambda: {sid: public(follower.index.docs[sid]) for sid in follower.index.docs} == expected, timeout=60
        )
        assert {sid: follower.index.docs[sid]["version"] for sid in expected} == versions
    finally:
        await second.stop()
        await follower.stop()

    # The late events were dead-lettered with their reason, never folded into a new room.
    letters = [
        orjson.loads(m.value) for m in await read_topic(settings.kafka_bootstrap_servers, settings.dead_letter_topic)
    ]
    late_ids = {e["event_id"] for e in late}
    parked = {orjson.loads(letter["value"])["event_id"]: letter["reason"] for letter in letters}
    # (Remembered as retired, or past remembering: older than the retention before event time.)
    assert {parked.get(i) for i in late_ids} <= {"room-retired", "older-than-retention"}
    # A fresh read view starts at each partition's snapshot and holds only the live rooms.
    fresh = StateFollower(settings, Metrics())
    await fresh.start()
    try:
        await wait_until(lambda: fresh.caught_up.is_set(), timeout=30)
        assert set(fresh.index.docs) == set(expected)
    finally:
        await fresh.stop()
    changelog = await read_topic(settings.kafka_bootstrap_servers, settings.changelog_topic)
    assert any(m.key == CHECKPOINT_KEY for m in changelog)


def test_restore_log_lines_render_as_json_with_partition_numbers_as_keys():
    """The restore's log line carries per-partition dicts: JSON logs must not fail on int keys (the
    deploy smoke test caught a materializer that never got ready over this)."""
    import structlog

    from service import logs

    render_json = structlog.processors.JSONRenderer(serializer=logs._dumps)
    line = render_json(None, "info", {"event": "restored", "partitions": {0: {"source": "changelog"}}})
    assert orjson.loads(line)["partitions"] == {"0": {"source": "changelog"}}

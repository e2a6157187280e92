"""The materializer against a real broker: crash recovery, group membership changes, poison records,
timers. Final states must equal one clean fold over the same events."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from service.kafka.state_follower import StateFollower
from service.metrics import Metrics
from service.runtime import MaterializerService
from service.state.book import RoomBook
from service.state.render import render
from tests import streams
from tests.helpers import read_topic, service_env, wait_ready, wait_until


def clean_run(events: list[dict]) -> dict[str, dict]:
    book = RoomBook()
    for e in events:
        book.apply(e)
    return {sid: render(state) for sid, state in book.rooms.items()}


def public(doc: dict) -> dict:
    # `version` is the events-topic offset of the room's latest record, which a fold over a list of
    # events does not know (tests/test_restore.py checks it).
    return {k: v for k, v in doc.items() if not k.startswith("_") and k != "version"}


async def follow(settings) -> StateFollower:
    follower = StateFollower(settings, Metrics())
    await follower.start()
    return follower


async def wait_for_states(follower: StateFollower, expected: dict[str, dict], timeout: float = 60) -> None:
    def matches():
        docs = follower.index.docs
        return len(docs) == len(expected) and all(
            public(docs[sid]) == doc for sid, doc in expected.items() if sid in docs
        )

    try:
        await wait_until(matches, timeout=timeout, interval=0.1)
    except AssertionError:
        docs = follower.index.docs
        wrong = [sid for sid, d in expected.items() if sid not in docs or public(docs[sid]) != d]
        diff = {}
        if wrong and wrong[0] in docs:
            got, want = public(docs[wrong[0]]), expected[wrong[0]]
            diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
        raise AssertionError(
            f"{len(docs)}/{len(expected)} rooms; {len(wrong)} differ, e.g. {wrong[:3]}: {diff}"
        ) from None


async def test_sigkill_mid_stream_then_restart_equals_clean_run(settings):
    settings = settings.with_overrides(timers_enabled=False)
    events = streams.interleaved(40, seed=1, extra_events=2)
    expected = clean_run(events)
    follower = await follow(settings)
    env = service_env(settings, ROOMEVENTS_METRICS_PORT="0", ROOMEVENTS_TIMERS="false")
    cmd = [sys.executable, "-m", "service.cli", "materializer"]
    first = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=asyncio.subprocess.DEVNULL)
    try:
        half = len(events) // 2
        await streams.publish(settings.kafka_bootstrap_servers, settings.events_topic, events[:half])
        # Kill it once it has published some states but (very likely) not all of the first half.
        await wait_until(lambda: len(follower.index.docs) > 0, timeout=40)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        await streams.publish(settings.kafka_bootstrap_servers, settings.events_topic, events[half:])
        second = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=asyncio.subprocess.DEVNULL)
        try:
            await wait_for_states(follower, expected)
        finally:
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 30) == 0
    finally:
        if first.returncode is None:
            first.kill()
        await follower.stop()


async def test_instances_join_and_leave_during_a_stream(settings):
    settings = settings.with_overrides(timers_enabled=False)
    events = streams.interleaved(60, seed=2)
    expected = clean_run(events)
    follower = await follow(settings)
    a = MaterializerService(settings, Metrics(), serve_health=False)
    b = MaterializerService(settings, Metrics(), serve_health=False)
    try:
        await a.start()
        chunks = list(streams.iter_chunks(events, len(events) // 3 + 1))
        await streams.publish(settings.kafka_bootstrap_servers, settings.events_topic, chunks[0])
        await b.start()  # joins: partitions are split between a and b
        await wait_until(
            lambda: a.materializer.books and b.materializer.books and a.materializer.ready and b.materializer.ready,
            timeout=40,
        )
        await streams.publish(settings.kafka_bootstrap_servers, settings.events_topic, chunks[1])
        await a.stop()  # leaves: b takes every partition and rebuilds them
        await streams.publish(settings.kafka_bootstrap_servers, settings.events_topic, chunks[2])
        await wait_until(
            lambda: len(b.materializer.books) == settings.topic_partitions and b.materializer.ready, timeout=40
        )
        await wait_for_states(follower, expected)
    finally:
        await b.stop()
        await follower.stop()


@pytest.mark.allow_invalid_events  # the poison is the point
async def test_poison_records_are_dead_lettered_and_the_stream_goes_on(settings):
    events = streams.interleaved(3, seed=3)
    expected = clean_run(events)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(settings.events_topic, b"\xff not json", key=b"room-0")
        await producer.send_and_wait(
            settings.events_topic, orjson.dumps({"schema_version": 99, "event_id": "x"}), key=b"room-1"
        )
        # Valid at the top, but a participant without a SID: the fold cannot take it.
        unfoldable = dict(events[0], event_id="f" * 32, type="participant-connected", participant={"identity": "x"})
        await producer.send_and_wait(settings.events_topic, orjson.dumps(unfoldable), key=b"room-2")
    finally:
        await producer.stop()
    await streams.publish(settings.kafka_bootstrap_servers, settings.events_topic, events)
    follower = await follow(settings)
    service = MaterializerService(settings.with_overrides(timers_enabled=False), Metrics(), serve_health=False)
    await service.start()
    try:
        await wait_for_states(follower, expected)
        consumer = AIOKafkaConsumer(
            settings.dead_letter_topic, bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="earliest"
        )
        await consumer.start()
        letters = []
        try:

            async def collect():
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    letters.extend(orjson.loads(m.value) for m in messages)
                return len(letters) >= 3

            for _ in range(100):
                if await collect():
                    break
        finally:
            await consumer.stop()
        assert sorted(letter["reason"] for letter in letters) == ["poison"] * 3
        details = " ".join(letter["detail"] for letter in letters)
        assert "undecodable" in details and "schema_version 99" in details and "KeyError" in details
        assert service.metrics.dead_letters.labels("poison")._value.get() == 3
    finally:
        await service.stop()
        await follower.stop()


async def test_a_failed_rebuild_is_retried_before_anything_is_folded(settings, monkeypatch):
    """Fault injection (the broker stays real): the first rebuild on assignment raises. Nothing may
    be folded onto the missing state; the loop rebuilds, seeks back, and the result equals a clean run."""
    from aiokafka.errors import KafkaConnectionError

    from service.materializer.recovery import Recovery

    settings = settings.with_overrides(timers_enabled=False)
    events = streams.interleaved(20, seed=4)
    half = len(events) // 2
    follower = await follow(settings)
    first = MaterializerService(settings, Metrics(), serve_health=False)
    await first.start()
    try:
        await streams.publish(settings.kafka_bootstrap_servers, settings.events_topic, events[:half])
        await wait_for_states(follower, clean_run(events[:half]))
    finally:
        await first.stop()

    original, calls = Recovery.rebuild, []

    async def flaky(self, assigned):
        calls.append(sorted(tp.partition for tp in assigned))
        if len(calls) == 1:
            raise KafkaConnectionError("broker unreachable during rebuild (injected)")
        return await original(self, assigned)

    monkeypatch.setattr(Recovery, "rebuild", flaky)
    await streams.publish(settings.kafka_bootstrap_servers, settings.events_topic, events[half:])
    second = MaterializerService(settings, Metrics(), serve_health=False)
    await second.start()
    try:
        await wait_for_states(follower, clean_run(events))
        assert len(calls) >= 2  # the failed rebuild was retried
    finally:
        await second.stop()
        await follower.stop()


async def test_a_bug_in_the_fold_does_not_dead_letter_valid_records(settings, monkeypatch):
    """Only records.RecordError is poison. A fold that raises anything else (here ZeroDivisionError, once)
    is a bug: the batch is redone from the committed offsets, nothing is dead-lettered or skipped."""
    from service.state import book as book_module

    settings = settings.with_overrides(timers_enabled=False)
    events = streams.interleaved(6, seed=5)
    expected = clean_run(events)  # before the fold is broken
    victim = events[len(events) // 2]["event_id"]
    original, raised = book_module.fold, []

    def buggy(state, event):
        if event["event_id"] == victim and not raised:
            raised.append(victim)
            raise ZeroDivisionError("injected bug in the fold")
        return original(state, event)

    monkeypatch.setattr(book_module, "fold", buggy)
    follower = await follow(settings)
    service = MaterializerService(settings, Metrics(), serve_health=False)
    await service.start()
    try:
        await wait_until(lambda: service.materializer.ready, timeout=30)
        await streams.publish(settings.kafka_bootstrap_servers, settings.events_topic, events)
        await wait_for_states(follower, expected)
        assert raised == [victim]
        assert service.metrics.registry.get_sample_value("roomevents_dead_letters_total", {"reason": "poison"}) is None
        assert await read_topic(settings.kafka_bootstrap_servers, settings.dead_letter_topic) == []
    finally:
        await service.stop()
        await follower.stop()


async def test_materializer_workers_split_the_partitions_and_stop_cleanly(settings):
    """`roomevents materializer` with ROOMEVENTS_WORKERS=2: two forked group members (client ids
    roomevents-materializer-1 and -2) split the partitions, every room reaches its final state, and
    on SIGTERM both commit and the process exits 0."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from service.kafka.broker import free_port

    settings = settings.with_overrides(timers_enabled=False)
    events = streams.interleaved(30, seed=5)
    expected = clean_run(events)
    follower = await follow(settings)
    metrics_port = free_port()
    proc, lines, reader = await _two_workers(settings, metrics_port, ROOMEVENTS_TIMERS="false")
    everything = set(range(settings.topic_partitions))

    def owned() -> dict[int, set[int]]:
        """Each worker's latest assignment, from its "partitions assigned and restored" lines."""
        latest: dict[int, set[int]] = {}
        for line in lines:
            if line.get("event") == "partitions assigned and restored":
                latest[line["worker"]] = {int(p) for p in line["partitions"]}
            elif line.get("event") == "partitions revoked":
                latest[line["worker"]] = latest.get(line["worker"], set()) - set(line["partitions"])
        return latest

    try:
        await streams.publish(settings.kafka_bootstrap_servers, settings.events_topic, events)
        await wait_for_states(follower, expected, timeout=40)
        assert {doc["status"] for doc in follower.index.docs.values()} == {"completed"}
        # Both group members own partitions, and together all of them (the group settles after the
        # second one joins: wait for that rather than for a fixed time).
        await wait_until(
            lambda: set(owned()) == {1, 2} and all(owned().values()) and set().union(*owned().values()) == everything,
            timeout=30,
        )
        children = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
        assert len(children) == 2, children
        # Each worker is a group member with its own client id (Kafka makes member ids `<client id>-<uuid>`;
        # Tansu leaves client_id empty in DescribeGroups).
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            (described,) = await admin.describe_consumer_groups([settings.consumer_group])
        finally:
            await admin.close()
        members = described.groups[0][5]
        client_ids = sorted(client_id or member_id.rsplit("-", 5)[0] for member_id, client_id, *_ in members)
        assert client_ids == ["roomevents-materializer-1", "roomevents-materializer-2"], members
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, f"http://127.0.0.1:{metrics_port}")  # the shared health port answers
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await follower.stop()
        await asyncio.wait_for(reader, 10)
    assert {line["worker"] for line in lines if line.get("event") == "materializer stopped"} == {1, 2}

    # Every event's offset is committed for the group (read as a group member that never subscribes).
    ends: dict[int, int] = {}
    for m in await read_topic(settings.kafka_bootstrap_servers, settings.events_topic):
        ends[m.partition] = max(ends.get(m.partition, 0), m.offset + 1)
    assert set(ends) == everything  # the rooms were spread over every partition
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=settings.consumer_group)
    await consumer.start()
    try:
        committed = {p: await consumer.committed(TopicPartition(settings.events_topic, p)) for p in everything}
    finally:
        await consumer.stop()
    assert committed == ends


async def test_a_materializer_worker_that_dies_stops_the_others(settings):
    """A worker killed (SIGKILL, an OOM kill) takes the process down with it: the other workers are
    stopped cleanly and the exit code is the dead worker's (128 + 9), so the pod restarts whole."""
    from service.kafka.broker import free_port

    proc, lines, reader = await _two_workers(settings, free_port())
    try:
        # Both workers have joined the group (their signal handlers are in place).
        await wait_until(
            lambda: {line.get("worker") for line in lines if line.get("event") == "materializer started"} == {1, 2},
            timeout=30,
        )
        children = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
        assert len(children) == 2, children
        os.kill(int(children[0]), signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), 30) == 128 + signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await asyncio.wait_for(reader, 10)
    events = [line["event"] for line in lines]
    assert "materializer worker exited; stopping the others" in events
    assert events.count("materializer stopped") == 1  # the survivor stopped cleanly


async def _two_workers(settings, metrics_port: int, **env: str) -> tuple:
    """`roomevents materializer` with ROOMEVENTS_WORKERS=2 and JSON logs at INFO, its log lines
    collected as they come: (process, lines, the reading task)."""
    env = service_env(
        settings,
        ROOMEVENTS_WORKERS="2",
        ROOMEVENTS_METRICS_PORT=str(metrics_port),
        ROOMEVENTS_LOG_LEVEL="INFO",
        ROOMEVENTS_LOG_FORMAT="json",
        **env,
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "materializer", env=env, stderr=asyncio.subprocess.PIPE
    )
    lines: list[dict] = []

    async def read_log() -> None:
        async for raw in proc.stderr:
            if raw.startswith(b"{"):
                lines.append(orjson.loads(raw))

    return proc, lines, asyncio.create_task(read_log())


async def test_the_fetch_wait_setting_reaches_both_consumers_and_states_still_arrive(settings):
    # A long wait (ROOMEVENTS_FETCH_MAX_WAIT_MS, as on Apache Kafka) changes how often idle
    # consumers ask, never what they read.
    settings = settings.with_overrides(timers_enabled=False, fetch_max_wait_ms=300)
    events = streams.interleaved(6, seed=11)
    follower = await follow(settings)
    service = MaterializerService(settings, Metrics(), serve_health=False)
    await service.start()
    try:
        assert follower.consumer._fetch_max_wait_ms == 300
        assert service.materializer._consumer._fetch_max_wait_ms == 300
        await streams.publish(settings.kafka_bootstrap_servers, settings.events_topic, events)
        await wait_for_states(follower, clean_run(events))
    finally:
        await service.stop()
        await follower.stop()

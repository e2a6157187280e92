"""The commit pipeline's ordering: batches wait for their own acks, commit in batch order, and a
failed batch keeps every later one uncommitted. (A unit test of the ordering alone; the pipeline
against a real broker is covered by the materializer tests.)"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from service.materializer.commits import MAX_IN_FLIGHT, CommitPipeline

TP = TopicPartition("events", 0)


class _RecordingCommits:
    def __init__(self) -> None:
        self.committed: list[int] = []

    async def commit(self, commits: dict) -> None:
        await asyncio.sleep(0)
        self.committed.append(commits[TP])


async def test_commits_in_batch_order_even_when_later_acks_come_first() -> None:
    consumer = _RecordingCommits()
    seen: list[int] = []
    pipeline = CommitPipeline(consumer, lambda c: seen.append(c[TP]))
    loop = asyncio.get_running_loop()
    acks = [loop.create_future() for _ in range(3)]
    for n, ack in enumerate(acks):
        await pipeline.submit([ack], {TP: (n + 1) * 10})  # none waits: fewer than MAX_IN_FLIGHT
    acks[2].set_result(None)
    acks[1].set_result(None)
    await asyncio.sleep(0.01)
    assert consumer.committed == []  # the first batch is not acknowledged yet
    acks[0].set_result(None)
    await pipeline.drain()
    assert consumer.committed == [10, 20, 30]
    assert seen == [10, 20, 30]


async def test_a_failed_batch_leaves_it_and_later_ones_uncommitted() -> None:
    consumer = _RecordingCommits()
    pipeline = CommitPipeline(consumer, lambda c: None)
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    await pipeline.submit([first], {TP: 10})
    await pipeline.submit([second], {TP: 20})
    first.set_exception(RuntimeError("not acknowledged"))
    second.set_result(None)
    with pytest.raises(RuntimeError, match="not acknowledged"):
        await pipeline.drain()
    assert consumer.committed == []
    await pipeline.drain()  # nothing left in flight


async def test_submit_waits_once_max_in_flight_batches_wait() -> None:
    consumer = _RecordingCommits()
    pipeline = CommitPipeline(consumer, lambda c: None)
    loop = asyncio.get_running_loop()
    acks = [loop.create_future() for _ in range(MAX_IN_FLIGHT + 1)]
    for n in range(MAX_IN_FLIGHT):
        await pipeline.submit([acks[n]], {TP: n})
    blocked = asyncio.create_task(pipeline.submit([acks[-1]], {TP: MAX_IN_FLIGHT}))
    await asyncio.sleep(0.01)
    assert not blocked.done()  # the loop is slowed down while the broker falls behind
    acks[0].set_result(None)
    await asyncio.wait_for(blocked, 1)
    for ack in acks[1:]:
        ack.set_result(None)
    await pipeline.drain()
    assert consumer.committed == list(range(MAX_IN_FLIGHT + 1))

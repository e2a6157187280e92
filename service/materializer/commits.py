"""The commit pipeline: each batch's offsets are committed only after its states are acknowledged.

Pipelined: the next batches are folded and sent while earlier ones wait for their acks; offsets are
committed in batch order, each only after its own states' acks and the previous batch's commit.
Up to MAX_IN_FLIGHT batches wait at once: a batch no longer waits for the one before it to be
acknowledged and committed (a broker round trip or two, the largest share of a change's latency
to the state topic), and a broker that falls behind still slows the loop down.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from service import logs

log = logs.get(__name__)

Commits = dict[TopicPartition, int]
MAX_IN_FLIGHT = 4


class CommitPipeline:
    def __init__(self, consumer: AIOKafkaConsumer, on_committed: Callable[[Commits], None]) -> None:
        self._consumer = consumer
        self._on_committed = on_committed
        self._inflight: deque[asyncio.Task[None]] = deque()

    async def submit(self, acks: Sequence[asyncio.Future], commits: Commits) -> None:
        """Queue this batch's commit (after its acks and the previous batch's commit); waits only
        while MAX_IN_FLIGHT batches are already waiting. Raises what an earlier batch failed with."""
        while len(self._inflight) >= MAX_IN_FLIGHT:
            await self._inflight.popleft()
        previous = self._inflight[-1] if self._inflight else None
        self._inflight.append(asyncio.create_task(self._commit_after(previous, acks, commits)))

    async def drain(self) -> None:
        """Wait until every submitted batch's states are acknowledged and its offsets committed;
        raises what one failed with (its offsets and the later ones then stay uncommitted and those
        batches are done again)."""
        inflight, self._inflight = self._inflight, deque()
        if inflight:
            try:
                await inflight[-1]  # it waits for every one before it
            finally:
                for task in inflight:  # retrieve each failure (the chain re-raised the first)
                    if task.done() and not task.cancelled():
                        task.exception()

    async def _commit_after(
        self, previous: asyncio.Task[None] | None, acks: Sequence[asyncio.Future], commits: Commits
    ) -> None:
        if acks:
            await asyncio.gather(*acks)
        if previous is not None:
            await previous  # in batch order; a failed batch fails every later one
        try:
            await self._consumer.commit(commits)
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance took the partitions: the next owner reprocesses and republishes the same states.
            log.warning("offset commit failed after rebalance", error=repr(exc))
        self._on_committed(commits)

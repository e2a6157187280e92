"""The commit pipeline: each batch's offsets are committed only after its states are acknowledged.

Pipelined: the next batch is folded while this one's states are on their way; offsets are committed
in batch order, each only after its own states' acks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from service import logs

log = logs.get(__name__)

Commits = dict[TopicPartition, int]


class CommitPipeline:
    def __init__(self, consumer: AIOKafkaConsumer, on_committed: Callable[[Commits], None]) -> None:
        self._consumer = consumer
        self._on_committed = on_committed
        self._inflight: asyncio.Task[None] | None = None

    async def submit(self, acks: Sequence[asyncio.Future], commits: Commits) -> None:
        """Wait for the previous batch's commit, then start this one's (acks first, then commit)."""
        await self.drain()
        self._inflight = asyncio.create_task(self._commit_after(acks, commits))

    async def drain(self) -> None:
        """Wait until the last batch's states are acknowledged and its offsets committed; raises what
        that failed with (the offsets then stay uncommitted and the batch is done again)."""
        previous, self._inflight = self._inflight, None
        if previous is not None:
            await previous

    async def _commit_after(self, acks: Sequence[asyncio.Future], commits: Commits) -> None:
        if acks:
            await asyncio.gather(*acks)
        try:
            await self._consumer.commit(commits)
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance took the partitions: the next owner reprocesses and republishes the same states.
            log.warning("offset commit failed after rebalance", error=repr(exc))
        self._on_committed(commits)

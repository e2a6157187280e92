"""Where a restore starts: snapshots and checkpoints on the changelog topic.

The changelog topic is co-partitioned with the events topic: partition p holds the fold state of
every room whose events are on events partition p (key: room SID; a tombstone when the room is
retired), written by the one materializer that owns p. From time to time that materializer
writes a snapshot: every room it holds, again, to the changelog and (as documents) to the same
partition number of the state topic. After each batch it appends a checkpoint record
(key `__checkpoint__`) that says where its latest snapshot starts on both topics.

A restore reads the last checkpoint of a partition, then only the records from the snapshot's
start: its cost follows the rooms held and the changes since the snapshot, not all history,
whether or not the broker compacts (Tansu's in-memory storage does not; Kafka does, later).
Older records are never needed again.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from service import logs

log = logs.get(__name__)

CHECKPOINT_KEY = b"__checkpoint__"
# Keys of records that are not rooms start with this (no room SID does).
RESERVED_PREFIX = b"__"
IDLE_PASSES = 6  # empty fetches (0.25 s each) before a read is taken as complete
FIRST_WINDOW = 64


def encode_checkpoint(changelog_start: int, state_start: int, watermark_ms: int | None) -> bytes:
    return orjson.dumps({"changelog_start": changelog_start, "state_start": state_start, "watermark_ms": watermark_ms})


def decode_checkpoint(value: bytes | None) -> dict[str, Any] | None:
    if not value:
        return None
    try:
        checkpoint = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("changelog_start"), int):
        return None
    return checkpoint


class PartitionReader:
    """Reads offset ranges of single partitions (no consumer group): restores and look-ups."""

    def __init__(self, bootstrap_servers: str, client_id: str) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=client_id,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )

    async def __aenter__(self) -> "PartitionReader":
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def bounds(self, tps: list[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]:
        """(first offset, end offset) of each partition."""
        begin = await self._consumer.beginning_offsets(tps)
        end = await self._consumer.end_offsets(tps)
        return {tp: (begin[tp], end[tp]) for tp in tps}

    async def read(self, tp: TopicPartition, start: int, end: int) -> AsyncIterator[ConsumerRecord]:
        """Every record of `tp` with start <= offset < end (compaction may leave gaps)."""
        if start >= end:
            return
        self._consumer.assign([tp])
        self._consumer.seek(tp, start)
        idle = 0
        while True:
            batches = await self._consumer.getmany(tp, timeout_ms=250, max_records=10000)
            messages = batches.get(tp, [])
            idle = 0 if messages else idle + 1
            for message in messages:
                if message.offset >= end:
                    return
                yield message
            if await self._consumer.position(tp) >= end:
                return
            if idle >= IDLE_PASSES:
                log.warning(
                    "partition read ended early",
                    topic=tp.topic,
                    partition=tp.partition,
                    position=await self._consumer.position(tp),
                    end=end,
                )
                return
            await asyncio.sleep(0)

    async def last_checkpoint(self, tp: TopicPartition, begin: int, end: int) -> dict[str, Any] | None:
        """The newest checkpoint record of a changelog partition, searching back from its end."""
        window, high = FIRST_WINDOW, end
        while high > begin:
            low = max(begin, high - window)
            found = None
            async for message in self.read(tp, low, high):
                if message.key == CHECKPOINT_KEY:
                    found = decode_checkpoint(message.value) or found
            if found is not None:
                return found
            high, window = low, window * 4
        return None


async def restore_starts(
    reader: PartitionReader, changelog_topic: str, partitions: list[int]
) -> dict[int, dict[str, Any] | None]:
    """The last checkpoint of each changelog partition (None: no snapshot yet, read from the start)."""
    tps = [TopicPartition(changelog_topic, p) for p in partitions]
    bounds = await reader.bounds(tps)
    return {tp.partition: await reader.last_checkpoint(tp, *bounds[tp]) for tp in tps}

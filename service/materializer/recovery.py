"""Recovery: the state of newly assigned partitions, complete before any of their records is folded.

From the changelog (service/materializer/changelog.py): the partition's last checkpoint says where
its latest snapshot starts; the entries from there on are the rooms held (and the retired ones
remembered), as of some events offset at or past the committed one. The loop goes on from the
committed offset: events the changelog already reflects are folded again, which the fold takes
as the duplicates they are. A restore reads about the rooms held, not the events ever written.

A partition with a committed offset but no checkpoint (written before the changelog existed) is
rebuilt the old way, by replaying its events from the start, and snapshots on its first batch.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition

from service import logs
from service.events import record as records
from service.kafka.checkpoints import RESERVED_PREFIX, PartitionReader
from service.materializer.changelog import SnapshotMarks
from service.settings import Settings
from service.state import changelog as entries
from service.state.book import RoomBook

log = logs.get(__name__)

REPLAY_BATCH_RECORDS = 20000
REBUILD_IDLE_PASSES = 6  # empty fetches (0.5 s each) before a replay is taken as complete


class Rebuilt(NamedTuple):
    book: RoomBook
    position: int  # the next offset to fold: the committed offset (0 when nothing was committed)
    marks: SnapshotMarks


class Restored(NamedTuple):
    """How a partition's state was obtained (logged; read by tests and the restore benchmark)."""

    source: str  # "changelog", "replay" or "empty"
    records: int  # changelog entries or events read
    rooms: int


class Recovery:
    def __init__(self, settings: Settings, consumer: AIOKafkaConsumer) -> None:
        self._settings = settings
        self._consumer = consumer  # the group member: whose committed offsets to replay up to
        self._last: dict[int, Restored] = {}

    @property
    def last(self) -> dict[int, Restored]:
        """How each partition of the latest rebuild was restored."""
        return dict(self._last)

    async def rebuild(self, assigned: Collection[TopicPartition]) -> dict[int, Rebuilt]:
        """Each assigned partition's rooms as of (at least) its committed offset. Raises when a
        partition could not be read: nothing is returned half-built."""
        started = time.perf_counter()
        retain = self._settings.retain_ended_ms
        books: dict[int, RoomBook] = {tp.partition: RoomBook(retain) for tp in assigned}
        marks: dict[int, SnapshotMarks] = {tp.partition: SnapshotMarks() for tp in assigned}
        committed: dict[TopicPartition, int] = {}
        for tp in assigned:
            offset = await self._consumer.committed(tp)
            if offset:
                committed[tp] = offset
        restored: dict[int, Restored] = {}
        async with PartitionReader(self._settings.kafka_bootstrap_servers, "roomevents-restore") as reader:
            for tp in assigned:
                restored[tp.partition] = await self._restore(
                    reader, tp.partition, books[tp.partition], marks[tp.partition]
                )
        to_replay = {tp: off for tp, off in committed.items() if restored[tp.partition].source == "empty"}
        if to_replay:
            replayed = await self._replay(to_replay, books)
            for tp in to_replay:
                restored[tp.partition] = Restored("replay", replayed, len(books[tp.partition].rooms))
        self._last = restored
        log.info(
            "partitions assigned and restored",
            partitions={str(p): r._asdict() for p, r in sorted(restored.items())},
            seconds=round(time.perf_counter() - started, 3),
        )
        return {
            tp.partition: Rebuilt(books[tp.partition], committed.get(tp, 0), marks[tp.partition]) for tp in assigned
        }

    async def _restore(self, reader: PartitionReader, partition: int, book: RoomBook, marks: SnapshotMarks) -> Restored:
        """The partition's rooms from its changelog, from the latest snapshot on ("empty": none yet)."""
        tp = TopicPartition(self._settings.changelog_topic, partition)
        begin, end = (await reader.bounds([tp]))[tp]
        checkpoint = await reader.last_checkpoint(tp, begin, end)
        if checkpoint is None:
            return Restored("empty", 0, 0)
        read = 0
        async for message in reader.read(tp, max(begin, checkpoint["changelog_start"]), end):
            read += 1
            key = message.key or b""
            if key.startswith(RESERVED_PREFIX):
                text = key.decode()
                if text.startswith(entries.RETIRED_PREFIX) and book.retention is not None:
                    sid = text[len(entries.RETIRED_PREFIX) :]
                    if message.value is None:
                        book.retention.retired.pop(sid, None)
                    else:
                        book.retention.restore_retired(sid, entries.decode_retired(message.value))
                continue
            sid = key.decode()
            if message.value is None:
                book.forget([sid])
            else:
                state, version = entries.decode_room(message.value)
                book.restore(sid, state, version)
        book.restored()
        if book.retention is not None:
            book.retention.restore_watermark(checkpoint.get("watermark_ms"))
        marks.changelog_start = checkpoint["changelog_start"]
        marks.state_start = checkpoint.get("state_start")
        marks.written_since = read
        return Restored("changelog", read, len(book.rooms))

    async def _replay(self, targets: dict[TopicPartition, int], books: dict[int, RoomBook]) -> int:
        reader = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="roomevents-rebuild",
        )
        await reader.start()
        replayed = 0
        try:
            reader.assign(list(targets))
            for tp in targets:
                reader.seek(tp, 0)  # below the log start, auto_offset_reset=earliest applies
            remaining = dict(targets)
            idle_passes = 0
            while remaining:
                batches = await reader.getmany(*remaining, timeout_ms=500, max_records=REPLAY_BATCH_RECORDS)
                idle_passes = 0 if batches else idle_passes + 1
                for tp, messages in batches.items():
                    book = books[tp.partition]
                    for message in messages:
                        if message.offset >= remaining[tp]:
                            break
                        try:
                            book.take(records.decode_for_fold(message.value), message.offset)
                        except records.RecordError:
                            continue  # dead-lettered when first consumed
                        replayed += 1
                for tp in list(remaining):
                    if await reader.position(tp) >= remaining[tp]:
                        del remaining[tp]
                if remaining and idle_passes >= REBUILD_IDLE_PASSES:
                    # The log holds less than was committed (retention, a recreated topic).
                    log.warning(
                        "replay ended before the committed offset",
                        partitions={tp.partition: off for tp, off in remaining.items()},
                    )
                    break
        finally:
            await reader.stop()
        return replayed

"""Recovery: the state of newly assigned partitions, complete before any of their records is folded.

Today by replaying each partition's events from the start up to its committed offset (folding only,
no publishing). A restore from a changelog topic would take this place: same contract, `rebuild`
returns each partition's rooms and the offset the loop goes on from.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition

from service import logs
from service.events import record as records
from service.settings import Settings
from service.state.book import RoomBook

log = logs.get(__name__)

REPLAY_BATCH_RECORDS = 20000
REBUILD_IDLE_PASSES = 6  # empty fetches (0.5 s each) before a replay is taken as complete


class Rebuilt(NamedTuple):
    book: RoomBook
    position: int  # the next offset to fold: the committed offset (0 when nothing was committed)


class Recovery:
    def __init__(self, settings: Settings, consumer: AIOKafkaConsumer) -> None:
        self._settings = settings
        self._consumer = consumer  # the group member: whose committed offsets to replay up to

    async def rebuild(self, assigned: Collection[TopicPartition]) -> dict[int, Rebuilt]:
        """Each assigned partition's rooms as of its committed offset. Raises when a partition could
        not be read: nothing is returned half-built."""
        started = time.perf_counter()
        books: dict[int, RoomBook] = {tp.partition: RoomBook() for tp in assigned}
        targets: dict[TopicPartition, int] = {}
        for tp in assigned:
            committed = await self._consumer.committed(tp)
            if committed:
                targets[tp] = committed
        replayed = await self._replay(targets, books) if targets else 0
        log.info(
            "partitions assigned and rebuilt",
            partitions=sorted(tp.partition for tp in assigned),
            replayed=replayed,
            seconds=round(time.perf_counter() - started, 3),
        )
        return {tp.partition: Rebuilt(books[tp.partition], targets.get(tp, 0)) for tp in assigned}

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
                            book.apply(records.decode_for_fold(message.value))
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

"""One batch of the loop: fold fetched records into their partitions' books (a window of fetches under
a backlog), retire the rooms whose retention passed. A record the fold cannot take (records.RecordError) is dead-lettered
as poison, a late event of a retired room with its reason; any other error is a bug and propagates
to the loop, which recovers from the committed offsets without skipping anything. What changed is
published by changelog.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from service import logs
from service.events import record as records
from service.kafka.producer import Publisher, PublishError
from service.materializer.changelog import PartitionOutcome
from service.materializer.partitions import OwnedPartitions

log = logs.get(__name__)

BATCH_RECORDS = 20000
# Under a backlog (a restart, a burst), fetches are folded as they arrive into one window, up to
# this many records or this long, and each changed room is rendered and published once per window,
# not once per fetch. Records are folded as they come, so a window holds rooms, not its records.
# (A backlog's records wait at most this long more; Kafka Streams commits every 30 s by default.)
COALESCE_RECORDS = 1_000_000
COALESCE_SECONDS = 5.0
BACKLOG_HINT = 500  # a fetch this large may mean more is waiting...
BACKLOG_RECORDS = 5000  # ...and this many still on the broker past it is a backlog
YIELD_EVERY = 2000

Fetched = dict[TopicPartition, list[ConsumerRecord]]


def _behind(consumer: AIOKafkaConsumer, batches: Fetched) -> int:
    """Records still waiting on the broker after these, by the fetched partitions' high watermarks."""
    behind = 0
    for tp, messages in batches.items():
        high = consumer.highwater(tp)
        if high is not None and messages:
            behind += max(0, high - messages[-1].offset - 1)
    return behind


async def fetch(consumer: AIOKafkaConsumer) -> Fetched:
    """What has arrived, waiting a little for something."""
    return await consumer.getmany(timeout_ms=200, max_records=BATCH_RECORDS)


async def fold_window(
    first: Fetched,
    partitions: OwnedPartitions,
    consumer: AIOKafkaConsumer,
    publisher: Publisher,
    stopping: asyncio.Event,
) -> Folded:
    """Fold `first`; only under a backlog, keep fetching and folding within bounds (and until a
    shutdown begins). A live stream's window is one fetch (its latency is one fetch and one batch);
    a backlog gets few, large windows."""
    out = Folded()
    await fold(first, partitions, consumer, publisher, out)
    count = sum(len(m) for m in first.values())
    if count < BACKLOG_HINT or _behind(consumer, first) < BACKLOG_RECORDS:
        return out  # no backlog: answer now (creates wait on this)
    deadline = time.monotonic() + COALESCE_SECONDS
    while out.records < COALESCE_RECORDS and time.monotonic() < deadline and not stopping.is_set():
        more = await consumer.getmany(timeout_ms=100, max_records=BATCH_RECORDS)
        await fold(more, partitions, consumer, publisher, out)
        if sum(len(m) for m in more.values()) < BACKLOG_HINT:
            break  # caught up
    return out


@dataclass
class Folded:
    outcomes: dict[int, PartitionOutcome] = field(default_factory=dict)  # per partition: changed, retired
    commits: dict[TopicPartition, int] = field(default_factory=dict)  # the next offset per partition
    types: Counter[str] = field(default_factory=Counter)  # folded records by event type
    records: int = 0  # consumed: folded or dead-lettered

    @property
    def changed_rooms(self) -> int:
        return sum(len(o.changed) for o in self.outcomes.values())


async def fold(
    batches: Fetched,
    partitions: OwnedPartitions,
    consumer: AIOKafkaConsumer,
    publisher: Publisher,
    out: Folded | None = None,
) -> Folded:
    """Fold fetched records into their partitions' books, adding what changed to `out`."""
    out = out if out is not None else Folded()
    debug = logs.enabled_for(logging.DEBUG)  # one line per event only when asked for: not even its arguments otherwise
    for tp, messages in batches.items():
        book = partitions.book(tp.partition)
        if book is None:
            if tp in consumer.assignment():
                # Assigned but not rebuilt yet: read these again once it is, never skip them.
                consumer.seek(tp, messages[0].offset)
            continue  # or revoked while fetched: the new owner reads them
        outcome = out.outcomes.setdefault(tp.partition, PartitionOutcome())
        # Once per event: what the loop calls is looked up once per fetch.
        decode, take, mark_changed, types = records.decode_for_fold, book.take, outcome.changed.add, out.types
        for n, message in enumerate(messages, 1):
            if not n % YIELD_EVERY:
                await asyncio.sleep(0)  # lets the fetcher send its next requests while we fold
            try:
                event = decode(message.value)
                sid, changed, refused = take(event, message.offset)
            except records.RecordError as exc:  # undecodable, unknown version, or a shape the fold cannot take
                await _dead_letter(publisher, tp, message, "poison", f"{type(exc).__name__}: {exc}")
                continue
            if refused is not None:  # a late event of a retired room (service/state/retention.py)
                await _dead_letter(publisher, tp, message, refused, f"room {sid}")
                continue
            if changed:
                mark_changed(sid)
            kind = event["type"]
            types[kind] = types.get(kind, 0) + 1
            if debug:
                log.debug(
                    "event folded",
                    room_sid=sid,
                    type=kind,
                    event_id=event["event_id"],
                    partition=tp.partition,
                    offset=message.offset,
                )
        # Retirement by event time, once per batch: a replay retires the same rooms in the end.
        retired = book.retire_due()
        outcome.retired.update((sid, book.retention.retired[sid]) for sid in retired)
        outcome.changed.difference_update(retired)
        if book.retention is not None:
            outcome.expired += book.retention.expired()
        out.commits[tp] = messages[-1].offset + 1
        partitions.advance(tp.partition, out.commits[tp])
        out.records += len(messages)
    return out


async def _dead_letter(
    publisher: Publisher, tp: TopicPartition, message: ConsumerRecord, reason: str, detail: str
) -> None:
    parked = await publisher.dead_letter(
        tp.topic, message.key, message.value, list(message.headers or ()), reason=reason, detail=detail
    )
    if not parked:  # never skip a record silently: redo the batch
        raise PublishError(f"could not dead-letter offset {message.offset}")

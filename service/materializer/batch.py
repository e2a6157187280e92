"""One batch of the loop: gather fetched records, fold them into their partitions' books, render the
changed rooms' documents. A record the fold cannot take (records.RecordError) is dead-lettered as
poison; any other error is a bug and propagates to the loop, which recovers from the committed
offsets without skipping anything.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from service import logs
from service.events import cloudevents, record as records
from service.kafka.producer import Publisher, PublishError
from service.materializer.partitions import OwnedPartitions
from service.state.book import RoomBook
from service.state.render import render

log = logs.get(__name__)

BATCH_RECORDS = 20000
# Under a backlog, fetched records are gathered into one batch (up to this many, or this long)
# so each room's document is rendered and published once per batch, not once per fetch.
COALESCE_RECORDS = 200_000
COALESCE_SECONDS = 2.0
BACKLOG_HINT = 500  # a fetch this large means more is waiting
YIELD_EVERY = 2000

Fetched = dict[TopicPartition, list[ConsumerRecord]]
StateItem = tuple[bytes, bytes, list[tuple[str, bytes]]]


async def gather(consumer: AIOKafkaConsumer) -> Fetched:
    """One batch: wait for records, then take whatever else is already fetched, within bounds.
    An idle stream gets each record at once; a backlog gets few, large batches."""
    batches = await consumer.getmany(timeout_ms=200, max_records=BATCH_RECORDS)
    count = sum(len(m) for m in batches.values())
    if count < BACKLOG_HINT:
        return batches  # no backlog: answer now (creates wait on this)
    deadline = time.monotonic() + COALESCE_SECONDS
    while count < COALESCE_RECORDS and time.monotonic() < deadline:
        more = await consumer.getmany(timeout_ms=100, max_records=BATCH_RECORDS)
        fetched = 0
        for tp, messages in more.items():
            batches.setdefault(tp, []).extend(messages)
            fetched += len(messages)
        count += fetched
        if fetched < BACKLOG_HINT:
            break  # caught up
    return batches


@dataclass
class Folded:
    changed: dict[str, RoomBook] = field(default_factory=dict)  # room SID -> the book holding it
    commits: dict[TopicPartition, int] = field(default_factory=dict)  # the next offset per partition
    types: Counter[str] = field(default_factory=Counter)  # folded records by event type
    records: int = 0  # consumed: folded or dead-lettered


async def fold(
    batches: Fetched, partitions: OwnedPartitions, consumer: AIOKafkaConsumer, publisher: Publisher
) -> Folded:
    out = Folded()
    for tp, messages in batches.items():
        book = partitions.book(tp.partition)
        if book is None:
            if tp in consumer.assignment():
                # Assigned but not rebuilt yet: read these again once it is, never skip them.
                consumer.seek(tp, messages[0].offset)
            continue  # or revoked while fetched: the new owner reads them
        for n, message in enumerate(messages, 1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # lets the fetcher send its next requests while we fold
            try:
                event = records.decode_for_fold(message.value)
                sid = book.apply(event)
            except records.RecordError as exc:  # undecodable, unknown version, or a shape the fold cannot take
                await _dead_letter(publisher, tp, message, exc)
                continue
            out.changed[sid] = book
            out.types[event["type"]] += 1
            log.debug(
                "event folded",
                room_sid=sid,
                type=event["type"],
                event_id=event["event_id"],
                partition=tp.partition,
                offset=message.offset,
            )
        out.commits[tp] = messages[-1].offset + 1
        partitions.advance(tp.partition, out.commits[tp])
        out.records += len(messages)
    return out


async def _dead_letter(
    publisher: Publisher, tp: TopicPartition, message: ConsumerRecord, exc: records.RecordError
) -> None:
    parked = await publisher.dead_letter(
        tp.topic,
        message.key,
        message.value,
        list(message.headers or ()),
        reason="poison",
        detail=f"{type(exc).__name__}: {exc}",
    )
    if not parked:  # never skip a record silently: redo the batch
        raise PublishError(f"could not dead-letter offset {message.offset}") from exc


async def render_changed(changed: dict[str, RoomBook]) -> list[StateItem]:
    """Each changed room's latest document of the batch, as state-topic records."""
    items = []
    for n, (sid, book) in enumerate(changed.items(), 1):
        if n % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        doc = render(book.rooms[sid])
        items.append((sid.encode(), orjson.dumps(doc), cloudevents.state_headers(doc)))
    return items

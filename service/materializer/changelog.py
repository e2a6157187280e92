"""Publishing a batch's outcome per partition: room documents, changelog entries, tombstones, snapshots.

The state and changelog topics are co-partitioned with the events topic: what the fold of events
partition p produces goes to partition p of both (written by number, whatever the key hashes to),
so one materializer is the only writer of each. Per partition and batch:

- each changed room: its document (state topic) and its fold state with its version (changelog);
- each retired room: a tombstone on both, and a `__retired__:<SID>` entry on the changelog that
  keeps late events out (and a tombstone for that entry once it expires);
- now and then a snapshot: every held room again, from known start offsets on both topics, once the
  changelog has grown by more than twice the rooms held since the last one (amortized, one extra
  write per change at most), so a restore reads about the rooms held, not all history;
- last, a checkpoint (service/kafka/checkpoints.py): where the latest snapshot starts, and the
  partition's event time.

Offsets are committed only after all of it is acknowledged (commits.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

import orjson
from aiokafka import TopicPartition

from service import logs
from service.events import cloudevents
from service.kafka.checkpoints import CHECKPOINT_KEY, PartitionReader, encode_checkpoint
from service.kafka.producer import Publisher, sent_end
from service.settings import Settings
from service.state import changelog as entries
from service.state.book import RoomBook
from service.state.render import render
from service.state.shapes import RoomState

log = logs.get(__name__)

YIELD_EVERY = 2000
# A snapshot is due once the changelog grew by more than max(SNAPSHOT_FACTOR x rooms held,
# SNAPSHOT_MIN_RECORDS) records since the last one.
SNAPSHOT_FACTOR = 2
SNAPSHOT_MIN_RECORDS = 5000  # a small partition restores from at most this many records (and its rooms)

Item = tuple[bytes, bytes | None, list[tuple[str, bytes]]]


@dataclass
class SnapshotMarks:
    """Where a partition's latest snapshot starts, and how much was written since."""

    changelog_start: int | None = None
    state_start: int | None = None
    written_since: int = 0

    def due(self, rooms_held: int) -> bool:
        if self.changelog_start is None:
            return True
        return self.written_since > max(SNAPSHOT_FACTOR * rooms_held, SNAPSHOT_MIN_RECORDS)


@dataclass
class PartitionOutcome:
    """What one batch did to one partition's book."""

    changed: set[str] = field(default_factory=set)  # room SIDs whose state changed (and are still held)
    retired: dict[str, int] = field(default_factory=dict)  # retired room SID -> its end time
    expired: list[str] = field(default_factory=list)  # retired SIDs no longer remembered


def state_document(state: RoomState, version: int | None) -> dict:
    doc = render(state)
    # Monotonic per room: the greatest events-topic offset folded into it (the history store's guard).
    doc["version"] = version
    return doc


class ChangelogWriter:
    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
    ) -> None:
        self._settings = settings
        self._publisher = publisher
        # Per topic-partition written since its assignment: the end after our last acknowledged
        # record. This materializer is the one writer of its partitions' numbers on both topics,
        # so that is at or before the partition's end: a snapshot can start there without probing
        # the broker (a new client and a fetch per partition: a stall of a tenth of a second and
        # more, on every snapshot).
        self._ends: dict[TopicPartition, int] = {}

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions (re)assigned: another owner may have written them since; probe them again."""
        numbers = set(partitions)
        for tp in [tp for tp in self._ends if tp.partition in numbers]:
            del self._ends[tp]

    def _note_end(self, tp: TopicPartition, future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        end = sent_end(future)
        if end > self._ends.get(tp, -1):
            self._ends[tp] = end

    async def _end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        async with PartitionReader(self._settings.kafka_bootstrap_servers, "roomevents-snapshot") as reader:
            return {tp: end for tp, (_, end) in (await reader.bounds(tps)).items()}

    async def publish(
        self,
        outcomes: dict[int, PartitionOutcome],
        books: Callable[[int], RoomBook | None],
        marks: Callable[[int], SnapshotMarks],
    ) -> list[asyncio.Future]:
        """Send every partition's records; returns the futures of their acks (commit after them)."""
        acks: list[asyncio.Future] = []
        snapshots: dict[int, RoomBook] = {}
        for partition, outcome in outcomes.items():
            book = books(partition)
            if book is None:
                continue
            # This batch's retirements go first: a snapshot starts after them, so a restore from it
            # never reads the tombstones of rooms retired before it.
            state_items: list[Item] = []
            changelog_items: list[Item] = []
            for sid, ended_ms in outcome.retired.items():
                state_items.append((sid.encode(), None, []))
                changelog_items.append((sid.encode(), None, []))
                changelog_items.append((entries.retired_key(sid), entries.encode_retired(ended_ms), []))
            changelog_items.extend((entries.retired_key(sid), None, []) for sid in outcome.expired)
            mark = marks(partition)
            mark.written_since += len(changelog_items) + len(outcome.changed)
            if mark.due(len(book.rooms)):
                snapshots[partition] = book
            else:
                rooms_state, rooms_changelog = await self._room_items(book, outcome.changed)
                state_items += rooms_state
                changelog_items += rooms_changelog
                changelog_items.append(self._checkpoint(book, mark))
            acks += await self._send(partition, state_items, changelog_items)
        if snapshots:
            acks += await self._snapshot(snapshots, marks)
        return acks

    async def _snapshot(
        self,
        books: dict[int, RoomBook],
        marks: Callable[[int], SnapshotMarks],
    ) -> list[asyncio.Future]:
        """Every held room of these partitions again, from the ends of both topics' partitions."""
        settings = self._settings
        # A snapshot may start anywhere at or before its first record: a restore that starts earlier
        # reads some older entries first, which the snapshot's then replace. So the start is the end
        # after our last acknowledged write, without waiting for the writes still in flight (that
        # wait was a stall of a broker round trip or two on every snapshot).
        tps = [TopicPartition(t, p) for p in books for t in (settings.changelog_topic, settings.state_topic)]
        ends = {tp: self._ends[tp] for tp in tps if tp in self._ends}
        unknown = [tp for tp in tps if tp not in ends]
        if unknown:  # not written since assignment: ends probed (see PartitionReader.bounds)
            ends.update(await self._end_offsets(unknown))
        acks: list[asyncio.Future] = []
        for partition, book in books.items():
            mark = marks(partition)
            mark.changelog_start = ends[TopicPartition(settings.changelog_topic, partition)]
            mark.state_start = ends[TopicPartition(settings.state_topic, partition)]
            state_items, changelog_items = await self._room_items(book, book.rooms.keys())
            # Remembered retired rooms are part of the state a restore needs (late events stay out).
            changelog_items.extend(
                (entries.retired_key(sid), entries.encode_retired(ended), []) for sid, ended in retired_of(book)
            )
            mark.written_since = len(changelog_items)
            changelog_items.append(self._checkpoint(book, mark))
            log.info(
                "snapshot written",
                partition=partition,
                rooms=len(book.rooms),
                changelog_start=mark.changelog_start,
                state_start=mark.state_start,
            )
            acks += await self._send(partition, state_items, changelog_items)
        return acks

    def _checkpoint(self, book: RoomBook, mark: SnapshotMarks) -> Item:
        watermark = book.retention.watermark_ms if book.retention is not None else None
        return (CHECKPOINT_KEY, encode_checkpoint(mark.changelog_start, mark.state_start, watermark), [])

    async def _send(self, partition: int, state_items: list[Item], changelog_items: list[Item]) -> list[asyncio.Future]:
        acks: list[asyncio.Future] = []
        for topic, items in (
            (self._settings.state_topic, state_items),
            (self._settings.changelog_topic, changelog_items),
        ):
            sent = await self._publisher.send_many(topic, items, partition=partition)
            if sent:  # acknowledged in order: the last one's ack tells the end
                sent[-1].add_done_callback(partial(self._note_end, TopicPartition(topic, partition)))
            acks += sent
        return acks

    async def _room_items(self, book: RoomBook, sids: Iterable[str]) -> tuple[list[Item], list[Item]]:
        state_items: list[Item] = []
        changelog_items: list[Item] = []
        for n, sid in enumerate(list(sids), 1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            state = book.rooms.get(sid)  # an ended room is decompressed: once
            if state is None:
                continue
            version = book.versions.get(sid)
            doc = state_document(state, version)
            key = sid.encode()
            state_items.append((key, orjson.dumps(doc), cloudevents.state_headers(doc)))
            changelog_items.append((key, entries.encode_room(state, version), []))
        return state_items, changelog_items


def retired_of(book: RoomBook) -> list[tuple[str, int]]:
    return list(book.retention.retired.items()) if book.retention is not None else []

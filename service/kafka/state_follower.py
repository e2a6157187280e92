"""Follows the state topic into a RoomIndex (each API process has one).

Not a consumer group: every reader needs every room. Each partition is read from the start of
the materializer's latest snapshot of it (service/kafka/checkpoints.py), so a start costs the
rooms held, not all history; a tombstone (a retired room) drops the room from the view.
Waiters let a request wait until the materializer's document for a room arrives
(read-your-writes for creates and completes).
"""

from __future__ import annotations

import asyncio
from typing import Callable

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from service import logs
from service.kafka.checkpoints import RESERVED_PREFIX, PartitionReader, restore_starts
from service.metrics import Metrics
from service.settings import Settings
from service.state.index import Doc, RoomIndex

log = logs.get(__name__)


class StateFollower:
    def __init__(self, settings: Settings, metrics: Metrics, index: RoomIndex | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.index = index or RoomIndex()
        self.index.listeners.append(self._wake)
        self.waiters: dict[str, list[tuple[Callable[[Doc], bool], asyncio.Future]]] = {}
        self.caught_up = asyncio.Event()
        self.consumer: AIOKafkaConsumer | None = None
        self.task: asyncio.Task | None = None
        # Per partition: the next offset to read; SSE uses these as resumable positions.
        self.positions: dict[int, int] = {}

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id="roomevents-state-follower",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # On Tansu a state change reaches views and streams within about half of it (see materializer).
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
        )
        await self.consumer.start()
        partitions = await self._partitions()
        tps = [TopicPartition(self.settings.state_topic, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        # One reader for both: where the latest snapshots start, and where the partitions end now.
        async with PartitionReader(self.settings.kafka_bootstrap_servers, "roomevents-state-restore") as reader:
            starts = await self._snapshot_starts(reader, sorted(partitions))
            ends = {tp: end for tp, (_, end) in (await reader.bounds(tps)).items()}
        await self.consumer.seek_to_beginning(*tps)
        for tp in tps:
            if starts.get(tp.partition):
                self.consumer.seek(tp, starts[tp.partition])
            self.positions[tp.partition] = starts.get(tp.partition, 0)
        self._catch_up_targets = {tp.partition: off for tp, off in ends.items()}
        # Every partition has a position from the start, so a stream id names all of them (an empty
        # one would make an EventSource reconnect without Last-Event-ID, getting a snapshot).
        for tp in tps:
            self.positions.setdefault(tp.partition, 0)
        if all(off == 0 for off in ends.values()):
            self.caught_up.set()
        self.task = asyncio.create_task(self._run(), name="state-follower")

    async def _snapshot_starts(self, reader: PartitionReader, partitions: list[int]) -> dict[int, int]:
        """Per state partition, where the materializer's latest snapshot of it starts (0: from the beginning)."""
        try:
            checkpoints = await restore_starts(reader, self.settings.changelog_topic, partitions)
        except Exception as exc:  # no changelog (yet): the whole state topic is read
            log.warning("no changelog checkpoints; reading the state topic from the beginning", error=repr(exc))
            return {}
        starts = {p: c["state_start"] for p, c in checkpoints.items() if c and isinstance(c.get("state_start"), int)}
        log.info("state view restore", from_offsets=starts)
        return starts

    async def _partitions(self) -> set[int]:
        for _ in range(100):
            await self.consumer._client.force_metadata_update()
            partitions = self.consumer.partitions_for_topic(self.settings.state_topic)
            if partitions:
                return partitions
            await asyncio.sleep(0.1)
        raise RuntimeError(f"state topic {self.settings.state_topic!r} does not exist")

    async def _run(self) -> None:
        assert self.consumer is not None
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=500, max_records=5000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker away: keep trying, the index stays readable
                log.warning("state follower fetch failed", error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            for tp, messages in batches.items():
                for message in messages:
                    if message.value is None:  # a tombstone: the room was retired
                        if message.key and not message.key.startswith(RESERVED_PREFIX):
                            self.index.remove(message.key.decode())
                        self.positions[tp.partition] = message.offset + 1
                        continue
                    try:
                        doc = orjson.loads(message.value)
                        if not isinstance(doc, dict) or not isinstance(doc.get("sid"), str):
                            raise ValueError("not a room document")
                    except (orjson.JSONDecodeError, ValueError) as exc:
                        # The view must go on following: one bad record is logged and skipped.
                        log.error("state record skipped", partition=tp.partition, offset=message.offset, error=str(exc))
                        self.positions[tp.partition] = message.offset + 1
                        continue
                    # Where this document sits on the state topic: SSE clients resume from it.
                    if not self.index.put(doc, message.value, partition=tp.partition, offset=message.offset):
                        self.metrics.conflicting_documents.inc()
                        log.error(
                            "state document of a second, partial fold ignored: the room's records "
                            "were keyed by more than one name",
                            room_sid=doc["sid"],
                            partition=tp.partition,
                            offset=message.offset,
                            unique_name=doc.get("unique_name"),
                        )
                    self.positions[tp.partition] = message.offset + 1
            if not self.caught_up.is_set() and all(
                self.positions.get(p, 0) >= end for p, end in self._catch_up_targets.items()
            ):
                self.caught_up.set()
                log.info("state view caught up", rooms=len(self.index.docs))

    def _wake(self, doc: Doc) -> None:
        if doc.get("retired"):
            return  # waiters wait for documents; a retired room's marker never satisfies them
        waiters = self.waiters.get(doc["sid"])
        if not waiters:
            return
        keep = []
        for predicate, future in waiters:
            if future.done():
                continue
            if predicate(doc):
                future.set_result(doc)
            else:
                keep.append((predicate, future))
        if keep:
            self.waiters[doc["sid"]] = keep
        else:
            del self.waiters[doc["sid"]]

    async def wait_for(self, sid: str, predicate: Callable[[Doc], bool], timeout: float) -> Doc:
        """The room's document once `predicate` holds for it; TimeoutError otherwise."""
        doc = self.index.docs.get(sid)
        if doc is not None and predicate(doc):
            return doc
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(sid, []).append((predicate, future))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            if not future.done():
                future.cancel()
            pending = [w for w in self.waiters.get(sid, []) if w[1] is not future]
            if pending:
                self.waiters[sid] = pending
            else:
                self.waiters.pop(sid, None)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
        if self.consumer is not None:
            await self.consumer.stop()

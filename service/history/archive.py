"""`roomevents archive`: a consumer group reading the state topic into the history store.

Each fetched batch is written (service/history/store.py `upsert`: the newest document per room,
never moving a room backwards) and only then are its offsets committed. So:

* the database is down or refuses connections: the archive pauses its partitions (it keeps polling,
  so it stays in its group), logs it, and retries the same batch with backoff (0.5 s doubling to
  30 s); nothing is committed meanwhile, nothing is lost, and the ingress and the materializer go on;
* the broker is down: fetches fail and are retried; rows already written are simply written again
  after a restart (the upsert is idempotent);
* a rebalance while a batch waits: the batch is dropped and every assigned partition goes back to
  its committed offset.

Skipped, with their offsets committed: tombstones (value None: the room left the hot state, its row
stays), records whose key starts with "__" (reserved for records that are not rooms, as
service/kafka/checkpoints.py RESERVED_PREFIX; metric reason "checkpoint"), and records that are not
room documents (logged). A document the database refuses (retrying cannot help) is logged and
skipped alone; the rest of its batch is written.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from service import logs
from service.history import migrate, rows
from service.history.store import BadDocument, HistoryStore, HistoryUnavailable
from service.metrics import Metrics
from service.settings import Settings

log = logs.get(__name__)

MAX_RECORDS = 5000
FIRST_RETRY_S = 0.5
MAX_RETRY_S = 30.0
LAG_INTERVAL_S = 1.0


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner: "Archive") -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.owner.generation += 1
        for tp in revoked:
            self.owner.metrics.forget_archive_partition(tp.partition)
            self.owner.positions.pop(tp.partition, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.owner.generation += 1
        self.owner.assigned = True
        log.info("archive partitions assigned", partitions=sorted(tp.partition for tp in assigned))


class Archive:
    def __init__(self, settings: Settings, metrics: Metrics | None = None, store: HistoryStore | None = None) -> None:
        if not settings.database_url and store is None:
            raise ValueError("the archive needs ROOMEVENTS_DATABASE_URL")
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.store = store or HistoryStore(settings.database_url)
        self.consumer: AIOKafkaConsumer | None = None
        self.stopping = asyncio.Event()
        self.generation = 0  # bumped by every rebalance: a waiting batch of an older one is dropped
        self.assigned = False
        self.migrated = False
        self.paused_since: float | None = None
        self.written = 0  # room rows written (for tests and logs)
        self.positions: dict[int, int] = {}  # per partition: the next offset to read (for the lag gauge)
        self._last_lag = 0.0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.settings.archive_group,
            client_id="roomevents-archive",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=max(500, self.settings.session_timeout_ms // 6),
            max_poll_interval_ms=300000,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self.consumer.start()
        self.consumer.subscribe([self.settings.state_topic], listener=_Rebalance(self))
        log.info(
            "archive started",
            topic=self.settings.state_topic,
            group=self.settings.archive_group,
            database=self.store.where,
        )

    @property
    def paused(self) -> bool:
        return self.paused_since is not None

    @property
    def ready(self) -> bool:
        return self.assigned and self.migrated and not self.paused

    async def stop(self) -> None:
        self.stopping.set()

    async def close(self) -> None:
        if self.consumer is not None:
            try:
                await self.consumer.stop()  # leaves the group; nothing uncommitted was written-and-lost
            except Exception as exc:
                log.warning("archive consumer stop failed", error=repr(exc))
        await self.store.close()

    async def _pause_for(self, seconds: float) -> None:
        """Wait, still polling with every partition paused (no records come), so that the group keeps
        this member (max.poll.interval) while the database is away."""
        assert self.consumer is not None
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set() and time.monotonic() < deadline:
            left = max(0.05, min(1.0, deadline - time.monotonic()))
            try:
                self.consumer.pause(*self.consumer.assignment())
                await self.consumer.getmany(timeout_ms=int(left * 1000), max_records=1)
            except Exception:  # the broker may be away too: just wait
                await asyncio.sleep(left)

    # ------------------------------------------------------------ the loop

    async def _migrate(self) -> bool:
        delay = FIRST_RETRY_S
        while not self.stopping.is_set():
            try:
                await self.store.migrate()
                self.migrated = True
                return True
            except HistoryUnavailable as exc:
                log.error(
                    "history store unavailable: cannot apply the schema yet; retrying",
                    database=self.store.where,
                    error=str(exc),
                    retry_in_s=delay,
                )
                self.metrics.archive_paused.set(1)
                await self._pause_for(delay)
                delay = min(delay * 2, MAX_RETRY_S)
        return False

    async def run(self) -> None:
        assert self.consumer is not None
        if not await self._migrate():
            return
        self.metrics.archive_paused.set(0)
        self.consumer.resume(*self.consumer.assignment())
        fetch_delay = FIRST_RETRY_S
        while not self.stopping.is_set():
            try:
                batches = await self.consumer.getmany(timeout_ms=500, max_records=MAX_RECORDS)
                fetch_delay = FIRST_RETRY_S
            except KafkaError as exc:
                log.warning("archive fetch failed; retrying", error=repr(exc), retry_in_s=fetch_delay)
                await asyncio.sleep(fetch_delay)
                fetch_delay = min(fetch_delay * 2, MAX_RETRY_S)
                continue
            self._report_lag()
            if not batches:
                continue
            generation = self.generation
            docs, offsets = self._decode(batches)
            if not await self._write(docs, generation):
                if not self.stopping.is_set():
                    await self._rewind()
                continue
            await self._commit(offsets)

    def _decode(self, batches: dict) -> tuple[list[dict], dict[TopicPartition, int]]:
        docs: list[dict] = []
        offsets: dict[TopicPartition, int] = {}
        for tp, messages in batches.items():
            for message in messages:
                offsets[tp] = message.offset + 1
                self.positions[tp.partition] = message.offset + 1
                key = message.key.decode("utf-8", "replace") if message.key else ""
                if key.startswith("__"):
                    self.metrics.archive_skipped.labels("checkpoint").inc()
                    continue
                if message.value is None:
                    # The room left the hot state: its row stays.
                    self.metrics.archive_skipped.labels("tombstone").inc()
                    continue
                try:
                    doc = orjson.loads(message.value)
                    rows.check_document(doc)
                except (orjson.JSONDecodeError, rows.NotARoomDocument) as exc:
                    self.metrics.archive_skipped.labels("invalid").inc()
                    log.error(
                        "state record is not a room document; not archived",
                        partition=tp.partition,
                        offset=message.offset,
                        key=key[:80],
                        error=str(exc),
                    )
                    continue
                if b"\\u0000" in message.value:
                    doc = rows.strip_nul(doc)  # jsonb cannot hold U+0000
                docs.append(doc)
        return docs, offsets

    async def _write(self, docs: list[dict], generation: int) -> bool:
        """Write `docs`, retrying while the database is unavailable. False when the batch must be
        dropped (stopping, or a rebalance happened meanwhile)."""
        delay = FIRST_RETRY_S
        attempts = 0
        while True:
            if self.stopping.is_set() or generation != self.generation:
                return False
            attempts += 1
            try:
                written = await self._upsert(docs)
            except HistoryUnavailable as exc:
                if self.paused_since is None:
                    self.paused_since = time.monotonic()
                    self.metrics.archive_paused.set(1)
                    log.error(
                        "history store unavailable: archive paused (nothing committed; the batch is retried)",
                        database=self.store.where,
                        error=str(exc),
                        rooms=len(docs),
                        retry_in_s=delay,
                    )
                else:
                    log.warning(
                        "history store still unavailable; retrying",
                        error=str(exc),
                        attempt=attempts,
                        paused_s=round(time.monotonic() - self.paused_since, 1),
                        retry_in_s=delay,
                    )
                await self._pause_for(delay)
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            if self.paused_since is not None:
                log.info(
                    "history store back: archive resumed",
                    paused_s=round(time.monotonic() - self.paused_since, 1),
                    attempts=attempts,
                )
                self.paused_since = None
                self.metrics.archive_paused.set(0)
                if self.consumer is not None:
                    self.consumer.resume(*self.consumer.assignment())
            self.written += written
            self.metrics.archive_rows.inc(written)
            return True

    async def _upsert(self, docs: list[dict]) -> int:
        try:
            return await self.store.upsert(docs)
        except BadDocument:
            pass
        # One of the documents is refused: write them one by one and skip only what is refused.
        written = 0
        for doc in docs:
            try:
                written += await self.store.upsert([doc])
            except BadDocument as exc:
                self.metrics.archive_skipped.labels("refused").inc()
                log.error(
                    "room document refused by the history store; skipped", room_sid=doc.get("sid"), error=str(exc)
                )
        return written

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self.consumer is not None
        mine = self.consumer.assignment()
        offsets = {tp: off for tp, off in offsets.items() if tp in mine}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:  # the rows are written: re-reading them after a restart is harmless
            log.warning("archive commit failed; those records will be written again", error=repr(exc))

    async def _rewind(self) -> None:
        """Back to the committed offsets of every assigned partition (a dropped batch is read again)."""
        assert self.consumer is not None
        try:
            assignment = self.consumer.assignment()
            self.consumer.resume(*assignment)
            for tp in assignment:
                committed = await self.consumer.committed(tp)
                if committed is None:
                    await self.consumer.seek_to_beginning(tp)
                else:
                    self.consumer.seek(tp, committed)
        except Exception as exc:
            log.warning("archive rewind failed; retrying on the next batch", error=repr(exc))
            self.generation += 1

    def _report_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < LAG_INTERVAL_S or self.consumer is None:
            return
        self._last_lag = now
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                position = self.positions.get(tp.partition, 0)
                self.metrics.archive_lag.labels(str(tp.partition)).set(max(0, highwater - position))

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "partitions": sorted(tp.partition for tp in self.consumer.assignment())
            if self.consumer is not None
            else [],
            "paused": self.paused,
            "migrated": self.migrated,
            "rows_written": self.written,
        }


async def migrate_once(settings: Settings) -> list[str]:
    """`roomevents migrate`: apply the pending migrations and return their names."""
    store = HistoryStore(settings.database_url)
    try:
        return await store.migrate()
    finally:
        await store.close()


__all__ = ["Archive", "migrate_once", "migrate"]

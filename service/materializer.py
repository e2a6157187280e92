"""The materializer shell: consume room events, fold, publish room documents, then commit.

At-least-once in, exactly-once in effect: the fold is idempotent, so reprocessing after a crash or
a rebalance republishes the same documents. Offsets are committed only after the state records
of the batch are acknowledged. On assignment each partition's rooms are rebuilt by replaying its
events up to the committed offset before any new event is applied.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Callable

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from service import logs
from service.events import cloudevents, record as records
from service.kafka.producer import PublishError, Publisher
from service.metrics import Metrics
from service.settings import Settings
from service.state.book import RoomBook, timer_due, timer_event
from service.state.fold import render, status

log = logs.get(__name__)

BATCH_RECORDS = 20000
# Under a backlog, fetched records are gathered into one batch (up to this many, or this long)
# so each room's document is rendered and published once per batch, not once per fetch.
COALESCE_RECORDS = 200_000
COALESCE_SECONDS = 2.0
BACKLOG_HINT = 500  # a fetch this large means more is waiting
GAUGE_INTERVAL_S = 1.0
YIELD_EVERY = 2000
TIMER_INTERVAL_S = 1.0
REBUILD_IDLE_PASSES = 6  # empty fetches (0.5 s each) before a replay is taken as complete


class NeedsRebuild(RuntimeError):
    pass


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner: "Materializer") -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked):
        # The coordinator runs this beside the main loop: wait for the batch in hand to be
        # published and committed before the partitions go.
        async with self.owner.batch_lock:
            self.owner.ready = False
            try:
                await self.owner.drain()
            except Exception as exc:  # its offsets stay uncommitted: the next owner redoes the batch
                log.warning("last batch before revocation failed", error=repr(exc))
            finally:
                for tp in revoked:
                    self.owner.books.pop(tp.partition, None)
                    self.owner.positions.pop(tp.partition, None)
                    self.owner.metrics.forget_partition(tp.partition)
        if revoked:
            log.info("partitions revoked", partitions=sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned):
        # Records of these partitions may already be fetched: none is folded before the rebuild ends.
        # aiokafka logs and swallows a listener's exception: on failure the partitions stay without
        # books, and the main loop rebuilds them (and seeks back) before folding anything.
        async with self.owner.batch_lock:
            try:
                await self.owner.rebuild(assigned)
            except Exception as exc:
                log.error("rebuild on assignment failed; the loop will retry", error=repr(exc))
                self.owner.rebuild_failed = True
                return
            self.owner.ready = True


class Materializer:
    def __init__(self, settings: Settings, metrics: Metrics | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.books: dict[int, RoomBook] = {}
        self.positions: dict[int, int] = {}  # per owned partition: the next offset to fold
        self.publisher = Publisher(settings, self.metrics, client_id="roomevents-materializer")
        self.consumer: AIOKafkaConsumer | None = None
        self.ready = False
        self.rebuild_failed = False
        self.batch_lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.timers_sent: set[str] = set()
        self.inflight: asyncio.Task | None = None
        self._last_gauges = 0.0
        self.processed = 0  # records consumed (folded or dead-lettered), for benchmarks and logs
        self._last_timer_scan = 0.0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.publisher.start()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.settings.consumer_group,
            client_id="roomevents-materializer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=max(500, self.settings.session_timeout_ms // 6),
            max_poll_interval_ms=300000,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self.consumer.start()
        self.consumer.subscribe([self.settings.events_topic], listener=_Rebalance(self))
        log.info("materializer started", topic=self.settings.events_topic, group=self.settings.consumer_group)

    async def run(self) -> None:
        """Consume until stop() is called; then commit what was processed and leave the group."""
        assert self.consumer is not None
        while not self.stopping.is_set():
            try:
                batches = await self._gather()
            except KafkaError as exc:
                log.warning("fetch failed; retrying", error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            async with self.batch_lock:
                try:
                    if self.rebuild_failed:
                        raise NeedsRebuild("the rebuild on assignment failed")
                    if batches:
                        await self.process(batches)
                    await self.maybe_fire_timers()
                except Exception as exc:  # a publish, commit or rebuild failed: redo from the committed offsets
                    log.error("batch failed; rebuilding from committed offsets", error=repr(exc))
                    self.ready = False
                    await self.recover()
        async with self.batch_lock:
            await self.drain()

    async def _gather(self) -> dict:
        """One batch: wait for records, then take whatever else is already fetched, within bounds.
        An idle stream gets each record at once; a backlog gets few, large batches."""
        batches = await self.consumer.getmany(timeout_ms=200, max_records=BATCH_RECORDS)
        count = sum(len(m) for m in batches.values())
        if count < BACKLOG_HINT:
            return batches  # no backlog: answer now (creates wait on this)
        deadline = time.monotonic() + COALESCE_SECONDS
        while count < COALESCE_RECORDS and time.monotonic() < deadline:
            more = await self.consumer.getmany(timeout_ms=100, max_records=BATCH_RECORDS)
            fetched = 0
            for tp, messages in more.items():
                batches.setdefault(tp, []).extend(messages)
                fetched += len(messages)
            count += fetched
            if fetched < BACKLOG_HINT:
                break  # caught up
        return batches

    async def stop(self) -> None:
        self.stopping.set()

    async def close(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()  # leaves the group
        await self.publisher.stop()

    # ------------------------------------------------------------ the loop body

    async def process(self, batches) -> None:
        changed: dict[str, RoomBook] = {}
        commits: dict[TopicPartition, int] = {}
        folded: Counter[str] = Counter()
        for tp, messages in batches.items():
            book = self.books.get(tp.partition)
            if book is None:
                if tp in self.consumer.assignment():
                    # Assigned but not rebuilt yet: read these again once it is, never skip them.
                    self.consumer.seek(tp, messages[0].offset)
                continue  # or revoked while fetched: the new owner reads them
            for n, message in enumerate(messages, 1):
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # lets the fetcher send its next requests while we fold
                try:
                    event = records.decode_for_fold(message.value)
                    sid = book.apply(event)
                except Exception as exc:  # undecodable, unknown version, or a shape the fold cannot take
                    parked = await self.publisher.dead_letter(tp.topic, message.key, message.value,
                                                              list(message.headers or ()), reason="poison",
                                                              detail=f"{type(exc).__name__}: {exc}")
                    if not parked:  # never skip a record silently: redo the batch
                        raise PublishError(f"could not dead-letter offset {message.offset}") from exc
                    continue
                changed[sid] = book
                folded[event["type"]] += 1
                log.debug("event folded", room_sid=sid, type=event["type"], event_id=event["event_id"],
                          partition=tp.partition, offset=message.offset)
            commits[tp] = messages[-1].offset + 1
            self.positions[tp.partition] = commits[tp]
            self.processed += len(messages)
        # Only each room's latest state of the batch is published.
        items = []
        for n, (sid, book) in enumerate(changed.items(), 1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            doc = render(book.rooms[sid])
            items.append((sid.encode(), orjson.dumps(doc), cloudevents.state_headers(doc)))
        acks = await self.publisher.send_many(self.settings.state_topic, items)
        # Pipelined: the next batch is folded while this one's states are acknowledged; offsets are
        # committed in batch order, each only after its own states are acknowledged.
        previous, self.inflight = self.inflight, None
        if previous is not None:
            await previous
        self.inflight = asyncio.create_task(self._commit_after(acks, commits))
        for kind, count in folded.items():
            self.metrics.records.labels(kind).inc(count)
        if changed:
            log.info("batch materialized", records=sum(len(m) for m in batches.values()), rooms=len(changed))

    async def _commit_after(self, acks, commits) -> None:
        if acks:
            await asyncio.gather(*acks)
        try:
            await self.consumer.commit(commits)
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance took the partitions: the next owner reprocesses and republishes the same states.
            log.warning("offset commit failed after rebalance", error=repr(exc))
        if time.monotonic() - self._last_gauges >= GAUGE_INTERVAL_S:
            self._last_gauges = time.monotonic()
            self._update_gauges(commits)

    async def drain(self) -> None:
        """Wait until the last batch's states are acknowledged and its offsets committed."""
        previous, self.inflight = self.inflight, None
        if previous is not None:
            await previous

    async def recover(self) -> None:
        """After a failed batch: forget it, rebuild every owned partition and resume from the
        committed offsets (at-least-once: the batch is folded and published again)."""
        try:
            await self.drain()
        except Exception as exc:
            log.error("pending batch failed too", error=repr(exc))
        delay = 0.5
        while not self.stopping.is_set():
            try:
                assigned = self.consumer.assignment()
                await self.rebuild(assigned)
                if assigned:
                    await self.consumer.seek_to_committed(*assigned)
                self.rebuild_failed = False
                self.ready = True
                return
            except Exception as exc:  # broker away: keep trying, not ready meanwhile
                log.error("recovery failed; retrying", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _update_gauges(self, commits) -> None:
        for tp, offset in commits.items():
            high = self.consumer.highwater(tp)
            if high is not None:
                self.metrics.consumer_lag.labels(str(tp.partition)).set(max(0, high - offset))
        counts = {"in-progress": 0, "completed": 0, "failed": 0}
        for book in self.books.values():
            for state in book.rooms.values():
                counts[status(state)] += 1
        for key, value in counts.items():
            self.metrics.rooms.labels(key).set(value)

    # ------------------------------------------------------------ recovery

    async def rebuild(self, assigned) -> None:
        """Replay each assigned partition's events up to its committed offset (no publishing).
        The books are installed only once complete: a failed replay leaves the partition unbuilt."""
        started = time.perf_counter()
        books: dict[int, RoomBook] = {tp.partition: RoomBook() for tp in assigned}
        targets: dict[TopicPartition, int] = {}
        for tp in assigned:
            committed = await self.consumer.committed(tp)
            if committed:
                targets[tp] = committed
        replayed = 0
        if targets:
            reader = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap_servers,
                                      enable_auto_commit=False, auto_offset_reset="earliest",
                                      client_id="roomevents-rebuild")
            await reader.start()
            try:
                reader.assign(list(targets))
                for tp in targets:
                    reader.seek(tp, 0)  # below the log start, auto_offset_reset=earliest applies
                remaining = dict(targets)
                idle_passes = 0
                while remaining:
                    batches = await reader.getmany(*remaining, timeout_ms=500, max_records=BATCH_RECORDS)
                    idle_passes = 0 if batches else idle_passes + 1
                    for tp, messages in batches.items():
                        book = books[tp.partition]
                        for message in messages:
                            if message.offset >= remaining[tp]:
                                break
                            try:
                                book.apply(records.decode_for_fold(message.value))
                                replayed += 1
                            except Exception:
                                pass  # dead-lettered when first consumed
                    for tp in list(remaining):
                        if await reader.position(tp) >= remaining[tp]:
                            del remaining[tp]
                    if remaining and idle_passes >= REBUILD_IDLE_PASSES:
                        # The log holds less than was committed (retention, a recreated topic).
                        log.warning("replay ended before the committed offset",
                                    partitions={tp.partition: off for tp, off in remaining.items()})
                        break
            finally:
                await reader.stop()
        for tp in assigned:
            self.books[tp.partition] = books[tp.partition]
            self.positions[tp.partition] = targets.get(tp, 0)
        log.info("partitions assigned and rebuilt", partitions=sorted(tp.partition for tp in assigned),
                 replayed=replayed, seconds=round(time.perf_counter() - started, 3))

    # ------------------------------------------------------------ timers

    async def maybe_fire_timers(self) -> None:
        if not self.settings.timers_enabled:
            return
        wall = time.monotonic()
        if wall - self._last_timer_scan < TIMER_INTERVAL_S:
            return
        self._last_timer_scan = wall
        if not self.ready:
            return
        now_ms = int(self.clock() * 1000)
        for partition, book in list(self.books.items()):
            # A timer decides from the room's whole history: only where every record is folded.
            high = self.consumer.highwater(TopicPartition(self.settings.events_topic, partition))
            if high is None or self.positions.get(partition, 0) < high:
                continue
            for sid, state in list(book.rooms.items()):
                if sid in self.timers_sent:
                    if status(state) != "in-progress":
                        self.timers_sent.discard(sid)  # its room-ended came back through the topic
                    continue
                due = timer_due(state, now_ms)
                if due is None:
                    continue
                event = timer_event(state, due, now_ms)
                try:
                    await self.publisher.publish(self.settings.events_topic, records.partition_key(event),
                                                 records.encode(event), cloudevents.event_headers(event))
                except Exception as exc:
                    log.warning("timer publish failed; will retry", room_sid=sid, error=repr(exc))
                    continue
                self.timers_sent.add(sid)
                log.info("room ended by timeout", room_sid=sid, end_time=event["occurred_at"])

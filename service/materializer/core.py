"""The materializer: consume room events, fold, publish room documents, then commit.

At-least-once in, exactly-once in effect: the fold is idempotent, so reprocessing after a crash or
a rebalance republishes the same documents. Offsets are committed only after the state records
of the batch are acknowledged (commits.py). On assignment each partition's rooms are rebuilt before
any new event is applied (recovery.py). This class is the shell that runs the loop and owns the
state; its collaborators each do one thing: batch.py (fetch, fold), commits.py, recovery.py,
timers.py, gauges.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from service import logs
from service.kafka.producer import Publisher, PublishError
from service.materializer import batch
from service.materializer.changelog import ChangelogWriter
from service.materializer.commits import CommitPipeline
from service.materializer.gauges import Gauges
from service.materializer.partitions import OwnedPartitions
from service.materializer.recovery import Recovery
from service.materializer.timers import Timers
from service.metrics import Metrics
from service.settings import Settings
from service.state.book import RoomBook

log = logs.get(__name__)


class NeedsRebuild(RuntimeError):
    pass


# What a batch can fail with while the code is right (the broker away, a rebalance mid-batch): logged
# in one line. Anything else is a bug and is logged with its traceback. Both recover the same way.
_EXPECTED = (KafkaError, PublishError, NeedsRebuild, TimeoutError)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, materializer: Materializer) -> None:
        self._materializer = materializer

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self._materializer._revoke(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        await self._materializer._assign(assigned)


class Materializer:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        clock: Callable[[], float] = time.time,
        client_id: str = "roomevents-materializer",
    ) -> None:
        self._settings = settings
        self._metrics = metrics or Metrics()
        # Of the producer and the group member: one per worker process (roomevents-materializer-<n>).
        self._client_id = client_id
        self._publisher = Publisher(settings, self._metrics, client_id=client_id)
        self._partitions = OwnedPartitions()
        self._timers = Timers(settings, self._publisher, clock)
        self._consumer: AIOKafkaConsumer | None = None
        self._recovery: Recovery | None = None  # these need the consumer: made in start()
        self._changelog: ChangelogWriter | None = None
        self._commits: CommitPipeline | None = None
        self._gauges: Gauges | None = None
        self._ready = False
        self._rebuild_failed = False
        self._batch_lock = asyncio.Lock()  # one batch, rebalance or recovery at a time
        self._stopping = asyncio.Event()
        self._processed = 0
        self._committed: dict[int, int] = {}

    # ------------------------------------------------------------ what others may read

    @property
    def ready(self) -> bool:
        """Every owned partition is rebuilt and the loop is folding."""
        return self._ready

    @property
    def partitions(self) -> tuple[int, ...]:
        """The partitions owned and rebuilt, in order."""
        return self._partitions.numbers

    @property
    def books(self) -> Mapping[int, RoomBook]:
        """The rooms per owned partition (a read-only view, for tests and benchmarks)."""
        return self._partitions.books

    @property
    def last_restore(self) -> dict:
        """How each partition of the latest assignment was restored (changelog, replay or empty)."""
        return self._recovery.last if self._recovery is not None else {}

    @property
    def processed(self) -> int:
        """Records consumed (folded or dead-lettered), for benchmarks and logs."""
        return self._processed

    @property
    def committed(self) -> Mapping[int, int]:
        """The next offset committed per partition (a read-only view, for tests and benchmarks)."""
        return self._committed

    @property
    def timers_sent(self) -> frozenset[str]:
        """Rooms ended by a timer whose room-ended has not come back through the topic yet."""
        return self._timers.sent

    async def scan_timers_now(self) -> None:
        """The timer scan at once, between batches (the loop runs it at most once a second)."""
        async with self._batch_lock:
            await self._timers.maybe_fire(self._ready, self._partitions, self._consumer.highwater, now=True)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._publisher.start()
        settings = self._settings
        self._consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.consumer_group,
            client_id=self._client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(500, settings.session_timeout_ms // 6),
            max_poll_interval_ms=300000,
            # Kafka answers a fetch as soon as a record arrives; Tansu up to about half of this wait
            # later (measured: bench/broker_hop.py), so on Tansu it is the materializer's share of a
            # callback's latency to the state topic, and each idle fetch costs the broker CPU.
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self._recovery = Recovery(settings, consumer)
        self._changelog = ChangelogWriter(settings, self._publisher)
        self._gauges = Gauges(self._metrics, self._partitions, consumer.highwater)
        self._commits = CommitPipeline(consumer, self._after_commit)
        await consumer.start()
        consumer.subscribe([settings.events_topic], listener=_Rebalance(self))
        log.info("materializer started", topic=settings.events_topic, group=settings.consumer_group)

    async def run(self) -> None:
        """Consume until stop() is called; then commit what was processed and leave the group."""
        assert self._consumer is not None and self._commits is not None, "start() first"
        while not self._stopping.is_set():
            try:
                batches = await batch.fetch(self._consumer)
            except KafkaError as exc:
                log.warning("fetch failed; retrying", error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            async with self._batch_lock:
                try:
                    if self._rebuild_failed:
                        raise NeedsRebuild("the rebuild on assignment failed")
                    if batches:
                        await self._process(batches)
                    await self._timers.maybe_fire(self._ready, self._partitions, self._consumer.highwater)
                except _EXPECTED as exc:  # a publish, commit or rebuild failed: redo from the committed offsets
                    log.error("batch failed; rebuilding from committed offsets", error=repr(exc))
                    await self._recover()
                except Exception:  # a bug: nothing is dead-lettered or skipped for it, the batch is redone
                    log.exception("batch failed unexpectedly; rebuilding from committed offsets")
                    await self._recover()
        async with self._batch_lock:
            await self._commits.drain()

    async def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()  # leaves the group
        await self._publisher.stop()

    # ------------------------------------------------------------ the loop body

    async def _process(self, batches: batch.Fetched) -> None:
        folded = await batch.fold_window(batches, self._partitions, self._consumer, self._publisher, self._stopping)
        self._processed += folded.records
        # Only each changed room's latest state of the batch is published (and retirements, snapshots).
        acks = await self._changelog.publish(folded.outcomes, self._partitions.book, self._partitions.marks)
        await self._commits.submit(acks, folded.commits)
        for kind, count in folded.types.items():
            self._metrics.records.labels(kind).inc(count)
        if folded.changed_rooms:
            log.info(
                "batch materialized",
                records=folded.records,
                rooms=folded.changed_rooms,
                retired=sum(len(o.retired) for o in folded.outcomes.values()),
            )

    def _after_commit(self, commits: Mapping[TopicPartition, int]) -> None:
        for tp, offset in commits.items():
            self._committed[tp.partition] = offset
        self._gauges.after_commit(commits)

    async def _recover(self) -> None:
        """After a failed batch: forget it, rebuild every owned partition and resume from the
        committed offsets (at-least-once: the batch is folded and published again)."""
        self._ready = False
        try:
            await self._commits.drain()
        except Exception as exc:  # its offsets stay uncommitted: it is redone
            log.error("pending batch failed too", error=repr(exc))
        delay = 0.5
        while not self._stopping.is_set():
            try:
                assigned = self._consumer.assignment()
                await self._rebuild(assigned)
                for tp in assigned:
                    # To the committed offset, or to the start where none is committed yet (which
                    # seek_to_committed would leave where it is: past the failed batch).
                    self._consumer.seek(tp, self._partitions.position(tp.partition))
                self._rebuild_failed = False
                self._ready = True
                return
            except Exception as exc:  # broker away (or a bug in the fold): keep trying, not ready meanwhile
                log.error(
                    "recovery failed; retrying",
                    error=repr(exc),
                    retry_in_s=delay,
                    exc_info=not isinstance(exc, _EXPECTED),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _rebuild(self, assigned: Collection[TopicPartition]) -> None:
        """Rebuild the partitions and install them, all at once: a failure leaves them unbuilt."""
        rebuilt = await self._recovery.rebuild(assigned)
        self._changelog.forget(tp.partition for tp in assigned)
        for partition, (book, position, marks) in rebuilt.items():
            self._partitions.install(partition, book, position, marks)

    # ------------------------------------------------------------ rebalances (called by _Rebalance)

    async def _revoke(self, revoked: Collection[TopicPartition]) -> None:
        # The coordinator runs this beside the main loop: wait for the batch in hand to be
        # published and committed before the partitions go.
        async with self._batch_lock:
            self._ready = False
            try:
                await self._commits.drain()
            except Exception as exc:  # its offsets stay uncommitted: the next owner redoes the batch
                log.warning("last batch before revocation failed", error=repr(exc))
            finally:
                for tp in revoked:
                    self._partitions.drop(tp.partition)
                    self._gauges.forget(tp.partition)
        if revoked:
            log.info("partitions revoked", partitions=sorted(tp.partition for tp in revoked))

    async def _assign(self, assigned: Collection[TopicPartition]) -> None:
        # Records of these partitions may already be fetched: none is folded before the rebuild ends.
        # aiokafka logs and swallows a listener's exception: on failure the partitions stay without
        # books, and the main loop rebuilds them (and seeks back) before folding anything.
        async with self._batch_lock:
            try:
                await self._rebuild(assigned)
            except Exception as exc:  # the loop retries: see NeedsRebuild
                log.error(
                    "rebuild on assignment failed; the loop will retry",
                    error=repr(exc),
                    exc_info=not isinstance(exc, _EXPECTED),
                )
                self._rebuild_failed = True
                return
            self._ready = True

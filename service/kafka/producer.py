"""The producer shell: acks=all, a deadline per publish, dead letters for what can never go."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Sequence

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.producer.message_accumulator import BatchBuilder

from service import logs
from service.metrics import Metrics
from service.settings import Settings

log = logs.get(__name__)

# How much of a rejected record a dead letter keeps (the letter itself must fit the broker's limit).
DEAD_LETTER_VALUE_BYTES = 64 * 1024


def _consume_outcome(future: asyncio.Future) -> None:
    """Retrieve the outcome of a send nobody waits for any more (past its deadline), so that asyncio
    does not log "Future exception was never retrieved"; the failure was already reported as a 503."""
    if not future.cancelled():
        future.exception()


class _Deadlines:
    """The deadline of every publish in flight, on one timer (asyncio.timeout would arm and cancel a
    timer per publish). A publish past its deadline has its task cancelled, as asyncio.timeout does,
    and `expired` tells that cancellation from any other. Every publish has the same timeout, so the
    publishes in flight are in deadline order: the timer only ever waits for the oldest."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._pending: dict[int, tuple[float, asyncio.Task]] = {}  # in deadline order
        self._expired: set[int] = set()
        self._keys = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def enter(self) -> int:
        key = next(self._keys)
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None, "publish from a task"
        deadline = loop.time() + self.timeout
        self._pending[key] = (deadline, task)
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._fire)
        return key

    def leave(self, key: int) -> None:
        self._pending.pop(key, None)

    def expired(self, key: int) -> bool:
        """Whether the deadline cancelled this publish (then the cancellation is taken back)."""
        if key not in self._expired:
            return False
        self._expired.discard(key)
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return True

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = []
        for key, (deadline, _task) in self._pending.items():
            if deadline > now:
                self._timer = loop.call_at(deadline, self._fire)
                break
            due.append(key)
        for key in due:
            _deadline, task = self._pending.pop(key)
            if not task.done():
                self._expired.add(key)
                task.cancel()


class KeyHashPartitioner:
    """aiokafka's DefaultPartitioner (murmur2 of the key, positive, modulo the partition count; no
    key: a random available partition), each key's hash remembered: every record of a room has the
    room's key, and murmur2 is pure Python (~2 µs per key). At `capacity` keys the memory starts over."""

    def __init__(self, capacity: int = 65_536) -> None:
        self.capacity = capacity
        self._hashes: dict[bytes, int] = {}
        self._default = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if type(key) is not bytes:
            return self._default(key, all_partitions, available)
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self.capacity:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


class PublishError(Exception):
    """The record was not acknowledged; the client must be told to retry (503)."""


class PublishTimeout(PublishError):
    pass


class RecordRejected(Exception):
    """The broker can never take this record (too large): it went to the dead-letter topic."""


class Publisher:
    def __init__(self, settings: Settings, metrics: Metrics, *, client_id: str = "roomevents") -> None:
        self.settings = settings
        self.metrics = metrics
        self.timeout = settings.produce_timeout_ms / 1000
        self._partitioner = KeyHashPartitioner()
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=settings.enable_idempotence,
            linger_ms=settings.linger_ms,
            request_timeout_ms=max(1000, settings.produce_timeout_ms),
            max_request_size=1024 * 1024,
            # Room documents are a few KiB: 16 KiB batches (the default) cost a request per few records.
            max_batch_size=512 * 1024,
            partitioner=self._partitioner,
        )
        self.started = False
        self._deadlines = _Deadlines(self.timeout)

    async def start(self) -> None:
        await self.producer.start()
        self.started = True

    async def stop(self) -> None:
        if self.started:
            self.started = False
            await self.producer.stop()  # flushes what is pending

    async def publish(
        self, topic: str, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        """Return only once the broker acknowledged the record (acks=all), within the deadline.

        Raises PublishTimeout / PublishError when it was not acknowledged in time (the caller
        answers 503; the record may still land later, so consumers dedupe by event id), and
        RecordRejected when the broker can never take it and it is now on the dead-letter topic.

        Concurrent publishes share the producer's batches (ROOMEVENTS_LINGER_MS) and one deadline
        timer (`_Deadlines`): past its deadline a publish stops waiting; the record, already in a
        batch, may still be delivered (aiokafka sends it even when its future is cancelled).
        """
        started = time.perf_counter()
        deadlines = self._deadlines
        key_ = deadlines.enter()
        try:
            future = await self.producer.send(
                topic, value, key=key, headers=headers, partition=self._partition_of(topic, key)
            )
            await future
        except asyncio.CancelledError:
            if not deadlines.expired(key_):
                raise
            self.metrics.publish_failures.labels(topic, "timeout").inc()
            raise PublishTimeout(f"no ack from the broker within {self.timeout:.1f}s") from None
        except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
            deadlines.leave(key_)
            self.metrics.publish_failures.labels(topic, "too-large").inc()
            # Within the same deadline: what is left of it (the size check usually fails at once).
            left = max(0.1, self.timeout - (time.perf_counter() - started))
            parked = await self.dead_letter(
                topic, key, value, headers, reason="too-large", detail=str(exc), timeout=left
            )
            if not parked:
                # Neither published nor parked: the client must retry, never get a 2xx.
                raise PublishError(f"record too large and the dead-letter publish failed: {exc}") from None
            raise RecordRejected(str(exc)) from None
        except KafkaError as exc:
            self.metrics.publish_failures.labels(topic, type(exc).__name__).inc()
            raise PublishError(f"{type(exc).__name__}: {exc}") from None
        finally:
            deadlines.leave(key_)
        self.metrics.publish_seconds.labels(topic).observe(time.perf_counter() - started)

    def _partition_of(self, topic: str, key: bytes | None) -> int | None:
        """The partition the producer's partitioner picks for `key`, as aiokafka's send() would pick it
        (from the topic's partitions as a list), without its per-send copies and its set of available
        partitions (which a key's partition does not depend on). None, for aiokafka to pick: no key,
        or the topic's partitions not known yet."""
        if key is None:
            return None
        partitions = self.producer.client.cluster.partitions_for_topic(topic)
        if not partitions:
            return None
        listed = list(partitions)
        return self._partitioner(key, listed, listed)

    async def send_many(
        self,
        topic: str,
        items: Sequence[tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes]]]],
        *,
        partition: int | None = None,
    ) -> list[asyncio.Future]:
        """Enqueue a batch (used by the materializer), to `partition` when given (co-partitioned topics);
        a None value is a tombstone. The returned futures resolve on the broker's acks, in order;
        each resolves to the metadata of its first record (see `sent_end`)."""
        if partition is None:
            return [
                await self.producer.send(topic, value, key=key, headers=list(headers)) for key, value, headers in items
            ]
        # To a known partition: records go into record batches built here (aiokafka's create_batch
        # and send_batch), a future per batch rather than per record: half the cost per record.
        producer = self.producer
        futures: list[asyncio.Future] = []
        batch = producer.create_batch()
        for key, value, headers in items:
            if batch.append(key=key, value=value, timestamp=None, headers=list(headers)) is None:
                futures.append(_counted(await producer.send_batch(batch, topic, partition=partition), batch))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None, headers=list(headers)) is None:
                    raise PublishError(f"a record of {len(value or b'')} bytes does not fit in a batch")
        if batch.record_count():
            futures.append(_counted(await producer.send_batch(batch, topic, partition=partition), batch))
        return futures

    async def dead_letter(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]],
        *,
        reason: str,
        detail: str = "",
        timeout: float | None = None,
    ) -> bool:
        """Park a record that can never be published or folded, with the reason.

        Best effort and never raises: returns True once the dead letter is acknowledged, False
        (logged) otherwise. Counted in roomevents_dead_letters_total{reason} only when parked.
        """
        envelope = orjson.dumps(
            {
                "reason": reason,
                "detail": detail,
                "topic": topic,
                "key": key.decode(errors="replace") if key else None,
                "size": len(value),
                # Keep what fits; a too-large record is truncated so that the letter itself fits.
                "value": value[:DEAD_LETTER_VALUE_BYTES].decode(errors="replace"),
                "truncated": len(value) > DEAD_LETTER_VALUE_BYTES,
                "headers": {k: v.decode(errors="replace") for k, v in headers},
            }
        )
        dl_headers = [("roomevents_dlq_reason", reason.encode()), ("roomevents_dlq_topic", topic.encode())]
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                future = await self.producer.send(
                    self.settings.dead_letter_topic, envelope, key=key, headers=dl_headers
                )
                future.add_done_callback(_consume_outcome)
                await asyncio.shield(future)
        except Exception as exc:  # the original error is what the caller reports
            self.metrics.publish_failures.labels(self.settings.dead_letter_topic, type(exc).__name__).inc()
            log.error("dead-letter publish failed", reason=reason, topic=topic, error=repr(exc))
            return False
        self.metrics.dead_letters.labels(reason).inc()
        log.warning("record dead-lettered", reason=reason, topic=topic, detail=detail, size=len(value))
        return True


def _counted(future: asyncio.Future, batch: BatchBuilder) -> asyncio.Future:
    future.records = batch.record_count()  # how far its ack reaches (sent_end)
    return future


def sent_end(future: asyncio.Future) -> int:
    """The offset after the last record of an acknowledged send_many future."""
    return future.result().offset + getattr(future, "records", 1)

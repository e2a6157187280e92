"""The producer shell: acks=all, a deadline per publish, dead letters for what can never go."""
from __future__ import annotations

import asyncio
import time
from typing import Sequence

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from service import logs
from service.metrics import Metrics
from service.settings import Settings

log = logs.get(__name__)


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
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=settings.enable_idempotence,
            linger_ms=1,
            request_timeout_ms=max(1000, settings.produce_timeout_ms),
            max_request_size=1024 * 1024,
        )
        self.started = False

    async def start(self) -> None:
        await self.producer.start()
        self.started = True

    async def stop(self) -> None:
        if self.started:
            self.started = False
            await self.producer.stop()  # flushes what is pending

    async def flush(self) -> None:
        await self.producer.flush()

    async def publish(self, topic: str, key: bytes | None, value: bytes,
                      headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Return only once the broker acknowledged the record, within the deadline."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                future = await self.producer.send(topic, value, key=key, headers=list(headers))
                await future
        except TimeoutError:
            self.metrics.publish_failures.labels(topic, "timeout").inc()
            raise PublishTimeout(f"no ack from the broker within {self.timeout:.1f}s") from None
        except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
            self.metrics.publish_failures.labels(topic, "too-large").inc()
            await self.dead_letter(topic, key, value, headers, reason="too-large", detail=str(exc))
            raise RecordRejected(str(exc)) from None
        except KafkaError as exc:
            self.metrics.publish_failures.labels(topic, type(exc).__name__).inc()
            raise PublishError(f"{type(exc).__name__}: {exc}") from None
        self.metrics.publish_seconds.labels(topic).observe(time.perf_counter() - started)

    async def publish_many(self, topic: str, items: Sequence[tuple[bytes | None, bytes, Sequence[tuple[str, bytes]]]]) -> None:
        """Publish a batch; returns once every record is acknowledged (used by the materializer)."""
        futures = [await self.producer.send(topic, value, key=key, headers=list(headers)) for key, value, headers in items]
        if futures:
            await asyncio.gather(*futures)

    async def dead_letter(self, topic: str, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]],
                          *, reason: str, detail: str = "") -> None:
        """Park a record that can never be published or folded, with the reason. Best effort, logged."""
        self.metrics.dead_letters.labels(reason).inc()
        envelope = orjson.dumps({
            "reason": reason, "detail": detail, "topic": topic,
            "key": key.decode(errors="replace") if key else None,
            "size": len(value),
            # Keep what fits; a too-large record is truncated so that the letter itself fits.
            "value": value[:65536].decode(errors="replace"),
            "truncated": len(value) > 65536,
            "headers": {k: v.decode(errors="replace") for k, v in headers},
        })
        dl_headers = [("roomevents_dlq_reason", reason.encode()), ("roomevents_dlq_topic", topic.encode())]
        try:
            async with asyncio.timeout(self.timeout):
                future = await self.producer.send(self.settings.dead_letter_topic, envelope, key=key, headers=dl_headers)
                await future
            log.warning("record dead-lettered", reason=reason, topic=topic, detail=detail, size=len(value))
        except Exception as exc:  # the original error is what the caller reports
            log.error("dead-letter publish failed", reason=reason, topic=topic, error=repr(exc))

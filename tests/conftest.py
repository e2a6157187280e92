"""Shared fixtures: one real broker per session (embedded Tansu, or KAFKA_BOOTSTRAP_SERVERS),
fresh topic names per test, and the system's parts started in-process against that broker.

Nothing here mocks Kafka: ingress and materializer only ever talk through the broker.
"""
from __future__ import annotations

import asyncio
import base64
import os
import uuid
from contextlib import asynccontextmanager

import pytest

from service import logs, settings as settings_module
from service.kafka.broker import EmbeddedBroker
from service.kafka.topics import ensure_topics

logs.setup(os.environ.get("ROOMEVENTS_LOG_LEVEL", "WARNING"), "console")

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "test-auth-token"


@pytest.fixture(scope="session")
def kafka_bootstrap():
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = EmbeddedBroker().start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


def make_settings(bootstrap: str, **overrides) -> settings_module.Settings:
    suffix = uuid.uuid4().hex[:10]
    base = settings_module.Settings(
        kafka_bootstrap_servers=bootstrap,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        events_topic=f"test-events-{suffix}",
        state_topic=f"test-state-{suffix}",
        dead_letter_topic=f"test-dlq-{suffix}",
        consumer_group=f"test-materializer-{suffix}",
        topic_partitions=3,
        session_timeout_ms=6000,
        produce_timeout_ms=3000,
        create_timeout_ms=15000,
        shutdown_grace_s=5,
    )
    return base.with_overrides(**overrides)


@pytest.fixture
async def settings(kafka_bootstrap):
    cfg = make_settings(kafka_bootstrap)
    await ensure_topics(cfg)
    return cfg


def basic_auth(sid: str = ACCOUNT_SID, token: str = AUTH_TOKEN) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()}


@asynccontextmanager
async def running_system(cfg, *, materializers: int = 1, clock=None):
    """Start the ingress (with its read view) and materializer(s) against the real broker."""
    import time

    from service.metrics import Metrics
    from service.runtime import IngressServer, MaterializerService

    ingress = IngressServer(cfg, Metrics())
    services = [MaterializerService(cfg, Metrics(), serve_health=False, clock=clock or time.time)
                for _ in range(materializers)]
    for service in services:
        await service.start()
    await ingress.start()
    # The group join on Tansu takes about half the session timeout: wait until partitions are owned.
    await wait_until(lambda: all(s.materializer.ready for s in services), timeout=30)
    await wait_until(lambda: ingress.follower.caught_up.is_set(), timeout=30)
    try:
        yield ingress, services
    finally:
        await ingress.stop()
        for service in services:
            await service.stop()


async def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05):
    """Poll a condition with a deadline (no fixed sleeps): returns its truthy value or fails."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)

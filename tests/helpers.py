"""Test helpers (not fixtures: those are in conftest.py): settings with fresh topic names, the system's
parts started in-process against the real broker, reading topics, polling with deadlines, and the
room-event schema check that conftest.py applies after every test.

Nothing here mocks Kafka: ingress and materializer only ever talk through the broker.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from contextlib import asynccontextmanager

from service import settings as settings_module

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "test-auth-token"


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
        changelog_topic=f"test-changelog-{suffix}",
        dead_letter_topic=f"test-dlq-{suffix}",
        consumer_group=f"test-materializer-{suffix}",
        topic_partitions=3,
        session_timeout_ms=6000,
        produce_timeout_ms=3000,
        create_timeout_ms=15000,
        shutdown_grace_s=5,
        # The tests' ingresses listen on a port chosen at start, so no public URL can be known in
        # advance: they sign against the request's Host (the production opt-out). Tests of the
        # public URL set one and turn this off.
        allow_any_host=True,
    )
    return base.with_overrides(**overrides)


def basic_auth(sid: str = ACCOUNT_SID, token: str = AUTH_TOKEN) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()}


@asynccontextmanager
async def running_system(cfg, *, materializers: int = 1, clock=None, archive: bool = False):
    """Start the ingress (with its read view) and materializer(s) against the real broker; with
    `archive`, also the archive (cfg.database_url must be set), appended to the services."""
    import time

    from service.metrics import Metrics
    from service.runtime import ArchiveService, IngressServer, MaterializerService

    ingress = IngressServer(cfg, Metrics())
    services = [
        MaterializerService(cfg, Metrics(), serve_health=False, clock=clock or time.time) for _ in range(materializers)
    ]
    archives = [ArchiveService(cfg, Metrics(), serve_health=False)] if archive else []
    for service in services + archives:
        await service.start()
    await ingress.start()
    # The group join on Tansu takes about half the session timeout: wait until partitions are owned.
    await wait_until(lambda: all(s.materializer.ready for s in services), timeout=30)
    await wait_until(lambda: all(a.archive.ready for a in archives), timeout=30)
    await wait_until(lambda: ingress.follower.caught_up.is_set(), timeout=30)
    try:
        yield ingress, services + archives
    finally:
        await ingress.stop()
        for service in services + archives:
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


def event_schema_validator():
    import json
    from pathlib import Path

    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "room-event.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


async def read_topic(bootstrap: str, topic: str, timeout: float = 20.0) -> list:
    """Every record on `topic` right now, from the beginning (all partitions, up to their end offsets)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="roomevents-test-reader",
    )
    await consumer.start()
    out = []
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - first look at a new topic
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return out
        consumer.assign(tps)
        # Tansu answers ListOffsets(latest) with the last *batch's* base offset + 1, so end_offsets can
        # be short by the tail of a multi-record batch; the high watermark in fetch responses is right.
        # end_offsets only says which partitions have anything; each is read up to its fetched watermark.
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp, end in ends.items() if end > 0}
        for tp in remaining:
            # Offset 0 (auto_offset_reset=earliest covers a truncated log); seek_to_beginning and
            # beginning_offsets each cost ~0.5 s against Tansu.
            consumer.seek(tp, 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while remaining:
            if loop.time() > deadline:
                raise AssertionError(f"could not read {topic} to its end within {timeout}s")
            batches = await consumer.getmany(*remaining, timeout_ms=200)
            for messages in batches.values():
                out.extend(messages)
            for tp in list(remaining):
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= max(highwater, ends[tp]):
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return out


def invalid_event_records(messages, validator=None) -> list[str]:
    """Descriptions of the records among `messages` that break the schema (empty when all are valid)."""
    import orjson

    from service.events import record as records

    validator = validator or event_schema_validator()
    problems = []
    for m in messages:
        headers = dict(m.headers or ())
        try:
            doc = orjson.loads(m.value)
        except orjson.JSONDecodeError:
            doc = None
        if not any(k.startswith("ce_") for k in headers):
            try:
                records.decode(m.value)
            except records.RecordError:
                continue  # injected poison: the materializer dead-letters it
        if doc is None:
            problems.append(f"partition {m.partition} offset {m.offset}: not JSON")
            continue
        where = f"partition {m.partition} offset {m.offset} ({doc.get('type')!r})"
        for error in validator.iter_errors(doc):
            problems.append(f"{where}: {'/'.join(map(str, error.absolute_path)) or '<record>'}: {error.message}")
        if "ce_id" in headers and isinstance(doc, dict):
            if headers["ce_id"] != str(doc.get("event_id")).encode():
                problems.append(f"{where}: ce_id header {headers['ce_id']!r} is not the event_id")
            if m.key != (doc.get("room_name") or doc.get("room_sid") or "").encode():
                problems.append(f"{where}: key {m.key!r} is not the record's partition key")
    return problems


def service_env(settings, **extra: str) -> dict[str, str]:
    """Environment for running `roomevents ...` as a subprocess against this test's broker and topics."""
    return (
        os.environ
        | {
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "TWILIO_ACCOUNT_SID": settings.twilio_account_sid,
            "TWILIO_AUTH_TOKEN": settings.twilio_auth_token,
            "ROOMEVENTS_EVENTS_TOPIC": settings.events_topic,
            "ROOMEVENTS_STATE_TOPIC": settings.state_topic,
            "ROOMEVENTS_CHANGELOG_TOPIC": settings.changelog_topic,
            "ROOMEVENTS_DEAD_LETTER_TOPIC": settings.dead_letter_topic,
            "ROOMEVENTS_CONSUMER_GROUP": settings.consumer_group,
            "ROOMEVENTS_SESSION_TIMEOUT_MS": "6000",
            "ROOMEVENTS_HOST": "127.0.0.1",
            "ROOMEVENTS_LOG_LEVEL": "WARNING",
            "ROOMEVENTS_LOG_FORMAT": "console",
            "ROOMEVENTS_ALLOW_ANY_HOST": "true",
        }
        | extra
    )


async def wait_ready(http, base: str, timeout: float = 15.0) -> None:
    """Poll a subprocess's /readyz until it answers 200."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            async with http.get(base + "/readyz") as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        if loop.time() > deadline:
            raise AssertionError(f"{base} not ready within {timeout}s")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- PostgreSQL (the history store)

# A server to use instead of a private one per test run (a role that may CREATE DATABASE).
TEST_DATABASE_ENV = "ROOMEVENTS_TEST_DATABASE_URL"


async def create_database(admin_url: str) -> str:
    """A new, empty database on the server of `admin_url`; returns its URL."""
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg

    name = "t_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlunsplit(urlsplit(admin_url)._replace(path="/" + name))


async def drop_database(admin_url: str, url: str) -> None:
    from urllib.parse import urlsplit

    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path.lstrip("/")}" WITH (FORCE)')
    finally:
        await conn.close()

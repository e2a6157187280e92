"""Shared fixtures (helpers are in tests/helpers.py): one real broker per session (embedded Tansu, or
KAFKA_BOOTSTRAP_SERVERS), fresh topic names per test, and the schema check of every test's events.

Nothing here mocks Kafka: ingress and materializer only ever talk through the broker.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from service import logs
from service.kafka.broker import EmbeddedBroker
from service.kafka.topics import ensure_topics
from tests.helpers import (
    TEST_DATABASE_ENV,
    create_database,
    drop_database,
    invalid_event_records,
    make_settings,
    read_topic,
)
from tests.logcapture import CAPTURE

# Every log line of the session (structlog at every level, stdlib records as they reach the root
# logger) is also kept by CAPTURE; at the end of the session it is searched for every secret the
# suite configured, and any hit fails the session (tests/logcapture.py).
logs.setup(os.environ.get("ROOMEVENTS_LOG_LEVEL", "WARNING"), "console", tap=CAPTURE.structlog_event)
CAPTURE.install()


def pytest_sessionfinish(session, exitstatus):
    leaks = CAPTURE.leaks()
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    CAPTURE.report(leaks)


@pytest.fixture
def captured_log_lines():
    """A function returning every log line captured so far in the session (structlog and stdlib)."""
    return CAPTURE.lines


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


@pytest.fixture
async def settings(kafka_bootstrap):
    cfg = make_settings(kafka_bootstrap)
    await ensure_topics(cfg)
    return cfg


# ---------------------------------------------------------------- PostgreSQL (the history store)
# One real server per session: ROOMEVENTS_TEST_DATABASE_URL when set (a role that may CREATE DATABASE),
# else a private one started the way `roomevents dev` starts it (service/history/embedded.py) in a
# temporary folder, stopped at the end. Each test that needs a database gets a fresh one on it
# (tests/helpers.py create_database / drop_database).


@pytest.fixture(scope="session")
def postgres_server():
    """(EmbeddedPostgres or None, admin URL). None: an external server, which tests must not stop."""
    import shutil
    import tempfile

    from service.history.embedded import EmbeddedPostgres

    external = os.environ.get(TEST_DATABASE_ENV)
    if external:
        yield None, external
        return
    base = tempfile.mkdtemp(prefix="roomevents-pg-")
    os.chmod(base, 0o755)  # the server runs as a non-root user under root: it must enter the folder
    server = EmbeddedPostgres(os.path.join(base, "data"), durable=False).start()
    try:
        yield server, server.url()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def database_url(postgres_server):
    url = await create_database(postgres_server[1])
    yield url
    try:
        await drop_database(postgres_server[1], url)
    except Exception:  # the server may have been stopped by the test; it is a temporary one then
        pass


@pytest.fixture
def embedded_postgres(postgres_server):
    """The session's server when the tests started it themselves (tests that stop it need this)."""
    if postgres_server[0] is None:
        pytest.skip(f"{TEST_DATABASE_ENV} points at an external server, which this test would have to stop")
    return postgres_server[0]


# ---------------------------------------------------------------- every record validates against the schema
# After each test that used the `settings` fixture, read that test's events topic from the beginning and
# validate every record against docs/room-event.schema.json (the file, which a test keeps equal to
# service/events/schema.py json_schema()). Records the service produces carry CloudEvents headers and
# must always validate; a record a test injected raw (no ce_* headers) that the consumer side rejects
# anyway (records.decode: poison, dead-lettered by the materializer) is exempt. A test that injects
# invalid records deliberately can also opt out with @pytest.mark.allow_invalid_events.


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_invalid_events: do not validate this test's events topic against the room-event JSON Schema"
    )


@pytest.fixture(autouse=True)
def _events_match_the_schema(request):
    if "settings" not in request.fixturenames or request.node.get_closest_marker("allow_invalid_events"):
        yield
        return
    cfg = request.getfixturevalue("settings")
    yield
    import concurrent.futures

    async def check():
        return invalid_event_records(await read_topic(cfg.kafka_bootstrap_servers, cfg.events_topic))

    # The session's event loop is not running between tests: read the topic on a private loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        problems = pool.submit(asyncio.run, check()).result()
    if problems:
        pytest.fail(
            f"{len(problems)} record(s) on {cfg.events_topic} break docs/room-event.schema.json:\n  "
            + "\n  ".join(problems[:20]),
            pytrace=False,
        )

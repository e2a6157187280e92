"""Nothing lost when the broker goes away in the middle of a stream of callbacks.

The embedded broker keeps its data in memory, so a real restart would lose it. Instead this test runs
a dedicated broker that advertises a small TCP proxy's port: every client connection goes through the
proxy. "Broker absent" = the proxy drops every connection and refuses new ones; "broker hung" = the
broker process is SIGSTOPped (connections stay open, nothing answers); "restart" = the proxy accepts
again / SIGCONT. Every callback answered 2xx must be on the topic afterwards, every other one must
have been answered 5xx (with Retry-After) within the produce deadline: no hang, no connection error.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal

import aiohttp
import pytest
from yarl import URL

from service.events import record as records
from service.kafka.broker import EmbeddedBroker, free_port
from service.kafka.topics import ensure_topics
from service.metrics import Metrics
from service.runtime import IngressServer
from tests.helpers import invalid_event_records, make_settings, read_topic, wait_until
from tests.test_callbacks_http import callback_params, twilio_request

PRODUCE_TIMEOUT_MS = 1000
# A response may take the produce deadline plus HTTP and scheduling overhead on a busy 2-core box.
MAX_LATENCY_S = PRODUCE_TIMEOUT_MS / 1000 + 2.5
WORKERS = 4


class TcpProxy:
    """Forwards 127.0.0.1:port to 127.0.0.1:target_port; can drop everything and refuse connections."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.server: asyncio.AbstractServer | None = None
        self.transports: set[asyncio.BaseTransport] = set()
        self.accepted = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        pair = {client_writer.transport, upstream_writer.transport}
        self.transports |= pair

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                for transport in pair:  # one side gone: drop both, like a dead broker would
                    transport.abort()

        try:
            await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))
        finally:
            self.transports -= pair

    async def down(self) -> None:
        """The broker is gone: stop listening (connection refused) and reset every open connection."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for transport in list(self.transports):
            transport.abort()
        self.transports.clear()

    async def up(self) -> None:
        if self.server is None:
            await self.start()

    async def close(self) -> None:
        await self.down()


@pytest.fixture
async def proxied_broker():
    proxy_port = free_port()
    broker = EmbeddedBroker(advertised_port=proxy_port).start()
    proxy = TcpProxy(broker.port, proxy_port)
    await proxy.start()
    try:
        assert broker.bootstrap_servers == f"127.0.0.1:{proxy_port}"
        yield broker, proxy
    finally:
        if broker.process is not None and broker.process.poll() is None:
            os.kill(broker.process.pid, signal.SIGCONT)
        await proxy.close()
        await broker.astop()


async def test_broker_outage_mid_stream_loses_nothing_that_got_a_2xx(proxied_broker):
    broker, proxy = proxied_broker
    cfg = make_settings(broker.bootstrap_servers, produce_timeout_ms=PRODUCE_TIMEOUT_MS)
    await ensure_topics(cfg)
    server = IngressServer(cfg, Metrics())
    await server.start()
    loop = asyncio.get_running_loop()
    results: list[dict] = []
    phase = "before"
    stop = asyncio.Event()
    numbers = itertools.count()

    async def worker(w: int, http: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            n = next(numbers)
            params = callback_params(
                RoomName=f"outage-{w}", RoomSid=f"RM{w:032x}", ParticipantSid=f"PA{n:032x}", SequenceNumber=str(n)
            )
            url, body, headers = twilio_request("POST", server.url + cfg.callback_path, params)
            started = loop.time()
            result = {"n": n, "params": params, "phase": phase}
            try:
                async with http.post(
                    URL(url, encoded=True),
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=MAX_LATENCY_S + 5),
                ) as resp:
                    result["status"] = resp.status
                    result["retry_after"] = resp.headers.get("Retry-After")
            except Exception as exc:  # a hang (client timeout) or a dropped connection: both are failures
                result["status"] = repr(exc)
            result["seconds"] = loop.time() - started
            results.append(result)

    def count(status_ok, since: int) -> int:
        return sum(1 for r in results[since:] if status_ok(r["status"]))

    def ok(status) -> bool:
        return status == 204

    def failed(status) -> bool:
        return isinstance(status, int) and status >= 500

    async def until(predicate, what: str, timeout: float = 30) -> None:
        try:
            await wait_until(predicate, timeout=timeout, interval=0.02)
        except AssertionError:
            raise AssertionError(
                f"{what} (phase {phase}); last results: {[(r['n'], r['phase'], r['status']) for r in results[-8:]]}"
            ) from None

    try:
        async with aiohttp.ClientSession() as http:
            workers = [asyncio.create_task(worker(w, http)) for w in range(WORKERS)]
            try:
                await until(lambda: count(ok, 0) >= 20, "no steady stream before the outage")

                # 1. The broker disappears: connections reset, new ones refused.
                phase, mark = "absent", len(results)
                await proxy.down()
                await until(lambda: count(failed, mark) >= 2 * WORKERS, "no 5xx while the broker was absent")
                phase, mark = "back after absence", len(results)
                await proxy.up()
                await until(lambda: count(ok, mark) >= 20, "the stream did not recover after the broker came back")

                # 2. The broker hangs: connections stay open, nothing is answered.
                phase, mark = "hung", len(results)
                os.kill(broker.process.pid, signal.SIGSTOP)
                try:
                    await until(lambda: count(failed, mark) >= 2 * WORKERS, "no 5xx while the broker was hung")
                finally:
                    os.kill(broker.process.pid, signal.SIGCONT)
                phase, mark = "back after hang", len(results)
                await until(lambda: count(ok, mark) >= 20, "the stream did not recover after the broker resumed")
            finally:
                stop.set()
                await asyncio.gather(*workers)
    finally:
        await server.stop()

    # Every answer was a 204 or a 5xx with Retry-After, within the deadline: no hang, no dropped connection.
    odd = [r for r in results if not (ok(r["status"]) or failed(r["status"]))]
    assert not odd, odd[:5]
    assert all(r["retry_after"] for r in results if failed(r["status"]))
    slowest = max(results, key=lambda r: r["seconds"])
    assert slowest["seconds"] < MAX_LATENCY_S, slowest
    by_phase: dict[str, dict] = {}  # (phase when sent) -> status -> count
    for r in results:
        by_phase.setdefault(r["phase"], {}).setdefault(r["status"], 0)
        by_phase[r["phase"]][r["status"]] += 1
    # Requests sent while the broker was absent or hung were refused too, not only those in flight.
    assert by_phase["absent"].get(503) and by_phase["hung"].get(503), by_phase

    # Every callback that got a 2xx is on the topic (some 503'd ones may be too: consumers dedupe).
    messages = await read_topic(cfg.kafka_bootstrap_servers, cfg.events_topic)
    on_topic = {records.decode(m.value)["event_id"] for m in messages}
    expected_id = {
        r["n"]: records.from_callback({k: [v] for k, v in r["params"].items()}, 0)["event_id"] for r in results
    }
    acknowledged = [r["n"] for r in results if ok(r["status"])]
    missing = [n for n in acknowledged if expected_id[n] not in on_topic]
    assert not missing, f"{len(missing)} acknowledged callbacks are not on the topic: {missing[:10]}; {by_phase}"
    assert on_topic <= set(expected_id.values())
    assert invalid_event_records(messages) == []
    # Within one room (one key, one partition) the topic keeps the acknowledged callbacks in the order
    # they were acknowledged (each worker waits for its answer before sending the next).
    for w in range(WORKERS):
        room_records = [records.decode(m.value) for m in messages if m.key == f"outage-{w}".encode()]
        assert len({m.partition for m in messages if m.key == f"outage-{w}".encode()}) == 1
        positions = {}
        for i, rec in enumerate(room_records):
            positions.setdefault(rec["event_id"], i)
        acked_in_room = [
            expected_id[r["n"]] for r in results if ok(r["status"]) and r["params"]["RoomName"] == f"outage-{w}"
        ]
        assert [positions[e] for e in acked_in_room] == sorted(positions[e] for e in acked_in_room)


async def test_provider_webhooks_get_503_with_retry_after_while_the_broker_is_away(proxied_broker):
    """The LiveKit and Zoom routes keep the ingress's promise: no 2xx without the broker's ack, a 503 +
    Retry-After instead, and the provider's retry (same body, same event id) lands once it is back."""
    from tests.provider_webhooks import (
        LIVEKIT_KEY,
        LIVEKIT_SECRET,
        ZOOM_SECRET,
        livekit_event,
        livekit_headers,
        zoom_event,
        zoom_headers,
        zoom_user,
    )

    broker, proxy = proxied_broker
    cfg = make_settings(
        broker.bootstrap_servers,
        produce_timeout_ms=PRODUCE_TIMEOUT_MS,
        livekit_api_key=LIVEKIT_KEY,
        livekit_api_secret=LIVEKIT_SECRET,
        zoom_webhook_secret_token=ZOOM_SECRET,
    )
    await ensure_topics(cfg)
    server = IngressServer(cfg, Metrics())
    await server.start()
    lk = livekit_event("room_started", 1_900_000_000, "EV_outage", room_sid="RM_out", room_name="lk-outage")
    zm = zoom_event(
        "session.user_joined",
        1_900_000_000_000,
        session_id="out==",
        session_name="zoom-outage",
        user=zoom_user("1", "A"),
    )
    requests = {"/v1/Callbacks/LiveKit": lk, "/v1/Callbacks/Zoom": zm}
    try:
        async with aiohttp.ClientSession() as http:

            async def post(path: str, body: bytes):
                headers = livekit_headers(body) if "LiveKit" in path else zoom_headers(body)
                async with http.post(
                    server.url + path,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=MAX_LATENCY_S + 5),
                ) as resp:
                    return resp.status, resp.headers.get("Retry-After")

            await proxy.down()
            for path, body in requests.items():
                status, retry_after = await post(path, body)
                assert status == 503 and int(retry_after) >= 1, (path, status)
            await proxy.up()
            loop = asyncio.get_running_loop()
            for path, body in requests.items():
                deadline = loop.time() + 30
                while (status := (await post(path, body))[0]) != 204:  # the provider retries until acked
                    assert status == 503 and loop.time() < deadline, (path, status)
    finally:
        await server.stop()
    on_topic = [records.decode(m.value) for m in await read_topic(cfg.kafka_bootstrap_servers, cfg.events_topic)]
    assert {r["provider"] for r in on_topic} == {"livekit", "zoom"}
    # Any copy that reached the broker during the outage is the same record: consumers dedupe by id.
    assert len({r["event_id"] for r in on_topic}) == 2
    assert not invalid_event_records(await read_topic(cfg.kafka_bootstrap_servers, cfg.events_topic))

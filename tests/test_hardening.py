"""Issue 16: the defects a hostile-client probe found, one test (or a few) each, over real HTTP
against the real broker; raw sockets where a well-behaved client library would refuse to send
what an attacker sends.

1. a stalled SSE reader pins memory        -> coalesced per-room buffer, write timeout, drop + metric
2. unsigned callbacks burn CPU             -> parameter cap before any parsing (413), throughput holds
3. non-ASCII Authorization -> 500          -> 401
4. credentials in logs and 400 bodies      -> nothing of the header anywhere
5. out-of-range numbers/dates -> 500       -> 400 naming the parameter
6. no header-read timeout (slowloris)      -> header and body timeouts, a connection cap, quiet logs
7. dedupe bypass by a repeated parameter   -> event id from a canonical form
8. Host-header replay                      -> a public URL (or an explicit opt-out) is required
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import threading
import time
import uuid
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from service import settings as settings_module
from service.callbacks.signature import compute_signature
from service.events import record as records
from service.metrics import Metrics
from service.runtime import IngressServer
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, read_topic, wait_until
from tests.test_callbacks_http import callback_params, ingress_only, metric, send, twilio_request

CREDENTIALS = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode())


async def raw_exchange(port: int, request: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send `request` bytes as they are and read the whole response (the request asks to close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def get_request(path: str, authorization: bytes) -> bytes:
    return (
        b"GET "
        + path.encode()
        + b" HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + authorization
        + b"\r\nConnection: close\r\n\r\n"
    )


# ---------------------------------------------------------------- 3. non-ASCII Authorization


@pytest.mark.parametrize("path", ["/v1/Rooms", "/v1/Rooms/RM" + "0" * 32, "/v1/Streams/Rooms", "/dashboard"])
@pytest.mark.parametrize(
    "authorization",
    [b"Basic \xc3\xa9", b"Basic \xff\xfe", "Basic ".encode() + base64.b64encode("é:é".encode()), b"Basic \xc3\xa9:x"],
)
async def test_a_non_ascii_authorization_header_is_401(settings, path, authorization):
    async with ingress_only(settings) as (server, _):
        status, _, body = await raw_exchange(server.port, get_request(path, authorization))
    assert status == 401, body
    assert orjson.loads(body)["code"] == 20003


# ---------------------------------------------------------------- 4. credentials never in logs or bodies


@pytest.mark.parametrize("bad", [b"\x01", b"\x7f", b"\x00", b"\r", b"\x1b[31m"])
async def test_a_malformed_authorization_header_is_in_no_log_and_no_body(settings, bad, caplog, captured_log_lines):
    caplog.set_level(logging.DEBUG)
    async with ingress_only(settings) as (server, _):
        for path in ("/v1/Rooms", settings.callback_path):
            status, headers, body = await raw_exchange(server.port, get_request(path, b"Basic " + CREDENTIALS + bad))
            assert status == 400
            assert CREDENTIALS not in body and b"Authorization" not in body and b"authorization" not in body
            assert headers["content-type"].startswith("application/json")
            assert orjson.loads(body)["status"] == 400
        # Still serving.
        status, _, _ = await raw_exchange(server.port, get_request("/v1/Rooms", b"Basic " + CREDENTIALS))
        assert status == 200
    logged = "\n".join(
        r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "") for r in caplog.records
    )
    logged += "\n".join(captured_log_lines())
    assert CREDENTIALS.decode() not in logged and AUTH_TOKEN not in logged
    assert CREDENTIALS.decode()[:12] not in logged  # not even a part of it


# ---------------------------------------------------------------- 5. out-of-range values -> 400 naming the parameter


@pytest.mark.parametrize(
    "name, value",
    [
        ("SequenceNumber", "1e999"),
        ("SequenceNumber", str(10**30)),
        ("SequenceNumber", "9" * 5000),
        ("SequenceNumber", "-" + "9" * 30),
        ("RoomDuration", str(10**20)),
        ("ParticipantDuration", "1e400"),
        ("ParticipantDuration", "nan"),
        ("Duration", "inf"),
        ("Size", "-1e300"),
        ("OffsetFromTwilioVideoEpoch", "1" + "0" * 19),
        ("Timestamp", "0001-01-01T00:00:00+23:59"),
        ("Timestamp", "9999-12-31T23:59:59-23:59"),
    ],
)
async def test_out_of_range_values_are_400_naming_the_parameter(settings, name, value):
    extra = {"RecordingSid": "RT" + "d4" * 16} if name in ("Duration", "Size", "OffsetFromTwilioVideoEpoch") else {}
    async with ingress_only(settings) as (server, http):
        params = callback_params(**extra) | {name: value}
        url, body, headers = twilio_request("POST", server.url + settings.callback_path, params)
        status, _, payload = await send(http, "POST", url, body, headers)
    assert status == 400, payload
    assert name in orjson.loads(payload)["message"]
    assert await read_topic(settings.kafka_bootstrap_servers, settings.events_topic) == []


def test_in_range_extremes_still_make_records():
    base = {k: [v] for k, v in callback_params().items()}
    for name, value in (
        ("SequenceNumber", str(2**63 - 1)),
        ("RoomDuration", "1.5e3"),
        ("Timestamp", "9999-12-31T00:00:00Z"),
    ):
        event = records.from_callback(base | {name: [value]}, 1_900_000_000_000)
        records.encode(event)
    # Unparseable (not out-of-range) numbers keep the lenient behaviour: the field is null.
    assert records.from_callback(base | {"SequenceNumber": ["abc"]}, 0)["sequence_number"] is None


# ---------------------------------------------------------------- 7. canonical event id


def test_a_repeated_identical_parameter_does_not_change_the_event_id():
    params = {k: [v] for k, v in callback_params().items()}
    repeated = params | {"ParticipantIdentity": ["alice", "alice"], "Extra": ["1", "1", "1"]}
    once = params | {"Extra": ["1"]}
    assert records.callback_event_id(repeated) == records.callback_event_id(once)
    # Distinct values still make a distinct event.
    assert records.callback_event_id(params | {"Extra": ["1", "2"]}) != records.callback_event_id(once)


async def test_a_repeated_parameter_over_http_is_deduplicated(settings):
    async with ingress_only(settings) as (server, http):
        url = server.url + settings.callback_path
        pairs = list(callback_params().items())
        for body_pairs in (pairs, pairs + [("ParticipantIdentity", "alice")], pairs + pairs):
            body = urlencode(body_pairs).encode()
            form: dict[str, list[str]] = {}
            for k, v in body_pairs:
                form.setdefault(k, []).append(v)
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": compute_signature(url, form, AUTH_TOKEN),
            }
            status, _, payload = await send(http, "POST", url, body, headers)
            assert status == 204, payload
    ids = {
        records.decode(m.value)["event_id"]
        for m in await read_topic(settings.kafka_bootstrap_servers, settings.events_topic)
    }
    assert len(ids) == 1


# ---------------------------------------------------------------- 8. Host-header replay


def test_an_ingress_without_a_public_url_refuses_to_start_unless_told_to_allow_any_host():
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }
    with pytest.raises(settings_module.SettingsError, match="ROOMEVENTS_PUBLIC_URL.*ROOMEVENTS_ALLOW_ANY_HOST"):
        settings_module.load(env, role="ingress")
    assert settings_module.load(env | {"ROOMEVENTS_PUBLIC_URL": "https://rooms.example.com"}, role="ingress")
    assert settings_module.load(env | {"ROOMEVENTS_ALLOW_ANY_HOST": "true"}, role="ingress").allow_any_host
    # The other roles never sign anything; dev keeps working without a public URL.
    settings_module.load({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092"}, role="materializer")
    assert settings_module.load({}, role="dev").allow_any_host


async def test_the_in_process_ingress_refuses_too(settings):
    cfg = settings.with_overrides(public_url="", allow_any_host=False)
    with pytest.raises(settings_module.SettingsError, match="ROOMEVENTS_PUBLIC_URL"):
        await IngressServer(cfg, Metrics()).start()


async def test_a_signature_for_another_host_is_refused_with_a_public_url(settings):
    cfg = settings.with_overrides(public_url="https://rooms.example.com", allow_any_host=False)
    async with ingress_only(cfg) as (server, http):
        params = callback_params()
        # Signed for another service that shares the token; Host set to it.
        url, body, headers = twilio_request(
            "POST", server.url + cfg.callback_path, params, signed_url="https://other.example.net" + cfg.callback_path
        )
        status, _, _ = await send(http, "POST", url, body, headers | {"Host": "other.example.net"})
        assert status == 403
        url, body, headers = twilio_request(
            "POST", server.url + cfg.callback_path, params, signed_url="https://rooms.example.com" + cfg.callback_path
        )
        status, _, _ = await send(http, "POST", url, body, headers | {"Host": "other.example.net"})
        assert status == 204


# ---------------------------------------------------------------- 2. parameter cap before parsing


def flood_body(params: int = 12_000) -> bytes:
    body = "&".join(f"p{i}=v" for i in range(params)).encode()
    return body[: 64 * 1024 - 1]


async def test_too_many_parameters_are_refused_before_parsing(settings):
    cfg = settings.with_overrides(max_callback_params=100)
    async with ingress_only(cfg) as (server, http):
        url = server.url + cfg.callback_path
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        status, _, payload = await send(http, "POST", url, flood_body(), form | {"X-Twilio-Signature": "x"})
        assert status == 413 and b"parameters" in payload
        # In the query string too, and in a JSON body.
        query = "&".join(f"q{i}=1" for i in range(150))
        status, _, _ = await send(http, "GET", f"{url}?{query}", b"", {"X-Twilio-Signature": "x"})
        assert status == 413
        json_body = orjson.dumps({f"k{i}": i for i in range(150)})
        status, _, _ = await send(http, "POST", url, json_body, {"Content-Type": "application/json"})
        assert status == 413
        # At the limit, a signed callback goes through.
        params = callback_params() | {f"X{i}": "1" for i in range(100 - len(callback_params()))}
        url2, body, headers = twilio_request("POST", url, params)
        status, _, payload = await send(http, "POST", url2, body, headers)
        assert status == 204, payload
        assert metric(server, "roomevents_signature_failures_total") == 0  # refused before the signature check
    assert len(await read_topic(cfg.kafka_bootstrap_servers, cfg.events_topic)) == 1


def _flood(port: int, path: str, stop: threading.Event, rate: float, sent: list[int]) -> None:
    """One hostile sender (a thread, blocking sockets): unsigned 64 KB bodies of ~12k parameters,
    `rate` requests a second, until `stop`."""
    body = flood_body()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"X-Twilio-Signature: AAAA\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    interval = 1.0 / rate
    while not stop.is_set():
        started = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(request)
                while sock.recv(65536):
                    pass
            sent[0] += 1
        except OSError:
            pass
        stop.wait(max(0.0, interval - (time.monotonic() - started)))


async def _legit_rate(http, url: str, seconds: float) -> float:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    done = 0
    while loop.time() < deadline:
        params = callback_params(SequenceNumber=str(done), Nonce=uuid.uuid4().hex)
        signed_url, body, headers = twilio_request("POST", url, params)
        status, _, payload = await send(http, "POST", signed_url, body, headers)
        assert status == 204, payload
        done += 1
    return done / seconds


async def test_legitimate_callbacks_keep_flowing_under_a_parameter_flood(settings):
    """Eight unsigned senders at ~23 requests/s each (the probe's flood) barely dent the rate of
    signed callbacks (before the cap they cut it from ~139/s to 1/s)."""
    async with ingress_only(settings) as (server, http):
        url = server.url + settings.callback_path
        await _legit_rate(http, url, 0.5)  # warm up (producer connection, caches)
        baseline = await _legit_rate(http, url, 2.0)
        stop, sent = threading.Event(), [0]
        senders = [
            threading.Thread(target=_flood, args=(server.port, settings.callback_path, stop, 23.0, sent), daemon=True)
            for _ in range(8)
        ]
        for t in senders:
            t.start()
        try:
            await wait_until(lambda: sent[0] >= 8, timeout=10)
            under_flood = await _legit_rate(http, url, 2.0)
        finally:
            stop.set()
            await asyncio.to_thread(lambda: [t.join(10) for t in senders])
        flood_413 = metric(server, "roomevents_callbacks_total", event="unknown", status="413")
    assert under_flood >= 0.4 * baseline, (baseline, under_flood, sent[0])
    assert flood_413 >= 8


# ---------------------------------------------------------------- 6. slowloris: timeouts, connection cap


async def _partial_head(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    await writer.drain()
    return reader, writer


async def test_a_partial_request_head_is_timed_out(settings):
    cfg = settings.with_overrides(header_timeout_s=0.5)
    async with ingress_only(cfg) as (server, http):
        reader, writer = await _partial_head(server.port)
        started = time.monotonic()
        data = await asyncio.wait_for(reader.read(), 10)  # the server closes it
        assert time.monotonic() - started < 5
        assert data == b"" or data.startswith(b"HTTP/1.1 408")
        writer.close()
        # One byte at a time does not keep it open either.
        reader, writer = await _partial_head(server.port)
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 5 and not closed:
            try:
                writer.write(b"a")
                await writer.drain()
                closed = await asyncio.wait_for(reader.read(1), 0.1) == b""
            except TimeoutError:
                continue
            except ConnectionError:
                closed = True
        assert closed
        writer.close()
        assert metric(server, "roomevents_connections_timed_out_total", phase="head") >= 2
        async with http.get(server.url + "/healthz") as resp:
            assert resp.status == 200


async def test_a_slow_body_is_timed_out_with_408(settings):
    cfg = settings.with_overrides(body_timeout_s=0.5)
    async with ingress_only(cfg) as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            f"POST {cfg.callback_path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            "Content-Length: 1000\r\n\r\nRoomSid=RM".encode()
        )
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert data.startswith(b"HTTP/1.1 408"), data[:200]
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /v1/Rooms HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Authorization: Basic " + CREDENTIALS + b"\r\nContent-Length: 1000\r\n\r\nType=go"
        )
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert await read_topic(cfg.kafka_bootstrap_servers, cfg.events_topic) == []


async def test_slowloris_past_the_connection_cap_leaves_healthz_answering_and_logs_quiet(settings, captured_log_lines):
    cfg = settings.with_overrides(max_connections=32, header_timeout_s=30)
    async with ingress_only(cfg) as (server, http):
        before = len(captured_log_lines())
        held = [await _partial_head(server.port) for _ in range(100)]
        try:
            for _ in range(3):
                async with http.get(server.url + "/healthz", timeout=aiohttp.ClientTimeout(total=3)) as resp:
                    assert resp.status == 200
                status, _, _ = await raw_exchange(server.port, get_request("/v1/Rooms", b"Basic " + CREDENTIALS), 3)
                assert status == 200
            assert server.open_connections() <= 32
            assert metric(server, "roomevents_connections_evicted_total") >= 100 - 32
        finally:
            for _, writer in held:
                writer.close()
        assert len(captured_log_lines()) - before < 20  # a few rate-limited lines, not one per connection


# ---------------------------------------------------------------- 1. a stalled SSE reader


async def test_a_stalled_stream_reader_is_dropped_and_holds_one_document_per_room(settings):
    """A client that never reads: its pending changes coalesce by room (only the latest document of
    each room waits), the write times out, the client is dropped and counted, and it no longer
    listens."""
    cfg = settings.with_overrides(stream_write_timeout_s=1.0)
    rooms = [f"RM{i:032x}" for i in range(4)]
    async with ingress_only(cfg) as (server, _):
        await wait_until(lambda: server.follower.caught_up.is_set())
        listeners = len(server.follower.index.listeners)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", server.port))
        await loop.sock_sendall(sock, get_request("/v1/Streams/Rooms", b"Basic " + CREDENTIALS))
        head = b""
        while b"snapshot-complete" not in head:
            head += await asyncio.wait_for(loop.sock_recv(sock, 4096), 10)
        await wait_until(lambda: len(server.follower.index.listeners) == listeners + 1)
        # Room documents of ~64 KiB change until the server gives up on the client (the test stands in
        # for the materializer: it publishes the documents onto the state topic).
        producer = AIOKafkaProducer(bootstrap_servers=cfg.kafka_bootstrap_servers, max_request_size=4 * 1024 * 1024)
        await producer.start()
        peak_pending = 0
        try:
            version = 0
            deadline = loop.time() + 60
            while metric(server, "roomevents_stream_clients_dropped_total", reason="write-timeout") == 0:
                assert loop.time() < deadline, "the stalled client was never dropped"
                for sid in rooms:
                    version += 1
                    doc = {
                        "sid": sid,
                        "unique_name": sid,
                        "status": "in-progress",
                        "version": version,
                        "pad": "x" * 65536,
                    }
                    await producer.send(cfg.state_topic, orjson.dumps(doc), key=sid.encode())
                await producer.flush()
                peak_pending = max(peak_pending, metric(server, "roomevents_stream_pending_documents"))
        finally:
            await producer.stop()
            sock.close()
        assert version > 2 * len(rooms)
        assert peak_pending <= len(rooms)
        await wait_until(lambda: len(server.follower.index.listeners) == listeners)
        assert metric(server, "roomevents_stream_pending_documents") == 0


def test_the_connection_cap_stays_below_the_open_file_limit(monkeypatch):
    from service.http import connections

    monkeypatch.setattr(connections.resource, "getrlimit", lambda _: (1024, 4096))
    assert connections.connection_cap(4096) == 1024 - 128
    assert connections.connection_cap(100) == 100
    monkeypatch.setattr(connections.resource, "getrlimit", lambda _: (256, 256))
    assert connections.connection_cap(4096) == 256 - 64
    monkeypatch.setattr(connections.resource, "getrlimit", lambda _: (connections.resource.RLIM_INFINITY,) * 2)
    assert connections.connection_cap(4096) == 4096


# ---------------------------------------------------------------- the session's log capture itself


def test_the_session_log_capture_sees_structlog_and_library_lines(captured_log_lines):
    """The secret search at the end of the session relies on this capture: structlog events at every
    level (even below the printed level) and stdlib records, with their tracebacks."""
    from service import logs

    canary = uuid.uuid4().hex
    logs.get("roomevents.test").debug("canary", value=canary + "-debug")
    logging.getLogger("aiokafka.test").warning("canary %s", canary + "-stdlib")
    try:
        raise ValueError(canary + "-traceback")
    except ValueError:
        logging.getLogger("aiokafka.test").exception("failed")
    text = "\n".join(captured_log_lines())
    for suffix in ("-debug", "-stdlib", "-traceback"):
        assert canary + suffix in text
    # The library guard scrubs credentials out of aiohttp's own lines.
    logging.getLogger("aiohttp.server").error("Error handling request: Authorization: Basic %s", CREDENTIALS.decode())
    assert CREDENTIALS.decode() not in "\n".join(captured_log_lines())

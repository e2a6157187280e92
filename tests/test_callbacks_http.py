"""The status-callback endpoint over real HTTP against the real broker: methods, signatures (public
URL, forwarded headers, ports, secondary token, HMAC-SHA256, JSON bodies), limits, what is published
and how it is keyed, load shedding."""

from __future__ import annotations

import asyncio
import hashlib
from contextlib import asynccontextmanager
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest
from yarl import URL

from service.callbacks.signature import HMAC_SHA256, compute_signature
from service.events import record as records
from service.metrics import Metrics
from service.runtime import IngressServer
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, read_topic, running_system, wait_until

ROOM_SID = "RM" + "b2" * 16
PARTICIPANT_SID = "PA" + "c3" * 16


def callback_params(event: str = "participant-connected", **extra: str) -> dict[str, str]:
    """A realistic Twilio room callback (parameters in Twilio's order)."""
    params = {
        "RoomStatus": "in-progress",
        "RoomType": "group",
        "RoomSid": ROOM_SID,
        "RoomName": "standup",
        "ParticipantStatus": "connected",
        "ParticipantIdentity": "alice",
        "SequenceNumber": "1",
        "StatusCallbackEvent": event,
        "Timestamp": "2030-01-02T03:04:05.678Z",
        "ParticipantSid": PARTICIPANT_SID,
        "AccountSid": ACCOUNT_SID,
    }
    params.update(extra)
    return params


def twilio_request(
    method: str,
    url: str,
    params: dict[str, str],
    *,
    token: str = AUTH_TOKEN,
    algorithm: str | None = None,
    signed_url: str | None = None,
):
    """(url, body, headers) as Twilio sends a callback with `method` to `url`: GET/HEAD/DELETE append
    the params to the query string (signed as part of the URL), the others send a form body (whose
    params are sorted and appended to the signed string). `signed_url` is the URL Twilio knows
    (the public one), when it differs from where the request is actually sent."""
    signed_base = signed_url or url
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if method in ("GET", "HEAD", "DELETE"):
        query = urlencode(params)
        sep = "&" if "?" in url else "?"
        url, signed_base, body, form = f"{url}{sep}{query}", f"{signed_base}{sep}{query}", b"", {}
    else:
        body, form = urlencode(params).encode(), {k: [v] for k, v in params.items()}
    headers["X-Twilio-Signature"] = compute_signature(signed_base, form, token, algorithm or "HMAC_SHA1")
    if algorithm:
        headers["X-Twilio-Webhooks-Signature-Settings"] = f"key=KS{'0' * 32},algorithm={algorithm}"
    return url, body, headers


@asynccontextmanager
async def ingress_only(cfg):
    """The ingress alone (no materializer): enough for everything the callback endpoint does."""
    server = IngressServer(cfg, Metrics())
    await server.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            yield server, http
    finally:
        await server.stop()


async def send(http: aiohttp.ClientSession, method: str, url: str, body: bytes = b"", headers=None):
    # encoded=True: send the query byte-for-byte as signed (yarl would otherwise re-normalise %3A etc.).
    async with http.request(method, URL(url, encoded=True), data=body or None, headers=headers or {}) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def published(cfg) -> list:
    return await read_topic(cfg.kafka_bootstrap_servers, cfg.events_topic)


def metric(server: IngressServer, name: str, **labels) -> float:
    return server.metrics.registry.get_sample_value(name, labels) or 0.0


# ---------------------------------------------------------------- methods


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "POST", "PUT", "PATCH"])
async def test_every_callback_method_signed_correctly_is_published(settings, method):
    async with ingress_only(settings) as (server, http):
        params = callback_params(Extra="x y&z")
        url, body, headers = twilio_request(method, server.url + settings.callback_path, params)
        status, _, payload = await send(http, method, url, body, headers)
        assert status == 204, payload
        assert metric(server, "roomevents_callbacks_total", event="participant-connected", status="204") == 1
    [message] = await published(settings)
    record = records.decode(message.value)
    assert record["type"] == "participant-connected"
    assert record["source"] == "callback"
    assert record["room_sid"] == ROOM_SID and record["room_name"] == "standup"
    assert record["participant"]["sid"] == PARTICIPANT_SID
    assert record["params"] == params  # query or form: the same parameters, nothing lost
    assert message.key == b"standup"


async def test_query_params_of_the_configured_url_are_kept_on_a_post(settings):
    """Twilio appends nothing to a POST URL, but the configured URL may carry its own query."""
    async with ingress_only(settings) as (server, http):
        params = callback_params()
        url, body, headers = twilio_request("POST", f"{server.url}{settings.callback_path}?tenant=a%20b&x=1", params)
        status, _, payload = await send(http, "POST", url, body, headers)
        assert status == 204, payload
    [message] = await published(settings)
    assert records.decode(message.value)["params"] == {"tenant": "a b", "x": "1", **params}


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "PROPFIND"])
async def test_other_methods_are_405_with_allow(settings, method):
    async with ingress_only(settings) as (server, http):
        url, _, headers = twilio_request("GET", server.url + settings.callback_path, callback_params())
        status, resp_headers, _ = await send(http, method, url, b"", headers)
        assert status == 405
        assert set(resp_headers["Allow"].replace(" ", "").split(",")) == {
            "HEAD",
            "GET",
            "POST",
            "PATCH",
            "PUT",
            "DELETE",
        }
    assert await published(settings) == []


async def test_the_callback_path_is_configurable(settings):
    cfg = settings.with_overrides(callback_path="/hooks/twilio/rooms")
    async with ingress_only(cfg) as (server, http):
        for path, expected in (("/hooks/twilio/rooms", 204), ("/v1/Callbacks/Rooms", 404)):
            url, body, headers = twilio_request("POST", server.url + path, callback_params())
            assert (await send(http, "POST", url, body, headers))[0] == expected, path
    assert len(await published(cfg)) == 1


async def test_the_raw_query_is_signed_exactly_as_received(settings):
    """Lower-case escapes, %20 and + for spaces, an escaped '/': signed byte-for-byte, never re-normalised."""
    async with ingress_only(settings) as (server, http):
        query = (
            f"RoomSid={ROOM_SID}&RoomName=stand%20up+room&StatusCallbackEvent=room-created"
            "&Timestamp=2030-01-02T03%3a04%3a05.678Z&Note=a%2Fb&Empty=&Flag"
        )
        url = f"{server.url}{settings.callback_path}?{query}"
        headers = {"X-Twilio-Signature": compute_signature(url, {}, AUTH_TOKEN)}
        assert (await send(http, "GET", url, b"", headers))[0] == 204
        # The same parameters, normalised differently: not what was signed.
        normalised = url.replace("%3a", "%3A")
        assert (await send(http, "GET", normalised, b"", headers))[0] == 403
    [message] = await published(settings)
    record = records.decode(message.value)
    assert record["room_name"] == "stand up room" and message.key == b"stand up room"
    assert record["params"]["Note"] == "a/b" and record["params"]["Empty"] == "" and record["params"]["Flag"] == ""
    assert record["occurred_at"] == "2030-01-02T03:04:05.678Z"


async def test_body_limit_default_64_kib_boundaries(settings):
    assert settings.max_body_bytes == 64 * 1024
    async with ingress_only(settings) as (server, http):
        target = server.url + settings.callback_path
        base = urlencode(callback_params(Padding="")).encode()
        exact = callback_params(Padding="p" * (64 * 1024 - len(base)))
        url, body, headers = twilio_request("POST", target, exact)
        assert len(body) == 64 * 1024
        assert (await send(http, "POST", url, body, headers))[0] == 204
        over = callback_params(Padding="p" * (64 * 1024 - len(base) + 1))
        url, body, headers = twilio_request("POST", target, over)
        assert (await send(http, "POST", url, body, headers))[0] == 413

        # Chunked (no Content-Length): the limit holds while reading.
        async def chunks():
            for i in range(0, len(body), 4096):
                yield body[i : i + 4096]

        async with http.post(URL(url, encoded=True), data=chunks(), headers=headers) as resp:
            assert resp.status == 413
    [message] = await published(settings)
    assert len(records.decode(message.value)["params"]["Padding"]) == 64 * 1024 - len(base)


# ---------------------------------------------------------------- the signed URL


async def test_public_url_behind_a_proxy(settings):
    public = "https://hooks.example.com/roomevents"  # the proxy strips /roomevents
    cfg = settings.with_overrides(public_url=public + "/")
    async with ingress_only(cfg) as (server, http):
        local = server.url + cfg.callback_path
        params = callback_params()
        # Signed against the public URL: accepted, for a body method and a query method.
        for method in ("POST", "GET"):
            url, body, headers = twilio_request(method, local, params, signed_url=public + cfg.callback_path)
            assert (await send(http, method, url, body, headers))[0] == 204, method
        # Signed against the address the proxy used: refused.
        url, body, headers = twilio_request("POST", local, params)
        assert (await send(http, "POST", url, body, headers))[0] == 403
        # Forwarded headers cannot override the configured public URL.
        url, body, headers = twilio_request(
            "POST", local, params, signed_url="https://evil.example" + cfg.callback_path
        )
        headers |= {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
        assert (await send(http, "POST", url, body, headers))[0] == 403
    assert len(await published(cfg)) == 2


@pytest.mark.parametrize("trusted", [True, False])
async def test_forwarded_headers_only_when_trusted(settings, trusted):
    cfg = settings.with_overrides(trust_forwarded_headers=trusted)
    forwarded = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "rooms.example.org, 10.0.0.7",
        "X-Forwarded-Port": "8443",
    }
    async with ingress_only(cfg) as (server, http):
        local = server.url + cfg.callback_path
        params = callback_params()
        public = "https://rooms.example.org:8443" + cfg.callback_path
        url, body, headers = twilio_request("POST", local, params, signed_url=public)
        status_public = (await send(http, "POST", url, body, headers | forwarded))[0]
        url, body, headers = twilio_request("POST", local, params)
        status_local = (await send(http, "POST", url, body, headers | forwarded))[0]
        # A port inside X-Forwarded-Host wins over X-Forwarded-Port.
        url, body, headers = twilio_request(
            "GET", local, params, signed_url="https://rooms.example.org:9443" + cfg.callback_path
        )
        status_host_port = (
            await send(http, "GET", url, body, headers | forwarded | {"X-Forwarded-Host": "rooms.example.org:9443"})
        )[0]
    if trusted:
        assert (status_public, status_local, status_host_port) == (204, 403, 204)
    else:
        assert (status_public, status_local, status_host_port) == (403, 204, 403)
    assert len(await published(cfg)) == (2 if trusted else 1)


@pytest.mark.parametrize(
    "public_url, signed_as",
    [
        ("https://hooks.example.com", "https://hooks.example.com:443"),  # Twilio kept the default port
        ("https://hooks.example.com:443", "https://hooks.example.com"),  # Twilio dropped it
        ("http://hooks.example.com", "http://hooks.example.com:80"),
        ("https://hooks.example.com:8443", "https://hooks.example.com"),  # voice-over-HTTPS drops any port
        ("https://user:secret@hooks.example.com", "https://hooks.example.com"),  # credentials never signed
    ],
)
async def test_default_port_variants(settings, public_url, signed_as):
    cfg = settings.with_overrides(public_url=public_url)
    async with ingress_only(cfg) as (server, http):
        for method in ("POST", "GET"):
            url, body, headers = twilio_request(
                method, server.url + cfg.callback_path, callback_params(), signed_url=signed_as + cfg.callback_path
            )
            assert (await send(http, method, url, body, headers))[0] == 204, method
        # A different non-default port is a different URL.
        url, body, headers = twilio_request(
            "POST",
            server.url + cfg.callback_path,
            callback_params(),
            signed_url="https://hooks.example.com:1234" + cfg.callback_path,
        )
        assert (await send(http, "POST", url, body, headers))[0] == 403


# ---------------------------------------------------------------- tokens and algorithms


async def test_secondary_token_for_rotation(settings):
    cfg = settings.with_overrides(twilio_auth_token_secondary="next-auth-token")
    async with ingress_only(cfg) as (server, http):
        target = server.url + cfg.callback_path
        for token, expected in ((AUTH_TOKEN, 204), ("next-auth-token", 204), ("some-other-token", 403)):
            url, body, headers = twilio_request("POST", target, callback_params(), token=token)
            assert (await send(http, "POST", url, body, headers))[0] == expected, token
    assert len(await published(cfg)) == 2


async def test_hmac_sha256_when_the_signature_settings_header_says_so(settings):
    async with ingress_only(settings) as (server, http):
        target = server.url + settings.callback_path
        url, body, headers = twilio_request("POST", target, callback_params(), algorithm=HMAC_SHA256)
        assert (await send(http, "POST", url, body, headers))[0] == 204
        # The same SHA-256 signature without the header is checked as SHA-1: refused.
        del headers["X-Twilio-Webhooks-Signature-Settings"]
        assert (await send(http, "POST", url, body, headers))[0] == 403
        # A SHA-1 signature claimed as SHA-256, and an unknown algorithm: refused (no downgrade).
        url, body, headers = twilio_request("POST", target, callback_params())
        for claimed in ("HMAC_SHA256", "HMAC_MD5"):
            bad = headers | {"X-Twilio-Webhooks-Signature-Settings": f"key=KS1,algorithm={claimed}"}
            assert (await send(http, "POST", url, body, bad))[0] == 403, claimed
        assert metric(server, "roomevents_signature_failures_total") == 3
    assert len(await published(settings)) == 1


async def test_json_body_with_body_sha256(settings):
    async with ingress_only(settings) as (server, http):
        doc = {
            "RoomSid": ROOM_SID,
            "RoomName": "standup",
            "StatusCallbackEvent": "room-created",
            "Timestamp": "2030-01-02T03:04:05.678Z",
            "AccountSid": ACCOUNT_SID,
            "SequenceNumber": 0,
            "Nested": {"a": [1, 2]},
        }
        body = orjson.dumps(doc)
        url = f"{server.url}{settings.callback_path}?bodySHA256={hashlib.sha256(body).hexdigest()}"
        headers = {"Content-Type": "application/json", "X-Twilio-Signature": compute_signature(url, {}, AUTH_TOKEN)}
        assert (await send(http, "POST", url, body, headers))[0] == 204
        # The body does not match its hash: refused.
        assert (await send(http, "POST", url, body.replace(b"standup", b"hijack"), headers))[0] == 403
        # A JSON body without bodySHA256 is not covered by the signature: refused.
        plain = f"{server.url}{settings.callback_path}"
        headers = {"Content-Type": "application/json", "X-Twilio-Signature": compute_signature(plain, {}, AUTH_TOKEN)}
        assert (await send(http, "POST", plain, body, headers))[0] == 403
    [message] = await published(settings)
    record = records.decode(message.value)
    assert record["type"] == "room-created" and record["sequence_number"] == 0
    assert record["params"]["Nested"] == '{"a":[1,2]}'
    assert "bodySHA256" in record["params"]


# ---------------------------------------------------------------- refusals publish nothing


async def test_refusals_publish_nothing(settings):
    cfg = settings.with_overrides(max_body_bytes=4096)
    async with ingress_only(cfg) as (server, http):
        target = server.url + cfg.callback_path

        async def status_of(method, url, body, headers):
            return (await send(http, method, url, body, headers))[0]

        # 413: over the limit, even when correctly signed.
        url, body, headers = twilio_request("POST", target, callback_params(Padding="x" * 5000))
        assert await status_of("POST", url, body, headers) == 413
        # 400: undecodable (bytes that are not UTF-8), signed or not.
        bad = b"RoomSid=RM1&StatusCallbackEvent=room-ended&Name=%FF%FE"
        assert (
            await status_of(
                "POST", target, bad, {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"}
            )
            == 400
        )
        assert await status_of("POST", target, b"{not json", {"Content-Type": "application/json"}) == 400
        # 400: signed, but without RoomSid / StatusCallbackEvent; or an unreadable Timestamp.
        for params in (
            {"StatusCallbackEvent": "room-ended", "AccountSid": ACCOUNT_SID},
            {"RoomSid": ROOM_SID, "AccountSid": ACCOUNT_SID},
            {"RoomSid": ROOM_SID, "StatusCallbackEvent": ""},
            callback_params(Timestamp="yesterday"),
        ):
            for method in ("POST", "GET"):
                url, body, headers = twilio_request(method, target, params)
                assert await status_of(method, url, body, headers) == 400, (method, params)
        # 403: bad, missing, or for other parameters than the ones sent.
        url, body, headers = twilio_request("POST", target, callback_params())
        assert await status_of("POST", url, body, headers | {"X-Twilio-Signature": "bm90LXZhbGlk"}) == 403
        assert await status_of("POST", url, body, {"Content-Type": headers["Content-Type"]}) == 403
        assert await status_of("POST", url, body.replace(b"alice", b"mallory"), headers) == 403
        url, body, headers = twilio_request("GET", target, callback_params())
        assert await status_of("GET", url.replace("alice", "mallory"), body, headers) == 403
        # 415: some other media type.
        assert await status_of("POST", target, b"<xml/>", {"Content-Type": "text/xml"}) == 415
        assert metric(server, "roomevents_signature_failures_total") == 4
        assert metric(server, "roomevents_callbacks_total", event="unknown", status="413") == 1
    assert await published(cfg) == []


async def test_rejected_event_names_do_not_inflate_metric_labels(settings):
    async with ingress_only(settings) as (server, http):
        target = server.url + settings.callback_path
        for n in range(3):
            url, body, headers = twilio_request("POST", target, callback_params(event=f"made-up-{n}"))
            await send(http, "POST", url, body, headers | {"X-Twilio-Signature": "forged"})
        assert metric(server, "roomevents_callbacks_total", event="other", status="403") == 3


# ---------------------------------------------------------------- what is published


async def test_unknown_event_types_and_params_are_kept(settings):
    async with ingress_only(settings) as (server, http):
        params = callback_params(event="participant-reconnecting", BrandNewParam="1", Tag="x")
        url, body, headers = twilio_request("POST", server.url + settings.callback_path, params)
        assert (await send(http, "POST", url, body, headers))[0] == 204
        # Repeated parameters are kept as lists.
        url = server.url + settings.callback_path
        pairs = list(callback_params(event="track-added", TrackSid="MT" + "d4" * 16, TrackKind="video").items())
        pairs += [("Label", "b"), ("Label", "a")]
        form = {}
        for k, v in pairs:
            form.setdefault(k, []).append(v)
        body = urlencode(pairs).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": compute_signature(url, form, AUTH_TOKEN),
        }
        assert (await send(http, "POST", url, body, headers))[0] == 204
        assert metric(server, "roomevents_callbacks_total", event="other", status="204") == 1
    first, second = sorted((records.decode(m.value) for m in await published(settings)), key=lambda r: r["type"])
    assert first["type"] == "participant-reconnecting"
    assert first["params"]["BrandNewParam"] == "1" and first["params"]["Tag"] == "x"
    assert first["participant"]["identity"] == "alice"
    assert second["type"] == "track-added"
    assert second["params"]["Label"] == ["b", "a"]
    assert second["track"] == {"sid": "MT" + "d4" * 16, "kind": "video", "name": None}


async def test_duplicate_callback_has_the_same_event_id(settings):
    async with ingress_only(settings) as (server, http):
        target = server.url + settings.callback_path
        params = callback_params()
        for method in ("POST", "POST", "GET"):  # a retry, and the same callback over GET
            url, body, headers = twilio_request(method, target, params)
            assert (await send(http, method, url, body, headers))[0] == 204
        url, body, headers = twilio_request("POST", target, callback_params(SequenceNumber="2"))
        assert (await send(http, "POST", url, body, headers))[0] == 204
    messages = await published(settings)
    ids = [records.decode(m.value)["event_id"] for m in messages]
    assert len(ids) == 4 and len(set(ids)) == 2
    assert sorted(ids.count(i) for i in set(ids)) == [1, 3]
    # ce_id carries the same id (the CloudEvents dedupe key is source + id).
    assert {dict(m.headers)["ce_id"].decode() for m in messages} == set(ids)


async def test_a_room_and_its_unique_name_share_one_partition(settings):
    """REST commands and callbacks of a room, and of every room that uses the same unique name, are
    keyed by the unique name: one partition, in order. A room without a unique name is keyed by its SID."""
    from tests.helpers import basic_auth

    async with running_system(settings) as (ingress, _), aiohttp.ClientSession() as http:
        target = ingress.url + settings.callback_path
        sids = []
        for unique_name in ("weekly", None):
            form = {"UniqueName": unique_name} if unique_name else {}
            async with http.post(f"{ingress.url}/v1/Rooms", data=form, headers=basic_auth()) as resp:
                assert resp.status == 201, await resp.text()
                room = await resp.json()
            sids.append(room["sid"])
            name = unique_name or room["sid"]
            for event, extra in (
                ("room-created", {}),
                ("participant-connected", {}),
                ("participant-disconnected", {"ParticipantStatus": "disconnected"}),
                ("room-ended", {"RoomStatus": "completed"}),
            ):
                params = callback_params(event=event, RoomSid=room["sid"], RoomName=name, **extra)
                url, body, headers = twilio_request("POST", target, params)
                assert (await send(http, "POST", url, body, headers))[0] == 204
        # A later room reusing the name "weekly", once the first one is seen completed.
        await wait_until(lambda: ingress.follower.index.docs.get(sids[0], {}).get("status") == "completed")
        async with http.post(f"{ingress.url}/v1/Rooms", data={"UniqueName": "weekly"}, headers=basic_auth()) as resp:
            assert resp.status == 201, await resp.text()
            sids.append((await resp.json())["sid"])
    messages = await published(settings)
    by_key: dict[bytes, set[int]] = {}
    for m in messages:
        by_key.setdefault(m.key, set()).add(m.partition)
    assert set(by_key) == {b"weekly", sids[1].encode()}
    assert all(len(partitions) == 1 for partitions in by_key.values())
    weekly = [records.decode(m.value) for m in messages if m.key == b"weekly"]
    assert {r["room_sid"] for r in weekly} == {sids[0], sids[2]}
    assert {r["source"] for r in weekly} == {"api", "callback"}
    # In log order: the first room's history, then the second room's creation.
    assert [r["type"] for r in weekly] == [
        "room-created",
        "room-created",
        "participant-connected",
        "participant-disconnected",
        "room-ended",
        "room-created",
    ]


# ---------------------------------------------------------------- overload


async def test_overload_is_shed_with_503_and_retry_after(settings):
    cfg = settings.with_overrides(max_in_flight=2)
    async with ingress_only(cfg) as (server, http):
        url, body, headers = twilio_request("POST", server.url + cfg.callback_path, callback_params())
        # Two slow clients hold both slots: headers sent, body still on its way.
        held = []
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            head = (
                f"POST {cfg.callback_path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\n"
                f"X-Twilio-Signature: {headers['X-Twilio-Signature']}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body[:10])
            await writer.drain()
            held.append((reader, writer))

        async def in_flight() -> int:
            from service.http.keys import SERVER_LOAD

            return server.app[SERVER_LOAD].in_flight

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while await in_flight() < 2:
            assert loop.time() < deadline, "the slow requests never reached the handler"
            await asyncio.sleep(0.01)
        status, resp_headers, _ = await send(http, "POST", url, body, headers)
        assert status == 503 and int(resp_headers["Retry-After"]) >= 1
        assert metric(server, "roomevents_shed_requests_total") == 1
        # Health stays reachable while shedding.
        assert (await send(http, "GET", server.url + "/healthz"))[0] == 200
        # The slow clients finish: both get their 204, and capacity is back.
        for reader, writer in held:
            writer.write(body[10:])
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), 10)
            assert status_line.split()[1] == b"204", status_line
            writer.close()
        assert (await send(http, "POST", url, body, headers))[0] == 204
    assert len(await published(cfg)) == 3

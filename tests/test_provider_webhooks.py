"""LiveKit and Zoom webhook routes over real HTTP against the real broker: signed as the providers
sign them (LiveKit with livekit-api's own AccessToken, Zoom with the documented HMAC), what is
published, and that forged, expired, replayed and tampered requests are refused with nothing on the
topic (read back to prove it)."""

from __future__ import annotations

import hashlib
import hmac
import time

import orjson
import pytest

from service.events import record as records
from tests.helpers import ACCOUNT_SID, read_topic
from tests.provider_webhooks import (
    LIVEKIT_KEY,
    LIVEKIT_KEY_2,
    LIVEKIT_SECRET,
    LIVEKIT_SECRET_2,
    ZOOM_SECRET,
    ZOOM_SECRET_2,
    livekit_event,
    livekit_headers,
    livekit_token,
    lk_room_sid,
    zoom_event,
    zoom_headers,
    zoom_room_sid,
    zoom_signature,
    zoom_user,
)
from tests.test_callbacks_http import ingress_only, metric, send

LIVEKIT = "/v1/Callbacks/LiveKit"
ZOOM = "/v1/Callbacks/Zoom"
NOW_S = int(time.time())


@pytest.fixture
def provider_settings(settings):
    return settings.with_overrides(
        livekit_api_key=LIVEKIT_KEY,
        livekit_api_secret=LIVEKIT_SECRET,
        livekit_api_key_secondary=LIVEKIT_KEY_2,
        livekit_api_secret_secondary=LIVEKIT_SECRET_2,
        zoom_webhook_secret_token=ZOOM_SECRET,
        zoom_webhook_secret_token_secondary=ZOOM_SECRET_2,
    )


def joined(n: int = 1, room: str = "RM_lkDemo", name: str = "lk-demo") -> bytes:
    return livekit_event(
        "participant_joined",
        NOW_S,
        f"EV_join{n}",
        room_sid=room,
        room_name=name,
        participant=(f"PA_p{n}", f"user{n}"),
        joined_at=NOW_S,
    )


def user_joined(n: int = 1, session: str = "sess-1==", name: str = "zoom-demo") -> bytes:
    return zoom_event(
        "session.user_joined",
        NOW_S * 1000 + n,
        session_id=session,
        session_name=name,
        user=zoom_user(f"1600{n}", "Ann"),
    )


async def published(cfg) -> list[dict]:
    return [records.decode(m.value) for m in await read_topic(cfg.kafka_bootstrap_servers, cfg.events_topic)]


# ---------------------------------------------------------------- routes exist only with credentials


async def test_a_provider_route_exists_only_when_its_credentials_are_set(settings):
    async with ingress_only(settings) as (server, http):
        for path in (LIVEKIT, ZOOM):
            status, _, _ = await send(http, "POST", server.url + path, joined(), livekit_headers(joined()))
            assert status == 404, path
    only_zoom = settings.with_overrides(zoom_webhook_secret_token=ZOOM_SECRET)
    async with ingress_only(only_zoom) as (server, http):
        assert (await send(http, "POST", server.url + LIVEKIT, joined(), livekit_headers(joined())))[0] == 404
        body = user_joined()
        assert (await send(http, "POST", server.url + ZOOM, body, zoom_headers(body)))[0] == 204
    assert [r["provider"] for r in await published(settings)] == ["zoom"]


# ---------------------------------------------------------------- LiveKit


async def test_a_signed_livekit_webhook_is_published_as_a_provider_neutral_record(provider_settings):
    cfg = provider_settings
    body = joined()
    async with ingress_only(cfg) as (server, http):
        status, _, _ = await send(http, "POST", server.url + LIVEKIT, body, livekit_headers(body))
        assert status == 204
        # A redelivery (LiveKit retries) is the same record: same event id.
        assert (await send(http, "POST", server.url + LIVEKIT, body, livekit_headers(body)))[0] == 204
        # Signed with the secondary key pair (rotation): accepted.
        body2 = joined(2)
        headers = livekit_headers(body2, key=LIVEKIT_KEY_2, secret=LIVEKIT_SECRET_2)
        assert (await send(http, "POST", server.url + LIVEKIT, body2, headers))[0] == 204
        assert (
            metric(server, "roomevents_webhooks_total", provider="livekit", event="participant_joined", status="204")
            == 3
        )
    messages = await read_topic(cfg.kafka_bootstrap_servers, cfg.events_topic)
    first, again, second = (records.decode(m.value) for m in messages)
    assert first == again | {"received_at": first["received_at"]}
    assert {m.key for m in messages} == {b"lk-demo"}  # the LiveKit room name: one partition, one fold
    assert first["schema_version"] == 2 and first["provider"] == "livekit" and first["source"] == "callback"
    assert first["type"] == "participant-connected" and first["account_sid"] == ACCOUNT_SID
    assert first["room_sid"] == lk_room_sid("RM_lkDemo") == second["room_sid"]
    assert first["room_name"] == "lk-demo" and first["occurred_at_ms"] == NOW_S * 1000
    assert first["event_id"] == records.digest("livekit", "EV_join1")
    assert first["participant"] == {
        "sid": records.derived_sid("participant", "livekit", "RM_lkDemo", "PA_p1"),
        "identity": "user1",
        "status": "connected",
        "duration": None,
    }
    native = first["native"]
    assert (native["event"], native["id"], native["room_id"], native["participant_id"]) == (
        "participant_joined",
        "EV_join1",
        "RM_lkDemo",
        "PA_p1",
    )
    assert native["payload"] == orjson.loads(body) and first["params"] == {}


async def test_forged_expired_replayed_and_tampered_livekit_webhooks_are_refused_and_nothing_is_published(
    provider_settings,
):
    cfg = provider_settings
    body = joined()
    other = joined(9)
    attempts = {
        "no Authorization": {"Content-Type": "application/webhook+json"},
        "forged (another secret)": livekit_headers(body, secret="not-the-secret-0123456789abcdef0123"),
        "forged (unknown key)": livekit_headers(body, key="APIunknown", secret=LIVEKIT_SECRET),
        "expired": livekit_headers(body, ttl_s=-600),
        "replayed token on another body": {"Authorization": livekit_token(other)},
        "not a JWT": {"Authorization": "Bearer nonsense"},
    }
    async with ingress_only(cfg) as (server, http):
        for what, headers in attempts.items():
            status, _, payload = await send(http, "POST", server.url + LIVEKIT, body, headers)
            assert status == 403, (what, status, payload)
        # Tampered: signed, then changed (one participant identity altered in the body).
        headers = livekit_headers(body)
        tampered = body.replace(b"user1", b"admin")
        assert (await send(http, "POST", server.url + LIVEKIT, tampered, headers))[0] == 403
        # Signed but not a webhook: 400.
        for bad in (b"not json", b"[1, 2]", b'{"room": {"sid": "RM_x"}}', b'{"event": "room_started"}'):
            status, _, payload = await send(http, "POST", server.url + LIVEKIT, bad, livekit_headers(bad))
            assert status == 400, (bad, status, payload)
        assert metric(server, "roomevents_webhooks_total", provider="livekit", event="unknown", status="403") == 7
    assert await published(cfg) == []


async def test_a_livekit_event_without_a_room_is_acknowledged_and_not_folded(provider_settings):
    cfg = provider_settings
    body = (
        b'{"event": "ingress_started", "id": "EV_in1", "createdAt": "1700000000", "ingressInfo": {"ingressId": "IN_1"}}'
    )
    async with ingress_only(cfg) as (server, http):
        assert (await send(http, "POST", server.url + LIVEKIT, body, livekit_headers(body)))[0] == 204
    assert await published(cfg) == []


# ---------------------------------------------------------------- Zoom


async def test_zoom_url_validation_is_answered_with_the_documented_hmac_and_publishes_nothing(provider_settings):
    cfg = provider_settings
    body = orjson.dumps(
        {"event": "endpoint.url_validation", "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}, "event_ts": 1}
    )
    async with ingress_only(cfg) as (server, http):
        status, _, answer = await send(http, "POST", server.url + ZOOM, body, zoom_headers(body))
        assert status == 200
        expected = hmac.new(ZOOM_SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
        assert orjson.loads(answer) == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}
        # During a rotation, a challenge signed with the secondary token is answered with it.
        status, _, answer = await send(http, "POST", server.url + ZOOM, body, zoom_headers(body, secret=ZOOM_SECRET_2))
        expected = hmac.new(ZOOM_SECRET_2.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
        assert status == 200 and orjson.loads(answer)["encryptedToken"] == expected
        # An unsigned challenge is refused like any other unsigned request.
        assert (await send(http, "POST", server.url + ZOOM, body, {"Content-Type": "application/json"}))[0] == 403
    assert await published(cfg) == []


async def test_a_signed_zoom_webhook_is_published_as_a_provider_neutral_record(provider_settings):
    cfg = provider_settings
    body = user_joined()
    async with ingress_only(cfg) as (server, http):
        assert (await send(http, "POST", server.url + ZOOM, body, zoom_headers(body)))[0] == 204
        # A recording with two media files and a transcript: one record per media file.
        recording = zoom_event(
            "session.recording_completed",
            NOW_S * 1000 + 50,
            session_id="sess-1==",
            session_name="zoom-demo",
            recording_files=[
                {"id": "f-video", "file_type": "MP4", "file_extension": "MP4", "file_size": 1000},
                {"id": "f-audio", "file_type": "M4A", "file_extension": "M4A", "file_size": 100},
                {"id": "f-text", "file_type": "TRANSCRIPT", "file_extension": "VTT", "file_size": 10},
            ],
        )
        headers = zoom_headers(recording, secret=ZOOM_SECRET_2)  # the secondary token verifies too
        assert (await send(http, "POST", server.url + ZOOM, recording, headers))[0] == 204
    messages = await read_topic(cfg.kafka_bootstrap_servers, cfg.events_topic)
    assert {m.key for m in messages} == {b"zoom-demo"}
    joined_record, *recordings = sorted(
        (records.decode(m.value) for m in messages), key=lambda r: r["type"] != "participant-connected"
    )
    assert joined_record["provider"] == "zoom" and joined_record["type"] == "participant-connected"
    assert joined_record["room_sid"] == zoom_room_sid("sess-1==")
    assert joined_record["occurred_at_ms"] == NOW_S * 1000 + 1
    assert joined_record["participant"]["sid"] == records.derived_sid("participant", "zoom", "sess-1==", "16001")
    assert joined_record["native"]["payload"] == orjson.loads(body)
    assert sorted(r["recording"]["type"] for r in recordings) == ["audio", "video"]
    assert {r["type"] for r in recordings} == {"recording-completed"}
    assert len({r["event_id"] for r in recordings}) == 2


async def test_forged_stale_replayed_and_tampered_zoom_webhooks_are_refused_and_nothing_is_published(
    provider_settings,
):
    cfg = provider_settings.with_overrides(zoom_replay_window_ms=60_000)
    body = user_joined()
    now = int(time.time())
    signed_now = zoom_headers(body)
    attempts = {
        "unsigned": {"Content-Type": "application/json"},
        "no timestamp": {"x-zm-signature": signed_now["x-zm-signature"]},
        "forged (another secret)": zoom_headers(body, secret="guessed"),
        "replayed (stale timestamp, correctly signed)": zoom_headers(body, timestamp=now - 120),
        "from the future": zoom_headers(body, timestamp=now + 120),
        "timestamp changed after signing": signed_now | {"x-zm-request-timestamp": str(now - 1)},
        "not a timestamp": {"x-zm-request-timestamp": "soon", "x-zm-signature": zoom_signature(body, "soon")},
    }
    async with ingress_only(cfg) as (server, http):
        for what, headers in attempts.items():
            status, _, payload = await send(http, "POST", server.url + ZOOM, body, headers)
            assert status == 403, (what, status, payload)
        tampered = body.replace(b"Ann", b"Eve")
        assert (await send(http, "POST", server.url + ZOOM, tampered, signed_now))[0] == 403
        # Signed but unreadable: 400.
        for bad in (
            b"{not json",
            b'{"event": "session.user_joined"}',
            b'{"event": "session.user_joined", "event_ts": 1, "payload": {"object": {}}}',
            b'{"event": "session.user_joined", "event_ts": "soon", "payload": {}}',
            b'{"event": "endpoint.url_validation", "payload": {}}',
        ):
            status, _, payload = await send(http, "POST", server.url + ZOOM, bad, zoom_headers(bad))
            assert status == 400, (bad, status, payload)
        # Millisecond timestamps (as some Zoom samples send them) are read as such.
        assert (await send(http, "POST", server.url + ZOOM, body, zoom_headers(body, timestamp=now * 1000)))[0] == 204
    assert [r["type"] for r in await published(cfg)] == ["participant-connected"]


# ---------------------------------------------------------------- limits


async def test_both_routes_keep_the_body_size_limit(provider_settings):
    cfg = provider_settings.with_overrides(max_body_bytes=2048)
    big = livekit_event(
        "participant_joined", NOW_S, "EV_big", room_sid="RM_big", room_name="x" * 4000, participant=("PA_1", "a")
    )
    async with ingress_only(cfg) as (server, http):
        assert (await send(http, "POST", server.url + LIVEKIT, big, livekit_headers(big)))[0] == 413
        assert (await send(http, "POST", server.url + ZOOM, big, zoom_headers(big)))[0] == 413
        assert metric(server, "roomevents_webhooks_total", provider="zoom", event="unknown", status="413") == 1
    assert await published(cfg) == []


async def test_api_completion_of_a_livekit_room_keeps_it_a_livekit_room(provider_settings):
    """POST /v1/Rooms/{Sid} Status=completed on a LiveKit room: roomevents' own command about it
    carries its provider, and the room stays a LiveKit room."""
    import aiohttp

    from tests.helpers import basic_auth, running_system, wait_until

    cfg = provider_settings
    body = livekit_event("room_started", NOW_S, "EV_s", room_sid="RM_api", room_name="lk-api", creation_time=NOW_S)
    async with running_system(cfg) as (ingress, _):
        async with aiohttp.ClientSession() as http:
            assert (await send(http, "POST", ingress.url + LIVEKIT, body, livekit_headers(body)))[0] == 204
            sid = lk_room_sid("RM_api")
            await wait_until(lambda: ingress.follower.index.docs.get(sid))
            async with http.post(
                f"{ingress.url}/v1/Rooms/{sid}", data={"Status": "completed"}, headers=basic_auth()
            ) as resp:
                assert resp.status == 202, await resp.text()
                room = await resp.json()
            assert room["status"] == "completed" and room["unique_name"] == "lk-api"
    ended = [r for r in await published(cfg) if r["type"] == "room-ended"]
    assert [(r["provider"], r["source"]) for r in ended] == [("livekit", "api")]
    assert ingress.follower.index.docs[sid]["provider"] == "livekit"

"""Three providers at once, end to end: a Twilio room (signed status callbacks), a LiveKit room
(webhooks signed with livekit-api) and a Zoom Video SDK session (webhooks signed with Zoom's HMAC)
run concurrently through the real ingress, broker and materializer, and all three are served alike:
by the Twilio-compatible Rooms API, in one SSE stream and on the state topic, each with its
`provider`."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson

from service.events import record as records
from tests.helpers import ACCOUNT_SID, basic_auth, read_topic, running_system, wait_until
from tests.provider_webhooks import (
    LIVEKIT_KEY,
    LIVEKIT_SECRET,
    ZOOM_SECRET,
    livekit_event,
    livekit_headers,
    lk_room_sid,
    zoom_event,
    zoom_headers,
    zoom_iso,
    zoom_room_sid,
    zoom_user,
)
from tests.test_callbacks_http import twilio_request
from tests.test_stream_and_timers import read_events

TWILIO_SID = "RM" + "7e" * 16


def twilio_date(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


class Room:
    """One room's webhooks, in the order its provider sends them (phase 1: start and joins; phase 2:
    leaves and end)."""

    def __init__(self, base: str, t0_s: int, cfg) -> None:
        self.base, self.t0, self.cfg = base, t0_s, cfg

    # Twilio: status callbacks at T0 + s seconds.
    def twilio(self, event: str, s: int, **extra: str):
        params = {
            "AccountSid": ACCOUNT_SID,
            "RoomSid": TWILIO_SID,
            "RoomName": "e2e-twilio",
            "RoomStatus": "completed" if event == "room-ended" else "in-progress",
            "RoomType": "group",
            "StatusCallbackEvent": event,
            "Timestamp": records.format_ms((self.t0 + s) * 1000),
            **extra,
        }
        return twilio_request("POST", self.base + self.cfg.callback_path, params)

    def livekit(self, event: str, s: int, **kw):
        body = livekit_event(
            event,
            self.t0 + s,
            f"EV_{event}_{s}",
            room_sid="RM_e2eLiveKit",
            room_name="e2e-livekit",
            creation_time=self.t0,
            **kw,
        )
        return self.base + "/v1/Callbacks/LiveKit", body, livekit_headers(body)

    def zoom(self, event: str, s: int, **fields):
        body = zoom_event(event, (self.t0 + s) * 1000, session_id="e2eZoomSession==", session_name="e2e-zoom", **fields)
        return self.base + "/v1/Callbacks/Zoom", body, zoom_headers(body)

    def phase1(self) -> list:
        start = zoom_iso(self.t0 * 1000)
        return [
            self.twilio("room-created", 0),
            self.twilio("participant-connected", 1, ParticipantSid="PA" + "a1" * 16, ParticipantIdentity="tina"),
            self.twilio("participant-connected", 2, ParticipantSid="PA" + "b2" * 16, ParticipantIdentity="tom"),
            self.livekit("room_started", 0),
            self.livekit("participant_joined", 1, participant=("PA_alice", "alice"), joined_at=self.t0 + 1),
            self.livekit("participant_joined", 2, participant=("PA_bob", "bob"), joined_at=self.t0 + 2),
            self.livekit("track_published", 3, participant=("PA_alice", "alice"), track=("TR_cam", "video", "camera")),
            self.zoom("session.started", 0, start_time=start),
            self.zoom("session.user_joined", 1, user=zoom_user("16001", "Zed", "zed")),
            self.zoom("session.user_joined", 2, user=zoom_user("16002", "Zoe", "zoe")),
        ]

    def phase2(self) -> list:
        return [
            self.twilio(
                "participant-disconnected",
                10,
                ParticipantSid="PA" + "a1" * 16,
                ParticipantIdentity="tina",
                ParticipantStatus="disconnected",
                ParticipantDuration="9",
            ),
            self.twilio("room-ended", 30, RoomDuration="30"),
            self.livekit("participant_left", 12, participant=("PA_alice", "alice"), joined_at=self.t0 + 1),
            self.livekit("room_finished", 40),
            self.zoom("session.user_left", 15, user=zoom_user("16001", "Zed", "zed")),
            self.zoom(
                "session.ended", 50, start_time=zoom_iso(self.t0 * 1000), end_time=zoom_iso((self.t0 + 50) * 1000)
            ),
        ]


async def post_all(http: aiohttp.ClientSession, requests: list) -> None:
    """Every provider's webhooks at once (each room's own webhooks keep their order, as each provider
    sends them one at a time per room)."""

    async def one(url: str, body: bytes, headers: dict) -> None:
        async with http.post(url, data=body, headers=headers) as resp:
            assert resp.status == 204, (url, resp.status, await resp.text())

    by_route: dict[str, list] = {}
    for request in requests:
        by_route.setdefault(request[0], []).append(request)

    async def in_order(items: list) -> None:
        for item in items:
            await one(*item)

    await asyncio.gather(*(in_order(items) for items in by_route.values()))


async def test_a_twilio_room_a_livekit_room_and_a_zoom_session_are_served_alike(settings):
    cfg = settings.with_overrides(
        livekit_api_key=LIVEKIT_KEY, livekit_api_secret=LIVEKIT_SECRET, zoom_webhook_secret_token=ZOOM_SECRET
    )
    t0 = int(time.time()) - 120
    sids = {"twilio": TWILIO_SID, "livekit": lk_room_sid("RM_e2eLiveKit"), "zoom": zoom_room_sid("e2eZoomSession==")}
    async with running_system(cfg) as (ingress, _), aiohttp.ClientSession() as http:
        base = ingress.url
        rooms = Room(base, t0, cfg)
        async with http.get(f"{base}/v1/Streams/Rooms", headers=basic_auth()) as stream:
            await read_events(stream, lambda ev: ev[-1]["event"] == "snapshot-complete")

            # 1. All three rooms start and fill up at once.
            await post_all(http, rooms.phase1())
            await wait_until(
                lambda: all(
                    ingress.follower.index.docs.get(s, {}).get("connected_participants") == 2 for s in sids.values()
                )
            )
            async with http.get(f"{base}/v1/Rooms", headers=basic_auth()) as resp:
                live = {r["sid"]: r for r in (await resp.json())["rooms"]}
            assert set(live) == set(sids.values())
            for provider, sid in sids.items():
                assert live[sid]["status"] == "in-progress" and live[sid]["end_time"] is None, provider
                assert live[sid]["account_sid"] == ACCOUNT_SID and live[sid]["url"].endswith(f"/v1/Rooms/{sid}")
                assert "provider" not in live[sid]  # the Twilio resource stays exactly Twilio's
            assert live[sids["livekit"]]["unique_name"] == "e2e-livekit"
            assert live[sids["zoom"]]["unique_name"] == "e2e-zoom"
            # A unique name held by a LiveKit room is taken for the Rooms API too.
            async with http.post(f"{base}/v1/Rooms", data={"UniqueName": "e2e-livekit"}, headers=basic_auth()) as resp:
                assert resp.status == 400 and (await resp.json())["code"] == 53113

            # 2. They all end.
            await post_all(http, rooms.phase2())
            seen = await read_events(
                stream,
                lambda ev: (
                    {e["data"]["sid"] for e in ev if e["event"] == "room" and e["data"]["status"] == "completed"}
                    >= set(sids.values())
                ),
                timeout=30,
            )
        latest = {e["data"]["sid"]: e["data"] for e in seen if e["event"] == "room"}

        async with http.get(f"{base}/v1/Rooms?Status=completed", headers=basic_auth()) as resp:
            assert resp.status == 200
            done = {r["sid"]: r for r in (await resp.json())["rooms"]}
        expected = {  # (duration, end_time, participants)
            "twilio": (30, t0 + 30, {"tina": 9, "tom": 28}),
            "livekit": (40, t0 + 40, {"alice": 11, "bob": 38}),
            "zoom": (50, t0 + 50, {"zed": 14, "zoe": 48}),
        }
        for provider, sid in sids.items():
            duration, end_s, people = expected[provider]
            room = done[sid]
            assert (room["status"], room["duration"], room["end_time"]) == (
                "completed",
                duration,
                twilio_date(end_s * 1000),
            ), provider
            async with http.get(
                f"{base}/v1/Rooms/{sid}/Participants?Status=disconnected", headers=basic_auth()
            ) as resp:
                participants = (await resp.json())["participants"]
            assert {p["identity"]: p["duration"] for p in participants} == people, provider
            assert all(p["sid"].startswith("PA") and p["status"] == "disconnected" for p in participants)
            # The stream's document: the same room, with its provider.
            doc = latest[sid]
            assert (doc["provider"], doc["status"], doc["duration"]) == (provider, "completed", duration)
            assert doc["peak_concurrent_participants"] == 2
        assert [t["kind"] for t in latest[sids["livekit"]]["tracks"]] == ["video"]

    # The state topic holds the same documents, each with its provider.
    state = {}
    for m in await read_topic(cfg.kafka_bootstrap_servers, cfg.state_topic):
        if m.value is not None and m.key.decode() in sids.values():
            state[m.key.decode()] = orjson.loads(m.value)
    for provider, sid in sids.items():
        assert state[sid]["provider"] == provider and state[sid]["status"] == "completed"
        assert state[sid]["duration"] == expected[provider][0]
    # And the events topic the records they came from, version 2, each keyed by its room's name.
    events = [records.decode(m.value) for m in await read_topic(cfg.kafka_bootstrap_servers, cfg.events_topic)]
    assert {(r["provider"], r["room_name"]) for r in events} == {
        ("twilio", "e2e-twilio"),
        ("livekit", "e2e-livekit"),
        ("zoom", "e2e-zoom"),
    }
    assert {r["schema_version"] for r in events} == {2}


async def test_a_topic_written_before_providers_is_still_folded(settings):
    """Existing topics hold version 1 records (no provider, no native): the materializer folds them
    with the version 2 records written after the upgrade, and the room is Twilio's."""
    from tests import streams

    def v1(record: dict) -> dict:
        return {k: v for k, v in record.items() if k not in ("provider", "native")} | {"schema_version": 1}

    sid = "RM" + "0d" * 16
    t0 = (int(time.time()) - 60) * 1000

    def callback(event: str, at_ms: int, **extra: str) -> dict:
        params = {
            "AccountSid": ACCOUNT_SID,
            "RoomSid": sid,
            "RoomName": "upgraded",
            "RoomStatus": "completed" if event == "room-ended" else "in-progress",
            "StatusCallbackEvent": event,
            "Timestamp": records.format_ms(at_ms),
            **extra,
        }
        return records.from_callback({k: [v] for k, v in params.items()}, at_ms)

    before = [
        v1(callback("room-created", t0)),
        v1(callback("participant-connected", t0 + 1000, ParticipantSid="PA" + "1" * 32, ParticipantIdentity="old")),
    ]
    after = [callback("room-ended", t0 + 20_000, RoomDuration="20")]
    async with running_system(settings) as (ingress, _):
        await streams.publish(settings.kafka_bootstrap_servers, settings.events_topic, before + after)
        await wait_until(lambda: (ingress.follower.index.docs.get(sid) or {}).get("status") == "completed")
        doc = ingress.follower.index.docs[sid]
    assert (doc["provider"], doc["duration"], doc["unique_name"]) == ("twilio", 20, "upgraded")
    assert [p["identity"] for p in doc["participants"]] == ["old"]
    # Nothing was dead-lettered.
    assert await read_topic(settings.kafka_bootstrap_servers, settings.dead_letter_topic) == []

"""LiveKit and Zoom webhooks as the providers send them, for the tests.

LiveKit: a `WebhookEvent` protobuf encoded as LiveKit's server does (protojson: camelCase names,
int64 as strings, enums by name), signed with livekit-api itself: `AccessToken(key, secret)
.with_sha256(<base64 sha256 of the body>).to_jwt()` in `Authorization`.
Zoom: the documented JSON (`event`, `event_ts`, `payload.object` with `session_id`, `session_name`,
`user`...) signed with the documented algorithm (`v0=` hex HMAC-SHA256 of `v0:{ts}:{body}`),
written out here independently of service/providers/zoom.py.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import time

from google.protobuf.json_format import MessageToJson, Parse
from livekit.api import AccessToken
from livekit.protocol import egress as lk_egress, models as lk_models
from livekit.protocol.webhook import WebhookEvent

from service.events import record as records
from service.providers import livekit, zoom

LIVEKIT_KEY = "APIroomevents1"
LIVEKIT_SECRET = "livekit-test-secret-0123456789abcdef0123456789"
LIVEKIT_KEY_2 = "APIroomevents2"
LIVEKIT_SECRET_2 = "livekit-test-secret-rotated-abcdef0123456789ab"
ZOOM_SECRET = "zoom-test-secret-token"
ZOOM_SECRET_2 = "zoom-test-secret-token-rotated"
ZOOM_ACCOUNT = "D8cJuqWVQ623CI4Q8yQK0Q"

_TRACK_TYPES = {
    "audio": lk_models.TrackType.AUDIO,
    "video": lk_models.TrackType.VIDEO,
    "data": lk_models.TrackType.DATA,
}


# ---------------------------------------------------------------- LiveKit


def livekit_event(
    event: str,
    created_at: int,
    event_id: str,
    *,
    room_sid: str,
    room_name: str,
    creation_time: int | None = None,
    participant: tuple[str, str] | None = None,
    joined_at: int | None = None,
    track: tuple[str, str, str] | None = None,
    egress: dict | None = None,
) -> bytes:
    """One LiveKit webhook body. participant: (sid, identity); track: (sid, kind, name);
    egress: {"id", "status" (EGRESS_...), "filename", "duration_s", "size", "location", "error"}."""
    e = WebhookEvent(event=event, id=event_id, created_at=created_at)
    if not event.startswith("egress_"):
        e.room.CopyFrom(lk_models.Room(sid=room_sid, name=room_name, creation_time=creation_time or 0))
    if participant is not None:
        sid, identity = participant
        state = (
            lk_models.ParticipantInfo.DISCONNECTED
            if event.startswith("participant_left")
            else lk_models.ParticipantInfo.ACTIVE
        )
        e.participant.CopyFrom(
            lk_models.ParticipantInfo(sid=sid, identity=identity, state=state, joined_at=joined_at or 0)
        )
    if track is not None:
        sid, kind, name = track
        e.track.CopyFrom(lk_models.TrackInfo(sid=sid, type=_TRACK_TYPES[kind], name=name))
    if egress is not None:
        info = lk_egress.EgressInfo(
            egress_id=egress["id"],
            room_id=room_sid,
            room_name=room_name,
            status=lk_egress.EgressStatus.Value(egress.get("status", "EGRESS_ACTIVE")),
            error=egress.get("error", ""),
        )
        if egress.get("filename"):
            info.file_results.append(
                lk_egress.FileInfo(
                    filename=egress["filename"],
                    duration=egress.get("duration_s", 0) * 1_000_000_000,
                    size=egress.get("size", 0),
                    location=egress.get("location", ""),
                )
            )
        e.egress_info.CopyFrom(info)
    return MessageToJson(e, indent=None).encode()


def livekit_token(body: bytes, key: str = LIVEKIT_KEY, secret: str = LIVEKIT_SECRET, ttl_s: int = 300) -> str:
    """The JWT LiveKit puts in Authorization: signed with the API key, sha256 claim = the body's hash."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return AccessToken(key, secret).with_ttl(datetime.timedelta(seconds=ttl_s)).with_sha256(digest).to_jwt()


def livekit_headers(body: bytes, **kwargs) -> dict[str, str]:
    return {"Content-Type": "application/webhook+json", "Authorization": livekit_token(body, **kwargs)}


def livekit_records(body: bytes, received_at_ms: int = 0, account: str | None = None) -> list[dict]:
    """The records the ingress makes of a (verified) LiveKit body."""
    import orjson

    return livekit.to_records(Parse(body, WebhookEvent()), orjson.loads(body), received_at_ms, account)


# ---------------------------------------------------------------- Zoom


def zoom_event(event: str, event_ts: int, *, session_id: str, session_name: str | None, **object_fields) -> bytes:
    """One Zoom Video SDK webhook body (compact JSON, as Zoom sends it)."""
    import orjson

    obj = {"id": "7913474", "session_id": session_id, "session_key": "key-" + session_id[:6]}
    if session_name is not None:
        obj["session_name"] = session_name
    obj.update(object_fields)
    return orjson.dumps({"event": event, "event_ts": event_ts, "payload": {"account_id": ZOOM_ACCOUNT, "object": obj}})


def zoom_user(user_id: str, name: str, user_key: str | None = None, **fields) -> dict:
    return {"id": user_id, "name": name, **({"user_key": user_key} if user_key else {}), **fields}


def zoom_iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def zoom_signature(body: bytes, timestamp: str, secret: str = ZOOM_SECRET) -> str:
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def zoom_headers(body: bytes, *, secret: str = ZOOM_SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        "x-zm-request-timestamp": ts,
        "x-zm-signature": zoom_signature(body, ts, secret),
    }


def zoom_records(body: bytes, received_at_ms: int = 0, account: str | None = None) -> list[dict]:
    return zoom.to_records(zoom.parse(body), received_at_ms, account)


# ---------------------------------------------------------------- SIDs as the service derives them


def lk_room_sid(native_room_sid: str) -> str:
    return "RM" + hashlib.sha256(f"livekit:room:{native_room_sid}".encode()).hexdigest()[:32]


def zoom_room_sid(session_id: str) -> str:
    return "RM" + hashlib.sha256(f"zoom:room:{session_id}".encode()).hexdigest()[:32]


assert lk_room_sid("RM_x") == records.derived_sid("room", "livekit", "RM_x")

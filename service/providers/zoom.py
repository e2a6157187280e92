"""Zoom Video SDK webhooks -> room-event records. Pure: no aiohttp, no aiokafka; `now_ms` is a parameter.

Zoom POSTs JSON `{"event", "event_ts", "payload": {"account_id", "object": {...}}}` with
`x-zm-request-timestamp` and `x-zm-signature: v0=<hex HMAC-SHA256 of "v0:{timestamp}:{raw body}">`
keyed with the app's webhook secret token. `verify` checks that signature against every configured
token (constant time) and refuses a timestamp outside the replay window; `challenge` answers
`endpoint.url_validation` (`encryptedToken` = hex HMAC-SHA256 of `plainToken`). Sources:
docs/providers.md.

Mapping to Twilio's vocabulary, so the one fold takes them:

| Zoom event | record type |
|---|---|
| session.started / session.ended | room-created / room-ended |
| session.user_joined / session.user_left | participant-connected / participant-disconnected |
| session.recording_completed | recording-completed, one record per audio or video file |

SIDs come from Zoom's ids (`record.derived_sid`): the room from `session_id`, a participant from
`session_id` and the user's `id`, a recording from `session_id` and the file's `id`. Order: Zoom's
`event_ts` (ms). The record's `event_id` is a digest of the event name, `event_ts` and those ids, so
a redelivered webhook is the same record.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Mapping, Sequence

import orjson

from service.events import record as records
from service.events.shapes import NativeFields, ParticipantFields, RecordingFields, RoomFields
from service.providers import bad_request, forbidden

PROVIDER = "zoom"
SIGNATURE_HEADER = "x-zm-signature"
TIMESTAMP_HEADER = "x-zm-request-timestamp"
URL_VALIDATION = "endpoint.url_validation"

EVENT_TYPES = {
    "session.started": "room-created",
    "session.ended": "room-ended",
    "session.user_joined": "participant-connected",
    "session.user_left": "participant-disconnected",
    "session.recording_completed": "recording-completed",
}
KNOWN_EVENTS = frozenset(EVENT_TYPES) | {URL_VALIDATION}
# Recording files that are media (Twilio's recordings are audio or video): their record type.
_MEDIA = {"MP4": "video", "M4A": "audio"}
_MS_THRESHOLD = 10**11  # a timestamp this large is in milliseconds (seconds would be the year 5138)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """What Zoom sends in x-zm-signature for this timestamp and raw body."""
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def encrypted_token(secret: str, plain_token: str) -> str:
    return hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()


def _timestamp_ms(value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 16:
        raise forbidden(f"{TIMESTAMP_HEADER} is not a Unix timestamp")
    number = int(value)
    return number if number >= _MS_THRESHOLD else number * 1000


def verify(
    secrets: Sequence[str],
    body: bytes,
    sent_signature: str | None,
    timestamp: str | None,
    now_ms: int,
    window_ms: int,
) -> str:
    """The secret token that signed this request. 403 when the headers are missing, the timestamp
    is further than `window_ms` from `now_ms` (a replay, or a clock far off), or no token's
    signature matches (forged, or the body or timestamp changed since Zoom signed them)."""
    if not sent_signature or not timestamp:
        raise forbidden(f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required")
    stamped = _timestamp_ms(timestamp.strip())
    if abs(now_ms - stamped) > window_ms:
        raise forbidden(f"{TIMESTAMP_HEADER} is outside the replay window of {window_ms // 1000} s")
    matched = None
    for secret in secrets:  # every token is tried: the time taken does not say which one matched
        if hmac.compare_digest(signature(secret, timestamp.strip(), body).encode(), sent_signature.strip().encode()):
            matched = matched or secret
    if matched is None:
        raise forbidden(f"{SIGNATURE_HEADER} does not match this request")
    return matched


def parse(body: bytes) -> dict[str, Any]:
    """The webhook's JSON; 400 unless it is an object with an event name, `event_ts` and a payload."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("event"), str) or not doc["event"]:
        raise bad_request("a Zoom webhook is a JSON object naming its event")
    if not isinstance(doc.get("payload"), dict):
        raise bad_request("a Zoom webhook carries a payload object")
    if doc["event"] != URL_VALIDATION and (type(doc.get("event_ts")) is not int or doc["event_ts"] < 0):
        raise bad_request("a Zoom webhook carries event_ts (epoch milliseconds)")
    return doc


def challenge(secret: str, doc: Mapping[str, Any]) -> dict[str, str]:
    """The answer to endpoint.url_validation: the plainToken and its HMAC with the secret token."""
    plain = doc["payload"].get("plainToken")
    if not isinstance(plain, str) or not plain:
        raise bad_request("endpoint.url_validation carries payload.plainToken")
    return {"plainToken": plain, "encryptedToken": encrypted_token(secret, plain)}


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise bad_request(f"expected a string or number, got {type(value).__name__}")


def _iso_ms(value: Any) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return records.parse_timestamp_ms(value)
    except records.RecordError:
        return None


def _seconds_between(start: Any, end: Any) -> int | None:
    a, b = _iso_ms(start), _iso_ms(end)
    return max(0, (b - a) // 1000) if a is not None and b is not None else None


def _files(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The audio and video files of a recording webhook, one per file id, in the order sent."""
    out: dict[str, Mapping[str, Any]] = {}
    for key in ("recording_files", "participant_audio_files", "participant_video_files"):
        files = obj.get(key)
        if isinstance(files, list):
            for f in files:
                if isinstance(f, dict) and str(f.get("file_type", "")).upper() in _MEDIA and _text(f.get("id")):
                    out.setdefault(_text(f.get("id")), f)
    return list(out.values())


def to_records(doc: Mapping[str, Any], received_at_ms: int, account_sid: str | None) -> list[records.RoomEvent]:
    """A verified Zoom webhook (not the URL validation) -> its room-event records: one, or one per
    media file of a session.recording_completed; an empty list when it names no session (nothing to
    fold). 400 when a session event names no session or a field has the wrong shape."""
    name = doc["event"]
    obj = doc["payload"].get("object")
    if not isinstance(obj, dict):
        obj = {}
    session_id = _text(obj.get("session_id"))
    if not session_id:
        if name in EVENT_TYPES:
            raise bad_request(f"Zoom {name} names no session (payload.object.session_id)")
        return []
    session_name = _text(obj.get("session_name"))
    room_sid = records.derived_sid("room", PROVIDER, session_id)
    kind = EVENT_TYPES.get(name, name)
    event_ts = doc["event_ts"]

    room: RoomFields = {"status": None, "type": None, "duration": None}
    if kind == "room-created":
        room["status"] = "in-progress"
    elif kind == "room-ended":
        room["status"] = "completed"
        room["duration"] = _seconds_between(obj.get("start_time"), obj.get("end_time"))

    user = obj.get("user")
    participant: ParticipantFields | None = None
    user_id = identity = None
    if isinstance(user, dict) and _text(user.get("id")):
        user_id = _text(user.get("id"))
        identity = _text(user.get("user_key")) or _text(user.get("name"))
        participant = {
            "sid": records.derived_sid("participant", PROVIDER, session_id, user_id),
            "identity": identity,
            "status": "disconnected" if kind == "participant-disconnected" else "connected",
            "duration": None,
        }

    def native(file_id: str | None) -> NativeFields:
        return {
            "event": name,
            "id": None,
            "room_id": session_id,
            "room_name": session_name,
            "participant_id": user_id,
            "participant_identity": identity,
            "track_id": None,
            "egress_id": None,
            "recording_id": file_id,
            "payload": dict(doc),
        }

    def record(file: Mapping[str, Any] | None) -> records.RoomEvent:
        file_id = _text(file.get("id")) if file is not None else None
        recording: RecordingFields | None = None
        if file is not None and file_id:
            kind_of_file = _MEDIA[str(file.get("file_type")).upper()]
            size = file.get("file_size")
            recording = {
                "sid": records.derived_sid("recording", PROVIDER, session_id, file_id),
                "source_sid": None,
                "track_name": _text(file.get("recording_type")),
                "uri": None,
                "media_uri": _text(file.get("download_url")),
                "media_external_location": _text(file.get("external_storage_url")),
                "container": (_text(file.get("file_extension")) or "").lower() or None,
                "codec": None,
                "type": kind_of_file,
                "duration": _seconds_between(file.get("recording_start"), file.get("recording_end")),
                "size": size if type(size) is int and size >= 0 else None,
                "offset_from_twilio_video_epoch": None,
                "failed_operation": None,
            }
        event_id = records.digest(PROVIDER, name, str(event_ts), session_id, user_id or "", file_id or "")
        return records.provider_event(
            PROVIDER,
            kind,
            event_id=event_id,
            account_sid=account_sid,
            room_sid=room_sid,
            room_name=session_name or room_sid,
            occurred_ms=event_ts,
            received_at_ms=received_at_ms,
            native=native(file_id),
            room=room,
            participant=participant,
            recording=recording,
        )

    if kind == "recording-completed":
        files = _files(obj)
        if files:
            return [record(f) for f in files]
    return [record(None)]

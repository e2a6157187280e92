"""LiveKit webhooks -> room-event records. Pure: no aiohttp, no aiokafka, no clock.

LiveKit POSTs a `WebhookEvent` as JSON (`Content-Type: application/webhook+json`) with a JWT in
`Authorization`, signed with one of the project's API keys, whose `sha256` claim is the base64
SHA-256 of the body. `verify` hands the body and the token to livekit-api's own
`livekit.api.WebhookReceiver` (built around a `TokenVerifier` per accepted key pair by the HTTP shell:
importing livekit.api loads aiohttp, which this module must not) and never checks them by hand: the
receiver checks the JWT's signature, issuer (the API key) and expiry, the body's hash, and parses it.

Mapping to Twilio's vocabulary, so the one fold takes them (docs/providers.md):

| LiveKit event | record type |
|---|---|
| room_started / room_finished | room-created / room-ended |
| participant_joined / participant_left, participant_connection_aborted | participant-connected / participant-disconnected |
| track_published / track_unpublished | track-added / track-removed |
| egress_started, egress_updated / egress_ended | recording-started, or by the egress status recording-completed / recording-failed |

SIDs are derived from LiveKit's ids (`record.derived_sid`): the room from its `sid` (RM_...), a
participant from the room's and its own `sid`, a track from the room's and its `sid`, a recording
from its egress id. Order: LiveKit's `created_at` (seconds), then the event id; the record's
`event_id` is a digest of LiveKit's event `id`, so a redelivered webhook is the same record.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, Sequence

import orjson
from google.protobuf.json_format import ParseError
from livekit.protocol.egress import EgressInfo, EgressStatus
from livekit.protocol.models import TrackType
from livekit.protocol.webhook import WebhookEvent

from service.events import record as records
from service.events.shapes import NativeFields, ParticipantFields, RecordingFields, RoomFields, TrackFields
from service.providers import bad_request, forbidden

PROVIDER = "livekit"
CONTENT_TYPES = ("application/webhook+json", "application/json")

EVENT_TYPES = {
    "room_started": "room-created",
    "room_finished": "room-ended",
    "participant_joined": "participant-connected",
    "participant_left": "participant-disconnected",
    "participant_connection_aborted": "participant-disconnected",
    "track_published": "track-added",
    "track_unpublished": "track-removed",
    # egress_*: by the egress status, see _recording_type
    "egress_started": "recording-started",
    "egress_updated": "recording-started",
    "egress_ended": "recording-completed",
}
KNOWN_EVENTS = frozenset(EVENT_TYPES)
_COMPLETE = {EgressStatus.EGRESS_COMPLETE, EgressStatus.EGRESS_LIMIT_REACHED}
_FAILED = {EgressStatus.EGRESS_FAILED, EgressStatus.EGRESS_ABORTED}
_TRACK_KINDS = {TrackType.AUDIO: "audio", TrackType.VIDEO: "video", TrackType.DATA: "data"}
_NS_PER_S = 1_000_000_000


class Receiver(Protocol):
    """livekit.api.WebhookReceiver's one method: verify the token against the body, parse the body."""

    def receive(self, body: str, auth_token: str) -> WebhookEvent: ...


def verify(receivers: Sequence[Receiver], body: bytes, authorization: str | None) -> tuple[WebhookEvent, dict]:
    """The webhook, verified by the first receiver (key pair) that accepts its token, and its body as
    JSON. 403 when no key pair verifies it (forged, expired, signed for another body); 400 when it
    verifies but is not a LiveKit webhook (not UTF-8, not a WebhookEvent, no event name)."""
    if not authorization:
        raise forbidden("Authorization header (LiveKit's signed JWT) is missing")
    token = authorization[7:].strip() if authorization[:7].lower() == "bearer " else authorization.strip()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("body is not UTF-8 JSON") from None
    event = None
    for receiver in receivers:
        try:
            event = receiver.receive(text, token)
            break
        except ParseError as exc:  # raised only once the token and the body's hash verified
            raise bad_request(f"body is not a LiveKit WebhookEvent: {exc}") from None
        except Exception:  # noqa: BLE001 - the receiver raises jwt's errors and plain Exceptions alike
            continue
    if event is None:
        raise forbidden("Authorization does not verify this body with any configured LiveKit key")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict) or not event.event:
        raise bad_request("a LiveKit webhook names its event")
    return event, payload


def _recording_type(event: WebhookEvent) -> str:
    status = event.egress_info.status
    if status in _COMPLETE:
        return "recording-completed"
    if status in _FAILED:
        return "recording-failed"
    if event.event == "egress_ended":  # ended without a final status: LiveKit says it is over
        return "recording-completed"
    return "recording-started"


def _event_id(event: WebhookEvent, room_id: str) -> str:
    if event.id:
        return records.digest(PROVIDER, event.id)
    # An event without an id (older servers): what identifies it, so a redelivery has the same id.
    return records.digest(
        PROVIDER,
        event.event,
        str(event.created_at),
        room_id,
        event.participant.sid,
        event.track.sid,
        event.egress_info.egress_id,
        str(event.egress_info.status),
    )


def _recording(event: WebhookEvent, room_id: str, kind: str) -> tuple[RecordingFields, str]:
    info: EgressInfo = event.egress_info
    file = info.file_results[0] if info.file_results else (info.file if info.HasField("file") else None)
    track_id = info.track.track_id if info.HasField("track") else ""
    container = None
    if file is not None and file.filename and "." in os.path.basename(file.filename):
        container = os.path.basename(file.filename).rsplit(".", 1)[1].lower() or None
    recording: RecordingFields = {
        "sid": records.derived_sid("recording", PROVIDER, info.egress_id),
        "source_sid": records.derived_sid("track", PROVIDER, room_id, track_id) if track_id else None,
        "track_name": None,
        "uri": None,
        "media_uri": None,
        "media_external_location": (file.location or None) if file is not None else None,
        "container": container,
        "codec": None,
        "type": None,
        "duration": (file.duration // _NS_PER_S if file.duration else None) if file is not None else None,
        "size": (file.size or None) if file is not None else None,
        "offset_from_twilio_video_epoch": None,
        "failed_operation": (info.error or EgressStatus.Name(info.status)) if kind == "recording-failed" else None,
    }
    return recording, track_id


def to_records(
    event: WebhookEvent, payload: dict[str, Any], received_at_ms: int, account_sid: str | None
) -> list[records.RoomEvent]:
    """A verified LiveKit webhook -> its room-event record (an empty list: nothing to fold, e.g. an
    ingress event that names no room). 400 when a room event names no room."""
    name = event.event
    room_id = event.room.sid or event.egress_info.room_id
    room_name = event.room.name or event.egress_info.room_name
    if not room_id:
        if name in KNOWN_EVENTS:
            raise bad_request(f"LiveKit {name} names no room (room.sid / egressInfo.roomId)")
        return []  # e.g. ingress_started: not about a room this service folds
    kind = EVENT_TYPES.get(name, name)
    if name.startswith("egress_"):
        kind = _recording_type(event)
    occurred_ms = event.created_at * 1000 if event.created_at > 0 else received_at_ms
    room: RoomFields = {"status": None, "type": None, "duration": None}
    if kind == "room-created":
        room["status"] = "in-progress"
    elif kind == "room-ended":
        room["status"] = "completed"
        if event.room.creation_time > 0 and event.created_at >= event.room.creation_time:
            room["duration"] = event.created_at - event.room.creation_time
    participant: ParticipantFields | None = None
    p = event.participant
    if p.sid:
        left = kind == "participant-disconnected"
        participant = {
            "sid": records.derived_sid("participant", PROVIDER, room_id, p.sid),
            "identity": p.identity or None,
            "status": "disconnected" if left else "connected",
            "duration": max(0, event.created_at - p.joined_at)
            if left and p.joined_at > 0 and event.created_at
            else None,
        }
    track: TrackFields | None = None
    t = event.track
    if t.sid:
        track = {
            "sid": records.derived_sid("track", PROVIDER, room_id, t.sid),
            "kind": _TRACK_KINDS.get(t.type),
            "name": t.name or None,
        }
    recording: RecordingFields | None = None
    track_id = t.sid or None
    if name.startswith("egress_") and event.egress_info.egress_id:
        recording, egress_track = _recording(event, room_id, kind)
        track_id = track_id or egress_track or None
    native: NativeFields = {
        "event": name,
        "id": event.id or None,
        "room_id": room_id,
        "room_name": room_name or None,
        "participant_id": p.sid or None,
        "participant_identity": p.identity or None,
        "track_id": track_id,
        "egress_id": event.egress_info.egress_id or None,
        "recording_id": None,
        "payload": payload,
    }
    room_sid = records.derived_sid("room", PROVIDER, room_id)
    return [
        records.provider_event(
            PROVIDER,
            kind,
            event_id=_event_id(event, room_id),
            account_sid=account_sid,
            room_sid=room_sid,
            room_name=room_name or room_sid,
            occurred_ms=occurred_ms,
            received_at_ms=received_at_ms,
            native=native,
            room=room,
            participant=participant,
            track=track,
            recording=recording,
        )
    ]

"""Builders of room events for the reducer's tests: Twilio callbacks and API commands at T0 + t ms, built
with the same functions the ingress and the materializer use (`from_callback`, `room_created`,
`room_ended`), and shortcuts to fold them."""

from __future__ import annotations

from functools import reduce

from service.events.record import (
    format_ms,
    format_twilio_date,
    from_callback,
    parse_timestamp_ms,
    room_created,
    room_ended,
)
from service.rooms.params import parse_create_form
from service.state.fold import fold
from service.state.render import render

ACCOUNT = "AC" + "0" * 31 + "1"
SID = "RM" + "a" * 32
T0 = parse_timestamp_ms("2030-01-01T00:00:00.000Z")
S = 1000  # one second in ms
MIN = 60 * S


def at(offset_ms: int) -> str:
    return format_twilio_date(T0 + offset_ms)


def cb(
    event: str,
    t: int,
    *,
    seq: int | None = None,
    sid: str = SID,
    name: str | None = "demo",
    room_status: str = "in-progress",
    room_type: str | None = "group",
    received: int | None = None,
    **params,
) -> dict:
    """A Twilio status callback at T0 + t ms, as the ingress records it."""
    raw = {
        "AccountSid": ACCOUNT,
        "RoomSid": sid,
        "RoomName": name,
        "RoomStatus": room_status,
        "RoomType": room_type,
        "StatusCallbackEvent": event,
        "Timestamp": format_ms(T0 + t),
        "SequenceNumber": seq,
    }
    raw.update(params)
    form = {k: [str(v)] for k, v in raw.items() if v is not None}
    return from_callback(form, T0 + t + 250 if received is None else received)


def participant(event: str, t: int, psid: str, identity: str | None = None, **params) -> dict:
    status_ = "disconnected" if event == "participant-disconnected" else "connected"
    return cb(
        event, t, ParticipantSid=psid, ParticipantIdentity=identity or psid.lower(), ParticipantStatus=status_, **params
    )


def track(event: str, t: int, tsid: str, psid: str = "PA1", kind: str = "audio", **params) -> dict:
    return cb(
        event,
        t,
        ParticipantSid=psid,
        ParticipantIdentity=psid.lower(),
        ParticipantStatus="connected",
        TrackSid=tsid,
        TrackKind=kind,
        **params,
    )


def recording(event: str, t: int, rsid: str, psid: str = "PA1", **params) -> dict:
    return cb(
        event,
        t,
        ParticipantSid=psid,
        ParticipantIdentity=psid.lower(),
        RecordingSid=rsid,
        SourceSid="MT1",
        TrackName="mic",
        RecordingUri=f"/v1/Recordings/{rsid}",
        Container="mka",
        Codec="OPUS",
        Type="audio",
        OffsetFromTwilioVideoEpoch=100,
        **params,
    )


def api_create(t: int = 0, sid: str = SID, **form) -> dict:
    raw = {"UniqueName": ["demo"]} | {k: [str(v)] for k, v in form.items()}
    config = parse_create_form(raw).to_dict() | {"account_sid": ACCOUNT, "sid": sid}
    return room_created(ACCOUNT, sid, config, T0 + t, raw)


def api_end(t: int, sid: str = SID, reason: str = "api") -> dict:
    return room_ended(ACCOUNT, sid, "demo", T0 + t, reason=reason, params={"Status": ["completed"]})


def fold_all(events, state=None):
    return reduce(fold, events, state)


def doc_of(*events) -> dict:
    return render(fold_all(events))

"""The room-event record's shape, defined once.

The TypedDicts below are the one definition of the record: the materializer's decoder is built from
`FoldedEvent` (msgspec enforces the Python types, nothing more), and the published JSON Schema is
generated from `RoomEvent` (service/events/schema.py). Each field carries its documentation and any
schema-only refinement (pattern, enum, ...) in a `doc(...)` annotation, which msgspec does not enforce:
the decoder stays exactly as lenient as the types say, the schema states the full contract.

`FoldedEvent` is what the fold reads; `RoomEvent` adds the fields only consumers read (the times as
text and the raw parameters), so the fold's decoder skips them. Every key is optional for the
decoder (a consumer checks identity itself: records.decode), while the schema requires every key
(null when it does not apply).
"""

from typing import Annotated, Any, Optional, TypedDict, Union

import msgspec

SCHEMA_VERSION = 1

# Documented Twilio room events. Others are kept and published under their own name.
ROOM_EVENTS = (
    "room-created",
    "room-ended",
    "participant-connected",
    "participant-disconnected",
    "track-added",
    "track-removed",
    "track-enabled",
    "track-disabled",
    "recording-started",
    "recording-completed",
    "recording-failed",
)
SOURCES = ("api", "callback", "timer")
END_REASONS = ("api", "timeout", "callback")

_MS_TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def doc(description: str, **json_schema: Any) -> msgspec.Meta:
    """A field's description, plus JSON Schema keywords that only the published schema states.

    msgspec ignores `extra_json_schema` when decoding. In the generated schema these keywords override
    what the Python type gives; an `enum` or `const` replaces the type altogether."""
    return msgspec.Meta(description=description, extra_json_schema=json_schema or None)


# ---------------------------------------------------------------- the typed sub-objects


class RoomFields(TypedDict, total=False):
    status: Annotated[Optional[str], doc("RoomStatus: in-progress, completed, failed.")]
    type: Annotated[Optional[str], doc("RoomType: group, go, peer-to-peer, group-small.")]
    duration: Annotated[Optional[int], doc("RoomDuration in seconds (room-ended).")]


class ParticipantFields(TypedDict, total=False):
    sid: Annotated[str, doc("ParticipantSid, PA...")]
    identity: Annotated[Optional[str], doc("ParticipantIdentity.")]
    status: Annotated[Optional[str], doc("ParticipantStatus: connected, disconnected.")]
    duration: Annotated[Optional[int], doc("ParticipantDuration in seconds (participant-disconnected).")]


class TrackFields(TypedDict, total=False):
    sid: Annotated[str, doc("TrackSid, MT...")]
    kind: Annotated[Optional[str], doc("TrackKind: audio, video, data.")]
    name: Annotated[Optional[str], doc("TrackName.")]


class RecordingFields(TypedDict, total=False):
    sid: Annotated[str, doc("RecordingSid, RT...")]
    source_sid: Annotated[Optional[str], doc("SourceSid: the recorded track.")]
    track_name: Annotated[Optional[str], doc("TrackName of the recorded track.")]
    uri: Annotated[Optional[str], doc("RecordingUri (relative).")]
    media_uri: Annotated[Optional[str], doc("MediaUri (recording-completed).")]
    media_external_location: Annotated[Optional[str], doc("MediaExternalLocation (recording-completed).")]
    container: Annotated[Optional[str], doc("Container: mka, mkv.")]
    codec: Annotated[Optional[str], doc("Codec: PCMU, OPUS, VP8, H264.")]
    type: Annotated[Optional[str], doc("Type: audio, video.")]
    duration: Annotated[Optional[int], doc("Duration in seconds (recording-completed).")]
    size: Annotated[Optional[int], doc("Size in bytes (recording-completed).")]
    offset_from_twilio_video_epoch: Annotated[Optional[int], doc("OffsetFromTwilioVideoEpoch in milliseconds.")]
    failed_operation: Annotated[Optional[str], doc("FailedOperation (recording-failed).")]


# The sub-objects that exist only with their SID (null otherwise): the fold keys its maps by it.
IDENTIFIED = ("participant", "track", "recording")


class ConfigFields(TypedDict, total=False):
    """The keys of `config` that the materializer interprets (unique-name arbitration, timers); the
    rest of the configuration is rendered as it is. Checked when a record is decoded for the fold."""

    account_sid: Optional[str]
    unique_name: Optional[str]
    status_callback: Optional[str]
    empty_room_timeout: Optional[int]
    unused_room_timeout: Optional[int]


# ---------------------------------------------------------------- the record


class FoldedEvent(TypedDict, total=False):
    """The fields of a room-event record that the fold reads."""

    # Any: a consumer reads the version before anything else and refuses one it does not know.
    schema_version: Annotated[Any, doc("Version of this record schema.", const=SCHEMA_VERSION)]
    event_id: Annotated[
        str,
        doc(
            "Deterministic id: the same callback (or command) always gets the same id, so consumers "
            "deduplicate by it. Also the CloudEvents `id`.",
            pattern="^[0-9a-f]{32}$",
        ),
    ]
    type: Annotated[
        str,
        doc(
            "Room event type: Twilio's StatusCallbackEvent for callbacks (unknown values are kept as "
            "sent); room-created / room-ended for commands and timers. Documented Twilio values: "
            + ", ".join(ROOM_EVENTS)
            + ".",
            minLength=1,
        ),
    ]
    source: Annotated[
        str,
        doc(
            "callback: a Twilio status callback; api: a Rooms API command accepted by roomevents; "
            "timer: roomevents ended an API-created room after its empty/unused timeout.",
            enum=list(SOURCES),
        ),
    ]
    account_sid: Annotated[
        Optional[str], doc("Twilio account SID (AccountSid); null when a callback did not carry it.")
    ]
    room_sid: Annotated[str, doc("Room SID (RoomSid), RM...", minLength=1)]
    room_name: Annotated[
        Optional[str],
        doc(
            "The room's unique name (RoomName); the room SID when it has none. The Kafka message key.",
            type="string",
            minLength=1,
        ),
    ]
    occurred_at_ms: Annotated[int, doc("occurred_at as epoch milliseconds.")]
    received_at: Annotated[
        str,
        doc(
            "When roomevents received it (UTC, millisecond precision). Bounds how far ahead "
            "occurred_at may move event time (retention).",
            format="date-time",
            pattern=_MS_TIME,
        ),
    ]
    sequence_number: Annotated[Optional[int], doc("Twilio's SequenceNumber (internal to Twilio: not an ordering key).")]
    room: Annotated[Optional[RoomFields], doc("Room fields carried by the event.")]
    participant: Annotated[
        Optional[ParticipantFields], doc("Participant fields; null unless the event carries a ParticipantSid.")
    ]
    track: Annotated[Optional[TrackFields], doc("Track fields; null unless the event carries a TrackSid.")]
    recording: Annotated[
        Optional[RecordingFields], doc("Recording fields; null unless the event carries a RecordingSid.")
    ]
    config: Annotated[
        Optional[dict[str, Any]],
        doc("The room's configuration (room resource fields, snake_case) on an api room-created; null otherwise."),
    ]
    end_reason: Annotated[
        Optional[str],
        doc(
            "Why the room ended (room-ended only): callback (Twilio said so), api (Status=completed), "
            "timeout (roomevents' timer).",
            enum=[*END_REASONS, None],
        ),
    ]


class RoomEvent(FoldedEvent, total=False):
    """One record on the room-events topic: what the fold reads, plus what only consumers read."""

    occurred_at: Annotated[
        str,
        doc(
            "When it happened: Twilio's Timestamp (UTC, millisecond precision); the receive time when a "
            "callback carried none. Order events by it.",
            format="date-time",
            pattern=_MS_TIME,
        ),
    ]
    params: Annotated[
        dict[str, Union[str, list[str]]],
        doc(
            "Every parameter as received (unknown ones included): one value as a string, a repeated "
            "parameter as a list of strings."
        ),
    ]

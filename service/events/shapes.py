"""The room-event record's shape, defined once.

The TypedDicts below are the one definition of the record: the materializer's decoder is built from
`FoldedEvent` (msgspec enforces the Python types, nothing more), and the published JSON Schema is
generated from `RoomEvent` (service/events/schema.py). Each field carries its documentation and any
schema-only refinement (pattern, enum, ...) in a `doc(...)` annotation, which msgspec does not enforce:
the decoder stays exactly as lenient as the types say, the schema states the full contract.

`FoldedEvent` is what the fold reads; `RoomEvent` adds the fields only consumers read (the times as
text and the raw parameters), so the fold's decoder skips them. Every key is optional for the
decoder (a consumer checks identity itself: records.decode), while the schema requires every key
(null when it does not apply), except that a version-1 record has none of ADDED_IN_V2.
"""

from typing import Annotated, Any, Optional, TypedDict, Union

import msgspec

SCHEMA_VERSION = 2
# Every version a consumer must read: version 1 (written before providers) is implicitly provider
# twilio and has neither `provider` nor `native`.
SCHEMA_VERSIONS = (1, 2)
# Fields that version 2 added: required in a version-2 record, absent from a version-1 record.
ADDED_IN_V2 = ("provider", "native")
PROVIDERS = ("twilio", "livekit", "zoom")

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


class NativeFields(TypedDict, total=False):
    """The provider's own names for what the record's SIDs were derived from (livekit, zoom)."""

    event: Annotated[str, doc("The provider's own event name (LiveKit `event`, Zoom `event`).", minLength=1)]
    id: Annotated[Optional[str], doc("The provider's event id (LiveKit `id`); null when it sends none (Zoom).")]
    room_id: Annotated[Optional[str], doc("The provider's room id: LiveKit room `sid` (RM_...), Zoom `session_id`.")]
    room_name: Annotated[Optional[str], doc("The provider's room name: LiveKit room `name`, Zoom `session_name`.")]
    participant_id: Annotated[
        Optional[str], doc("LiveKit participant `sid` (PA_...), Zoom user `id`; null without a participant.")
    ]
    participant_identity: Annotated[
        Optional[str], doc("LiveKit participant `identity`, Zoom user `user_key` (else `name`).")
    ]
    track_id: Annotated[Optional[str], doc("LiveKit track `sid` (TR_...).")]
    egress_id: Annotated[Optional[str], doc("LiveKit egress id (EG_...) of a recording.")]
    recording_id: Annotated[Optional[str], doc("Zoom recording file `id`.")]
    payload: Annotated[dict[str, Any], doc("The webhook's JSON body exactly as received.")]


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
    schema_version: Annotated[
        Any,
        doc(
            "Version of this record schema: 2 for every record written now; 1 for records written before "
            "providers (read them as provider twilio, native null). Consumers refuse any other value.",
            enum=list(SCHEMA_VERSIONS),
        ),
    ]
    provider: Annotated[
        Optional[str],
        doc(
            "Who reported it: twilio (status callbacks, and the Rooms API and timers of roomevents itself), "
            "livekit or zoom (their webhooks). Absent in version 1 (twilio).",
            enum=list(PROVIDERS),
        ),
    ]
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
            "Room event type, in Twilio's vocabulary whatever the provider: Twilio's StatusCallbackEvent "
            "for callbacks (unknown values are kept as sent); room-created / room-ended for commands and "
            "timers; a LiveKit or Zoom webhook mapped to its Twilio counterpart (an unmapped one keeps "
            "its own event name). Documented values: " + ", ".join(ROOM_EVENTS) + ".",
            minLength=1,
        ),
    ]
    source: Annotated[
        str,
        doc(
            "callback: a provider's status callback or webhook; api: a Rooms API command accepted by roomevents; "
            "timer: roomevents ended an API-created room after its empty/unused timeout.",
            enum=list(SOURCES),
        ),
    ]
    account_sid: Annotated[
        Optional[str],
        doc(
            "Twilio account SID (AccountSid); null when a callback did not carry it. For livekit and zoom, "
            "the account the Rooms API serves their rooms under (TWILIO_ACCOUNT_SID)."
        ),
    ]
    room_sid: Annotated[
        str,
        doc(
            "Room SID (RoomSid), RM...; for livekit and zoom derived from the provider and its room id: "
            '"RM" + the first 32 hex digits of sha256("<provider>:room:<room id>").',
            minLength=1,
        ),
    ]
    room_name: Annotated[
        Optional[str],
        doc(
            "The room's unique name (RoomName; LiveKit room name; Zoom session name); the room SID when it "
            "has none. The Kafka message key.",
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
    sequence_number: Annotated[
        Optional[int], doc("Twilio's SequenceNumber (internal to Twilio: not an ordering key); null for others.")
    ]
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
            "When it happened (UTC, millisecond precision): Twilio's Timestamp, LiveKit's created_at "
            "(seconds), Zoom's event_ts; the receive time when a Twilio callback carried none. Order events "
            "by it.",
            format="date-time",
            pattern=_MS_TIME,
        ),
    ]
    params: Annotated[
        dict[str, Union[str, list[str]]],
        doc(
            "Every Twilio parameter as received (unknown ones included): one value as a string, a "
            "repeated parameter as a list of strings. Empty for livekit and zoom (see native.payload)."
        ),
    ]
    native: Annotated[
        Optional[NativeFields],
        doc(
            "The provider's own ids and the webhook as received (livekit, zoom); null for twilio. Absent in version 1."
        ),
    ]

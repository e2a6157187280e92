"""The shapes of room state: what the fold keeps per room, and the (order, value) pairs it merges.

Plain dicts and tuples at run time (TypedDict, NamedTuple): cheap to copy on the fold's hot path,
equal by value, and nothing but the rendered document (service/state/fold.py render) is serialized.
"""

from typing import Any, Generic, NamedTuple, NotRequired, Optional, TypedDict, TypeVar

T = TypeVar("T")


class Order(NamedTuple):
    """The one total order of a room's events: Twilio time, then SequenceNumber, then the event id."""

    at_ms: int
    sequence: int
    event_id: str


class Stamped(NamedTuple, Generic[T]):
    """A value with the order of the event that set it (merged by earliest or last writer wins)."""

    order: Order
    value: T


class Ended(NamedTuple):
    at_ms: int
    reason: str  # api, timeout, callback


class ParticipantState(TypedDict):
    identity: Optional[str]
    connected_ms: Optional[int]
    disconnected_ms: Optional[int]
    first_seen_ms: Optional[int]
    duration: Optional[int]


class TrackState(TypedDict):
    participant_sid: Optional[str]
    kind: Optional[str]
    name: Optional[str]
    added_ms: Optional[int]
    removed_ms: Optional[int]
    enabled: Optional[Stamped[bool]]


class RecordingState(TypedDict, total=False):
    rank: int  # 0 unknown, 1 started, 2 completed, 3 failed: the status never goes back
    started_ms: Optional[int]
    first_seen_ms: Optional[int]
    participant_sid: Optional[str]
    # ...and the greatest value seen of each recording field of the events (source_sid, type, codec,
    # container, duration, size, media_uri, failed_operation...), as service/events/shapes.py names them.
    source_sid: Optional[str]
    track_name: Optional[str]
    uri: Optional[str]
    media_uri: Optional[str]
    media_external_location: Optional[str]
    container: Optional[str]
    codec: Optional[str]
    type: Optional[str]
    duration: Optional[int]
    size: Optional[int]
    offset_from_twilio_video_epoch: Optional[int]
    failed_operation: Optional[str]


class RoomState(TypedDict):
    sid: str
    config: Optional[Stamped[dict[str, Any]]]  # from an api room-created: the earliest
    # What the events say about the room, each the least non-null value seen (they do not change over
    # a room's life; min keeps an event without them from blanking them).
    account_sid: Optional[str]
    room_name: Optional[str]  # RoomName, unless it is only the SID fallback
    room_type: Optional[str]
    created_ms: Optional[int]  # earliest room-created
    first_seen_ms: Optional[int]
    ended: Optional[Stamped[Ended]]  # earliest room-ended
    completed_seen: Optional[Stamped[int]]  # earliest other event reporting RoomStatus=completed: its time
    room_duration: Optional[int]  # RoomDuration as Twilio reported it
    failed: Optional[Stamped[str]]  # earliest failure: its reason
    participants: dict[str, ParticipantState]
    tracks: dict[str, TrackState]
    recordings: dict[str, RecordingState]
    last_order: Optional[Order]  # the latest event by Twilio time
    last_type: Optional[str]  # ...and its type
    # Who reports the room (twilio, livekit, zoom): a provider's own webhooks outrank the twilio of
    # roomevents' API commands about it. Absent from states kept before providers (read as twilio).
    provider: NotRequired[Optional[str]]

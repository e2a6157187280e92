"""Twilio's limits and enumerations for rooms, its error codes and phrases, and the error helpers
that the parameter checks (params.py, fields.py) raise with. Tables: no logic beyond formatting."""

from __future__ import annotations

from service.rooms.errors import TwilioError

ROOM_TYPES = ("go", "peer-to-peer", "group-small", "group")
CALLBACK_METHODS = ("HEAD", "GET", "POST", "PATCH", "PUT", "DELETE")
VIDEO_CODECS = ("VP8", "H264")
#: Twilio Video media regions (docs: "Video Regions and Global Low Latency").
MEDIA_REGIONS = ("gll", "au1", "br1", "de1", "ie1", "in1", "jp1", "sg1", "us1", "us2")
RECORDING_RULE_TYPES = ("include", "exclude")
RECORDING_RULE_KINDS = ("audio", "video", "data")

DEFAULT_TYPE = "group"
#: Default and maximum MaxParticipants per room type.
MAX_PARTICIPANTS = {"group": 50, "peer-to-peer": 10, "group-small": 4, "go": 2}
DEFAULT_STATUS_CALLBACK_METHOD = "POST"
DEFAULT_MAX_PARTICIPANT_DURATION = 14_400
MIN_PARTICIPANT_DURATION = 1
MAX_PARTICIPANT_DURATION = 86_400
DEFAULT_ROOM_TIMEOUT = 5
MIN_ROOM_TIMEOUT = 1
MAX_ROOM_TIMEOUT = 60
DEFAULT_VIDEO_CODECS = ("VP8",)
DEFAULT_MEDIA_REGION = "us1"
MAX_UNIQUE_NAME_LENGTH = 128
#: max_concurrent_published_tracks: regular group rooms, large rooms, peer-to-peer topologies.
PUBLISHED_TRACKS_GROUP = 170
PUBLISHED_TRACKS_LARGE = 16
PUBLISHED_TRACKS_P2P = 0
P2P_TYPES = ("peer-to-peer", "go")  # media flows peer to peer: no track limit on Twilio's side

UPDATE_STATUSES = ("completed",)

#: Keys of RoomParams.to_dict() that are fields of Twilio's room resource (all but recording_rules).
RESOURCE_KEYS = (
    "type",
    "unique_name",
    "status_callback",
    "status_callback_method",
    "max_participants",
    "max_participant_duration",
    "max_concurrent_published_tracks",
    "record_participants_on_connect",
    "video_codecs",
    "media_region",
    "audio_only",
    "empty_room_timeout",
    "unused_room_timeout",
    "large_room",
    "enable_turn",
)

# ---------------------------------------------------------------------------------------------
# Error codes and Twilio's canonical phrases (twilio-video.md 3.6 / twilio-video.js error enum).

E_NAME_INVALID = 53100
E_NAME_TOO_LONG = 53101
E_NAME_CHARS = 53102
E_MAX_PARTICIPANTS = 53107
E_TYPE = 53108
E_TIMEOUT = 53109
E_CALLBACK_METHOD = 53110
E_CALLBACK = 53111
E_STATUS = 53112
E_PARAMS = 53114
E_MEDIA_REGION = 53115
E_RECORDING_RULES = 53120
E_PARTICIPANT_DURATION = 53123
E_AUDIO_ONLY = 53124

_PHRASE = {
    E_NAME_INVALID: "Room name is invalid",
    E_NAME_TOO_LONG: "Room name is too long",
    E_NAME_CHARS: "Room name contains invalid characters",
    E_MAX_PARTICIPANTS: "MaxParticipants is out of range",
    E_TYPE: "RoomType is not valid",
    E_TIMEOUT: "Timeout is out of range",
    E_CALLBACK_METHOD: "StatusCallbackMethod is invalid",
    E_CALLBACK: "StatusCallback is invalid",
    E_STATUS: "Status is invalid",
    E_PARAMS: "Room creation parameter(s) incompatible with the Room type",
    E_MEDIA_REGION: "MediaRegion is invalid",
    E_RECORDING_RULES: "Invalid Recording Rule(s)",
    E_PARTICIPANT_DURATION: "MaxParticipantDuration is out of range",
    E_AUDIO_ONLY: "The AudioOnly flag is not supported for the Room type",
}


#: 53114 also covers malformed values that have no dedicated code (twilio-video.js names it
#: RoomInvalidParametersError); those get this phrase instead.
_INVALID_PHRASE = "Room creation parameter(s) invalid"


def error(code: int, detail: str, phrase: str | None = None) -> TwilioError:
    return TwilioError(code, f"{phrase or _PHRASE[code]}: {detail}", 400)


def invalid(detail: str) -> TwilioError:
    return error(E_PARAMS, detail, _INVALID_PHRASE)


def shape_error(code: int, detail: str) -> TwilioError:
    """A value of the wrong shape, reported with its parameter's code."""
    return invalid(detail) if code == E_PARAMS else error(code, detail)


def show(value: str, limit: int = 64) -> str:
    """Quote a client value for an error message: escaped, and cut if long."""
    if len(value) > limit:
        value = value[: limit - 3] + "..."
    return repr(value)

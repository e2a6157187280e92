"""Room and participant resources as Twilio renders them, from the materialized room document,
and the list envelope (``{"rooms": [...], "meta": {...}}``) with its paging.

Pure domain code: no aiohttp, no clock.

Paging (decisions, tested in tests/test_rooms_api.py):

* Lists are sorted by a total key (rooms: newest ``date_created`` first, then SID; participants:
  ``start_time``, then SID). ``next_page_url`` and ``previous_page_url`` carry a *keyset* token
  (``PageToken``): "the items after / before this key". Following a link therefore neither repeats
  nor skips items when rooms are created while a client pages (offset paging over a newest-first
  list would shift everything by one page per new room).
* Without a token, ``Page`` selects an offset (``Page * PageSize``); Twilio documents ``Page`` as
  "simply for client state", so links also carry it, counting up and down from the client's value.
* Tokens are opaque to clients: ``PA`` (after) or ``PB`` (before) + base64url of the JSON key.
  A malformed token is a 400, never a silently wrong page.
* ``meta`` has Twilio's keys: page, page_size, first_page_url, previous_page_url, url,
  next_page_url, key. URLs are absolute (the caller's base URL), and list the filters the client
  gave, then PageSize, Page and PageToken, as Twilio's do.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlencode

import orjson

from service.rooms.errors import TwilioError
from service.state.render import RESOURCE_FIELDS

# The sub-resources Twilio links from a room; all are served (Transcriptions as an empty list).
ROOM_LINKS = (
    ("participants", "Participants"),
    ("recordings", "Recordings"),
    ("recording_rules", "RecordingRules"),
    ("transcriptions", "Transcriptions"),
)
PARTICIPANT_LINKS = (
    ("published_tracks", "PublishedTracks"),
    ("subscribed_tracks", "SubscribedTracks"),
    ("subscribe_rules", "SubscribeRules"),
    ("anonymize", "Anonymize"),
)


def room_resource(doc: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    """The Twilio room resource: exactly its fields (no dashboard fields), plus url and links."""
    sid = doc["sid"]
    url = f"{base_url}/v1/Rooms/{sid}"
    out = {key: doc.get(key) for key in RESOURCE_FIELDS}
    out["url"] = url
    out["links"] = {name: f"{url}/{path}" for name, path in ROOM_LINKS}
    return out


def participant_resource(doc: Mapping[str, Any], participant: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    room_sid = doc["sid"]
    url = f"{base_url}/v1/Rooms/{room_sid}/Participants/{participant['sid']}"
    return {
        "sid": participant["sid"],
        "room_sid": room_sid,
        "account_sid": doc.get("account_sid"),
        "status": participant["status"],
        "identity": participant["identity"],
        "date_created": participant["start_time"],
        "date_updated": participant["end_time"] or participant["start_time"],
        "start_time": participant["start_time"],
        "end_time": participant["end_time"],
        "duration": participant["duration"],
        "url": url,
        "links": {name: f"{url}/{path}" for name, path in PARTICIPANT_LINKS},
    }


TWILIO_VIDEO = "https://video.twilio.com"


def recording_resource(doc: Mapping[str, Any], recording: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    """Twilio's room recording resource (video.v1.room.room_recording) from the room document's
    folded recording events. ``links.media`` is the MediaUri Twilio reported (made absolute against
    Twilio's API host when relative) once the recording completed, else absent: the media itself is
    never served here."""
    room_sid = doc["sid"]
    media = recording.get("media_uri")
    if media and media.startswith("/"):
        media = TWILIO_VIDEO + media
    grouping = {"room_sid": room_sid}
    if recording.get("participant_sid"):
        grouping["participant_sid"] = recording["participant_sid"]
    return {
        "account_sid": doc.get("account_sid"),
        "status": recording["status"],
        "date_created": recording.get("date_created"),
        "sid": recording["sid"],
        "source_sid": recording.get("source_sid"),
        "size": recording.get("size"),
        "url": f"{base_url}/v1/Rooms/{room_sid}/Recordings/{recording['sid']}",
        "type": recording.get("type"),
        "duration": recording.get("duration"),
        "container_format": recording.get("container"),
        "codec": recording.get("codec"),
        "grouping_sids": grouping,
        "track_name": recording.get("track_name"),
        "offset": recording.get("offset"),
        "media_external_location": recording.get("media_external_location"),
        "room_sid": room_sid,
        "links": {"media": media} if media else {},
    }


def recording_rules_resource(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Twilio's recording rules resource (video.v1.room.room_recording_rule): the rules the room was
    created with (RecordingRules, else RecordParticipantsOnConnect); null when the room is known from
    callbacks alone and its configuration is unknown."""
    return {
        "room_sid": doc["sid"],
        "rules": doc.get("recording_rules"),
        "date_created": doc.get("date_created"),
        "date_updated": doc.get("date_created"),  # set at creation; never updated here
    }


# ---------------------------------------------------------------- paging

Key = tuple


def encode_token(direction: str, key: Key) -> str:
    """``PA<key>``: the page after `key`; ``PB<key>``: the page before it."""
    assert direction in ("A", "B")
    return "P" + direction + base64.urlsafe_b64encode(orjson.dumps(list(key))).rstrip(b"=").decode()


def decode_token(token: str, shape: Sequence[type]) -> tuple[str, Key]:
    """(direction, key) from a token; TwilioError 400 unless it is one of ours for this list."""
    bad = TwilioError(20001, f"Invalid PageToken: {token[:64]!r}", 400)
    if len(token) < 3 or token[:2] not in ("PA", "PB") or len(token) > 512:
        raise bad
    body = token[2:]
    try:
        key = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        raise bad from None
    if (
        not isinstance(key, list)
        or len(key) != len(shape)
        or not all(type(v) is t for v, t in zip(key, shape, strict=True))
    ):
        raise bad
    return token[1], tuple(key)


@dataclass(frozen=True)
class Window:
    items: list
    has_before: bool
    has_after: bool


def window(
    items: Sequence[Any],
    key: Callable[[Any], Key],
    page_size: int,
    *,
    offset: int = 0,
    token: tuple[str, Key] | None = None,
) -> Window:
    """One page of `items` (sorted ascending by `key`): by keyset token, else by offset."""
    keys = [key(item) for item in items]
    if token is not None and token[0] == "A":
        start = bisect_right(keys, token[1])
        end = start + page_size
    elif token is not None:
        end = bisect_left(keys, token[1])
        start = max(0, end - page_size)
    else:
        start, end = offset, offset + page_size
    return Window(list(items[start:end]), start > 0 and len(items) > 0, end < len(items))


def page_meta(
    list_url: str,
    key_name: str,
    filters: Sequence[tuple[str, str]],
    page: int,
    page_size: int,
    page_token: str | None,
    win: Window,
    key: Callable[[Any], Key],
) -> dict[str, Any]:
    """Twilio's ``meta`` object for one page of a list at `list_url` (absolute)."""

    def url(page_number: int, token: str | None) -> str:
        query = [*filters, ("PageSize", str(page_size)), ("Page", str(page_number))]
        if token:
            query.append(("PageToken", token))
        return f"{list_url}?{urlencode(query)}"

    next_url = previous_url = None
    if win.has_after and win.items:
        next_url = url(page + 1, encode_token("A", key(win.items[-1])))
    if win.has_before:
        if win.items:
            previous_url = url(max(0, page - 1), encode_token("B", key(win.items[0])))
        else:  # past the end (an offset beyond the list): back to the first page
            previous_url = url(0, None)
    return {
        "page": page,
        "page_size": page_size,
        "first_page_url": url(0, None),
        "previous_page_url": previous_url,
        "url": url(page, page_token),
        "next_page_url": next_url,
        "key": key_name,
    }

"""Rooms REST API (Twilio-compatible): create, fetch, list, complete; participants.

The shell around service/rooms (validation, resources, paging) and the read view. Decisions where
Twilio leaves room or where this service differs (also in the OpenAPI document, service/openapi/):

* Every route checks HTTP Basic credentials first (constant time, service/http/auth.py): 401 20003.
* Bodies: ``application/x-www-form-urlencoded`` (what Twilio's SDKs send), ``multipart/form-data``
  and ``application/json`` (the seed's request example). A non-empty body of any other type is a
  415; an empty body means "no parameters". Form bytes that are not UTF-8 are decoded with U+FFFD,
  which the parameter validation reports (``UniqueName`` -> 53102).
* Create publishes one ``room-created`` record keyed by the unique name and answers only once
  this instance's read view holds the materializer's document for the new SID (read-your-writes).
  The materializer that owns the name's partition arbitrates in log order (service/state/book.py):
  a loser's document comes back ``failed`` with ``unique-name-taken`` and the request gets 400
  53113. A name this instance already sees in progress is refused without publishing. No decision
  within ROOMEVENTS_CREATE_TIMEOUT_MS: 503 20503 (the room may still appear).
* Such losing rooms were never created as far as any client knows: they are hidden from fetch,
  update, list and participants (404 / absent).
* ``{Sid}`` in a path is a room SID, or a unique name while its room is in progress (Twilio).
* Resource URLs: ``ROOMEVENTS_PUBLIC_URL`` when set; else X-Forwarded-Proto/Host when
  ROOMEVENTS_TRUST_FORWARDED is on; else the request's own scheme and Host. So list links work
  when followed, whichever way the client reached this instance.
* List filters, as Twilio: ``Status`` defaults to ``in-progress`` (Twilio documents it and behaves
  so: twilio/twilio-ruby#443); ``failed`` is accepted. ``DateCreatedAfter`` is inclusive and
  ``DateCreatedBefore`` exclusive ("on or after" / "before" in Twilio's text), both compared at
  the second precision of ``date_created``; each takes ``YYYY-MM-DD`` (midnight UTC) or an ISO 8601
  date-time (the python SDK sends ``YYYY-MM-DDTHH:MM:SSZ``; no offset means UTC).
  ``PageSize`` 1..1000, default 50; larger values are clamped to 1000 (twilio-python sends
  ``PageSize=<limit>`` for ``list(limit=N)``). See service/rooms/resource.py for paging tokens.
* Participants list: ``Status`` defaults to ``connected`` for an in-progress room and to
  ``disconnected`` for a completed one (Twilio's documented default); ``Identity`` and the date
  filters apply to ``start_time``. A participant can be fetched by SID, or by identity while it
  is connected.
* Invalid query parameters: 400 with code 20001 (no Video-specific code exists for them).
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Mapping
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from service.events import cloudevents, record as records
from service.http.app import FOLLOWER, PUBLISHER, ROOM_SID, SETTINGS, json_response
from service.http.auth import check_basic
from service.rooms import params as room_params
from service.rooms.errors import TwilioError, not_found
from service.rooms.resource import decode_token, page_meta, participant_resource, room_resource, window
from service.state.book import UNIQUE_NAME_TAKEN

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50
ROOM_STATUSES = ("in-progress", "completed", "failed")
PARTICIPANT_STATUSES = ("connected", "disconnected")
DEFAULT_LIST_STATUS = "in-progress"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON = "application/json"


def _authorize(request: web.Request) -> None:
    settings = request.app[SETTINGS]
    check_basic(request.headers.get("Authorization"), settings.twilio_account_sid, settings.auth_tokens)


def base_url(request: web.Request) -> str:
    """The absolute base URL for resource URLs and list links (see the module docstring)."""
    settings = request.app[SETTINGS]
    if settings.public_url:
        return settings.public_url.rstrip("/")
    scheme, host = request.scheme, request.host
    if settings.trust_forwarded_headers:
        scheme = request.headers.get("X-Forwarded-Proto", scheme).split(",")[0].strip() or scheme
        host = request.headers.get("X-Forwarded-Host", host).split(",")[0].strip() or host
    return f"{scheme}://{host}"


def visible(doc: Mapping[str, Any] | None) -> bool:
    """False for a room that lost the unique-name race: its create was answered 53113."""
    return doc is not None and doc.get("failure_reason") != UNIQUE_NAME_TAKEN


# ---------------------------------------------------------------- request bodies


async def _body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_bytes
        raise TwilioError(20001, f"Request body exceeds {limit} bytes", 413) from None


async def _parameters(request: web.Request) -> tuple[dict[str, list[str]] | None, dict | None]:
    """(form parameters, None) or (None, JSON object) from the request body."""
    body = await _body(request)
    if not body.strip():
        return {}, None
    media = request.content_type
    if media == JSON:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise TwilioError(20001, "Request body is not valid JSON", 400) from None
        if not isinstance(doc, dict):
            raise TwilioError(20001, "Request body must be a JSON object", 400)
        return None, doc
    out: dict[str, list[str]] = {}
    if media == FORM:
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, errors="replace")
    elif media == MULTIPART:
        try:
            pairs = [(k, v if isinstance(v, str) else str(v)) for k, v in (await request.post()).items()]
        except Exception:
            raise TwilioError(20001, "Unable to parse the multipart request body", 400) from None
    else:
        raise TwilioError(
            20001,
            f"Unsupported Content-Type {request.headers.get('Content-Type', '(none)')!r}: send {FORM} or {JSON}",
            415,
        )
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out, None


def _conflict(name: str) -> TwilioError:
    return TwilioError(53113, f"Room exists: a room named '{name}' is already in progress", 400)


# ---------------------------------------------------------------- rooms


async def create_room(request: web.Request) -> web.Response:
    _authorize(request)
    settings = request.app[SETTINGS]
    follower = request.app[FOLLOWER]
    form, doc = await _parameters(request)
    if doc is not None:
        params = room_params.parse_create_json(doc)
        raw = {k: [v if isinstance(v, str) else orjson.dumps(v).decode()] for k, v in doc.items()}
    else:
        params = room_params.parse_create_form(form)
        raw = form
    # Fast path: a name this instance already sees in progress is refused without publishing.
    if params.unique_name and visible(follower.index.in_progress_with_name(params.unique_name)):
        raise _conflict(params.unique_name)

    sid = "RM" + uuid.uuid4().hex
    request[ROOM_SID] = sid
    now_ms = int(time.time() * 1000)
    config = params.to_dict() | {"account_sid": settings.twilio_account_sid, "sid": sid}
    event = records.room_created(settings.twilio_account_sid, sid, config, now_ms, raw)
    await request.app[PUBLISHER].publish(
        settings.events_topic, records.partition_key(event), records.encode(event), cloudevents.event_headers(event)
    )
    # The materializer owning the name's partition decides; its document also gives read-your-writes.
    try:
        room = await follower.wait_for(sid, lambda d: True, settings.create_timeout_ms / 1000)
    except TimeoutError:
        raise TwilioError(20503, "Room creation accepted but not yet confirmed; retry the fetch shortly", 503) from None
    if not visible(room):
        raise _conflict(room["unique_name"])
    return json_response(room_resource(room, base_url(request)), status=201)


def _room_or_404(request: web.Request, key: str | None = None) -> dict:
    key = key if key is not None else request.match_info["sid"]
    doc = request.app[FOLLOWER].index.get(key)
    if not visible(doc):
        raise not_found(f"/Rooms/{key}")
    request[ROOM_SID] = doc["sid"]
    return doc


async def fetch_room(request: web.Request) -> web.Response:
    _authorize(request)
    return json_response(room_resource(_room_or_404(request), base_url(request)))


async def update_room(request: web.Request) -> web.Response:
    _authorize(request)
    settings = request.app[SETTINGS]
    form, doc = await _parameters(request)
    raw = (
        form
        if doc is None
        else {k: [v if isinstance(v, str) else orjson.dumps(v).decode()] for k, v in doc.items() if v is not None}
    )
    room_params.parse_update_status(raw)
    room = _room_or_404(request)
    if room["status"] != "in-progress":
        raise TwilioError(53118, f"Room {room['sid']} is already {room['status']}", 400)
    event = records.room_ended(
        settings.twilio_account_sid, room["sid"], room["unique_name"], int(time.time() * 1000), reason="api", params=raw
    )
    await request.app[PUBLISHER].publish(
        settings.events_topic, records.partition_key(event), records.encode(event), cloudevents.event_headers(event)
    )
    try:
        room = await request.app[FOLLOWER].wait_for(
            room["sid"], lambda d: d["status"] != "in-progress", settings.create_timeout_ms / 1000
        )
    except TimeoutError:
        raise TwilioError(
            20503, "Room completion accepted but not yet confirmed; retry the fetch shortly", 503
        ) from None
    return json_response(room_resource(room, base_url(request)), status=202)


# ---------------------------------------------------------------- query parameters

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# "+hh:mm" sent unencoded in a query string arrives as " hh:mm".
_SPACE_OFFSET = re.compile(r"^(.*T[\d:.]+) (\d\d:?\d\d)$")


def parse_date_ms(name: str, value: str | None) -> int | None:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 date-time (UTC unless it says otherwise)."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if _DATE_ONLY.match(text):
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
            return int(day.timestamp() * 1000)
        spaced = _SPACE_OFFSET.match(text)
        if spaced:
            text = f"{spaced.group(1)}+{spaced.group(2)}"
        return records.parse_timestamp_ms(text)
    except (ValueError, records.RecordError, OverflowError):
        raise TwilioError(
            20001, f"Invalid {name}: {value[:64]!r} is not a date (YYYY-MM-DD) or an ISO 8601 date-time", 400
        ) from None


def _in_range(ms: int | None, after_ms: int | None, before_ms: int | None) -> bool:
    """[after, before) at the second precision of the resource's dates."""
    if after_ms is None and before_ms is None:
        return True
    if ms is None:
        return False
    seconds = ms // 1000 * 1000
    return (after_ms is None or seconds >= after_ms) and (before_ms is None or seconds < before_ms)


def _int_query(name: str, value: str | None, default: int, lo: int, hi: int | None = None) -> int:
    if value is None or value == "":
        return default
    if not re.fullmatch(r"\+?\d{1,9}", value.strip()):
        raise TwilioError(20001, f"Invalid {name}: {value[:64]!r} is not a non-negative integer", 400)
    number = int(value)
    if number < lo:
        raise TwilioError(20001, f"Invalid {name}: {number} is less than {lo}", 400)
    return min(number, hi) if hi is not None else number


def _enum_query(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise TwilioError(20001, f"Invalid {name}: {value[:64]!r} is not one of {', '.join(allowed)}", 400)
    return value


def _paging(q: Mapping[str, str]) -> tuple[int, int]:
    page_size = _int_query("PageSize", q.get("PageSize"), DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    page = _int_query("Page", q.get("Page"), 0, 0)
    return page, page_size


def _filters(q: Mapping[str, str], names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(k, q[k]) for k in names if q.get(k)]


def _room_key(doc: Mapping[str, Any]) -> tuple:
    return (-(doc.get("date_created_ms") or 0), doc["sid"])


def _participant_key(p: Mapping[str, Any]) -> tuple:
    return (p.get("start_time") or "", p["sid"])


# ---------------------------------------------------------------- lists


async def list_rooms(request: web.Request) -> web.Response:
    _authorize(request)
    q = request.query
    status = _enum_query("Status", q.get("Status"), ROOM_STATUSES) or DEFAULT_LIST_STATUS
    unique_name = q.get("UniqueName") or None
    after_ms = parse_date_ms("DateCreatedAfter", q.get("DateCreatedAfter"))
    before_ms = parse_date_ms("DateCreatedBefore", q.get("DateCreatedBefore"))
    page, page_size = _paging(q)
    page_token = q.get("PageToken") or None
    token = decode_token(page_token, (int, str)) if page_token else None

    rooms = [
        d
        for d in request.app[FOLLOWER].index.query(status=status, unique_name=unique_name)
        if visible(d) and _in_range(d.get("date_created_ms"), after_ms, before_ms)
    ]
    rooms.sort(key=_room_key)
    win = window(rooms, _room_key, page_size, offset=page * page_size, token=token)
    base = base_url(request)
    filters = _filters(q, ("Status", "UniqueName", "DateCreatedAfter", "DateCreatedBefore"))
    meta = page_meta(f"{base}/v1/Rooms", "rooms", filters, page, page_size, page_token, win, _room_key)
    return json_response({"rooms": [room_resource(d, base) for d in win.items], "meta": meta})


async def list_participants(request: web.Request) -> web.Response:
    _authorize(request)
    doc = _room_or_404(request)
    q = request.query
    status = _enum_query("Status", q.get("Status"), PARTICIPANT_STATUSES) or (
        "connected" if doc["status"] == "in-progress" else "disconnected"
    )
    identity = q.get("Identity") or None
    after_ms = parse_date_ms("DateCreatedAfter", q.get("DateCreatedAfter"))
    before_ms = parse_date_ms("DateCreatedBefore", q.get("DateCreatedBefore"))
    page, page_size = _paging(q)
    page_token = q.get("PageToken") or None
    token = decode_token(page_token, (str, str)) if page_token else None

    def start_ms(p: Mapping[str, Any]) -> int | None:
        return records.parse_timestamp_ms(p["start_time"]) if p.get("start_time") else None

    participants = sorted(
        (
            p
            for p in doc.get("participants", [])
            if p["status"] == status
            and (identity is None or p["identity"] == identity)
            and _in_range(start_ms(p), after_ms, before_ms)
        ),
        key=_participant_key,
    )
    win = window(participants, _participant_key, page_size, offset=page * page_size, token=token)
    base = base_url(request)
    filters = _filters(q, ("Status", "Identity", "DateCreatedAfter", "DateCreatedBefore"))
    # Links address the room by SID: a unique name stops resolving once the room completes.
    meta = page_meta(
        f"{base}/v1/Rooms/{doc['sid']}/Participants",
        "participants",
        filters,
        page,
        page_size,
        page_token,
        win,
        _participant_key,
    )
    return json_response({"participants": [participant_resource(doc, p, base) for p in win.items], "meta": meta})


async def fetch_participant(request: web.Request) -> web.Response:
    _authorize(request)
    doc = _room_or_404(request)
    key = request.match_info["participant_sid"]
    participants = doc.get("participants", [])
    found = next((p for p in participants if p["sid"] == key), None) or next(
        (p for p in participants if p["identity"] == key and p["status"] == "connected"), None
    )
    if found is None:
        raise not_found(f"/Rooms/{doc['sid']}/Participants/{key}")
    return json_response(participant_resource(doc, found, base_url(request)))


async def not_served(request: web.Request) -> web.Response:
    """Twilio's JSON 404 for room sub-resources not served here (Recordings, RecordingRules...)."""
    _authorize(request)
    raise not_found(request.path.removeprefix("/v1"))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/Rooms", create_room)
    app.router.add_get("/v1/Rooms", list_rooms)
    app.router.add_get("/v1/Rooms/{sid}", fetch_room)
    app.router.add_post("/v1/Rooms/{sid}", update_room)
    app.router.add_get("/v1/Rooms/{sid}/Participants", list_participants)
    app.router.add_get("/v1/Rooms/{sid}/Participants/{participant_sid}", fetch_participant)
    app.router.add_get("/v1/Rooms/{sid}/{rest:.+}", not_served)

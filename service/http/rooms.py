"""Rooms REST API (Twilio-compatible): create, fetch, list, complete; participants."""
from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlencode

import orjson
from aiohttp import web
from multidict import MultiDict

from service.events import cloudevents, record as records
from service.http.app import FOLLOWER, PUBLISHER, SETTINGS, json_response
from service.http.auth import check_basic
from service.rooms import params as room_params
from service.rooms.errors import TwilioError, not_found
from service.rooms.resource import participant_resource, room_resource
from service.state.book import UNIQUE_NAME_TAKEN

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50


def _authorize(request: web.Request) -> None:
    settings = request.app[SETTINGS]
    check_basic(request.headers.get("Authorization"), settings.twilio_account_sid, settings.auth_tokens)


def _base_url(request: web.Request) -> str:
    return request.app[SETTINGS].base_url()


async def _form(request: web.Request) -> dict[str, list[str]]:
    """The request's form parameters as name -> list of values (repeated keys kept)."""
    body = await request.read()
    if not body:
        return {}
    try:
        pairs = MultiDict(await request.post()) if request.content_type != "application/json" else None
    except Exception:
        raise TwilioError(20001, "Unable to parse the request body", 400) from None
    out: dict[str, list[str]] = {}
    for key, value in (pairs or {}).items():
        out.setdefault(key, []).append(value if isinstance(value, str) else str(value))
    return out


def _conflict(name: str) -> TwilioError:
    return TwilioError(53113, f"Room exists: a room named '{name}' is already in progress", 400)


async def create_room(request: web.Request) -> web.Response:
    _authorize(request)
    settings = request.app[SETTINGS]
    follower = request.app[FOLLOWER]
    if request.content_type == "application/json":
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            raise TwilioError(20001, "Request body is not valid JSON", 400) from None
        if not isinstance(body, dict):
            raise TwilioError(20001, "Request body must be a JSON object", 400)
        params = room_params.parse_create_json(body)
        raw = {k: ([orjson.dumps(v).decode()] if not isinstance(v, str) else [v]) for k, v in body.items()}
    else:
        raw = await _form(request)
        params = room_params.parse_create_form(raw)
    # Fast path: a name this instance already sees in progress is refused without publishing.
    if params.unique_name and follower.index.in_progress_with_name(params.unique_name):
        raise _conflict(params.unique_name)

    sid = "RM" + uuid.uuid4().hex
    request["room_sid"] = sid
    now_ms = int(time.time() * 1000)
    config = params.to_dict() | {"account_sid": settings.twilio_account_sid, "sid": sid}
    event = records.room_created(settings.twilio_account_sid, sid, config, now_ms, raw)
    await request.app[PUBLISHER].publish(settings.events_topic, records.partition_key(event),
                                         records.encode(event), cloudevents.event_headers(event))
    # The materializer owning the name's partition decides; its document also gives read-your-writes.
    try:
        doc = await follower.wait_for(sid, lambda d: True, settings.create_timeout_ms / 1000)
    except TimeoutError:
        raise TwilioError(20503, "Room creation accepted but not yet confirmed; retry the fetch shortly", 503) from None
    if doc["status"] == "failed" and doc.get("failure_reason") == UNIQUE_NAME_TAKEN:
        raise _conflict(doc["unique_name"])
    return json_response(room_resource(doc, _base_url(request)), status=201)


def _room_or_404(request: web.Request) -> dict:
    key = request.match_info["sid"]
    doc = request.app[FOLLOWER].index.get(key)
    if doc is None:
        raise not_found(f"/Rooms/{key}")
    request["room_sid"] = doc["sid"]
    return doc


async def fetch_room(request: web.Request) -> web.Response:
    _authorize(request)
    return json_response(room_resource(_room_or_404(request), _base_url(request)))


async def update_room(request: web.Request) -> web.Response:
    _authorize(request)
    settings = request.app[SETTINGS]
    raw = await _form(request)
    room_params.parse_update_status(raw)
    doc = _room_or_404(request)
    if doc["status"] != "in-progress":
        raise TwilioError(53118, f"Room {doc['sid']} is already {doc['status']}", 400)
    event = records.room_ended(settings.twilio_account_sid, doc["sid"], doc["unique_name"],
                               int(time.time() * 1000), reason="api", params=raw)
    await request.app[PUBLISHER].publish(settings.events_topic, records.partition_key(event),
                                         records.encode(event), cloudevents.event_headers(event))
    try:
        doc = await request.app[FOLLOWER].wait_for(doc["sid"], lambda d: d["status"] != "in-progress",
                                                   settings.create_timeout_ms / 1000)
    except TimeoutError:
        raise TwilioError(20503, "Room completion accepted but not yet confirmed; retry the fetch shortly", 503) from None
    return json_response(room_resource(doc, _base_url(request)), status=202)


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date_ms(name: str, value: str | None, end_of_day: bool) -> int | None:
    if not value:
        return None
    try:
        if _DATE_ONLY.match(value):
            day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=timezone.utc)
            ms = int(day.timestamp() * 1000)
            return ms + 86_399_999 if end_of_day else ms
        return records.parse_timestamp_ms(value)
    except (ValueError, records.RecordError):
        raise TwilioError(20001, f"Invalid {name}: {value!r} is not a date (YYYY-MM-DD) or ISO 8601 date-time",
                          400) from None


def _int_query(name: str, value: str | None, default: int, lo: int, hi: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise TwilioError(20001, f"Invalid {name}: {value!r} is not an integer", 400) from None
    if not lo <= number <= hi:
        raise TwilioError(20001, f"Invalid {name}: {number} must be between {lo} and {hi}", 400)
    return number


async def list_rooms(request: web.Request) -> web.Response:
    _authorize(request)
    q = request.query
    status = q.get("Status") or None
    if status is not None and status not in ("in-progress", "completed", "failed"):
        raise TwilioError(20001, f"Invalid Status: {status!r} (in-progress, completed or failed)", 400)
    page_size = _int_query("PageSize", q.get("PageSize"), DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    page = _int_query("Page", q.get("Page"), 0, 0, 10_000_000)
    offset = page * page_size
    token = q.get("PageToken")
    if token:
        if not re.fullmatch(r"PT\d{1,12}", token):
            raise TwilioError(20001, f"Invalid PageToken: {token!r}", 400)
        offset = int(token[2:])
    rooms = request.app[FOLLOWER].index.query(
        status=status, unique_name=q.get("UniqueName") or None,
        created_after_ms=_date_ms("DateCreatedAfter", q.get("DateCreatedAfter"), False),
        created_before_ms=_date_ms("DateCreatedBefore", q.get("DateCreatedBefore"), True))
    window = rooms[offset: offset + page_size]
    base = _base_url(request) + "/v1/Rooms"
    filters = {k: q[k] for k in ("Status", "UniqueName", "DateCreatedAfter", "DateCreatedBefore") if q.get(k)}

    def page_url(page_number: int, page_offset: int | None) -> str:
        query = filters | {"PageSize": page_size, "Page": page_number}
        if page_offset is not None:
            query["PageToken"] = f"PT{page_offset}"
        return f"{base}?{urlencode(query)}"

    has_next = offset + page_size < len(rooms)
    meta = {
        "page": page,
        "page_size": page_size,
        "first_page_url": page_url(0, None),
        "previous_page_url": page_url(page - 1, max(0, offset - page_size)) if page > 0 else None,
        "url": page_url(page, offset if token else None),
        "next_page_url": page_url(page + 1, offset + page_size) if has_next else None,
        "key": "rooms",
    }
    base_url = _base_url(request)
    return json_response({"rooms": [room_resource(d, base_url) for d in window], "meta": meta})


async def list_participants(request: web.Request) -> web.Response:
    _authorize(request)
    doc = _room_or_404(request)
    q = request.query
    status = q.get("Status") or None
    identity = q.get("Identity") or None
    page_size = _int_query("PageSize", q.get("PageSize"), DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    page = _int_query("Page", q.get("Page"), 0, 0, 10_000_000)
    base_url = _base_url(request)
    items = [participant_resource(doc, p, base_url) for p in doc.get("participants", [])
             if (status is None or p["status"] == status) and (identity is None or p["identity"] == identity)]
    window = items[page * page_size: (page + 1) * page_size]
    url = f"{base_url}/v1/Rooms/{doc['sid']}/Participants"
    meta = {
        "page": page, "page_size": page_size,
        "first_page_url": f"{url}?PageSize={page_size}&Page=0",
        "previous_page_url": f"{url}?PageSize={page_size}&Page={page - 1}" if page > 0 else None,
        "url": f"{url}?PageSize={page_size}&Page={page}",
        "next_page_url": f"{url}?PageSize={page_size}&Page={page + 1}" if (page + 1) * page_size < len(items) else None,
        "key": "participants",
    }
    return json_response({"participants": window, "meta": meta})


async def fetch_participant(request: web.Request) -> web.Response:
    _authorize(request)
    doc = _room_or_404(request)
    psid = request.match_info["participant_sid"]
    for p in doc.get("participants", []):
        if p["sid"] == psid or (p["identity"] == psid and p["status"] == "connected"):
            return json_response(participant_resource(doc, p, _base_url(request)))
    raise not_found(f"/Rooms/{doc['sid']}/Participants/{psid}")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/Rooms", create_room)
    app.router.add_get("/v1/Rooms", list_rooms)
    app.router.add_get("/v1/Rooms/{sid}", fetch_room)
    app.router.add_post("/v1/Rooms/{sid}", update_room)
    app.router.add_get("/v1/Rooms/{sid}/Participants", list_participants)
    app.router.add_get("/v1/Rooms/{sid}/Participants/{participant_sid}", fetch_participant)

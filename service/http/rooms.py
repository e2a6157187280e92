"""Rooms REST API (Twilio-compatible): create, fetch, list, complete; participants, recordings,
recording rules, transcriptions.

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
* Recordings (list, fetch): from the room's folded recording-* callbacks, in Twilio's shape;
  list filters ``Status``, ``SourceSid`` and the date filters on ``date_created`` (when the
  recording started), oldest first. RecordingRules (fetch): the rules the room was created with
  (``RecordingRules``, else ``RecordParticipantsOnConnect`` true -> include all, else none), null
  for a room known from callbacks alone; updating them is not served. Transcriptions (list):
  always empty, Twilio-shaped, until a provider sends them.
* Invalid query parameters: 400 with code 20001 (no Video-specific code exists for them).
* History (ROOMEVENTS_DATABASE_URL set): a room the hot view does not hold (it ended and left the
  hot state) is fetched, with its participants, from the history store, as the same JSON. Lists of
  ``completed`` or ``failed`` rooms merge both (a room in both is taken from the hot view), in the
  same order and with the same paging tokens (service/rooms/merge.py); ``in-progress`` lists need
  only the hot view. The history store unreachable: 503 20503 for those reads only. Without a
  history store, a missing room's 404 message says so.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Mapping
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from service.events import cloudevents, record as records
from service.history.store import HistoryStore, HistoryUnavailable
from service.http import room_media
from service.http.auth import requires_basic_auth
from service.http.connections import BodyTimeout, read_body
from service.http.keys import FOLLOWER, HISTORY, METRICS, PUBLISHER, ROOM_KEYS, ROOM_SID, SETTINGS
from service.http.responses import json_response
from service.http.room_lookup import (
    history_unavailable,
    room_or_404,
    visible,
)
from service.http.room_sub_lists import sub_list_page
from service.http.urls import external_base
from service.rooms import params as room_params
from service.rooms.errors import TwilioError, not_found
from service.rooms.merge import MergedList
from service.rooms.query import enum_query, in_range, paging, parse_date_ms, participant_key, query_filters, room_key
from service.rooms.resource import (
    Key,
    decode_token,
    page_meta,
    participant_resource,
    room_resource,
    window,
)
from service.state.book import UNIQUE_NAME_TAKEN

ROOM_STATUSES = ("in-progress", "completed", "failed")
PARTICIPANT_STATUSES = ("connected", "disconnected")
DEFAULT_LIST_STATUS = "in-progress"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON = "application/json"


# ---------------------------------------------------------------- request bodies


def _body_timeout(request: web.Request) -> TwilioError:
    request.app[METRICS].connections_timed_out.labels("body").inc()
    return TwilioError(20001, f"Request body not received within {request.app[SETTINGS].body_timeout_s:g} s", 408)


async def _body(request: web.Request) -> bytes:
    try:
        return await read_body(request, request.app[SETTINGS].body_timeout_s)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_bytes
        raise TwilioError(20001, f"Request body exceeds {limit} bytes", 413) from None
    except BodyTimeout:
        raise _body_timeout(request) from None


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
            form_data = await asyncio.wait_for(request.post(), request.app[SETTINGS].body_timeout_s)
            pairs = [(k, v if isinstance(v, str) else str(v)) for k, v in form_data.items()]
        except TimeoutError:
            raise _body_timeout(request) from None
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


@requires_basic_auth
async def create_room(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    follower = request.app[FOLLOWER]
    form, doc = await _parameters(request)
    if doc is not None:
        params = room_params.parse_create_json(doc)
        raw = room_params.form_from_json(doc)
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
    request.app[ROOM_KEYS].learn(sid, params.unique_name)
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
    return json_response(room_resource(room, external_base(request)), status=201)


@requires_basic_auth
async def fetch_room(request: web.Request) -> web.Response:
    return json_response(room_resource(await room_or_404(request), external_base(request)))


@requires_basic_auth
async def update_room(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    form, doc = await _parameters(request)
    raw = form if doc is None else room_params.form_from_json(doc)
    room_params.parse_update_status(raw)
    room = await room_or_404(request)
    if room["status"] != "in-progress":
        raise TwilioError(53118, f"Room {room['sid']} is already {room['status']}", 400)
    event = records.room_ended(
        settings.twilio_account_sid,
        room["sid"],
        room["unique_name"],
        int(time.time() * 1000),
        reason="api",
        params=raw,
        provider=room.get("provider") or "twilio",
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
    return json_response(room_resource(room, external_base(request)), status=202)


# ---------------------------------------------------------------- lists


@requires_basic_auth
async def list_rooms(request: web.Request) -> web.Response:
    q = request.query
    status = enum_query("Status", q.get("Status"), ROOM_STATUSES) or DEFAULT_LIST_STATUS
    unique_name = q.get("UniqueName") or None
    after_ms = parse_date_ms("DateCreatedAfter", q.get("DateCreatedAfter"))
    before_ms = parse_date_ms("DateCreatedBefore", q.get("DateCreatedBefore"))
    page, page_size = paging(q)
    page_token = q.get("PageToken") or None
    token = decode_token(page_token, (int, str)) if page_token else None

    index = request.app[FOLLOWER].index
    summaries = [
        s
        for s in index.query(status=status, unique_name=unique_name)
        if s.failure_reason != UNIQUE_NAME_TAKEN and in_range(s.date_created_ms, after_ms, before_ms)
    ]
    rooms = [{"sid": s.sid, "date_created_ms": s.date_created_ms} for s in summaries]
    rooms.sort(key=room_key)
    history: HistoryStore | None = request.app.get(HISTORY)
    if history is None or status == "in-progress":
        # In-progress rooms are all in the hot view (only ended rooms leave it): no history needed.
        win = window(rooms, room_key, page_size, offset=page * page_size, token=token)
    else:

        async def fetch(bound: Key | None, inclusive: bool, descending: bool, limit: int) -> list[dict]:
            return await history.rooms(
                status=status,
                unique_name=unique_name,
                created_from_ms=_whole_second_at_or_after(after_ms),
                created_until_ms=_whole_second_at_or_after(before_ms),
                bound=bound,
                inclusive=inclusive,
                descending=descending,
                limit=limit,
            )

        # The history rows a query may return that the hot view holds (and wins): about as many as
        # the hot view has rooms of this status.
        same_status = sum(1 for s in index.docs.summaries() if s.status == status)
        merged = MergedList(rooms, index.docs, fetch, room_key, overfetch=same_status)
        try:
            win = await merged.window(page_size, offset=page * page_size, token=token)
        except HistoryUnavailable as exc:
            raise history_unavailable(request, exc) from None
        request.app[METRICS].history_reads.labels("list").inc()
    base = external_base(request)
    filters = query_filters(q, ("Status", "UniqueName", "DateCreatedAfter", "DateCreatedBefore"))
    meta = page_meta(f"{base}/v1/Rooms", "rooms", filters, page, page_size, page_token, win, room_key)
    served = (_served(index.docs, d) for d in win.items)  # decoded only for the page served
    return json_response({"rooms": [room_resource(d, base) for d in served if d is not None], "meta": meta})


def _served(hot: Mapping[str, dict], item: dict) -> dict | None:
    """The document of a list item: a hot room's (the item is only its sort key), else the item itself
    (a whole document from the history store). None for a hot room retired since the page was cut."""
    doc = hot.get(item["sid"])
    if doc is None and "status" in item:
        return item
    return doc


def _whole_second_at_or_after(ms: int | None) -> int | None:
    """`in_range` compares whole seconds: second(x) >= t  <=>  x >= ceil(t to a whole second), and
    second(x) < t  <=>  x < ceil(t to a whole second)."""
    return None if ms is None else -(-ms // 1000) * 1000


@requires_basic_auth
async def list_participants(request: web.Request) -> web.Response:
    doc = await room_or_404(request)
    q = request.query
    status = enum_query("Status", q.get("Status"), PARTICIPANT_STATUSES) or (
        "connected" if doc["status"] == "in-progress" else "disconnected"
    )
    identity = q.get("Identity") or None
    return sub_list_page(
        request,
        doc,
        name="participants",
        items=(
            p
            for p in doc.get("participants", [])
            if p["status"] == status and (identity is None or p["identity"] == identity)
        ),
        created_ms=lambda p: records.parse_timestamp_ms(p["start_time"]) if p.get("start_time") else None,
        key=participant_key,
        filters=("Status", "Identity"),
        resource=participant_resource,
    )


@requires_basic_auth
async def fetch_participant(request: web.Request) -> web.Response:
    doc = await room_or_404(request)
    key = request.match_info["participant_sid"]
    participants = doc.get("participants", [])
    found = next((p for p in participants if p["sid"] == key), None) or next(
        (p for p in participants if p["identity"] == key and p["status"] == "connected"), None
    )
    if found is None:
        raise not_found(f"/Rooms/{doc['sid']}/Participants/{key}")
    return json_response(participant_resource(doc, found, external_base(request)))


@requires_basic_auth
async def not_served(request: web.Request) -> web.Response:
    """Twilio's JSON 404 for room sub-resources not served here (e.g. one transcription)."""
    raise not_found(request.path.removeprefix("/v1"))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/Rooms", create_room)
    app.router.add_get("/v1/Rooms", list_rooms)
    app.router.add_get("/v1/Rooms/{sid}", fetch_room)
    app.router.add_post("/v1/Rooms/{sid}", update_room)
    app.router.add_get("/v1/Rooms/{sid}/Participants", list_participants)
    app.router.add_get("/v1/Rooms/{sid}/Participants/{participant_sid}", fetch_participant)
    room_media.add_routes(app)  # before the catch-all below
    app.router.add_get("/v1/Rooms/{sid}/{rest:.+}", not_served)

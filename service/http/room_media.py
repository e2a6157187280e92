"""A room's media sub-resources (Twilio shapes): Recordings (from the folded recording events),
RecordingRules (from the create parameters) and Transcriptions (an empty list until a provider
sends them)."""

from __future__ import annotations

from typing import Any, Mapping

from aiohttp import web

from service.events import record as records
from service.http.auth import requires_basic_auth
from service.http.responses import json_response
from service.http.room_lookup import room_or_404
from service.http.room_sub_lists import sub_list_page
from service.http.urls import external_base
from service.rooms.errors import not_found
from service.rooms.query import enum_query, paging
from service.rooms.resource import decode_token, page_meta, recording_resource, recording_rules_resource, window

RECORDING_STATUSES = ("processing", "completed", "deleted", "failed")


# ---------------------------------------------------------------- recordings, recording rules, transcriptions


def _recording_key(r: Mapping[str, Any]) -> tuple:
    return (r.get("date_created") or "", r["sid"])


@requires_basic_auth
async def list_recordings(request: web.Request) -> web.Response:
    """The room's recordings from its recording-* callbacks, oldest first; Twilio's filters."""
    doc = await room_or_404(request)
    q = request.query
    status = enum_query("Status", q.get("Status"), RECORDING_STATUSES)
    source_sid = q.get("SourceSid") or None
    return sub_list_page(
        request,
        doc,
        name="recordings",
        items=(
            r
            for r in doc.get("recordings", [])
            if (status is None or r["status"] == status) and (source_sid is None or r.get("source_sid") == source_sid)
        ),
        created_ms=lambda r: records.parse_timestamp_ms(r["date_created"]) if r.get("date_created") else None,
        key=_recording_key,
        filters=("Status", "SourceSid"),
        resource=recording_resource,
    )


@requires_basic_auth
async def fetch_recording(request: web.Request) -> web.Response:
    doc = await room_or_404(request)
    key = request.match_info["recording_sid"]
    found = next((r for r in doc.get("recordings", []) if r["sid"] == key), None)
    if found is None:
        raise not_found(f"/Rooms/{doc['sid']}/Recordings/{key}")
    return json_response(recording_resource(doc, found, external_base(request)))


@requires_basic_auth
async def fetch_recording_rules(request: web.Request) -> web.Response:
    return json_response(recording_rules_resource(await room_or_404(request)))


@requires_basic_auth
async def list_transcriptions(request: web.Request) -> web.Response:
    """Always an empty list: no provider sends transcriptions to this service yet."""
    doc = await room_or_404(request)
    page, page_size = paging(request.query)
    page_token = request.query.get("PageToken") or None
    if page_token:
        decode_token(page_token, (str, str))
    meta = page_meta(
        f"{external_base(request)}/v1/Rooms/{doc['sid']}/Transcriptions",
        "transcriptions",
        [],
        page,
        page_size,
        page_token,
        window([], lambda t: (), page_size),
        lambda t: (),
    )
    return json_response({"transcriptions": [], "meta": meta})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/Rooms/{sid}/Recordings", list_recordings)
    app.router.add_get("/v1/Rooms/{sid}/Recordings/{recording_sid}", fetch_recording)
    app.router.add_get("/v1/Rooms/{sid}/RecordingRules", fetch_recording_rules)
    app.router.add_get("/v1/Rooms/{sid}/Transcriptions", list_transcriptions)

"""A room's sub-lists (its participants, its recordings) as Twilio pages: one pipeline for both."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from aiohttp import web

from service.http.responses import json_response
from service.http.urls import external_base
from service.rooms.query import in_range, paging, parse_date_ms, query_filters
from service.rooms.resource import decode_token, page_meta, window

Item = Mapping[str, Any]


def sub_list_page(
    request: web.Request,
    doc: Mapping[str, Any],
    *,
    name: str,
    items: Iterable[Item],
    created_ms: Callable[[Item], int | None],
    key: Callable[[Item], tuple],
    filters: tuple[str, ...],
    resource: Callable[[Mapping[str, Any], Item, str], dict],
) -> web.Response:
    """`items` (already filtered by the caller's own parameters, `filters`) within DateCreatedAfter/
    DateCreatedBefore, sorted by `key`, one page of them (Page, PageSize, PageToken), each rendered by
    `resource`; the page's links address the room by SID (a unique name stops resolving once it completes)."""
    q = request.query
    after_ms = parse_date_ms("DateCreatedAfter", q.get("DateCreatedAfter"))
    before_ms = parse_date_ms("DateCreatedBefore", q.get("DateCreatedBefore"))
    page, page_size = paging(q)
    page_token = q.get("PageToken") or None
    token = decode_token(page_token, (str, str)) if page_token else None
    chosen = sorted((i for i in items if in_range(created_ms(i), after_ms, before_ms)), key=key)
    win = window(chosen, key, page_size, offset=page * page_size, token=token)
    base = external_base(request)
    meta = page_meta(
        f"{base}/v1/Rooms/{doc['sid']}/{name.capitalize()}",
        name,
        query_filters(q, (*filters, "DateCreatedAfter", "DateCreatedBefore")),
        page,
        page_size,
        page_token,
        win,
        key,
    )
    return json_response({name: [resource(doc, i, base) for i in win.items], "meta": meta})

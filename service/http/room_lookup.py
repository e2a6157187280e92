"""Finding the room a request names: the hot view, else the history store (shared by the room routes)."""

from __future__ import annotations

from typing import Any, Mapping

from aiohttp import web

from service.history.store import HistoryStore, HistoryUnavailable
from service.http.keys import FOLLOWER, HISTORY, METRICS, ROOM_SID
from service.rooms.errors import TwilioError, not_found
from service.state.book import UNIQUE_NAME_TAKEN

NO_HISTORY = "; no history store is configured (ROOMEVENTS_DATABASE_URL), so rooms that left the hot state are not kept"


def visible(doc: Mapping[str, Any] | None) -> bool:
    """False for a room that lost the unique-name race: its create was answered 53113."""
    return doc is not None and doc.get("failure_reason") != UNIQUE_NAME_TAKEN


def history_unavailable(request: web.Request, exc: Exception) -> TwilioError:
    request.app[METRICS].history_reads.labels("unavailable").inc()
    return TwilioError(20503, "Room history store unavailable; retry shortly", 503)


async def room_or_404(request: web.Request, key: str | None = None) -> dict:
    """The room by SID (or unique name while in progress): the hot view, else the history store."""
    key = key if key is not None else request.match_info["sid"]
    doc = request.app[FOLLOWER].index.get(key)
    history: HistoryStore | None = request.app.get(HISTORY)
    if doc is None and history is not None:
        try:
            doc = await history.fetch(key)
        except HistoryUnavailable as exc:
            raise history_unavailable(request, exc) from None
        request.app[METRICS].history_reads.labels("hit" if doc is not None else "miss").inc()
    if not visible(doc):
        error = not_found(f"/Rooms/{key}")
        if history is None:
            error.message += NO_HISTORY
        raise error
    request[ROOM_SID] = doc["sid"]
    return doc

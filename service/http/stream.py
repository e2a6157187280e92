"""GET /v1/Streams/Rooms: Server-Sent Events of room-state changes (filled in by the stream work)."""
from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    pass

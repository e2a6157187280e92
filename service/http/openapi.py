"""GET /openapi.json: this API's OpenAPI document (filled in by the Rooms API work)."""
from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    pass

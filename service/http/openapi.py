"""GET /openapi.json: this API's OpenAPI document (service/openapi/roomevents.json).

Served without authentication (it holds nothing secret), with ``servers[0].url`` set to the base
URL this instance puts in resource URLs, so tools pointed at it call the same instance.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib import resources

from aiohttp import web

from service.http.responses import json_response
from service.http.urls import external_base

DOCUMENT = "roomevents.json"


@lru_cache(maxsize=1)
def document() -> dict:
    """The OpenAPI document as packaged (a fresh copy per caller is the caller's business)."""
    return json.loads(resources.files("service").joinpath("openapi", DOCUMENT).read_text("utf-8"))


async def openapi_json(request: web.Request) -> web.Response:
    doc = copy.copy(document())
    doc["servers"] = [{"url": external_base(request), "description": "this roomevents instance"}]
    return json_response(doc)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi_json)

"""GET /openapi.json: this API's OpenAPI document (service/openapi/roomevents.json).

Served without authentication (it holds nothing secret), with ``servers[0].url`` set to the base
URL this instance puts in resource URLs, so tools pointed at it call the same instance, and the
status-callback path as configured (ROOMEVENTS_CALLBACK_PATH).

The document describes every route. What a schema cannot state (a condition across parameters, or
on the state of a room) is listed per operation under ``x-dependent-errors``: the Twilio error codes
(and the parameter the message names) that schema-valid input may still get.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib import resources

from aiohttp import web

from service.http.keys import SETTINGS
from service.http.responses import json_response
from service.http.urls import external_base

DOCUMENT = "roomevents.json"
DEFAULT_CALLBACK_PATH = "/v1/Callbacks/Rooms"


@lru_cache(maxsize=1)
def document() -> dict:
    """The OpenAPI document as packaged (a fresh copy per caller is the caller's business)."""
    return json.loads(resources.files("service").joinpath("openapi", DOCUMENT).read_text("utf-8"))


async def openapi_json(request: web.Request) -> web.Response:
    doc = copy.copy(document())
    doc["servers"] = [{"url": external_base(request), "description": "this roomevents instance"}]
    callback_path = request.app[SETTINGS].callback_path
    if callback_path != DEFAULT_CALLBACK_PATH:
        doc["paths"] = {(callback_path if p == DEFAULT_CALLBACK_PATH else p): v for p, v in doc["paths"].items()}
    return json_response(doc)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi_json)

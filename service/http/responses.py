"""JSON responses: plain, Twilio's error shape, and 503 with Retry-After."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from service.rooms.errors import MORE_INFO, TwilioError


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


def twilio_error(err: TwilioError, headers: dict | None = None) -> web.Response:
    return json_response(err.to_json(), status=err.status, headers=headers)


def unavailable(message: str, retry_after: int = 1) -> web.Response:
    return twilio_error(TwilioError(20503, message, 503), headers={"Retry-After": str(retry_after)})


def http_exception(exc: web.HTTPException) -> web.Response:
    """aiohttp's own errors (the router's 404/405, 413...) in Twilio's error shape."""
    code = 20404 if exc.status == 404 else exc.status * 100
    return json_response(
        {"code": code, "message": exc.reason, "more_info": MORE_INFO.format(code=code), "status": exc.status},
        exc.status,
        headers={k: v for k, v in exc.headers.items() if k == "Allow"},
    )


def internal_error() -> web.Response:
    return json_response(
        {"code": 20500, "message": "Internal Server Error", "more_info": MORE_INFO.format(code=20500), "status": 500},
        500,
    )

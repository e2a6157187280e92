"""The aiohttp application: middlewares (logging, metrics, load shedding, errors) and routes."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson
import structlog
from aiohttp import web

from service import logs
from service.kafka.producer import Publisher, PublishError
from service.kafka.state_follower import StateFollower
from service.metrics import Metrics
from service.rooms.errors import MORE_INFO, TwilioError
from service.settings import Settings

log = logs.get("roomevents.http")

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
PUBLISHER = web.AppKey("publisher", Publisher)
FOLLOWER = web.AppKey("follower", StateFollower)
STATE = web.AppKey("state", dict)
ROOM_SID = web.RequestKey("room_sid", str)
_NOT_COUNTED = frozenset({"/healthz", "/readyz", "/metrics", "/v1/Streams/Rooms"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # set by handlers, logged by the middleware


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


def twilio_error(err: TwilioError, headers: dict | None = None) -> web.Response:
    return json_response(err.to_json(), status=err.status, headers=headers)


def unavailable(message: str, retry_after: int = 1) -> web.Response:
    return twilio_error(TwilioError(20503, message, 503), headers={"Retry-After": str(retry_after)})


@web.middleware
async def observe(request: web.Request, handler):
    """Log every request with its room SID, count it, shed load, and map errors to Twilio JSON."""
    app = request.app
    state = app[STATE]
    metrics = app[METRICS]
    started = time.perf_counter()
    request_id = request.headers.get("X-Request-Id", "")
    if not _REQUEST_ID.fullmatch(request_id):  # a client's id is logged only if it is a plain token
        request_id = uuid.uuid4().hex[:16]
    structlog.contextvars.bind_contextvars(request_id=request_id)
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    # Probes are never shed; a stream lives for hours and is not an in-flight request.
    counted = route not in _NOT_COUNTED
    shed = counted and state["in_flight"] >= app[SETTINGS].max_in_flight
    state["in_flight"] += counted
    try:
        if shed:
            metrics.shed.inc()
            response = unavailable("Too many requests in flight; retry shortly")
        else:
            try:
                response = await handler(request)
            except TwilioError as err:
                response = twilio_error(err)
            except PublishError as err:
                log.warning("publish failed", error=str(err))
                response = unavailable("Event store unavailable; retry shortly")
            except web.HTTPException as exc:  # the router's 404/405, aiohttp's 413...
                response = json_response(
                    {
                        "code": 20404 if exc.status == 404 else exc.status * 100,
                        "message": exc.reason,
                        "more_info": MORE_INFO.format(code=20404 if exc.status == 404 else exc.status * 100),
                        "status": exc.status,
                    },
                    exc.status,
                    headers={k: v for k, v in exc.headers.items() if k == "Allow"},
                )
    except Exception:
        log.exception("unhandled error", method=request.method, path=request.path)
        response = json_response(
            {
                "code": 20500,
                "message": "Internal Server Error",
                "more_info": "https://www.twilio.com/docs/errors/20500",
                "status": 500,
            },
            500,
        )
    finally:
        state["in_flight"] -= counted
        structlog.contextvars.unbind_contextvars("request_id")
    elapsed_ms = (time.perf_counter() - started) * 1000
    metrics.http_requests.labels(route, request.method, str(response.status)).inc()
    if route not in ("/healthz", "/readyz", "/metrics"):
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status,
            ms=round(elapsed_ms, 2),
            room_sid=request.get(ROOM_SID),
            request_id=request_id,
        )
    return response


def build_app(settings: Settings, metrics: Metrics, publisher: Publisher, follower: StateFollower) -> web.Application:
    from service.http import callbacks, health, openapi, rooms, stream

    app = web.Application(middlewares=[observe], client_max_size=settings.max_body_bytes + 1)
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[PUBLISHER] = publisher
    app[FOLLOWER] = follower
    app[STATE] = {"in_flight": 0, "draining": False}
    health.add_routes(app)
    callbacks.add_routes(app, settings.callback_path)
    stream.add_routes(app)
    openapi.add_routes(app)
    rooms.add_routes(app)
    return app

"""Request middlewares, one concern each, outermost first (see `MIDDLEWARES`).

- `request_id`: a request id (the client's X-Request-Id if it is a plain token) bound to the logs.
- `access_log`: one log line and one metric per request, with the room SID a handler set.
- `shed_load`: past ROOMEVENTS_MAX_IN_FLIGHT requests in flight, 503 + Retry-After.
- `twilio_errors`: errors as Twilio's JSON (TwilioError, an unacknowledged publish, aiohttp's own
  HTTP errors, and anything unexpected as a logged 500).
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Awaitable, Callable

import structlog
from aiohttp import web

from service import logs
from service.http.keys import METRICS, REQUEST_ID, ROOM_SID, SERVER_LOAD, SETTINGS
from service.http.responses import http_exception, internal_error, twilio_error, unavailable
from service.kafka.producer import PublishError
from service.rooms.errors import TwilioError

log = logs.get("roomevents.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
# Probes are never shed; a stream lives for hours and is not an in-flight request.
_NOT_COUNTED = _PROBES | {"/v1/Streams/Rooms"}
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource else "unmatched"


@web.middleware
async def request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get("X-Request-Id", "")
    # A client's id is logged only if it is a plain token.
    request[REQUEST_ID] = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]
    structlog.contextvars.bind_contextvars(request_id=request[REQUEST_ID])
    try:
        return await handler(request)
    finally:
        structlog.contextvars.unbind_contextvars("request_id")


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    route = _route(request)
    request.app[METRICS].http_requests.labels(route, request.method, str(response.status)).inc()
    if route not in _PROBES:
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status,
            ms=round((time.perf_counter() - started) * 1000, 2),
            room_sid=request.get(ROOM_SID),
            request_id=request.get(REQUEST_ID),
        )
    return response


@web.middleware
async def shed_load(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _route(request) in _NOT_COUNTED:
        return await handler(request)
    load = request.app[SERVER_LOAD]
    if load.in_flight >= request.app[SETTINGS].max_in_flight:
        request.app[METRICS].shed.inc()
        return unavailable("Too many requests in flight; retry shortly")
    load.in_flight += 1
    try:
        return await handler(request)
    finally:
        load.in_flight -= 1


@web.middleware
async def twilio_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except TwilioError as err:
        # A 503 (event store, a create's decision, the history store) tells the client when to retry.
        return twilio_error(err, headers={"Retry-After": "1"} if err.status == 503 else None)
    except PublishError as err:
        log.warning("publish failed", error=str(err))
        return unavailable("Event store unavailable; retry shortly")
    except web.HTTPException as exc:  # the router's 404/405, aiohttp's 413...
        return http_exception(exc)
    except Exception:
        log.exception("unhandled error", method=request.method, path=request.path)
        return internal_error()


MIDDLEWARES = (request_id, access_log, shed_load, twilio_errors)

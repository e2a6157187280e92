"""The request middleware: one aiohttp layer (`front`) for what every request gets, one function per
concern, in this order:

- a request id (the client's X-Request-Id if it is a plain token, else a fresh one) bound to the
  logs of the request (`_assign_request_id`);
- load shedding: past ROOMEVENTS_MAX_IN_FLIGHT requests in flight, 503 + Retry-After (`_admit`);
- errors as Twilio's JSON (`_error_response`: TwilioError, an unacknowledged publish, aiohttp's own
  HTTP errors, and anything unexpected as a logged 500);
- one log line (at INFO, with the room SID a handler set) and one metric per request (`_observe`).

One layer, and no coroutine per concern: each layer (and each coroutine awaited in it) costs a
frame, a resumption and, for an aiohttp layer, a partial on every request of the hot path.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from typing import Awaitable, Callable

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


class _RequestIds:
    """16 hex digits: 8 random per process (new in each forked worker), then a counter."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = os.urandom(4).hex()
        self.counter = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFF:08x}"


_ids = _RequestIds()
os.register_at_fork(after_in_child=_ids.reseed)


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource else "unmatched"


def _assign_request_id(request: web.Request) -> str:
    """Concern 1: a request id (the client's if it is a plain token, else a fresh one)."""
    given = request.headers.get("X-Request-Id")
    request_id = given if given and _REQUEST_ID.fullmatch(given) else _ids.next()
    request[REQUEST_ID] = request_id
    return request_id


def _admit(app: web.Application) -> web.Response | None:
    """Concern 2: past ROOMEVENTS_MAX_IN_FLIGHT requests in flight, a 503 + Retry-After to answer;
    None when the request is admitted (counted in flight until `_release`). Probes and the stream
    are not counted (`_NOT_COUNTED`)."""
    load = app[SERVER_LOAD]
    if load.in_flight >= app[SETTINGS].max_in_flight:
        app[METRICS].shed.inc()
        return unavailable("Too many requests in flight; retry shortly")
    load.in_flight += 1
    return None


def _release(app: web.Application) -> None:
    app[SERVER_LOAD].in_flight -= 1


def _error_response(request: web.Request, exc: Exception) -> web.Response:
    """Concern 3: an error a handler raised, as Twilio's JSON (called in its `except` block)."""
    if isinstance(exc, TwilioError):
        # A 503 (event store, a create's decision, the history store) tells the client when to retry.
        return twilio_error(exc, headers={"Retry-After": "1"} if exc.status == 503 else None)
    if isinstance(exc, PublishError):
        log.warning("publish failed", error=str(exc))
        return unavailable("Event store unavailable; retry shortly")
    if isinstance(exc, web.HTTPException):  # the router's 404/405, aiohttp's 413...
        return http_exception(exc)
    log.exception("unhandled error", method=request.method, path=request.path)
    return internal_error()


def _observe(
    app: web.Application, request: web.Request, route: str, status: int, started: float, request_id: str
) -> None:
    """Concern 4: one metric and (probes aside) one log line per request."""
    method = request.method
    app[METRICS].http_requests.increment(route, method, str(status))
    if route not in _PROBES:
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        logs.request_line(method, request.path, status, elapsed_ms, request.get(ROOM_SID), request_id)


@web.middleware
async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The four concerns above in one aiohttp layer."""
    started = time.perf_counter()
    request_id = _assign_request_id(request)
    token = logs.bind_request_id(request_id)
    route = _route(request)
    app = request.app
    counted = route not in _NOT_COUNTED
    try:
        response = _admit(app) if counted else None
        if response is None:
            try:
                response = await handler(request)
            except Exception as exc:
                response = _error_response(request, exc)
            finally:
                if counted:
                    _release(app)
    finally:
        logs.reset_request_id(token)
    _observe(app, request, route, response.status, started, request_id)
    return response


MIDDLEWARES = (front,)

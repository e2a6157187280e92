"""Request middlewares, outermost first (see `MIDDLEWARES`).

- `front`, one coroutine for what every request gets, in this order:
  - a request id (the client's X-Request-Id if it is a plain token, else a fresh one) bound to the
    logs of the request;
  - load shedding: past ROOMEVENTS_MAX_IN_FLIGHT requests in flight, 503 + Retry-After;
  - one log line (at INFO, with the room SID a handler set) and one metric per request.
- `twilio_errors`: errors as Twilio's JSON (TwilioError, an unacknowledged publish, aiohttp's own
  HTTP errors, and anything unexpected as a logged 500).

One middleware rather than three: each layer costs a coroutine per request on the hot path.
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


@web.middleware
async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    given = request.headers.get("X-Request-Id")
    # A client's id is logged only if it is a plain token.
    request_id = given if given and _REQUEST_ID.fullmatch(given) else _ids.next()
    request[REQUEST_ID] = request_id
    token = logs.bind_request_id(request_id)
    route = _route(request)
    app = request.app
    try:
        if route in _NOT_COUNTED:
            response = await handler(request)
        else:
            load = app[SERVER_LOAD]
            if load.in_flight >= app[SETTINGS].max_in_flight:
                app[METRICS].shed.inc()
                response = unavailable("Too many requests in flight; retry shortly")
            else:
                load.in_flight += 1
                try:
                    response = await handler(request)
                finally:
                    load.in_flight -= 1
    finally:
        logs.reset_request_id(token)
    status = response.status
    app[METRICS].http_requests.labels(route, request.method, str(status)).inc()
    if route not in _PROBES:
        logs.request_line(
            request.method,
            request.path,
            status,
            round((time.perf_counter() - started) * 1000, 2),
            request.get(ROOM_SID),
            request_id,
        )
    return response


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


MIDDLEWARES = (front, twilio_errors)

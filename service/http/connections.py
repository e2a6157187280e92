"""Slow and hostile clients at the connection level (issue 16): what aiohttp does not bound itself.

* **Request heads** (ROOMEVENTS_HEADER_TIMEOUT_S): a connection must deliver a complete request head
  within the timeout, counted from the connection (or, on a kept-alive connection, from the next
  request's first byte); bytes dripped one at a time do not extend it. Past it: `408` and close.
* **Request bodies** (ROOMEVENTS_BODY_TIMEOUT_S): `read_body` reads a body within the timeout, else
  `BodyTimeout` (the routes answer 408 and close).
* **A connection cap** (ROOMEVENTS_MAX_CONNECTIONS, at most the open-file limit less a reserve, so
  accept() never runs out of descriptors): a new connection past it evicts the oldest idle one (no
  request being handled: waiting for a head or kept alive), so connections that never finish a
  head cannot starve new clients and `/healthz`; with none idle, the new one is closed.
* **aiohttp's own 400s** (a malformed request line or header): a JSON body that quotes nothing of
  the request, and one rate-limited log line naming the error's kind, never the bytes (aiohttp
  quotes the offending header line, an `Authorization` header included, in its log and its body).

Per-connection events are logged through a rate limiter: a flood writes a few lines and counts.
"""

from __future__ import annotations

import asyncio
import re
import resource
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from service import logs
from service.metrics import Metrics
from service.rooms.errors import MORE_INFO

log = logs.get("roomevents.connections")


def _response_bytes(status: int, message: str) -> bytes:
    code = status * 100
    body = (
        f'{{"code":{code},"message":"{message}","more_info":"{MORE_INFO.format(code=code)}","status":{status}}}'
    ).encode()
    phrase = HTTPStatus(status).phrase
    return (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


HEAD_TIMEOUT_RESPONSE = _response_bytes(408, "Request head not received in time")
_KIND = re.compile(r"[A-Za-z][A-Za-z ]{0,59}")


class BodyTimeout(Exception):
    """The request body did not arrive whole within ROOMEVENTS_BODY_TIMEOUT_S."""


async def read_body(request: web.Request, timeout_s: float) -> bytes:
    """The whole body within `timeout_s` (BodyTimeout otherwise); aiohttp's 413 passes through.

    A body already received whole (nearly every callback: it arrives with its head) is read at once:
    reading it cannot wait, so it needs no timer (asyncio.wait_for costs a task and a timer)."""
    content = request.content
    if content.is_eof():
        body = content.read_nowait()  # all of it: what request.read() returns, less its machinery
        if len(body) > request.client_max_size:  # as request.read() checks it
            raise web.HTTPRequestEntityTooLarge(max_size=request.client_max_size, actual_size=len(body))
        return body
    try:
        return await asyncio.wait_for(request.read(), timeout_s)
    except TimeoutError:
        raise BodyTimeout() from None


def connection_cap(configured: int) -> int:
    """`configured`, lowered to the open-file limit less a reserve (Kafka clients, files, the
    listener): past the limit accept() fails, and every client, `/healthz` included, with it."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ValueError, OSError):
        return configured
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return configured
    return max(1, min(configured, soft - max(64, soft // 8)))


class ConnectionGuard:
    """One server's connections (oldest first), its cap and timeouts, its metrics and log limiter."""

    def __init__(self, max_connections: int, header_timeout_s: float, metrics: Metrics) -> None:
        self.max_connections = connection_cap(max_connections)
        self.header_timeout_s = header_timeout_s
        self.metrics = metrics
        self.open: dict[GuardedRequestHandler, None] = {}
        self.limiter = logs.RateLimited()

    def warn(self, event: str, **fields: Any) -> None:
        allowed, suppressed = self.limiter.allow(event)
        if allowed:
            log.warning(event, **fields, **({"suppressed": suppressed} if suppressed else {}))

    def admit(self, handler: GuardedRequestHandler) -> bool:
        """Make room for `handler`: False when the cap is reached and no connection is idle."""
        if len(self.open) >= self.max_connections:
            victim = next((h for h in self.open if h.idle()), None)
            if victim is None:
                self.metrics.connections_refused.inc()
                self.warn("connection refused: at the connection cap, none idle", cap=self.max_connections)
                return False
            self.metrics.connections_evicted.inc()
            self.warn("idle connection closed: at the connection cap", cap=self.max_connections)
            victim.force_close()
            self.forget(victim)
        self.open[handler] = None
        self.metrics.open_connections.set(len(self.open))
        return True

    def forget(self, handler: GuardedRequestHandler) -> None:
        if self.open.pop(handler, 0) is None:
            self.metrics.open_connections.set(len(self.open))


class GuardedRequestHandler(RequestHandler):
    """aiohttp's protocol with a request-head deadline, the connection cap and quiet 400s."""

    __slots__ = ("_guard", "_head_deadline")

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._head_deadline: asyncio.TimerHandle | None = None

    def idle(self) -> bool:
        """Handling no request: waiting for a (complete) head, or kept alive between requests."""
        return self._current_request is None and not self._messages

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._guard.admit(self):
            self.force_close()
            return
        self._arm()

    def _arm(self) -> None:
        self._head_deadline = self._loop.call_later(self._guard.header_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._messages or self._current_request is not None:
            self._disarm()  # a complete head (or a body being read)
        elif self._head_deadline is None and data and not self._force_close:
            self._arm()  # the first bytes of the next request on a kept-alive connection

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if not self.idle() or self.transport is None:
            return
        self._guard.metrics.connections_timed_out.labels("head").inc()
        self._guard.warn("request head not received in time: connection closed", seconds=self._guard.header_timeout_s)
        self.transport.write(HEAD_TIMEOUT_RESPONSE)
        self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._guard.forget(self)
        super().connection_lost(exc)

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse (or a handler's escaped error): Twilio's
        JSON error shape with the status' phrase only, and a log line without the request's bytes."""
        text = getattr(exc, "message", None) or (str(exc) if exc else "")
        kind = _KIND.match(text.strip())
        self._guard.warn(
            "malformed request" if status < 500 else "request failed",
            status=status,
            error=type(exc).__name__ if exc else None,
            reason=kind.group(0).strip() if kind else None,
        )
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        code = status * 100
        response = web.json_response(
            {
                "code": code,
                "message": HTTPStatus(status).phrase,
                "more_info": MORE_INFO.format(code=code),
                "status": status,
            },
            status=status,
        )
        response.force_close()
        return response


class GuardedServer(web.Server):
    """web.Server whose connections are GuardedRequestHandlers sharing one ConnectionGuard."""

    guard: ConnectionGuard

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, guard=self.guard, loop=self._loop, **self._kwargs)


def _drop_current_app_fixer(app: web.Application) -> None:
    """aiohttp adds a layer of its own to an app's middlewares that sets `request.app` to the app
    whose middlewares run (it differs only with sub-applications): an app without sub-applications
    serves the same without it, and saves a coroutine per request. Done once the app is frozen (its
    middleware chain is built); nothing changes when aiohttp's internals are not as expected."""
    handlers = getattr(app, "_middlewares_handlers", None)
    if getattr(app, "_subapps", True) or not isinstance(handlers, tuple):
        return
    kept = tuple(h for h in handlers if not getattr(h[0], "__qualname__", "").startswith("_fix_request_current_app"))
    if len(kept) == len(handlers) - 1:
        app._middlewares_handlers = kept  # type: ignore[attr-defined]


class GuardedAppRunner(web.AppRunner):
    """An AppRunner serving through GuardedServer."""

    def __init__(self, app: web.Application, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._guard = guard

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()  # the app's startup, as AppRunner does it
        _drop_current_app_fixer(self.app)
        server.__class__ = GuardedServer  # web.Server has no __slots__; only __call__ differs
        server.guard = self._guard  # type: ignore[attr-defined]
        return server

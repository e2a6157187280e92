"""The one structlog setup: JSON lines in production, readable console output in dev.

Log lines are written once per event-loop iteration (every line that the iteration's requests
produced, in one write, right after them), not one write and flush per line; outside a running
loop, and at exit, at once. The request log line (`request_line`) skips structlog's processor chain
in JSON mode: the same keys, rendered by orjson. Nothing is dropped: the lines of an iteration are
written before the next one starts.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from contextvars import ContextVar, Token
from datetime import datetime, timezone
from typing import Any, BinaryIO

import orjson
import structlog
from structlog.typing import EventDict

# Keys whose values never reach a log line, whoever passes them.
_SECRET_KEYS = frozenset({"authorization", "auth_token", "twilio_auth_token", "password", "token", "signature"})

# The request being served (service/http/middleware.py): added to every line logged while serving it.
_request_id: ContextVar[str | None] = ContextVar("roomevents_request_id", default=None)


def bind_request_id(value: str) -> Token:
    return _request_id.set(value)


def reset_request_id(token: Token) -> None:
    _request_id.reset(token)


def _redact(_logger: object, _name: str, event_dict: EventDict) -> EventDict:
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


def _add_request_id(_logger: object, _name: str, event_dict: EventDict) -> EventDict:
    request_id = _request_id.get()
    if request_id is not None and "request_id" not in event_dict:
        event_dict["request_id"] = request_id
    return event_dict


class LineWriter:
    """Lines to a binary stream, in one write per event-loop iteration (at once outside a loop)."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self._lines: list[bytes] = []
        self._scheduled = False

    def write(self, line: bytes) -> None:
        self._lines.append(line)
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        lines, self._lines = self._lines, []
        if lines:
            try:
                self.file.write(b"".join(lines))
                self.file.flush()
            except (OSError, ValueError):  # the stream is gone (closed at exit): nothing to write to
                pass


class _BatchedBytesLogger:
    """structlog's BytesLogger, through a LineWriter."""

    def __init__(self, writer: LineWriter) -> None:
        self._writer = writer

    def msg(self, message: bytes) -> None:
        self._writer.write(message + b"\n")

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


_writer: LineWriter | None = None
_threshold = logging.INFO


def enabled_for(level: int) -> bool:
    """Whether lines at `level` are written (to skip building what would be dropped)."""
    return level >= _threshold


_json_requests = False  # request_line renders its own JSON (json format, INFO enabled)
_requests_enabled = True


def flush() -> None:
    if _writer is not None:
        _writer.flush()


atexit.register(flush)


def setup(level: str = "INFO", fmt: str = "json") -> None:
    global _writer, _json_requests, _requests_enabled, _threshold
    shared = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    flush()
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        factory = structlog.PrintLoggerFactory(file=sys.stderr)
        _writer = None
    else:
        # orjson straight to bytes, written once per loop iteration: a request line costs about a
        # microsecond on the hot path.
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        _writer = writer = LineWriter(sys.stderr.buffer)

        def factory(*_args: Any) -> _BatchedBytesLogger:
            return _BatchedBytesLogger(writer)

    _threshold = threshold = getattr(logging, level)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    _requests_enabled = threshold <= logging.INFO
    _json_requests = _writer is not None and _requests_enabled
    # aiokafka and aiohttp log through stdlib logging: keep their warnings, drop their chatter.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get(name: str | None = None) -> Any:  # structlog's lazy proxy of a BoundLogger
    return structlog.get_logger(name)


_access = get("roomevents.http")
_stamp_second = -1
_stamp_prefix = ""


def _timestamp() -> str:
    """What structlog's TimeStamper(fmt="iso", utc=True) writes, e.g. 2026-01-02T03:04:05.123456Z."""
    global _stamp_second, _stamp_prefix
    now = time.time()
    second = int(now)
    if second != _stamp_second:
        _stamp_second = second
        _stamp_prefix = datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
    return f"{_stamp_prefix}{int((now - second) * 1_000_000):06d}Z"


def request_line(method: str, path: str, status: int, ms: float, room_sid: str | None, request_id: str | None) -> None:
    """The access log line of one request, at INFO: the same line `log.info("request", ...)` writes."""
    if _json_requests:
        _writer.write(  # type: ignore[union-attr]
            orjson.dumps(
                {
                    "method": method,
                    "path": path,
                    "status": status,
                    "ms": ms,
                    "room_sid": room_sid,
                    "request_id": request_id,
                    "event": "request",
                    "level": "info",
                    "timestamp": _timestamp(),
                }
            )
            + b"\n"
        )
    elif _requests_enabled:
        _access.info(
            "request", method=method, path=path, status=status, ms=ms, room_sid=room_sid, request_id=request_id
        )

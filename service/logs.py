"""The one structlog setup: JSON lines in production, readable console output in dev.

Two guards keep the logs safe and bounded whatever a client sends (issue 16):

* Secrets: values under secret-looking keys are redacted, and lines of the libraries that log
  through stdlib logging (aiohttp, asyncio) are scrubbed of anything that looks like an
  `Authorization` header or Basic credentials (aiohttp quotes a malformed header line in full).
* Volume: those library lines are rate-limited per message (a flood of malformed requests, or of
  "Too many open files" from accept(), writes a few lines and a count of the suppressed ones, not
  one line per connection); the ingress does the same for its own per-connection warnings
  (`RateLimited`).

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
import re
import sys
import threading
import time
from contextvars import ContextVar, Token
from datetime import datetime, timezone
from typing import Any, BinaryIO, Callable

import orjson
import structlog
from structlog.typing import EventDict

# Non-string keys (partition numbers) are written as strings rather than failing the line.
_OPTIONS = orjson.OPT_NON_STR_KEYS


def _dumps(value: object, **kwargs: object) -> bytes:
    return orjson.dumps(value, option=_OPTIONS, **kwargs)


# Keys whose values never reach a log line, whoever passes them.
_SECRET_KEYS = frozenset({"authorization", "auth_token", "twilio_auth_token", "password", "token", "signature"})
# Stdlib loggers that see what clients send: scrubbed and rate-limited (a logger's filter applies to
# the records made on that very logger, so each is named).
GUARDED_LOGGERS = (
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
    "asyncio",
)
_CREDENTIALS = re.compile(r"(?i)(authorization\W{0,4}\s*|basic\s+|bearer\s+)[^\s'\"\\]*(\\x[0-9a-f]{2}|[^\s'\"\\])*")
_LONG_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{24,}")

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


def scrub(text: str) -> str:
    """`text` without anything that looks like credentials: an Authorization header's value, a
    Basic/Bearer credential, or (next to either) a long token."""
    if not re.search(r"(?i)authorization|basic|bearer", text):
        return text
    text = _CREDENTIALS.sub(lambda m: m.group(1) + "[redacted]", text)
    return _LONG_TOKEN.sub("[redacted]", text)


class RateLimited:
    """At most `burst` occurrences of one key per `window_s`; then a count of what was suppressed
    is handed to the next occurrence that is let through."""

    def __init__(self, burst: int = 5, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.window_s, self.clock = burst, window_s, clock
        self._seen: dict[Any, list[float | int]] = {}  # key -> [window start, count in window, suppressed]
        self._lock = threading.Lock()

    def allow(self, key: Any) -> tuple[bool, int]:
        """(whether to log this occurrence, how many were suppressed since the last one logged)."""
        now = self.clock()
        with self._lock:
            state = self._seen.get(key)
            if state is None or now - state[0] >= self.window_s:
                suppressed = int(state[2]) if state else 0
                if len(self._seen) > 1000:  # bounded: forget old keys
                    self._seen.clear()
                self._seen[key] = [now, 1, 0]
                return True, suppressed
            if state[1] < self.burst:
                state[1] += 1
                suppressed, state[2] = int(state[2]), 0
                return True, suppressed
            state[2] += 1
            return False, 0


class LibraryLogGuard(logging.Filter):
    """Scrubs credentials out of a stdlib record (message and traceback) and rate-limits it."""

    def __init__(self, limiter: RateLimited | None = None) -> None:
        super().__init__()
        self.limiter = limiter or RateLimited()

    def filter(self, record: logging.LogRecord) -> bool:
        allowed, suppressed = self.limiter.allow((record.name, record.levelno, str(record.msg)[:200]))
        if not allowed:
            return False
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the template only
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            # The exception's text may quote the request (aiohttp's parser errors quote the bad
            # header line): keep its type and first line, never the traceback's payload.
            first = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            message = f"{message}: {type(exc).__name__}: {first}"
            record.exc_info = None
            record.exc_text = None
        if suppressed:
            message += f" ({suppressed} similar lines suppressed)"
        record.msg, record.args = scrub(message), None
        return True


def _tapped(tap: Callable[[EventDict], None], threshold: int) -> Callable[[object, str, EventDict], EventDict]:
    def processor(_logger: object, _name: str, event_dict: EventDict) -> EventDict:
        tap(dict(event_dict))
        if logging.getLevelName(str(event_dict.get("level", "info")).upper()) < threshold:
            raise structlog.DropEvent
        return event_dict

    return processor


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


def setup(level: str = "INFO", fmt: str = "json", tap: Callable[[EventDict], None] | None = None) -> None:
    """`tap` (tests): called with every event at every level, after redaction; what is printed still
    obeys `level`."""
    global _writer, _json_requests, _requests_enabled, _threshold
    threshold = getattr(logging, level)
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
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
        _writer = writer = LineWriter(sys.stderr.buffer)

        def factory(*_args: Any) -> _BatchedBytesLogger:
            return _BatchedBytesLogger(writer)

    _threshold = threshold
    tail = [_tapped(tap, threshold)] if tap is not None else []
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG if tap is not None else threshold),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    _requests_enabled = threshold <= logging.INFO
    # With a tap (tests) every line goes through the processors, so the tap sees request lines too.
    _json_requests = _writer is not None and _requests_enabled and tap is None
    # aiokafka and aiohttp log through stdlib logging: keep their warnings, drop their chatter.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    guard_library_loggers()


def guard_library_loggers() -> None:
    """Attach one LibraryLogGuard to each of GUARDED_LOGGERS (idempotent)."""
    guard = LibraryLogGuard()
    for name in GUARDED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, LibraryLogGuard) for f in logger.filters):
            logger.addFilter(guard)


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
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
        )
    elif _requests_enabled:
        _access.info(
            "request", method=method, path=path, status=status, ms=ms, room_sid=room_sid, request_id=request_id
        )

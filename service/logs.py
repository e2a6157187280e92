"""The one structlog setup: JSON lines in production, readable console output in dev."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict

# Non-string keys (partition numbers) are written as strings rather than failing the line.
_OPTIONS = orjson.OPT_NON_STR_KEYS


def _dumps(value: object, **kwargs: object) -> bytes:
    return orjson.dumps(value, option=_OPTIONS, **kwargs)


# Keys whose values never reach a log line, whoever passes them.
_SECRET_KEYS = frozenset({"authorization", "auth_token", "twilio_auth_token", "password", "token", "signature"})


def _redact(_logger: object, _name: str, event_dict: EventDict) -> EventDict:
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


def setup(level: str = "INFO", fmt: str = "json") -> None:
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        factory = structlog.PrintLoggerFactory(file=sys.stderr)
    else:
        # orjson straight to bytes: a request line costs a few microseconds on the hot path.
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
        factory = structlog.BytesLoggerFactory(file=sys.stderr.buffer)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # aiokafka and aiohttp log through stdlib logging: keep their warnings, drop their chatter.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get(name: str | None = None) -> Any:  # structlog's lazy proxy of a BoundLogger
    return structlog.get_logger(name)

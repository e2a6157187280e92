"""Query parameters of the Rooms API lists: dates, integers, enums, paging and sort keys.

Pure (no I/O, no framework): invalid values raise TwilioError 20001 (400), as Twilio answers.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Mapping

from service.events import record as records
from service.rooms.errors import TwilioError

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# "+hh:mm" sent unencoded in a query string arrives as " hh:mm".
_SPACE_OFFSET = re.compile(r"^(.*T[\d:.]+) (\d\d:?\d\d)$")


def parse_date_ms(name: str, value: str | None) -> int | None:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 date-time (UTC unless it says otherwise)."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if _DATE_ONLY.match(text):
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
            return int(day.timestamp() * 1000)
        spaced = _SPACE_OFFSET.match(text)
        if spaced:
            text = f"{spaced.group(1)}+{spaced.group(2)}"
        return records.parse_timestamp_ms(text)
    except (ValueError, records.RecordError, OverflowError):
        raise TwilioError(
            20001, f"Invalid {name}: {value[:64]!r} is not a date (YYYY-MM-DD) or an ISO 8601 date-time", 400
        ) from None


def in_range(ms: int | None, after_ms: int | None, before_ms: int | None) -> bool:
    """[after, before) at the second precision of the resource's dates."""
    if after_ms is None and before_ms is None:
        return True
    if ms is None:
        return False
    seconds = ms // 1000 * 1000
    return (after_ms is None or seconds >= after_ms) and (before_ms is None or seconds < before_ms)


def int_query(name: str, value: str | None, default: int, lo: int, hi: int | None = None) -> int:
    if value is None or value == "":
        return default
    if not re.fullmatch(r"\+?\d{1,9}", value.strip()):
        raise TwilioError(20001, f"Invalid {name}: {value[:64]!r} is not a non-negative integer", 400)
    number = int(value)
    if number < lo:
        raise TwilioError(20001, f"Invalid {name}: {number} is less than {lo}", 400)
    return min(number, hi) if hi is not None else number


def enum_query(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise TwilioError(20001, f"Invalid {name}: {value[:64]!r} is not one of {', '.join(allowed)}", 400)
    return value


def paging(q: Mapping[str, str]) -> tuple[int, int]:
    page_size = int_query("PageSize", q.get("PageSize"), DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    page = int_query("Page", q.get("Page"), 0, 0)
    return page, page_size


def query_filters(q: Mapping[str, str], names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(k, q[k]) for k in names if q.get(k)]


def room_key(doc: Mapping[str, Any]) -> tuple:
    return (-(doc.get("date_created_ms") or 0), doc["sid"])


def participant_key(p: Mapping[str, Any]) -> tuple:
    return (p.get("start_time") or "", p["sid"])

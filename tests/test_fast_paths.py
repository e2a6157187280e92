"""The hot paths made fast (issue 13) keep their guarantees: the request log line is written whole,
in JSON, once per loop iteration and never dropped; a publish past its deadline is a PublishTimeout
(503) and never swallows another cancellation; the urlencoded parser and the date formatting give
what the standard library gives; a receipt time parses to what datetime gives."""

from __future__ import annotations

import asyncio
import io
import logging
import os
from datetime import datetime, timezone
from urllib.parse import parse_qsl

import orjson
import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from service import logs
from service.callbacks.parse import CallbackParseError, parse_callback
from service.events.record import format_ms
from service.kafka.producer import PublishTimeout, _Deadlines
from service.metrics import Metrics
from service.state.book import _received_ms
from tests.logcapture import CAPTURE


class _Stderr:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def restore_session_logs() -> None:
    """The suite's own log setup (tests/conftest.py), with the session capture's tap."""
    logs.setup(os.environ.get("ROOMEVENTS_LOG_LEVEL", "WARNING"), "console", tap=CAPTURE.structlog_event)


@pytest.fixture
def json_logs(monkeypatch):
    """JSON logs at INFO into a buffer (restored to the suite's console logs afterwards)."""
    stderr = _Stderr()
    monkeypatch.setattr("sys.stderr", stderr)
    logs.setup("INFO", "json")
    yield stderr.buffer
    logs.flush()
    monkeypatch.undo()
    restore_session_logs()


async def test_request_lines_are_written_once_per_loop_iteration_and_never_lost(json_logs):
    for n in range(3):
        logs.request_line("POST", "/v1/Callbacks/Rooms", 204, 1.25, f"RM{n}", f"id{n}")
    logs.get("roomevents.test").warning("other line", room_sid="RM9")
    assert json_logs.getvalue() == b""  # not yet: the iteration is still running
    await asyncio.sleep(0)
    lines = [orjson.loads(line) for line in json_logs.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["request", "request", "request", "other line"]
    first = lines[0]
    assert list(first) == ["method", "path", "status", "ms", "room_sid", "request_id", "event", "level", "timestamp"]
    assert first["level"] == "info" and first["status"] == 204 and first["room_sid"] == "RM0"
    assert datetime.fromisoformat(first["timestamp"]).tzinfo is not None


def test_outside_a_loop_lines_are_written_at_once(json_logs):
    logs.request_line("GET", "/v1/Rooms", 200, 0.5, None, "x")
    assert json_logs.getvalue().startswith(b'{"method":"GET"')


async def test_request_id_is_bound_to_every_line_of_the_request(json_logs):
    token = logs.bind_request_id("req-1")
    try:
        logs.get("roomevents.test").warning("inside")
    finally:
        logs.reset_request_id(token)
    logs.get("roomevents.test").warning("outside")
    logs.flush()
    inside, outside = (orjson.loads(line) for line in json_logs.getvalue().splitlines())
    assert inside["request_id"] == "req-1" and "request_id" not in outside


def test_request_lines_follow_the_level():
    logs.setup("WARNING", "json")
    try:
        assert not logs.enabled_for(logging.INFO) and logs.enabled_for(logging.ERROR)
        logs.request_line("POST", "/x", 204, 1.0, None, "id")  # dropped by level, no error
    finally:
        restore_session_logs()


async def test_a_publish_past_its_deadline_times_out_and_other_cancellations_pass():
    deadlines = _Deadlines(0.05)

    async def publish(wait: float) -> str:
        key = deadlines.enter()
        try:
            await asyncio.sleep(wait)
        except asyncio.CancelledError:
            if not deadlines.expired(key):
                raise
            raise PublishTimeout("late") from None
        finally:
            deadlines.leave(key)
        return "acked"

    fast, slow = asyncio.create_task(publish(0.01)), asyncio.create_task(publish(10))
    assert await fast == "acked"
    with pytest.raises(PublishTimeout):
        await slow
    assert asyncio.current_task().cancelling() == 0
    # A cancellation that is not the deadline's (shutdown) is not turned into a timeout.
    other = asyncio.create_task(publish(10))
    await asyncio.sleep(0.01)
    other.cancel()
    with pytest.raises(asyncio.CancelledError):
        await other
    # Every publish later still gets its own deadline from the one timer.
    again = asyncio.create_task(publish(10))
    with pytest.raises(PublishTimeout):
        await asyncio.wait_for(again, 2)


_PIECES = st.sampled_from(
    list("ab=&+%; ") + ["%C3", "%A9", "%FF", "%zz", "%2", "é", "%26", "%3D", "%25", "€", "%E2%82", "%AC", "%00"]
)


@hyp_settings(max_examples=3000, deadline=None)
@given(st.lists(_PIECES, max_size=14).map("".join))
def test_form_bodies_parse_as_parse_qsl_does(text):
    try:
        expected = parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        expected = None
    try:
        got = parse_callback("POST", "", "application/x-www-form-urlencoded", text.encode(), 1 << 20)
    except CallbackParseError as exc:
        assert exc.status == 400
        got = None
    if expected is None:
        assert got is None, text
    else:
        assert got is not None and [(k, v) for k, vs in got.body_params.items() for v in vs] == [
            (k, v) for k, v in _grouped(expected)
        ], text


def _grouped(pairs):
    """parse_callback groups repeated names (first occurrence order), values in arrival order."""
    out: dict[str, list[str]] = {}
    for k, v in pairs:
        out.setdefault(k, []).append(v)
    return [(k, v) for k, vs in out.items() for v in vs]


@given(st.integers(min_value=-(10**12), max_value=4 * 10**12))
def test_format_ms_is_strftime_of_the_instant(ms):
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    assert format_ms(ms) == dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    assert _received_ms({"received_at": format_ms(ms)}) == int(datetime.fromisoformat(format_ms(ms)).timestamp() * 1000)


def test_metric_children_are_cached_and_removable():
    m = Metrics()
    m.http_requests.labels("/x", "POST", "204").inc()
    m.http_requests.labels("/x", "POST", "204").inc(2)
    assert m.http_requests.labels("/x", "POST", "204")._value.get() == 3
    m.http_requests.remove("/x", "POST", "204")
    assert m.http_requests.labels("/x", "POST", "204")._value.get() == 0

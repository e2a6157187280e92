"""The ingress's second round of fast paths (issue 13) give exactly what the general paths give: the
event id and the record's parameters of a callback with one value per name, the signature's sorted
parameter string, Twilio's canonical timestamps, percent-decoding, the CloudEvents headers, the
partition of a key, the metrics, reading a body received whole, and the one middleware layer."""

from __future__ import annotations

import asyncio
import hashlib
import math
from datetime import datetime, timezone
from unittest import mock
from urllib.parse import unquote_to_bytes

import orjson
import prometheus_client
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings as hyp_settings, strategies as st

from service.callbacks import signature
from service.callbacks.parse import _unquote
from service.events import cloudevents
from service.events.record import (
    RecordError,
    _canonical_ms,
    _parse_iso_ms,
    _raw,
    callback_event_id,
    format_ms,
    from_callback,
    parse_timestamp_ms,
)
from service.http.connections import BodyTimeout, GuardedAppRunner, read_body
from service.http.middleware import MIDDLEWARES
from service.kafka.producer import KeyHashPartitioner
from service.metrics import Metrics

NAMES = st.text(alphabet="ABCabc_xyz%é0", min_size=1, max_size=4)
VALUES = st.text(alphabet="ab %+é0Z:", max_size=4)


def _reference_event_id(params) -> str:
    """The canonical id as first defined: sha256 over b"callback", the sorted names with their sorted
    distinct values, each part delimited."""
    canonical = orjson.dumps(sorted((k, sorted(set(v))) for k, v in params.items()))
    h = hashlib.sha256()
    for part in (b"callback", canonical):
        h.update(part)
        h.update(b"\x00")
    return h.hexdigest()[:32]


def _reference_suffix(params) -> str:
    return "".join(name + value for name in sorted(params) for value in sorted(set(params[name])))


def _callback(extra: dict) -> dict:
    return {"RoomSid": ["RM" + "a" * 32], "StatusCallbackEvent": ["room-created"], **extra}


@hyp_settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        NAMES,
        st.one_of(
            st.lists(VALUES, min_size=1, max_size=1),  # one value: the fast path
            st.lists(VALUES, max_size=3),  # none, or repeated (identical or not)
            st.tuples(VALUES),
            st.text(alphabet="ab", min_size=1, max_size=2),  # a bare string is a sequence of one or two
        ),
        max_size=6,
    )
)
def test_a_callbacks_event_id_and_parameters_are_the_general_ones(extra):
    params = _callback(extra)
    record = from_callback(params, 1_900_000_000_000)
    assert record["event_id"] == _reference_event_id(params) == callback_event_id(params)
    assert record["params"] == _raw(params)


def test_a_repeated_identical_value_keeps_the_event_id():
    one = _callback({"A": ["1"]})
    assert from_callback(one, 0)["event_id"] == from_callback(_callback({"A": ["1", "1"]}), 0)["event_id"]
    assert from_callback(one, 0)["event_id"] != from_callback(_callback({"A": ["1", "2"]}), 0)["event_id"]


@hyp_settings(max_examples=300, deadline=None)
@given(st.dictionaries(NAMES, st.one_of(st.lists(VALUES, max_size=3), st.text(max_size=3)), max_size=6))
def test_the_signed_parameter_string_is_the_general_one(params):
    assert signature._params_suffix(params) == _reference_suffix(
        {k: [v] if isinstance(v, str) else v for k, v in params.items()}
    )


@hyp_settings(max_examples=500, deadline=None)
@given(st.integers(min_value=-62135596800000, max_value=253402300799999))
def test_canonical_timestamps_parse_to_what_fromisoformat_gives(ms):
    text = format_ms(ms)
    assert _canonical_ms(text) == _parse_iso_ms(text) == ms == parse_timestamp_ms(text)
    record = from_callback(_callback({"Timestamp": [text]}), 0)
    assert (record["occurred_at"], record["occurred_at_ms"]) == (text, ms)


@pytest.mark.parametrize(
    "text",
    [
        "2030-02-30T00:00:00.000Z",  # no such day
        "0000-01-01T00:00:00.000Z",
        "2030-03-17 17:46:40.000Z",  # not the canonical form: parsed the general way
        "2030-03-17T17:46:40.000z",
        "2030-03-17T17:46:40.1234Z",
        "２030-03-17T17:46:40.000Z",
        "2030-03-17T17:46:40.１２３Z",
        "2030-03-17T17:46+01.000Z",
        "2030-03-17T17:46:40.000+00:00",
    ],
)
def test_other_timestamps_are_parsed_or_refused_as_before(text):
    assert _canonical_ms(text) is None
    try:
        expected = _parse_iso_ms(text)
    except RecordError as exc:
        with pytest.raises(RecordError, match=str(exc).split("'")[0]):
            parse_timestamp_ms(text)
    else:
        assert parse_timestamp_ms(text) == expected
        record = from_callback(_callback({"Timestamp": [text]}), 0)
        assert record["occurred_at"] == format_ms(expected)


def test_receipt_times_are_formatted_per_millisecond():
    record = from_callback(_callback({}), 1_900_000_000_123)
    assert record["received_at"] == "2030-03-17T17:46:40.123Z" == format_ms(1_900_000_000_123)
    assert from_callback(_callback({}), 1_900_000_000_124)["received_at"] == "2030-03-17T17:46:40.124Z"


@hyp_settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.sampled_from(["%", "%3A", "%3a", "%C3%A9", "%FF", "%G1", "a", "é", "%2", "%%", "%25", "%7F", "%80"]))
)
def test_percent_decoding_is_unquote_to_bytes(parts):
    text = "".join(parts)
    try:
        expected = unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(UnicodeDecodeError):
            _unquote(text)
    else:
        assert _unquote(text) == expected


@pytest.mark.parametrize("account", ["AC" + "1" * 32, None, ""])
@pytest.mark.parametrize("room_sid", ["RM" + "2" * 32, ""])
def test_event_headers_are_the_general_ones(account, room_sid):
    record = {
        "event_id": "e" * 32,
        "type": "participant-connected",
        "account_sid": account,
        "source": "callback",
        "occurred_at": "2030-03-17T17:46:40.123Z",
        "room_sid": room_sid,
    }
    assert cloudevents.event_headers(record) == cloudevents.headers(
        record["event_id"],
        "room-event." + record["type"],
        f"/roomevents/{account or 'unknown'}/callback",
        record["occurred_at"],
        room_sid,
        cloudevents.EVENT_DATASCHEMA,
    )


@hyp_settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.lists(st.integers(0, 99), min_size=1, max_size=12, unique=True))
def test_a_keys_partition_is_the_default_partitioners(key, partitions):
    cached = KeyHashPartitioner(capacity=4)
    for _ in range(2):  # computed, then remembered
        assert cached(key, partitions, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_the_partitioner_forgets_past_its_capacity_and_leaves_keyless_records_to_chance():
    cached = KeyHashPartitioner(capacity=3)
    for n in range(10):
        assert cached(b"room-%d" % n, [0, 1, 2], [0, 1, 2]) == DefaultPartitioner()(
            b"room-%d" % n, [0, 1, 2], [0, 1, 2]
        )
        assert len(cached._hashes) <= 3
    assert {cached(None, [0, 1, 2], [1]) for _ in range(20)} == {1}


def test_counter_increment_is_labels_inc_and_removable():
    m = Metrics()
    m.callbacks.increment("room-created", "204")
    m.callbacks.labels("room-created", "204").inc()
    m.callbacks.increment("room-created", "204")
    assert m.callbacks.labels("room-created", "204")._value.get() == 3
    m.callbacks.remove("room-created", "204")
    m.callbacks.increment("room-created", "204")
    assert m.callbacks.labels("room-created", "204")._value.get() == 1
    m.callbacks.clear()
    m.callbacks.increment("room-created", "204")
    assert b'roomevents_callbacks_total{event="room-created",status="204"} 1.0' in m.render()


def test_histogram_buckets_are_prometheus_clients():
    m = Metrics()
    ours = m.publish_seconds.labels("t")
    theirs = prometheus_client.Histogram("x", "x", buckets=ours._upper_bounds[:-1], registry=None)
    for value in [0, 1e-9, 0.001, 0.0010001, 0.002, 0.25, 10, 11, -1, math.inf, math.nan, 0.5]:
        ours.observe(value)
        theirs.observe(value)
    assert [b.get() for b in ours._buckets] == [b.get() for b in theirs._buckets]
    assert math.isnan(ours._sum.get()) and math.isnan(theirs._sum.get())
    with pytest.raises(ValueError):
        m.publish_seconds.observe(1)  # a labelled parent is not observable, as before


async def test_a_body_received_whole_is_read_without_waiting():
    request = make_mocked_request("POST", "/", payload=_payload(b"a=1&b=2", eof=True), client_max_size=100)
    with mock.patch("asyncio.wait_for", side_effect=AssertionError("no timer for a body received whole")):
        assert await read_body(request, 0.01) == b"a=1&b=2"


async def test_a_body_received_whole_over_the_size_limit_is_413():
    request = make_mocked_request("POST", "/", payload=_payload(b"x" * 11, eof=True), client_max_size=10)
    with pytest.raises(web.HTTPRequestEntityTooLarge):
        await read_body(request, 1)


async def test_a_body_still_arriving_is_read_within_the_timeout():
    payload = _payload(b"a=1", eof=False)
    request = make_mocked_request("POST", "/", payload=payload, client_max_size=100)
    with pytest.raises(BodyTimeout):
        await read_body(request, 0.05)
    payload = _payload(b"a=1", eof=False)
    request = make_mocked_request("POST", "/", payload=payload, client_max_size=100)
    asyncio.get_running_loop().call_later(0.01, lambda: (payload.feed_data(b"&b=2"), payload.feed_eof()))
    assert await read_body(request, 5) == b"a=1&b=2"


def _payload(data: bytes, eof: bool):
    from aiohttp.streams import StreamReader

    protocol = mock.Mock(_reading_paused=False)
    reader = StreamReader(protocol, 2**16, loop=asyncio.get_running_loop())
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def test_the_served_app_runs_one_middleware_layer_and_request_app_still_works():
    seen = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.app)
        return web.Response(status=204)

    app = web.Application(middlewares=MIDDLEWARES)
    from service.http.keys import METRICS, SERVER_LOAD, SETTINGS, ServerLoad
    from service.settings import Settings

    app[SETTINGS] = Settings()
    app[METRICS] = Metrics()
    app[SERVER_LOAD] = ServerLoad()
    app.router.add_get("/x", handler)
    from service.http.connections import ConnectionGuard

    runner = GuardedAppRunner(app, ConnectionGuard(10, 5, app[METRICS]), access_log=None)
    await runner.setup()
    try:
        assert [m for m, _ in app._middlewares_handlers] == list(MIDDLEWARES)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 204")
        writer.close()
        assert seen == [app]
    finally:
        await runner.cleanup()


def test_format_ms_still_matches_strftime_at_the_edges():
    for ms in (-62135596800000, 0, 253402300799999):
        dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
        assert format_ms(ms).endswith(f"{ms % 1000:03d}Z")
        assert format_ms(ms)[4:19] == dt.strftime("-%m-%dT%H:%M:%S")


async def test_a_publish_names_the_partition_the_producer_would_pick():
    from service.kafka.producer import Publisher
    from service.settings import Settings

    publisher = Publisher(Settings(), Metrics())
    cluster = publisher.producer.client.cluster
    with mock.patch.object(cluster, "partitions_for_topic", return_value={0, 1, 2, 5}):
        for n in range(50):
            key = b"room-%d" % n
            assert publisher._partition_of("t", key) == DefaultPartitioner()(key, [0, 1, 2, 5], [0, 1, 2, 5])
        assert publisher._partition_of("t", None) is None  # no key: the producer picks at random
    with mock.patch.object(cluster, "partitions_for_topic", return_value=None):
        assert publisher._partition_of("t", b"room") is None  # not known yet: the producer waits for it

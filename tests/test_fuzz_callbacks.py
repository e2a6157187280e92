"""Hypothesis fuzzing of the status-callback path (issue 16): the parsers, the record building and the
signature checks, mostly at the pure level (service/callbacks/parse.py, service/events/record.py,
service/callbacks/signature.py), and a smaller number of examples through HTTP.

The properties: whatever arrives (arbitrary bytes, repeated keys, huge values, any content type and
method), the answer is a documented status and never an exception; a request answered 4xx produces
no record; a record that is produced encodes, validates against the published schema and has a
partition key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
from collections import Counter
from urllib.parse import quote, urlencode

import orjson
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from service.callbacks import signature
from service.callbacks.parse import ALLOWED_METHODS, CallbackParseError, parse_callback, require
from service.events import record as records
from tests.helpers import AUTH_TOKEN, event_schema_validator, read_topic
from tests.test_callbacks_http import ingress_only

MAX_BODY = 64 * 1024
MAX_PARAMS = 100
PARSE_STATUSES = {400, 405, 413, 415}
HTTP_STATUSES = {202, 204, 400, 403, 405, 408, 413, 415, 503}
CONTENT_TYPES = [
    None,
    "",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "application/x-www-form-urlencoded; charset=latin-1",
    'APPLICATION/X-WWW-FORM-URLENCODED;CHARSET="UTF8"',
    "application/json",
    "application/json; charset=utf-16",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
]
NAMES = [
    "RoomSid",
    "StatusCallbackEvent",
    "RoomName",
    "Timestamp",
    "SequenceNumber",
    "RoomDuration",
    "ParticipantSid",
    "ParticipantDuration",
    "TrackSid",
    "RecordingSid",
    "Duration",
    "Size",
    "OffsetFromTwilioVideoEpoch",
    "AccountSid",
    "bodySHA256",
]
NUMBERS = st.one_of(
    st.integers().map(str),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e999", "-1e400", "nan", "inf", "9" * 5000, "0x10", "1_000", " 7 ", "", "+5", "1.5e3"]),
)
DATES = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59-23:59",
            "2030-01-02T03:04:05.678Z",
            "2030-13-01",
            "",
            "Z",
            "2030-01-02T03:04:05.678z",
        ]
    ),
    st.text(max_size=40),
)
VALUES = st.one_of(st.text(max_size=50), NUMBERS, DATES, st.text(min_size=1000, max_size=20_000).filter(bool))


def param_pairs(max_size: int = 30):
    """(name, value) pairs with repeats: the callback's names, arbitrary ones, the usual values."""
    name = st.one_of(st.sampled_from(NAMES), st.text(max_size=20))
    return st.lists(st.tuples(name, VALUES), max_size=max_size).flatmap(
        lambda pairs: st.just(pairs) if not pairs else st.sampled_from([pairs, pairs + pairs[:3]])
    )


def check_record(params) -> dict | None:
    """What the handler does after the signature: a record, or None when it answers 400."""
    try:
        require(params, ("RoomSid", "StatusCallbackEvent"))
        event = records.from_callback(params, 1_900_000_000_000)
    except (CallbackParseError, records.RecordError):
        return None
    raw = records.encode(event)  # must not raise (orjson: 64-bit integers, valid UTF-8)
    records.partition_key(event)
    assert records.decode(raw)["event_id"] == event["event_id"]
    return event


VALIDATOR = event_schema_validator()
FUZZ = hypothesis_settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
COUNTS = {"pure_examples": 0, "http_requests": 0}


# ---------------------------------------------------------------- pure: parse_callback


@FUZZ
@given(
    method=st.one_of(
        st.sampled_from(sorted(ALLOWED_METHODS)), st.sampled_from(["get", "OPTIONS", "TRACE", ""]), st.text(max_size=8)
    ),
    raw_query=st.one_of(
        st.text(max_size=300), param_pairs().map(urlencode), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
    ),
    content_type=st.one_of(st.sampled_from(CONTENT_TYPES), st.text(max_size=60)),
    body=st.one_of(
        st.binary(max_size=2000),
        param_pairs().map(lambda p: urlencode(p).encode()),
        st.dictionaries(
            st.text(max_size=20),
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(),
                st.floats(),
                st.text(max_size=50),
                st.lists(st.integers(), max_size=3),
            ),
            max_size=20,
        ).map(lambda d: json.dumps(d).encode()),
        st.sampled_from(
            [
                b"[]",
                b"null",
                b'"x"',
                b"{",
                b"\xff\xfe",
                b"a=%FF",
                b"&" * 500,
                b"=" * 50,
                b'{"a":1e999}',
                b'{"\\ud800":1}',
            ]
        ),
    ),
)
def test_parse_answers_a_documented_status_or_parameters(method, raw_query, content_type, body):
    COUNTS["pure_examples"] += 1
    try:
        parsed = parse_callback(method, raw_query, content_type, body, MAX_BODY, MAX_PARAMS)
    except CallbackParseError as exc:
        assert exc.status in PARSE_STATUSES
        return
    count = sum(len(v) for v in parsed.params.values())
    assert count <= MAX_PARAMS
    for name, values in parsed.params.items():
        assert isinstance(name, str) and all(isinstance(v, str) for v in values)
        (name + "".join(values)).encode("utf-8")  # text a record can carry
    event = check_record(parsed.params)
    if event is not None:
        errors = list(VALIDATOR.iter_errors(orjson.loads(records.encode(event))))
        assert not errors, errors[0].message


# ---------------------------------------------------------------- pure: record building from signed parameters


@FUZZ
@given(pairs=param_pairs(60), sid=st.text(min_size=1, max_size=40), event=st.text(min_size=1, max_size=40))
def test_any_parameters_make_a_valid_record_or_a_400(pairs, sid, event):
    COUNTS["pure_examples"] += 1
    params: dict[str, list[str]] = {"RoomSid": [sid], "StatusCallbackEvent": [event]}
    for k, v in pairs:
        params.setdefault(k, []).append(v)
    event_record = check_record(params)
    if event_record is None:
        return
    errors = list(VALIDATOR.iter_errors(orjson.loads(records.encode(event_record))))
    assert not errors, errors[0].message
    # Repeating an identical value changes neither the signature nor the event id.
    doubled = {k: v + v[:1] for k, v in params.items()}
    url = "https://rooms.example.com/v1/Callbacks/Rooms"
    assert signature.compute_signature(url, params, AUTH_TOKEN) == signature.compute_signature(url, doubled, AUTH_TOKEN)
    assert records.callback_event_id(doubled) == event_record["event_id"]


# ---------------------------------------------------------------- pure: signatures


@FUZZ
@given(
    url=st.one_of(
        st.text(max_size=200),
        st.from_regex(r"https?://[a-z.]{1,20}(:[0-9]{0,6})?/[^#\s]{0,50}(\?[^#]{0,80})?", fullmatch=True),
    ),
    pairs=param_pairs(),
    header=st.one_of(st.none(), st.text(max_size=60), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))),
    settings_header=st.one_of(
        st.none(),
        st.sampled_from(["algorithm=HMAC_SHA256", "algorithm=hmac_sha1", "algorithm=MD5", "key=x,algorithm="]),
        st.text(max_size=40),
    ),
    body=st.one_of(st.none(), st.binary(max_size=300)),
)
def test_signature_checks_never_raise_and_accept_only_the_right_signature(url, pairs, header, settings_header, body):
    COUNTS["pure_examples"] += 1
    verifier = signature.SignatureVerifier((AUTH_TOKEN, "second-token"))
    params: dict[str, list[str]] = {}
    for k, v in pairs:
        params.setdefault(k, []).append(v)
    algorithm = signature.signature_algorithm(settings_header)
    assert isinstance(verifier.verify(url, params, header, algorithm, body), bool)
    if algorithm in signature.SUPPORTED_ALGORITHMS and body is None and signature.BODY_HASH_PARAM not in url:
        try:
            right = signature.compute_signature(url, params, AUTH_TOKEN, algorithm)
        except UnicodeEncodeError:
            return
        assert verifier.verify(url, params, right, algorithm, None)
        assert not verifier.verify(
            url, params, right[:-2] + ("A" if right[-2] != "A" else "B") + right[-1], algorithm, None
        )


# ---------------------------------------------------------------- through HTTP


def _exchange(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def _http_request(port: int, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    )
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("utf-8", "surrogateescape") + b"\r\n" + body


@pytest.mark.allow_invalid_events  # checked below, record by record
async def test_http_callbacks_answer_documented_statuses_and_publish_only_2xx(settings):
    """Through HTTP: signed and unsigned, every method and content type, bodies of any bytes; each
    answer is documented; the events topic holds exactly one record per 204."""
    async with ingress_only(settings) as (server, _):
        port, path = server.port, settings.callback_path
        statuses: list[int] = []
        lock = threading.Lock()

        @hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(
            method=st.sampled_from(sorted(ALLOWED_METHODS) + ["OPTIONS"]),
            pairs=param_pairs(20),
            signed=st.booleans(),
            shape=st.sampled_from(["query", "form", "json", "bytes"]),
            content_type=st.sampled_from([c for c in CONTENT_TYPES if c]),
            raw=st.binary(max_size=500),
            required=st.booleans(),
        )
        def exchange(method, pairs, signed, shape, content_type, raw, required):
            if required:
                pairs = [("RoomSid", "RM" + "ab" * 16), ("StatusCallbackEvent", "room-created"), *pairs]
            headers: dict[str, str] = {}
            body, target, form = b"", path, {}
            if shape == "query" or method in ("GET", "HEAD"):
                query = urlencode(pairs, quote_via=quote)
                target = f"{path}?{query}" if query else path
            elif shape == "form":
                body = urlencode(pairs).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                for k, v in pairs:
                    form.setdefault(k, []).append(v)
            elif shape == "json":
                body = json.dumps(dict(pairs)).encode()
                target = f"{path}?bodySHA256={hashlib.sha256(body).hexdigest()}"
                headers["Content-Type"] = "application/json"
            else:
                body = raw
                headers["Content-Type"] = content_type
            if signed:
                try:
                    headers["X-Twilio-Signature"] = signature.compute_signature(
                        f"http://127.0.0.1:{port}{target}", form, AUTH_TOKEN
                    )
                except UnicodeEncodeError:
                    pass
            status = _exchange(port, _http_request(port, method, target, headers, body))
            with lock:
                statuses.append(status)
                COUNTS["http_requests"] += 1
            assert status in HTTP_STATUSES, (status, method, shape)

        await asyncio.to_thread(exchange)
    published = await read_topic(settings.kafka_bootstrap_servers, settings.events_topic)
    print(f"callback HTTP fuzz: {len(statuses)} requests, statuses {sorted(Counter(statuses).items())}")
    assert len(published) == statuses.count(204), (len(published), statuses.count(204))
    for message in published:
        record = records.decode(message.value)
        assert not list(VALIDATOR.iter_errors(orjson.loads(message.value))), record["event_id"]
    assert statuses.count(204) > 0 and any(s >= 400 for s in statuses)

"""Callback request parsing: methods x query/form/JSON, multi-values, limits, bad input,
required parameters."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlencode

import pytest

from service.callbacks.parse import (
    ALLOWED_METHODS,
    CallbackParseError,
    ParsedCallback,
    parse_callback,
    require,
)

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
LIMIT = 64 * 1024
METHODS = ["HEAD", "GET", "POST", "PATCH", "PUT", "DELETE"]

# A real-shaped participant-connected body (docs/twilio-video.md §1.3)
PARTICIPANT_CONNECTED = (
    b"RoomStatus=in-progress&RoomType=group&RoomSid=RM0123456789abcdef0123456789abcdef"
    b"&RoomName=kok&ParticipantStatus=connected&ParticipantIdentity=alice+smith"
    b"&SequenceNumber=1&StatusCallbackEvent=participant-connected"
    b"&Timestamp=2025-10-27T18%3A16%3A01.876Z&ParticipantSid=PA0123456789abcdef0123456789abcdef"
    b"&AccountSid=AC0123456789abcdef0123456789abcdef"
)


def parse(method="POST", query="", ctype=FORM, body=b"", max_body=LIMIT, max_params=100):
    return parse_callback(method, query, ctype, body, max_body, max_params)


def err(status, **kw) -> CallbackParseError:
    with pytest.raises(CallbackParseError) as info:
        parse(**kw)
    assert info.value.status == status
    assert str(info.value) == info.value.message
    return info.value


# ----------------------------------------------------------------- methods x sources


def test_allowed_methods():
    assert ALLOWED_METHODS == set(METHODS)


@pytest.mark.parametrize("method", METHODS)
def test_query_only(method):
    p = parse(method, "RoomSid=RM1&StatusCallbackEvent=room-created", ctype=None)
    assert p.params == {"RoomSid": ["RM1"], "StatusCallbackEvent": ["room-created"]}
    assert p.body_params == {}
    assert p.json_body is False


@pytest.mark.parametrize("method", METHODS)
def test_form_body_only(method):
    p = parse(method, body=b"RoomSid=RM1&StatusCallbackEvent=room-ended&RoomDuration=42")
    expected = {"RoomSid": ["RM1"], "StatusCallbackEvent": ["room-ended"], "RoomDuration": ["42"]}
    assert p.params == expected
    assert p.body_params == expected
    assert p.json_body is False


@pytest.mark.parametrize("method", METHODS)
def test_query_and_form_body_merged_query_first(method):
    p = parse(method, "tenant=acme&RoomSid=RM-from-query", body=b"RoomSid=RM-from-body&X=1")
    assert p.params == {
        "tenant": ["acme"],
        "RoomSid": ["RM-from-query", "RM-from-body"],
        "X": ["1"],
    }
    assert list(p.params) == ["tenant", "RoomSid", "X"]
    assert p.body_params == {"RoomSid": ["RM-from-body"], "X": ["1"]}


@pytest.mark.parametrize("method", METHODS)
def test_json_body(method):
    body = b'{"RoomSid": "RM1", "StatusCallbackEvent": "room-created"}'
    p = parse(method, "bodySHA256=abc", ctype=JSON, body=body)
    assert p.json_body is True
    assert p.body_params == {}
    assert p.params == {
        "bodySHA256": ["abc"],
        "RoomSid": ["RM1"],
        "StatusCallbackEvent": ["room-created"],
    }


@pytest.mark.parametrize("method", ["get", "Post", "delete"])
def test_method_case_insensitive(method):
    assert parse(method, "a=1", body=b"b=2").params == {"a": ["1"], "b": ["2"]}


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "CONNECT", "PROPFIND", ""])
def test_other_methods_rejected_405(method):
    e = err(405, method=method, body=b"a=1")
    assert "not allowed" in e.message


def test_real_participant_connected_body():
    p = parse(body=PARTICIPANT_CONNECTED)
    assert p.first("StatusCallbackEvent") == "participant-connected"
    assert p.first("Timestamp") == "2025-10-27T18:16:01.876Z"
    assert p.first("ParticipantIdentity") == "alice smith"  # '+' is a space
    assert p.first("SequenceNumber") == "1"
    assert len(p.params) == 11
    assert p.body_params == p.params
    # never the same list objects
    assert all(p.params[k] is not p.body_params[k] for k in p.params)


def test_get_callback_from_twilio_shape():
    query = urlencode(
        {
            "AccountSid": "AC1",
            "RoomSid": "RM1",
            "RoomName": "daily stand-up",
            "StatusCallbackEvent": "room-created",
            "Timestamp": "2025-01-01T00:00:00.000Z",
        }
    )
    p = parse("GET", "tenant=acme&" + query, ctype=FORM, body=b"")
    assert p.first("RoomName") == "daily stand-up"
    assert p.first("tenant") == "acme"
    assert p.body_params == {}


# ----------------------------------------------------------------- content types


@pytest.mark.parametrize(
    "ctype",
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "application/x-www-form-urlencoded;charset=utf-8",
        'application/x-www-form-urlencoded; charset="utf-8"',
        "Application/X-WWW-Form-Urlencoded; Charset=UTF8",
        "application/x-www-form-urlencoded; charset=us-ascii",
        "application/x-www-form-urlencoded; boundary=ignored",
    ],
)
def test_form_content_type_variants(ctype):
    assert parse(ctype=ctype, body=b"a=1").body_params == {"a": ["1"]}


@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON"])
def test_json_content_type_variants(ctype):
    p = parse(ctype=ctype, body=b'{"a": "1"}')
    assert p.json_body and p.params == {"a": ["1"]}


@pytest.mark.parametrize(
    "ctype", ["text/plain", "multipart/form-data; boundary=x", "application/xml", "application/octet-stream", None, ""]
)
def test_unknown_content_type_with_body_415(ctype):
    e = err(415, ctype=ctype, body=b"a=1")
    assert "unsupported content type" in e.message


@pytest.mark.parametrize(
    "ctype", ["text/plain", None, "", FORM, JSON, "application/x-www-form-urlencoded; charset=latin-1"]
)
@pytest.mark.parametrize("method", METHODS)
def test_empty_body_is_fine_with_any_content_type(method, ctype):
    p = parse(method, "a=1", ctype=ctype, body=b"")
    assert p.params == {"a": ["1"]}
    assert p.body_params == {}
    assert p.json_body is (ctype == JSON)


def test_non_utf8_charset_415():
    e = err(415, ctype="application/x-www-form-urlencoded; charset=ISO-8859-1", body=b"a=1")
    assert "iso-8859-1" in e.message
    err(415, ctype="application/json; charset=utf-16", body=b'{"a": 1}')


# ----------------------------------------------------------------- form details


def test_multi_values_kept_in_order():
    p = parse(body=b"Codec=VP8&Codec=H264&Codec=VP8&Other=x")
    assert p.params["Codec"] == ["VP8", "H264", "VP8"]
    assert p.body_params["Codec"] == ["VP8", "H264", "VP8"]


def test_query_multi_values_kept_in_order():
    p = parse("GET", "a=3&a=1&a=2&a=", ctype=None)
    assert p.params == {"a": ["3", "1", "2", ""]}


def test_blank_values_kept():
    p = parse("POST", "q=", body=b"RoomName=&Flag")
    assert p.params == {"q": [""], "RoomName": [""], "Flag": [""]}


def test_plus_and_percent_decoding():
    p = parse(body=b"Name=a+b%2Bc%20d&Emoji=%E2%98%95&Path=%2Fx%2Fy&Amp=%26%3D")
    assert p.params == {"Name": ["a b+c d"], "Emoji": ["\u2615"], "Path": ["/x/y"], "Amp": ["&="]}


def test_raw_utf8_in_form_body_accepted():
    p = parse(body="RoomName=café".encode())
    assert p.params == {"RoomName": ["café"]}


def test_empty_segments_and_trailing_ampersand_tolerated():
    p = parse("POST", "&a=1&&", body=b"b=2&&c=3&")
    assert p.params == {"a": ["1"], "b": ["2"], "c": ["3"]}


def test_semicolon_is_not_a_separator():
    p = parse(body=b"a=1;b=2")
    assert p.params == {"a": ["1;b=2"]}


def test_invalid_percent_escape_kept_literally():
    assert parse(body=b"a=%zz&b=100%").params == {"a": ["%zz"], "b": ["100%"]}


def test_form_body_not_utf8_400():
    e = err(400, body=b"RoomName=caf\xe9")
    assert "UTF-8" in e.message and "form body" in e.message


def test_form_body_percent_encoded_not_utf8_400():
    e = err(400, body=b"RoomName=caf%E9")
    assert "UTF-8" in e.message and "form body" in e.message


def test_query_percent_encoded_not_utf8_400():
    e = err(400, method="GET", query="RoomName=caf%E9", ctype=None)
    assert "query string" in e.message


# ----------------------------------------------------------------- JSON details


def test_json_value_conversion():
    body = (
        b'{"s": "x", "i": 3, "neg": -7, "f": 1.5, "e": 1e3, "t": true, "fa": false,'
        b' "n": null, "o": {"b": 1, "a": [1, "x"]}, "arr": ["VP8", "H264"], "empty": ""}'
    )
    p = parse(ctype=JSON, body=body)
    assert p.params == {
        "s": ["x"],
        "i": ["3"],
        "neg": ["-7"],
        "f": ["1.5"],
        "e": ["1000.0"],
        "t": ["true"],
        "fa": ["false"],
        "n": [""],
        "o": ['{"b":1,"a":[1,"x"]}'],
        "arr": ['["VP8","H264"]'],
        "empty": [""],
    }


def test_json_unicode():
    p = parse(ctype=JSON, body='{"RoomName": "café ☕"}'.encode())
    assert p.params == {"RoomName": ["café ☕"]}


def test_json_merged_after_query():
    p = parse("POST", "RoomSid=q", ctype=JSON, body=b'{"RoomSid": "j"}')
    assert p.params == {"RoomSid": ["q", "j"]}


@pytest.mark.parametrize("body", [b"{", b"{'a': 1}", b'{"a": 1,}', b"nope", b'{"a": NaN}', b"\xff\xfe{}"])
def test_invalid_json_400(body):
    e = err(400, ctype=JSON, body=body)
    assert "invalid JSON" in e.message


def test_json_invalid_utf8_400():
    err(400, ctype=JSON, body=b'{"a": "caf\xe9"}')


@pytest.mark.parametrize("body", [b"[]", b'[{"a": 1}]', b'"str"', b"1", b"null", b"true"])
def test_json_not_object_400(body):
    e = err(400, ctype=JSON, body=body)
    assert "must be an object" in e.message


def test_empty_json_object():
    p = parse(ctype=JSON, body=b"{}")
    assert p.params == {} and p.json_body


# ----------------------------------------------------------------- limits


def test_body_at_limit_ok():
    body = b"a=" + b"x" * 98
    assert len(body) == 100
    assert parse(body=body, max_body=100).params == {"a": ["x" * 98]}


def test_body_over_limit_413():
    e = err(413, body=b"a=" + b"x" * 99, max_body=100)
    assert "101" in e.message and "100" in e.message


def test_limit_checked_before_anything_else():
    # too large wins over bad method, bad content type and bad encoding
    err(413, method="TRACE", ctype="text/plain", body=b"\xff" * 11, max_body=10)


def test_zero_limit_allows_empty_body():
    assert parse("GET", "a=1", ctype=None, body=b"", max_body=0).params == {"a": ["1"]}
    err(413, body=b"a", max_body=0)


def test_many_fields():
    body = "&".join(f"k{i}=v{i}" for i in range(2000)).encode()
    p = parse(body=body, max_body=len(body), max_params=2000)
    assert len(p.params) == 2000 and p.params["k1999"] == ["v1999"]
    # The default cap (ROOMEVENTS_MAX_CALLBACK_PARAMS) refuses them before parsing; empty fields do not count.
    err(413, body=body, max_body=len(body))
    err(413, query="a=1&" * 60, body=b"b=2&" * 41)
    assert len(parse(body=b"a=1" + b"&" * 500 + b"b=2").params) == 2


# ----------------------------------------------------------------- result type


def test_parsed_callback_is_frozen_and_slotted():
    p = parse(body=b"a=1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.json_body = True  # type: ignore[misc]
    assert not hasattr(p, "__dict__")
    assert isinstance(p, ParsedCallback)


def test_first():
    p = parse("GET", "a=1&a=2&b=", ctype=None)
    assert p.first("a") == "1"
    assert p.first("b") == ""
    assert p.first("zz") is None
    assert p.first("zz", "d") == "d"


def test_error_repr_and_attrs():
    e = CallbackParseError(413, "too big")
    assert (e.status, e.message, str(e)) == (413, "too big", "too big")
    assert repr(e) == "CallbackParseError(413, 'too big')"


# ----------------------------------------------------------------- require


def test_require_ok():
    require({"RoomSid": ["RM1"], "StatusCallbackEvent": ["room-created"]}, ["RoomSid", "StatusCallbackEvent"])
    require({}, [])


def test_require_missing_lists_all_in_given_order():
    with pytest.raises(CallbackParseError) as info:
        require({"AccountSid": ["AC1"]}, ["RoomSid", "AccountSid", "StatusCallbackEvent"])
    assert info.value.status == 400
    assert info.value.message == "missing required parameter(s): RoomSid, StatusCallbackEvent"


@pytest.mark.parametrize("values", [[], [""], ["", ""]])
def test_require_empty_counts_as_missing(values):
    with pytest.raises(CallbackParseError) as info:
        require({"RoomSid": values}, ["RoomSid"])
    assert info.value.message == "missing required parameter(s): RoomSid"


def test_require_any_non_empty_value_is_enough():
    require({"RoomSid": ["", "RM1"]}, ["RoomSid"])


def test_require_on_parsed_json_null():
    p = parse(ctype=JSON, body=b'{"RoomSid": null, "StatusCallbackEvent": "room-created"}')
    with pytest.raises(CallbackParseError) as info:
        require(p.params, ("RoomSid", "StatusCallbackEvent"))
    assert info.value.message == "missing required parameter(s): RoomSid"


def test_require_on_parsed_form():
    p = parse(body=PARTICIPANT_CONNECTED)
    require(p.params, ["AccountSid", "RoomSid", "StatusCallbackEvent", "Timestamp", "ParticipantSid"])
    with pytest.raises(CallbackParseError):
        require(p.params, ["TrackSid"])

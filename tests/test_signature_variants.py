"""X-Twilio-Signature, continued: the HMAC_SHA256 algorithm, URL variants (ports, credentials, unicode),
property checks and the module's exports. Vectors, negatives and rotation: test_signature.py."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings, strategies as st

from service.callbacks import signature as sig
from service.callbacks.signature import (
    HMAC_SHA1,
    HMAC_SHA256,
    SignatureVerifier,
    body_sha256,
    compute_signature,
    signature_algorithm,
    url_variants,
    verify,
)
from tests.signature_vectors import (
    DOCS_PARAMS,
    DOCS_SIG,
    DOCS_URL,
    JSON_BODY,
    JSON_HASH,
    TOKEN,
    TP_PARAMS,
    TP_SIG,
    TP_URL,
)

# ----------------------------------------------------------------- algorithms


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, HMAC_SHA1),
        ("", HMAC_SHA1),
        ("key=webhooks_sharedkey_abc", HMAC_SHA1),
        ("key=webhooks_sharedkey_abc,algorithm=HMAC_SHA256", HMAC_SHA256),
        ("algorithm=HMAC_SHA256,key=k", HMAC_SHA256),
        ("key=k, algorithm = hmac_sha256 ", HMAC_SHA256),
        ("key=k,algorithm=HMAC_SHA1", HMAC_SHA1),
        ("key=k,algorithm=", HMAC_SHA1),
        ("key=k,algorithm=HMAC_SHA512", "HMAC_SHA512"),
        ("garbage", HMAC_SHA1),
    ],
)
def test_signature_algorithm_header(header, expected):
    assert signature_algorithm(header) == expected


def test_hmac_sha256_compute_and_verify():
    s = DOCS_URL + "CallSidCA1234567890ABCDECaller+14158675310Digits1234From+14158675310To+18005551212"
    expected = base64.b64encode(hmac.new(b"shared-secret", s.encode(), hashlib.sha256).digest()).decode()
    assert compute_signature(DOCS_URL, DOCS_PARAMS, "shared-secret", HMAC_SHA256) == expected
    alg = signature_algorithm("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256")
    assert verify(DOCS_URL, DOCS_PARAMS, expected, ["shared-secret"], alg)
    # algorithm is part of the check: SHA-256 signature does not verify as SHA-1 and vice versa
    assert not verify(DOCS_URL, DOCS_PARAMS, expected, ["shared-secret"], HMAC_SHA1)
    assert not verify(DOCS_URL, DOCS_PARAMS, DOCS_SIG, [TOKEN], HMAC_SHA256)


def test_hmac_sha256_json_body_and_ports():
    url = TP_URL + "&bodySHA256=" + JSON_HASH
    s256 = compute_signature(url.replace(".com", ".com:443"), None, TOKEN, HMAC_SHA256)
    assert verify(url, None, s256, [TOKEN], HMAC_SHA256, body=JSON_BODY)


def test_lowercase_algorithm_accepted():
    s256 = compute_signature(DOCS_URL, DOCS_PARAMS, TOKEN, HMAC_SHA256)
    assert verify(DOCS_URL, DOCS_PARAMS, s256, [TOKEN], "hmac_sha256")


def test_unknown_algorithm_fails_closed():
    assert not verify(DOCS_URL, DOCS_PARAMS, DOCS_SIG, [TOKEN], "HMAC_SHA512")
    with pytest.raises(ValueError):
        compute_signature(DOCS_URL, DOCS_PARAMS, TOKEN, "HMAC_MD5")


# ----------------------------------------------------------------- url variants


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://h.example/cb?x=1",
            ("https://h.example/cb?x=1", "https://h.example:443/cb?x=1"),
        ),
        (
            "http://h.example/cb",
            ("http://h.example/cb", "http://h.example:80/cb"),
        ),
        (
            "https://h.example:443/cb",
            ("https://h.example:443/cb", "https://h.example/cb"),
        ),
        (
            "https://h.example:8443/cb",
            ("https://h.example:8443/cb", "https://h.example/cb"),
        ),
        (
            "https://user:pw@h.example:8443/cb?a=b",
            ("https://h.example:8443/cb?a=b", "https://h.example/cb?a=b"),
        ),
        (
            "https://user:pw@h.example/cb",
            ("https://h.example/cb", "https://h.example:443/cb"),
        ),
        (
            "https://h.example?x=1",
            ("https://h.example?x=1", "https://h.example:443?x=1"),
        ),
        (
            "http://[::1]:8080/cb",
            ("http://[::1]:8080/cb", "http://[::1]/cb"),
        ),
        (
            "http://[::1]/cb",
            ("http://[::1]/cb", "http://[::1]:80/cb"),
        ),
        (
            "https://h.example/cb#rc=2&rp=all",
            ("https://h.example/cb", "https://h.example:443/cb"),
        ),
        ("/relative/path?x=1", ("/relative/path?x=1",)),
        ("https://h.example:bad/cb", ("https://h.example:bad/cb",)),
    ],
)
def test_url_variants(url, expected):
    assert url_variants(url) == expected


def test_url_variants_keep_query_verbatim():
    url = "https://H.Example/cb/?b=2&a=1&sp=a+b&enc=%2F&empty="
    assert url_variants(url)[0] == url


def test_credentials_dropped_before_signing():
    signed = compute_signature("https://mycompany.com/myapp.php?foo=1&bar=2", TP_PARAMS, TOKEN)
    assert signed == TP_SIG
    assert verify("https://user:secret@mycompany.com/myapp.php?foo=1&bar=2", TP_PARAMS, TP_SIG, [TOKEN])


def test_unicode_url_and_params():
    url = "https://h.example/cb?room=caf%C3%A9"
    params = {"RoomName": ["café ☕"], "ParticipantIdentity": ["zoë"]}
    s = url + "ParticipantIdentityzoëRoomNamecafé ☕"
    expected = base64.b64encode(hmac.new(TOKEN.encode(), s.encode(), hashlib.sha1).digest()).decode()
    assert compute_signature(url, params, TOKEN) == expected
    assert verify(url, params, expected, [TOKEN])


def test_sort_is_case_sensitive_byte_order():
    params = {"b": ["1"], "B": ["2"], "a": ["3"], "A": ["4"]}
    s = "https://h.example/A4B2a3b1"
    expected = base64.b64encode(hmac.new(TOKEN.encode(), s.encode(), hashlib.sha1).digest()).decode()
    assert compute_signature("https://h.example/", params, TOKEN) == expected


def test_module_exports():
    assert sig.SIGNATURE_HEADER == "X-Twilio-Signature"
    assert sig.SIGNATURE_SETTINGS_HEADER == "X-Twilio-Webhooks-Signature-Settings"
    assert sig.SUPPORTED_ALGORITHMS == {HMAC_SHA1, HMAC_SHA256}


# ----------------------------------------------------------------- twilio-python cross-check

twilio_rv = pytest.importorskip("twilio.request_validator", reason="twilio package not installed")
RequestValidator = twilio_rv.RequestValidator

_name = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
_value = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
_params = st.dictionaries(_name, st.lists(_value, min_size=1, max_size=3), max_size=8)
_token = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
# (no IPv6 literal: twilio-python's remove_port splits the netloc on the first ":")
_host = st.sampled_from(["example.com", "Example.COM", "a.b.example.net", "127.0.0.1"])
_port = st.sampled_from(["", ":443", ":80", ":8080", ":1234"])
_path = st.sampled_from(["", "/", "/twilio/video/callbacks", "/cb/rooms/", "/x%20y"])
_query = st.sampled_from(["", "?", "?tenant=acme", "?a=1&b=2&a=3", "?sp=a+b&e=%2F&blank="])


def _to_multidict(params):
    from multidict import MultiDict

    return MultiDict([(k, v) for k, vals in params.items() for v in vals])


@settings(max_examples=300, deadline=None, database=None)
@given(params=_params, token=_token, algorithm=st.sampled_from([HMAC_SHA1, HMAC_SHA256]))
def test_cross_check_compute_matches_twilio(params, token, algorithm):
    url = "https://example.com/twilio/video?tenant=acme"
    theirs = RequestValidator(token).compute_signature(url, _to_multidict(params), algorithm)
    assert compute_signature(url, params, token, algorithm) == theirs
    assert verify(url, params, theirs, [token], algorithm)


@settings(max_examples=300, deadline=None, database=None)
@given(
    params=_params,
    token=_token,
    scheme=st.sampled_from(["http", "https"]),
    host=_host,
    port=_port,
    path=_path,
    query=_query,
    use_variant=st.integers(min_value=0, max_value=2),
)
def test_cross_check_verify_against_twilio(params, token, scheme, host, port, path, query, use_variant):
    url = f"{scheme}://{host}{port}{path}{query}"
    validator = RequestValidator(token)
    md = _to_multidict(params)
    # Twilio may have signed any of the forms twilio-python accepts.
    from urllib.parse import urlparse

    parsed = urlparse(url)
    signed_url = [url, twilio_rv.add_port(parsed), twilio_rv.remove_port(parsed)][use_variant]
    theirs = validator.compute_signature(signed_url, md)
    # Whatever twilio-python accepts we accept; we additionally accept the URL exactly as
    # received (twilio-python's geturl() drops an empty "?", so it misses "https://h/cb?").
    assert validator.validate(url, md, theirs) or query == "?"
    assert verify(url, params, theirs, [token])
    # a different token never verifies
    assert not verify(url, params, theirs, [token + "x"])
    # and the other direction: what we compute, twilio-python accepts
    ours = compute_signature(url, params, token)
    assert validator.validate(url, md, ours) or query == "?"


@settings(max_examples=100, deadline=None, database=None)
@given(
    body=st.binary(max_size=200),
    token=_token,
    port=st.sampled_from(["", ":443"]),
    algorithm=st.sampled_from([HMAC_SHA1, HMAC_SHA256]),
)
def test_cross_check_json_body(body, token, port, algorithm):
    text = body.decode("latin-1")  # twilio-python hashes str.encode("utf-8")
    raw = text.encode("utf-8")
    url = f"https://example.com{port}/cb?bodySHA256={body_sha256(raw)}"
    validator = RequestValidator(token)
    theirs = validator.compute_signature(url, {}, algorithm)
    assert validator.validate(url, text, theirs, algorithm)
    assert verify(url, None, theirs, [token], algorithm, body=raw)
    assert not verify(url, None, theirs, [token], algorithm, body=raw + b"x")


def test_url_variants_empty_query_marker():
    assert url_variants("https://h.example/cb?") == (
        "https://h.example/cb?",
        "https://h.example:443/cb?",
        "https://h.example/cb",
        "https://h.example:443/cb",
    )


# ----------------------------------------------------------------- with parse.py (the HTTP shell's contract)


def _shell_verify(verifier, public_url, method, raw_query, ctype, body, signature, settings_header=None):
    from service.callbacks.parse import parse_callback

    parsed = parse_callback(method, raw_query, ctype, body, 64 * 1024)
    url = public_url + ("?" + raw_query if raw_query else "")
    return verifier.verify(
        url,
        parsed.body_params,
        signature,
        signature_algorithm(settings_header),
        body=body if parsed.json_body else None,
    )


@pytest.mark.parametrize("algorithm", [HMAC_SHA1, HMAC_SHA256])
def test_end_to_end_post_get_json(algorithm):
    from urllib.parse import urlencode

    header = None if algorithm == HMAC_SHA1 else "key=k1,algorithm=HMAC_SHA256"
    v = SignatureVerifier(["new", TOKEN])
    base = "https://events.example.com/twilio/video"
    fields = [("RoomSid", "RM1"), ("RoomName", "daily stand-up"), ("StatusCallbackEvent", "room-created")]
    rv = RequestValidator(TOKEN)

    # POST form: params in the body, configured URL has its own query
    body = urlencode(fields).encode()
    s = rv.compute_signature(base + "?tenant=acme", dict(fields), algorithm)
    assert _shell_verify(v, base, "POST", "tenant=acme", FORM_CT, body, s, header)
    assert not _shell_verify(v, base, "POST", "tenant=acme", FORM_CT, body.replace(b"RM1", b"RM2"), s, header)

    # GET: Twilio's params appended to the query string, nothing appended to the signed string
    query = "tenant=acme&" + urlencode(fields)
    s = rv.compute_signature(base + "?" + query, {}, algorithm)
    assert _shell_verify(v, base, "GET", query, FORM_CT, b"", s, header)
    assert not _shell_verify(v, base, "GET", query.replace("RM1", "RM2"), FORM_CT, b"", s, header)

    # JSON: bodySHA256 in the query, no params signed
    jbody = b'{"RoomSid": "RM1", "StatusCallbackEvent": "room-created"}'
    query = "tenant=acme&bodySHA256=" + body_sha256(jbody)
    s = rv.compute_signature(base + "?" + query, {}, algorithm)
    assert _shell_verify(v, base, "POST", query, "application/json", jbody, s, header)
    assert not _shell_verify(v, base, "POST", query, "application/json", jbody.replace(b"RM1", b"RM2"), s, header)
    # JSON body but Twilio's signature did not cover it (no bodySHA256) -> rejected
    s = rv.compute_signature(base + "?tenant=acme", {}, algorithm)
    assert not _shell_verify(v, base, "POST", "tenant=acme", "application/json", jbody, s, header)


FORM_CT = "application/x-www-form-urlencoded"

"""X-Twilio-Signature: published vectors (docs/twilio-video.md §2), negatives, rotation,
HMAC_SHA256, URL variants, and a cross-check against twilio-python's RequestValidator."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from service.callbacks.signature import (
    SignatureVerifier,
    body_sha256,
    compute_signature,
    verify,
)
from tests.signature_vectors import (
    DOCS_PARAMS,
    DOCS_SIG,
    DOCS_URL,
    JSON_BODY,
    JSON_HASH,
    JSON_SIG,
    TOKEN,
    TP_DUP_SIG,
    TP_PARAMS,
    TP_SIG,
    TP_SIG_443,
    TP_SIG_HTTP_80,
    TP_SIG_HTTP_1234,
    TP_URL,
)

# ----------------------------------------------------------------- published vectors


def test_docs_vector_compute():
    assert compute_signature(DOCS_URL, DOCS_PARAMS, TOKEN) == DOCS_SIG


def test_docs_vector_signed_string():
    s = (
        "https://example.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDE"
        "Caller+14158675310Digits1234From+14158675310To+18005551212"
    )
    raw = hmac.new(TOKEN.encode(), s.encode(), hashlib.sha1).digest()
    assert base64.b64encode(raw).decode() == DOCS_SIG


def test_docs_vector_verify():
    assert verify(DOCS_URL, DOCS_PARAMS, DOCS_SIG, [TOKEN])


def test_twilio_python_vector_compute():
    assert compute_signature(TP_URL, TP_PARAMS, TOKEN) == TP_SIG


def test_twilio_python_vector_verify():
    assert verify(TP_URL, TP_PARAMS, TP_SIG, [TOKEN])


def test_https_signed_with_443_verifies_without_port_in_url():
    assert compute_signature(TP_URL.replace(".com", ".com:443"), TP_PARAMS, TOKEN) == TP_SIG_443
    assert verify(TP_URL, TP_PARAMS, TP_SIG_443, [TOKEN])


def test_https_received_with_443_verifies_plain_signature():
    assert verify(TP_URL.replace(".com", ".com:443"), TP_PARAMS, TP_SIG, [TOKEN])


def test_http_adds_port_80():
    url = TP_URL.replace("https", "http")
    assert verify(url, TP_PARAMS, TP_SIG_HTTP_80, [TOKEN])


def test_https_nonstandard_port_removed():
    url = TP_URL.replace(".com", ".com:1234")
    assert verify(url, TP_PARAMS, TP_SIG, [TOKEN])


def test_http_nonstandard_port_kept():
    url = TP_URL.replace(".com", ".com:1234").replace("https", "http")
    assert compute_signature(url, TP_PARAMS, TOKEN) == TP_SIG_HTTP_1234
    assert verify(url, TP_PARAMS, TP_SIG_HTTP_1234, [TOKEN])


def test_duplicate_params_dedup_and_sorted():
    params = {"Sid": ["CA123"], "SidAccount": ["AC123"], "Digits": ["5678", "1234"]}
    assert compute_signature(TP_URL, params, TOKEN) == TP_DUP_SIG
    assert verify(TP_URL, params, TP_DUP_SIG, [TOKEN])
    # exact duplicates collapse to one, as twilio-python's sorted(set(values))
    params_dup = {"Sid": ["CA123", "CA123"], "SidAccount": ["AC123"], "Digits": ["1234", "5678", "1234"]}
    assert compute_signature(TP_URL, params_dup, TOKEN) == TP_DUP_SIG


def test_duplicate_params_multidict():
    multidict = pytest.importorskip("multidict")
    params = multidict.MultiDict([("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")])
    assert compute_signature(TP_URL, params, TOKEN) == TP_DUP_SIG
    assert verify(TP_URL, params, TP_DUP_SIG, [TOKEN])


def test_bare_string_values_accepted():
    params = {k: v[0] for k, v in TP_PARAMS.items()}
    assert compute_signature(TP_URL, params, TOKEN) == TP_SIG


def test_json_body_hash_vector():
    assert body_sha256(JSON_BODY) == JSON_HASH
    docs_body = b'{"CallSid":"CA1234567890ABCDE","Caller":"+12349013030"}'
    assert body_sha256(docs_body) == "5ccde7145dfb8f56479710896586cb9d5911809d83afbe34627818790db0aec9"


def test_json_body_signature_vector():
    url = TP_URL + "&bodySHA256=" + JSON_HASH
    assert compute_signature(url, None, TOKEN) == JSON_SIG
    assert verify(url, None, JSON_SIG, [TOKEN], body=JSON_BODY)


def test_json_body_params_ignored_when_body_hash_present():
    url = TP_URL + "&bodySHA256=" + JSON_HASH
    assert verify(url, {"property": ["value"]}, JSON_SIG, [TOKEN], body=JSON_BODY)


# ----------------------------------------------------------------- negatives


def test_wrong_token():
    assert not verify(DOCS_URL, DOCS_PARAMS, DOCS_SIG, ["54321"])


def test_tampered_param_value():
    params = dict(DOCS_PARAMS, Digits=["1235"])
    assert not verify(DOCS_URL, params, DOCS_SIG, [TOKEN])


def test_added_param():
    params = dict(DOCS_PARAMS, Extra=["x"])
    assert not verify(DOCS_URL, params, DOCS_SIG, [TOKEN])


def test_removed_param():
    params = dict(DOCS_PARAMS)
    del params["To"]
    assert not verify(DOCS_URL, params, DOCS_SIG, [TOKEN])


def test_tampered_url():
    assert not verify(DOCS_URL.replace("foo=1", "foo=2"), DOCS_PARAMS, DOCS_SIG, [TOKEN])
    assert not verify(DOCS_URL.replace("example.com", "example.org"), DOCS_PARAMS, DOCS_SIG, [TOKEN])


def test_param_name_case_matters():
    params = {k.lower(): v for k, v in DOCS_PARAMS.items()}
    assert not verify(DOCS_URL, params, DOCS_SIG, [TOKEN])


@pytest.mark.parametrize("signature", [None, "", "   "])
def test_missing_signature(signature):
    assert not verify(DOCS_URL, DOCS_PARAMS, signature, [TOKEN])


def test_non_ascii_signature_is_false_not_error():
    assert not verify(DOCS_URL, DOCS_PARAMS, "L/OH5YylLD5NRKLltdqwSvS0BnU\u00e9", [TOKEN])


def test_truncated_signature():
    assert not verify(DOCS_URL, DOCS_PARAMS, DOCS_SIG[:-1], [TOKEN])


def test_signature_surrounding_whitespace_tolerated():
    assert verify(DOCS_URL, DOCS_PARAMS, f" {DOCS_SIG} ", [TOKEN])


def test_wrong_body_hash():
    url = TP_URL + "&bodySHA256=" + JSON_HASH
    assert not verify(url, None, JSON_SIG, [TOKEN], body=JSON_BODY + b" ")


def test_body_hash_in_url_but_no_body():
    url = TP_URL + "&bodySHA256=" + JSON_HASH
    assert not verify(url, None, JSON_SIG, [TOKEN])


def test_body_given_without_body_hash_in_url_fails_closed():
    sig_plain = compute_signature(TP_URL, None, TOKEN)
    assert verify(TP_URL, None, sig_plain, [TOKEN])
    assert not verify(TP_URL, None, sig_plain, [TOKEN], body=JSON_BODY)


def test_body_hash_tampered_in_url():
    bad_hash = body_sha256(b'{"property": "evil"}')
    url = TP_URL + "&bodySHA256=" + bad_hash
    good = compute_signature(url, None, TOKEN)
    # signature over the tampered URL is valid, but the body does not hash to it
    assert not verify(url, None, good, [TOKEN], body=JSON_BODY)
    assert verify(url, None, good, [TOKEN], body=b'{"property": "evil"}')


def test_no_tokens():
    assert not verify(DOCS_URL, DOCS_PARAMS, DOCS_SIG, [])
    assert not verify(DOCS_URL, DOCS_PARAMS, DOCS_SIG, ["", None])
    with pytest.raises(ValueError):
        SignatureVerifier([])
    with pytest.raises(ValueError):
        SignatureVerifier(["", None])


def test_signature_with_port_variant_when_signed_with_other_port_fails():
    # signed for :8443, received on :9443 -> no variant matches
    signed = compute_signature("https://mycompany.com:8443/myapp.php", TP_PARAMS, TOKEN)
    assert not verify("https://mycompany.com:9443/myapp.php", TP_PARAMS, signed, [TOKEN])
    assert verify("https://mycompany.com:8443/myapp.php", TP_PARAMS, signed, [TOKEN])


# ----------------------------------------------------------------- rotation


def test_secondary_token_rotation():
    old, new = "old-token", "new-token"
    s_old = compute_signature(DOCS_URL, DOCS_PARAMS, old)
    s_new = compute_signature(DOCS_URL, DOCS_PARAMS, new)
    assert verify(DOCS_URL, DOCS_PARAMS, s_new, [new, old])
    assert verify(DOCS_URL, DOCS_PARAMS, s_old, [new, old])
    assert not verify(DOCS_URL, DOCS_PARAMS, s_old, [new])
    assert verify(DOCS_URL, DOCS_PARAMS, s_new, [new, None])
    assert verify(DOCS_URL, DOCS_PARAMS, s_new, [new, ""])


def test_rotation_with_port_variants():
    verifier = SignatureVerifier(["primary", TOKEN])
    assert verifier.verify(TP_URL, TP_PARAMS, TP_SIG_443)
    assert verifier.verify(TP_URL.replace("https", "http"), TP_PARAMS, TP_SIG_HTTP_80)


def test_verifier_accepts_single_string_token():
    assert SignatureVerifier(TOKEN).verify(DOCS_URL, DOCS_PARAMS, DOCS_SIG)
    assert verify(DOCS_URL, DOCS_PARAMS, DOCS_SIG, TOKEN)


def test_verifier_is_reusable():
    v = SignatureVerifier([TOKEN])
    for _ in range(3):
        assert v.verify(DOCS_URL, DOCS_PARAMS, DOCS_SIG)
        assert not v.verify(DOCS_URL, DOCS_PARAMS, TP_SIG)

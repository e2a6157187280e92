"""``X-Twilio-Signature`` — computed exactly as Twilio computes it, checked the way
twilio-python's ``RequestValidator`` checks it (see docs/twilio-video.md §2).

Pure domain code: no I/O, no framework imports.

Signed string
    ``url`` (scheme, host, optional port, path, full query string exactly as requested)
    followed, for each *form-body* parameter name in sorted order (code-point order ==
    UTF-8 byte order, so uppercase before lowercase), by ``name + value`` for each of its
    distinct values in sorted order. No delimiters. HMAC (SHA-1 by default, SHA-256 when
    ``X-Twilio-Webhooks-Signature-Settings`` says ``algorithm=HMAC_SHA256``) keyed with the
    Auth Token (or SharedKey secret), base64 with padding.

How the HTTP shell should call this (with ``parse.ParsedCallback`` ``p``)::

    verifier.verify(public_url,                       # incl. raw query string
                    p.body_params,                    # {} for GET / JSON / empty bodies
                    request.headers.get(SIGNATURE_HEADER),
                    signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER)),
                    body=raw_body if p.json_body else None)

Decisions (deliberate, tested):

* ``body`` is only for raw (JSON) bodies. If ``body`` is given the URL **must** carry
  ``bodySHA256`` — otherwise the body would not be covered by the signature, so ``verify``
  returns False (fail closed). If the URL carries ``bodySHA256`` then ``body`` must be given
  and hash to it (constant-time), and ``params`` are ignored (signed as empty), as Twilio does.
* Unknown algorithms: ``signature_algorithm`` returns the (upper-cased) unknown name and
  ``verify`` returns False for it — fail closed, same as twilio-python 9.13. Only a missing /
  empty header (or one without ``algorithm=``) means HMAC_SHA1. ``compute_signature``
  raises ``ValueError`` for an unknown algorithm.
* URL variants (:func:`url_variants`): as received, with the scheme's default port added when
  none is present, and with any port removed (twilio-python strips even non-default ports).
  ``user:pass@`` and any ``#fragment`` are dropped from every variant (Twilio signs without
  them; HTTP never transmits fragments). The URL is otherwise never re-normalised
  (no ``urlunsplit``): the query string is signed byte-for-byte.
* ``params`` values: each value is a sequence of strings; a bare ``str`` is accepted as one
  value (not iterated character by character); a ``multidict.MultiDict`` (``getall``) works. Distinct values only, sorted — exactly
  twilio-python's ``sorted(set(values))``.
* Tokens: primary first, then the optional secondary (rotation). Empty / ``None`` tokens are
  skipped, so an unset secondary can be passed straight from config. ``SignatureVerifier``
  with no usable token raises ``ValueError``; module-level ``verify`` returns False.
* Missing / blank / non-ASCII signature -> False. Comparison is ``hmac.compare_digest`` on
  base64 bytes; every url variant x token is tried (returns at the first match — the timing
  only reveals *which* variant matched, never anything about the secret).

Performance: ``SignatureVerifier`` pre-keys one HMAC object per (token, algorithm) and copies
it per attempt; the sorted parameter suffix is built and encoded once per request, then fed
to each attempt after the URL variant, so trying 3 variants x 2 tokens costs ~6 short HMAC
finalisations (~1 µs each). ``url_variants`` is memoised (the callback URL is usually the same
for every POST callback). Module-level functions are thin wrappers over a cached verifier.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from functools import lru_cache
from urllib.parse import parse_qsl

__all__ = [
    "HMAC_SHA1",
    "HMAC_SHA256",
    "SIGNATURE_HEADER",
    "SIGNATURE_SETTINGS_HEADER",
    "SUPPORTED_ALGORITHMS",
    "BODY_HASH_PARAM",
    "SignatureVerifier",
    "signature_algorithm",
    "compute_signature",
    "body_sha256",
    "url_variants",
    "verify",
]

HMAC_SHA1 = "HMAC_SHA1"
HMAC_SHA256 = "HMAC_SHA256"
SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
BODY_HASH_PARAM = "bodySHA256"

_DIGESTS: dict[str, str] = {HMAC_SHA1: "sha1", HMAC_SHA256: "sha256"}
SUPPORTED_ALGORITHMS: frozenset[str] = frozenset(_DIGESTS)

_DEFAULT_PORTS = {"https": "443", "wss": "443"}  # anything else -> 80, like twilio-python

Params = Mapping[str, "Sequence[str] | str"]


# --------------------------------------------------------------------------- helpers


def signature_algorithm(settings_header: str | None) -> str:
    """Algorithm named by ``X-Twilio-Webhooks-Signature-Settings``
    (``key=<sharedKeyId>,algorithm=HMAC_SHA256``).

    Missing/empty header, or no non-empty ``algorithm=`` part -> ``HMAC_SHA1``. The value is
    upper-cased; an unsupported value is returned as-is (upper-cased) so that ``verify``
    rejects the request instead of silently downgrading to SHA-1.
    """
    if not settings_header:
        return HMAC_SHA1
    for part in settings_header.split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip().lower() == "algorithm":
            value = value.strip().upper()
            if value:
                return value
    return HMAC_SHA1


def body_sha256(body: bytes) -> str:
    """Lowercase hex SHA-256 of the raw body (what Twilio puts in ``bodySHA256``)."""
    return hashlib.sha256(body).hexdigest()


def _params_suffix(params: Params | None) -> str:
    if not params:
        return ""
    if type(params) is dict:
        try:  # one value per name (nearly every callback): no per-name sorting of distinct values
            return "".join([name + value for name, (value,) in sorted(params.items())])
        except ValueError:  # a name with several values (or none)
            pass
    parts: list[str] = []
    append = parts.append
    getall = getattr(params, "getall", None)  # multidict.MultiDict (aiohttp) support
    for name in sorted(params) if type(params) is dict else sorted(set(params)):
        values = getall(name) if getall is not None else params[name]
        if isinstance(values, str):
            append(name + values)
        elif len(values) == 1:  # nearly every parameter of a callback
            append(name + values[0])
        else:
            for value in sorted(set(values)):
                append(name + value)
    return "".join(parts)


def _encode(s: str) -> bytes:
    # surrogateescape round-trips raw non-UTF-8 bytes that an HTTP server decoded with it.
    return s.encode("utf-8", "surrogateescape")


def _split_port(hostport: str) -> tuple[str, str | None]:
    """``host[:port]`` -> (host, port or None). IPv6 literals in brackets are handled."""
    if hostport.startswith("["):
        close = hostport.find("]")
        if close != -1 and hostport[close + 1 : close + 2] == ":":
            return hostport[: close + 1], hostport[close + 2 :]
        return hostport, None
    host, sep, port = hostport.rpartition(":")
    if not sep:
        return hostport, None
    return host, port


@lru_cache(maxsize=512)
def url_variants(url: str) -> tuple[str, ...]:
    """Candidate signed URLs for ``url``, most likely first, without duplicates:

    1. as received (credentials and fragment dropped),
    2. with the scheme's default port (``:443`` https, ``:80`` otherwise) when none is given,
    3. with any port removed.

    When the URL ends with an empty query (``...?``) each form is also tried without the
    ``?`` (twilio-python's ``geturl()`` drops it). A URL without ``scheme://`` or with a
    non-numeric port yields only variant 1.
    """
    url = url.partition("#")[0]
    sep = url.find("://")
    if sep == -1:
        return (url,)
    scheme = url[:sep]
    auth_start = sep + 3
    auth_end = len(url)
    for ch in "/?":
        i = url.find(ch, auth_start)
        if i != -1 and i < auth_end:
            auth_end = i
    authority = url[auth_start:auth_end]
    rest = url[auth_end:]
    hostport = authority.rpartition("@")[2]  # drop user:password@
    prefix = url[:auth_start]
    received = prefix + hostport + rest
    host, port = _split_port(hostport)
    if port is None or port == "":
        default = _DEFAULT_PORTS.get(scheme.lower(), "80")
        candidates = (received, f"{prefix}{host}:{default}{rest}", prefix + host + rest)
    elif port.isdigit() and port.isascii():
        candidates = (received, prefix + host + rest)
    else:
        return (received,)
    if rest.endswith("?"):
        # twilio-python re-assembles via urlparse().geturl(), which drops an empty "?".
        candidates += tuple(c[:-1] for c in candidates)
    return tuple(dict.fromkeys(candidates))


@lru_cache(maxsize=512)
def _encoded_variants(url: str) -> tuple[bytes, ...] | None:
    """`url_variants(url)` encoded; None when one cannot be (the signature cannot match)."""
    try:
        return tuple(_encode(v) for v in url_variants(url))
    except UnicodeEncodeError:
        return None


def _b64(digest: bytes) -> bytes:
    """base64.b64encode, without its wrapper."""
    return binascii.b2a_base64(digest, newline=False)


def _query_body_hash(url: str) -> str | None:
    """First ``bodySHA256`` value in the URL's query string, or None when absent."""
    if BODY_HASH_PARAM not in url:  # fast path: nearly every callback
        return None
    query = url.partition("#")[0].partition("?")[2]
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == BODY_HASH_PARAM:
            return value
    return None


# --------------------------------------------------------------------------- verifier


class SignatureVerifier:
    """Verifies ``X-Twilio-Signature`` against one or more secrets (primary, then secondary).

    Build once at startup (keys are pre-processed), call :meth:`verify` per request.
    Thread-safe / reentrant: the pre-keyed HMAC objects are only ever ``copy()``-ed.
    """

    __slots__ = ("_keyed",)

    def __init__(self, tokens: Sequence[str | bytes | None] | str | bytes) -> None:
        if isinstance(tokens, (str, bytes)):
            tokens = (tokens,)
        keys = [t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in tokens if t]
        if not keys:
            raise ValueError("SignatureVerifier needs at least one non-empty token")
        self._keyed: dict[str, tuple[hmac.HMAC, ...]] = {
            alg: tuple(hmac.new(k, digestmod=digest) for k in keys) for alg, digest in _DIGESTS.items()
        }

    def verify(
        self,
        url: str,
        params: Params | None,
        signature: str | None,
        algorithm: str = HMAC_SHA1,
        body: bytes | None = None,
    ) -> bool:
        if not signature:
            return False
        keyed = self._keyed.get(algorithm) or self._keyed.get((algorithm or HMAC_SHA1).upper())
        if keyed is None:
            return False
        try:
            expected = signature.strip().encode("ascii")
        except UnicodeEncodeError:
            return False
        if not expected:
            return False

        body_hash = _query_body_hash(url)
        if body_hash is not None:
            if body is None:
                return False
            if not hmac.compare_digest(body_sha256(body).encode("ascii"), _encode(body_hash)):
                return False
            suffix = b""
        elif body is not None:
            return False  # a raw body that the signature does not cover
        else:
            try:
                suffix = _encode(_params_suffix(params))
            except UnicodeEncodeError:
                return False

        variants = _encoded_variants(url)
        if variants is None:
            return False
        b64 = _b64
        compare = hmac.compare_digest
        for base in keyed:
            for variant in variants:
                mac = base.copy()
                mac.update(variant)
                if suffix:
                    mac.update(suffix)
                if compare(b64(mac.digest()), expected):
                    return True
        return False


@lru_cache(maxsize=16)
def _cached_verifier(tokens: tuple[str | bytes | None, ...]) -> SignatureVerifier:
    return SignatureVerifier(tokens)


# --------------------------------------------------------------------------- module API


def compute_signature(url: str, params: Params | None, token: str, algorithm: str = HMAC_SHA1) -> str:
    """The signature Twilio would send for ``url`` + form ``params`` (no URL variants)."""
    digest = _DIGESTS.get((algorithm or HMAC_SHA1).upper())
    if digest is None:
        raise ValueError(f"unsupported webhook signature algorithm: {algorithm!r}")
    mac = hmac.new(token.encode("utf-8"), digestmod=digest)
    mac.update(_encode(url))
    mac.update(_encode(_params_suffix(params)))
    return base64.b64encode(mac.digest()).decode("ascii")


def verify(
    url: str,
    params: Params | None,
    signature: str | None,
    tokens: Sequence[str | None],
    algorithm: str = HMAC_SHA1,
    body: bytes | None = None,
) -> bool:
    """Module-level convenience over a cached :class:`SignatureVerifier` for ``tokens``.

    Returns False (never raises) when no usable token is given.
    """
    if isinstance(tokens, (str, bytes)):
        tokens = (tokens,)
    key = tuple(t for t in tokens if t)
    if not key:
        return False
    return _cached_verifier(key).verify(url, params, signature, algorithm, body)

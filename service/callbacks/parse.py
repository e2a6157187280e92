"""Raw HTTP request parts -> Twilio callback parameters.

Pure domain code: no I/O, no framework imports. The HTTP shell passes the method, the raw
(still percent-encoded) query string, the ``Content-Type`` header and the raw body bytes.

Decisions (deliberate, tested):

* Methods HEAD, GET, POST, PATCH, PUT, DELETE (case-insensitive) may carry parameters in the
  query string and/or the body. Any other method -> 405 (normally unreachable: the router
  only registers those methods).
* ``len(body) > max_body`` -> 413, checked before anything else is looked at.
* More than ``max_params`` parameters (query and body together) -> 413, checked before any parsing
  (so before the signature check): a count of ``&``-separated non-empty fields, done in C, for the
  query and a form body; a JSON body's top-level keys right after the (C) decoding. Twilio's room
  callbacks carry a few dozen; a hostile 64 KB body of 12k parameters would otherwise cost ~50 ms
  of parsing and sorting before its signature is found wrong.
* Form bodies (``application/x-www-form-urlencoded``) and query strings are parsed like the
  WHATWG urlencoded parser / browsers: ``parse_qsl(keep_blank_values=True)``, *not*
  ``strict_parsing`` — empty segments (``a=1&&b=2``, trailing ``&``) are skipped and a field
  without ``=`` is a blank value, ``+`` is a space (Twilio encodes spaces as ``+``), an invalid
  ``%`` escape is kept literally. What *is* rejected (400) is text that is not UTF-8: the raw
  body bytes, or the bytes produced by percent-decoding (``%FF``), in the body or the query.
* ``charset`` parameter on the content type: absent, ``utf-8``/``utf8``/``us-ascii``/``ascii``
  (case-insensitive, optionally quoted) are accepted; any other charset -> 415.
* ``application/json``: the body must be a UTF-8 JSON *object* (else 400). Its top-level keys
  are merged into ``params`` (one value each): strings as-is; numbers and booleans as their
  JSON text (``true``/``false``, ``3``, ``1.5``; orjson reads integers beyond 64 bits as
  floats); ``null`` -> ``""`` (so :func:`require` treats it as missing); objects and arrays ->
  compact orjson text. ``body_params`` stays empty (Twilio signs JSON requests over the URL
  + ``bodySHA256`` only) and ``json_body`` is True — also for an empty JSON body, so the
  signature check still insists on ``bodySHA256``.
* Any other (or missing) content type with a non-empty body -> 415 Unsupported Media Type.
  An empty body is always fine, whatever the content type.
* ``params`` merge order: query parameters first, then body parameters; every value is kept
  in arrival order (multi-values). ``params`` and ``body_params`` never share list objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import unquote_to_bytes

import orjson

__all__ = [
    "ALLOWED_METHODS",
    "FORM_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "CallbackParseError",
    "ParsedCallback",
    "parse_callback",
    "require",
]

ALLOWED_METHODS = frozenset({"HEAD", "GET", "POST", "PATCH", "PUT", "DELETE"})
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"
_UTF8_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


class CallbackParseError(Exception):
    """A request that cannot be turned into callback parameters.

    ``status``: 400 (malformed), 405 (method), 413 (body too large), 415 (media type).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __repr__(self) -> str:
        return f"CallbackParseError({self.status}, {self.message!r})"


@dataclass(frozen=True, slots=True)
class ParsedCallback:
    params: dict[str, list[str]]
    """Query params then body params (form fields or JSON keys), all values, in order."""
    body_params: dict[str, list[str]] = field(default_factory=dict)
    """Form-body params only: the ones appended to the signed string."""
    json_body: bool = False
    """The body was application/json: sign with no params and check ``bodySHA256``."""

    def first(self, name: str, default: str | None = None) -> str | None:
        """First value of ``name`` in ``params`` (``default`` when absent)."""
        values = self.params.get(name)
        return values[0] if values else default


@lru_cache(maxsize=64)  # clients send the same header on every request
def _media_type(content_type: str) -> tuple[str, str | None]:
    """``"Type/Sub; charset=X"`` -> (``"type/sub"``, ``"x"`` or None)."""
    media, _, rest = content_type.partition(";")
    charset = None
    if rest:
        for part in rest.split(";"):
            name, sep, value = part.partition("=")
            if sep and name.strip().lower() == "charset":
                charset = value.strip().strip('"').strip().lower()
    return media.strip().lower(), charset


def _fields(raw: str | bytes, limit: int | None = None) -> int:
    """How many parameters an urlencoded string holds at most: its non-empty ``&``-separated fields.
    With `limit`: when the fields cannot exceed it (fewer ``&`` than that), their upper bound."""
    if not raw:
        return 0
    sep = b"&" if isinstance(raw, bytes) else "&"
    if limit is not None:
        bound = raw.count(sep) + 1  # type: ignore[arg-type]
        if bound <= limit:
            return bound
    parts = raw.split(sep)  # type: ignore[arg-type]
    return len(parts) - parts.count(sep[:0])


def _too_many(count: int, limit: int) -> CallbackParseError:
    return CallbackParseError(413, f"too many parameters: more than {limit} in one callback")


# "%XX" of every ASCII character, both cases of hex digits: what it decodes to.
_ASCII_ESCAPES = {f"{i:02x}": chr(i) for i in range(128)} | {f"{i:02X}": chr(i) for i in range(128)}


def _unquote(text: str) -> str:
    """``unquote_to_bytes(text).decode("utf-8")`` (UnicodeDecodeError included), without the
    round trip through bytes when every escape is of an ASCII character (a Timestamp's ``%3A``)."""
    parts = text.split("%")
    out = [parts[0]]
    for part in parts[1:]:
        char = _ASCII_ESCAPES.get(part[:2])
        if char is None:  # a non-ASCII byte, or a "%" that escapes nothing: decode it all as bytes
            return unquote_to_bytes(text).decode("utf-8")
        out.append(char)
        out.append(part[2:])
    return "".join(out)


def _parse_urlencoded(text: str, where: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True, errors="strict")``, three times as fast: the hot
    path of every callback. Each name and value is percent-decoded as a whole and then decoded as
    UTF-8 (strict), which accepts and rejects exactly what parse_qsl does (tests/test_callback_parse.py)."""
    if "+" in text:  # a space in names and values ("+" is no delimiter: the same as part by part)
        text = text.replace("+", " ")
    pairs: list[tuple[str, str]] = []
    append = pairs.append
    try:
        for part in text.split("&"):
            if part:
                name, _, value = part.partition("=")
                if "%" in part:
                    if "%" in name:
                        name = _unquote(name)
                    if "%" in value:
                        value = _unquote(value)
                append((name, value))
    except UnicodeDecodeError:
        raise CallbackParseError(400, f"{where} contains percent-encoded bytes that are not valid UTF-8") from None
    return pairs


def _json_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    return orjson.dumps(value).decode("utf-8")


def parse_callback(
    method: str,
    raw_query: str,
    content_type: str | None,
    body: bytes,
    max_body: int,
    max_params: int = 100,
) -> ParsedCallback:
    """Parse a callback request. Raises :class:`CallbackParseError` (see module docstring)."""
    if len(body) > max_body:
        raise CallbackParseError(413, f"request body too large: {len(body)} bytes (limit {max_body})")
    if method not in ALLOWED_METHODS and method.upper() not in ALLOWED_METHODS:
        raise CallbackParseError(405, f"method {method} not allowed")
    media, charset = _media_type(content_type) if content_type else ("", None)
    count = _fields(raw_query) if raw_query else 0
    if media == FORM_CONTENT_TYPE:
        count += _fields(body, max_params - count)
    if count > max_params:
        raise _too_many(count, max_params)

    params: dict[str, list[str]] = {}
    if raw_query:
        for name, value in _parse_urlencoded(raw_query, "query string"):
            values = params.get(name)
            if values is None:
                params[name] = [value]
            else:
                values.append(value)

    body_params: dict[str, list[str]] = {}
    json_body = False
    if media == JSON_CONTENT_TYPE:
        json_body = True
    if charset is not None and charset not in _UTF8_CHARSETS and body:
        raise CallbackParseError(415, f"unsupported charset {charset!r}: callbacks must be UTF-8")

    if not body:
        return ParsedCallback(params, body_params, json_body)

    if media == FORM_CONTENT_TYPE:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise CallbackParseError(400, "form body is not valid UTF-8") from None
        pairs = _parse_urlencoded(text, "form body")
        if not params:  # no query: each name once (nearly always), one comprehension per dict
            body_params = {name: [value] for name, value in pairs}
            if len(body_params) == len(pairs):
                return ParsedCallback({name: [value] for name, value in pairs}, body_params, json_body)
            body_params = {}
        for name, value in pairs:
            values = body_params.get(name)
            if values is None:
                body_params[name] = [value]
            else:
                values.append(value)
            values = params.get(name)
            if values is None:
                params[name] = [value]
            else:
                values.append(value)
    elif json_body:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise CallbackParseError(400, f"invalid JSON body: {exc}") from None
        if not isinstance(doc, dict):
            raise CallbackParseError(400, f"JSON body must be an object, not {type(doc).__name__}")
        if count + len(doc) > max_params:
            raise _too_many(count + len(doc), max_params)
        for name, value in doc.items():
            text_value = _json_text(value)
            values = params.get(name)
            if values is None:
                params[name] = [text_value]
            else:
                values.append(text_value)
    else:
        shown = content_type if content_type else "(none)"
        raise CallbackParseError(
            415,
            f"unsupported content type {shown}: expected {FORM_CONTENT_TYPE} or {JSON_CONTENT_TYPE}",
        )
    return ParsedCallback(params, body_params, json_body)


def require(params: Mapping[str, Sequence[str]], names: Iterable[str]) -> None:
    """Raise ``CallbackParseError(400, "missing required parameter(s): A, B")`` for every
    name in ``names`` (in that order) that is absent or has only empty values."""
    missing = [n for n in names if not any(params.get(n) or ())]
    if missing:
        raise CallbackParseError(400, "missing required parameter(s): " + ", ".join(missing))

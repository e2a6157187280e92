"""The external base URL of this service, one rule for signatures and for resource URLs.

ROOMEVENTS_PUBLIC_URL wins when set (its scheme, host, port and any path prefix). Otherwise, when
ROOMEVENTS_TRUST_FORWARDED is on, X-Forwarded-Proto / -Host / -Port (first value of each, as set
by the proxy nearest the client) override the request's own scheme and Host. Otherwise the
request's own scheme and Host header.
"""

from __future__ import annotations

import re

from aiohttp import web

from service.http.keys import SETTINGS

_HAS_PORT = re.compile(r"(?::\d*)$")


def _first_value(header: str | None) -> str | None:
    """First element of a comma-separated (proxy-chained) header, stripped; None when empty."""
    if not header:
        return None
    value = header.split(",")[0].strip()
    return value or None


def external_base(request: web.Request) -> str:
    """`scheme://host[:port][/prefix]` as the client reached this service, without a trailing slash."""
    settings = request.app[SETTINGS]
    if settings.public_url:
        return settings.public_url.rstrip("/")
    scheme, host = request.scheme, request.host
    if settings.trust_forwarded_headers:
        scheme = (_first_value(request.headers.get("X-Forwarded-Proto")) or scheme).lower()
        host = _first_value(request.headers.get("X-Forwarded-Host")) or host
        port = _first_value(request.headers.get("X-Forwarded-Port"))
        if port and port.isdigit() and not _HAS_PORT.search(host.rpartition("]")[2]):
            host = f"{host}:{port}"
    return f"{scheme}://{host}"


def request_url(request: web.Request) -> str:
    """The URL the client requested (what Twilio signs): the external base, the path and the raw
    query exactly as received."""
    return external_base(request) + request.raw_path

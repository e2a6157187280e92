"""GET /dashboard: one live page of the rooms, for operators (docs/dashboard.md).

The page and its two files (service/http/static/) are served by roomevents itself: no build step, no
CDN, a Content-Security-Policy that lets the page load nothing from anywhere else. The page follows
GET /v1/Streams/Rooms and reads GET /v1/Rooms/{Sid} and .../Participants.

Auth: the same HTTP Basic credentials as the Rooms API (account SID, auth token or the secondary
token). Without them the page answers 401 with `WWW-Authenticate: Basic`, so a browser asks for them
once and then sends them by itself to every same-origin request of the page, the EventSource of the
stream included (EventSource cannot set an Authorization header, but the browser's own Basic-auth
cache applies to it).
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path

from aiohttp import web

from service.http.auth import check_basic
from service.http.keys import SETTINGS
from service.rooms.errors import TwilioError

STATIC_DIR = Path(__file__).with_name("static")
PAGE = "index.html"
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# Nothing but this origin: scripts and styles from files (no inline ones), data only from the API.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
CHALLENGE = {"WWW-Authenticate": 'Basic realm="roomevents", charset="UTF-8"'}


def _load() -> dict[str, tuple[bytes, str, str]]:
    """name -> (body, content type, ETag) for every file of static/, read once."""
    files = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            body = path.read_bytes()
            kind = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            files[path.name] = (body, kind, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
    return files


FILES = _load()


def _serve(request: web.Request, name: str) -> web.Response:
    settings = request.app[SETTINGS]
    try:
        check_basic(request.headers.get("Authorization"), settings.twilio_account_sid, settings.auth_tokens)
    except TwilioError as err:  # the browser prompts for credentials only with a challenge
        return web.json_response(err.to_json(), status=err.status, headers=SECURITY_HEADERS | CHALLENGE)
    found = FILES.get(name)
    if found is None:
        raise web.HTTPNotFound()
    body, kind, etag = found
    headers = SECURITY_HEADERS | {"ETag": etag}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    charset = "utf-8" if kind.startswith("text/") or kind.endswith("+xml") else None
    return web.Response(body=body, content_type=kind, charset=charset, headers=headers)


async def page(request: web.Request) -> web.Response:
    return _serve(request, PAGE)


async def static(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["name"])


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dashboard", page)
    app.router.add_get("/dashboard/static/{name}", static)

"""HTTP Basic auth against the configured account SID and auth token (constant-time).

`check_basic` is the check; `requires_basic_auth` applies it to a route group's handlers."""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
from typing import Awaitable, Callable

from aiohttp import web

from service.http.keys import SETTINGS
from service.rooms.errors import MALFORMED_CREDENTIALS, NO_CREDENTIALS, unauthorized


def check_basic(header: str | None, account_sid: str, tokens: tuple[str, ...]) -> None:
    """Raise TwilioError 20003 (401) unless `header` carries the account's credentials: "No
    credentials provided" without the header, "malformed" when it is not Basic user:password, else
    "invalid credentials" without saying whether the SID or the token was wrong."""
    if not header:
        raise unauthorized(NO_CREDENTIALS)
    if not header.startswith("Basic "):
        raise unauthorized(MALFORMED_CREDENTIALS)
    try:
        # Not ASCII (aiohttp hands raw header bytes over as text): ValueError, like bad base64.
        user, colon, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, ValueError):
        raise unauthorized(MALFORMED_CREDENTIALS) from None
    if not colon:
        raise unauthorized(MALFORMED_CREDENTIALS)
    user_ok = hmac.compare_digest(user.encode(), account_sid.encode())
    token_ok = False
    for token in tokens:
        token_ok |= hmac.compare_digest(password.encode(), token.encode())
    if not (user_ok and token_ok):
        raise unauthorized()


def requires_basic_auth(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a route's handler: the account's Basic credentials first, 401 20003 otherwise."""

    @functools.wraps(handler)
    async def authorized(request: web.Request) -> web.StreamResponse:
        settings = request.app[SETTINGS]
        check_basic(request.headers.get("Authorization"), settings.twilio_account_sid, settings.auth_tokens)
        return await handler(request)

    return authorized

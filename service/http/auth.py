"""HTTP Basic auth against the configured account SID and auth token (constant-time)."""

from __future__ import annotations

import base64
import binascii
import hmac

from service.rooms.errors import unauthorized


def check_basic(header: str | None, account_sid: str, tokens: tuple[str, ...]) -> None:
    """Raise TwilioError 20003 (401) unless `header` carries the account's credentials."""
    if not header or not header.startswith("Basic "):
        raise unauthorized()
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise unauthorized() from None
    user_ok = hmac.compare_digest(user.encode(), account_sid.encode())
    token_ok = False
    for token in tokens:
        token_ok |= hmac.compare_digest(password.encode(), token.encode())
    if not (user_ok and token_ok):
        raise unauthorized()

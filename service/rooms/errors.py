"""Twilio's REST error shape: {"code", "message", "more_info", "status"}.

Pure domain code: raised by validation and by the API, rendered by the HTTP shell.
"""

from __future__ import annotations

MORE_INFO = "https://www.twilio.com/docs/errors/{code}"


class TwilioError(Exception):
    """An error answered to the client exactly as Twilio would answer it."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def to_json(self) -> dict:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": MORE_INFO.format(code=self.code),
            "status": self.status,
        }

    def __repr__(self) -> str:
        return f"TwilioError({self.code}, {self.message!r}, status={self.status})"


def not_found(path: str) -> TwilioError:
    return TwilioError(20404, f"The requested resource {path} was not found", 404)


NO_CREDENTIALS = "Authentication Error - No credentials provided"
MALFORMED_CREDENTIALS = "Authentication Error - malformed credentials: expected HTTP Basic <account SID>:<auth token>"
# Says neither which part was wrong nor whether the account SID exists.
INVALID_CREDENTIALS = "Authentication Error - invalid credentials (account SID or auth token)"


def unauthorized(message: str = INVALID_CREDENTIALS) -> TwilioError:
    """401 with Twilio's code 20003; the message says whether credentials were missing, malformed
    or wrong, never which of the account SID and the token did not match."""
    return TwilioError(20003, message, 401)

"""Providers as adapters at the edge: each other video provider's webhooks, verified and mapped to the
one room-event record (service/events/record.py), so that the fold and everything after it learn who
spoke only through the record's `provider` field.

- `livekit.py`: LiveKit webhooks (a JWT in `Authorization` whose `sha256` claim is the body's hash,
  checked by livekit-api's own `WebhookReceiver`, which the HTTP shell builds and passes in).
- `zoom.py`: Zoom Video SDK webhooks (`x-zm-signature`, a replay window, the URL-validation challenge).

Pure domain code: no aiohttp, no aiokafka, the clock is a parameter. The routes are
service/http/providers.py.
"""

from __future__ import annotations


class WebhookRefused(Exception):
    """A webhook that must not be published: 403 (its signature, token or timestamp does not verify)
    or 400 (verified, but not a webhook this service can read)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def forbidden(message: str) -> WebhookRefused:
    return WebhookRefused(403, message)


def bad_request(message: str) -> WebhookRefused:
    return WebhookRefused(400, message)

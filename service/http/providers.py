"""Other providers' webhooks: `POST /v1/Callbacks/LiveKit` and `POST /v1/Callbacks/Zoom`.

Thin routes over service/providers/ (verification and mapping). A provider's route exists only when
its credentials are set (LIVEKIT_API_KEY + LIVEKIT_API_SECRET; ZOOM_WEBHOOK_SECRET_TOKEN): without
them the path is a 404. In order, for both:

1. body over ROOMEVENTS_MAX_BODY_BYTES -> 413;
2. the provider's signature (LiveKit: livekit-api's WebhookReceiver with a TokenVerifier per
   configured key pair; Zoom: x-zm-signature with each secret token, and x-zm-request-timestamp
   within ROOMEVENTS_ZOOM_REPLAY_WINDOW) -> 403 when it does not verify;
3. a body that verifies but cannot be read or mapped -> 400 (Zoom's endpoint.url_validation is
   answered 200 with its encryptedToken here, and publishes nothing);
4. publish each record (acks=all, deadline) -> 204 once all are acknowledged; 503 + Retry-After when
   the broker did not acknowledge in time (the provider retries; a retry has the same event ids);
   202 when a record can never fit the broker and was parked on the dead-letter topic.

Nothing is published for a request answered 4xx. Every answer is counted in
`roomevents_webhooks{provider, event, status}`.
"""

from __future__ import annotations

import time
from typing import Sequence

from aiohttp import web
from livekit.api import TokenVerifier, WebhookReceiver

from service import logs
from service.events import cloudevents, record as records
from service.http.keys import METRICS, PUBLISHER, ROOM_SID, SETTINGS
from service.http.responses import json_response
from service.kafka.producer import PublishError, RecordRejected
from service.providers import WebhookRefused, livekit, zoom

log = logs.get("roomevents.providers")
LIVEKIT_PATH = "/v1/Callbacks/LiveKit"
ZOOM_PATH = "/v1/Callbacks/Zoom"
RETRY_AFTER_S = 1
_LIVEKIT_RECEIVERS = web.AppKey("livekit_receivers", tuple)


def _error(status: int, message: str, headers: dict | None = None) -> web.Response:
    return json_response({"status": status, "message": message}, status=status, headers=headers)


def _count(request: web.Request, provider: str, event: str, status: int) -> None:
    request.app[METRICS].webhooks.labels(provider, event, str(status)).inc()


async def _body(request: web.Request, provider: str) -> bytes | web.Response:
    limit = request.app[SETTINGS].max_body_bytes
    too_large = f"Request body exceeds {limit} bytes"
    if request.content_length is not None and request.content_length > limit:
        _count(request, provider, "unknown", 413)
        return _error(413, too_large)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        _count(request, provider, "unknown", 413)
        return _error(413, too_large)


def _refused(request: web.Request, provider: str, event: str, exc: WebhookRefused) -> web.Response:
    _count(request, provider, event, exc.status)
    log.warning(f"{provider} webhook refused", status=exc.status, reason=exc.message, event_name=event)
    return _error(exc.status, exc.message)


async def _publish(
    request: web.Request, provider: str, label: str, events: Sequence[records.RoomEvent]
) -> web.Response:
    """Publish every record; 2xx only once the broker acknowledged each of them."""
    app = request.app
    settings = app[SETTINGS]
    if events:
        request[ROOM_SID] = events[0]["room_sid"]
    parked = False
    for event in events:
        try:
            await app[PUBLISHER].publish(
                settings.events_topic,
                records.partition_key(event),
                records.encode(event),
                cloudevents.event_headers(event),
            )
        except RecordRejected as exc:
            parked = True  # on the dead-letter topic: retrying cannot help
            log.error(f"{provider} webhook dead-lettered", event_id=event["event_id"], error=str(exc))
        except PublishError as exc:
            _count(request, provider, label, 503)
            log.warning(
                f"{provider} webhook not published",
                room_sid=event["room_sid"],
                event_id=event["event_id"],
                error=str(exc),
            )
            return _error(503, "Event store unavailable; retry shortly", {"Retry-After": str(RETRY_AFTER_S)})
        else:
            app[METRICS].records.labels(event["type"] if event["type"] in records.ROOM_EVENTS else "other").inc()
    status = 202 if parked else 204
    _count(request, provider, label, status)
    return web.Response(status=status)


async def handle_livekit(request: web.Request) -> web.StreamResponse:
    body = await _body(request, livekit.PROVIDER)
    if isinstance(body, web.Response):
        return body
    try:
        event, payload = livekit.verify(request.app[_LIVEKIT_RECEIVERS], body, request.headers.get("Authorization"))
    except WebhookRefused as exc:
        return _refused(request, livekit.PROVIDER, "unknown", exc)
    label = event.event if event.event in livekit.KNOWN_EVENTS else "other"
    settings = request.app[SETTINGS]
    try:
        events = livekit.to_records(event, payload, int(time.time() * 1000), settings.twilio_account_sid or None)
    except WebhookRefused as exc:
        return _refused(request, livekit.PROVIDER, label, exc)
    return await _publish(request, livekit.PROVIDER, label, events)


async def handle_zoom(request: web.Request) -> web.StreamResponse:
    body = await _body(request, zoom.PROVIDER)
    if isinstance(body, web.Response):
        return body
    settings = request.app[SETTINGS]
    now_ms = int(time.time() * 1000)
    try:
        secret = zoom.verify(
            settings.zoom_secret_tokens,
            body,
            request.headers.get(zoom.SIGNATURE_HEADER),
            request.headers.get(zoom.TIMESTAMP_HEADER),
            now_ms,
            settings.zoom_replay_window_ms,
        )
        doc = zoom.parse(body)
    except WebhookRefused as exc:
        return _refused(request, zoom.PROVIDER, "unknown", exc)
    label = doc["event"] if doc["event"] in zoom.KNOWN_EVENTS else "other"
    try:
        if doc["event"] == zoom.URL_VALIDATION:
            answer = zoom.challenge(secret, doc)
            _count(request, zoom.PROVIDER, label, 200)
            return json_response(answer)
        events = zoom.to_records(doc, now_ms, settings.twilio_account_sid or None)
    except WebhookRefused as exc:
        return _refused(request, zoom.PROVIDER, label, exc)
    return await _publish(request, zoom.PROVIDER, label, events)


def add_routes(app: web.Application) -> None:
    """Each provider's route, when its credentials are set (else its path is a 404)."""
    settings = app[SETTINGS]
    if settings.livekit_keys:
        app[_LIVEKIT_RECEIVERS] = tuple(
            WebhookReceiver(TokenVerifier(key, secret)) for key, secret in settings.livekit_keys
        )
        app.router.add_post(LIVEKIT_PATH, handle_livekit)
    if settings.zoom_secret_tokens:
        app.router.add_post(ZOOM_PATH, handle_zoom)

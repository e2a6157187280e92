"""Twilio status callbacks: any configured method, signature verified, published before the 2xx.

One route (ROOMEVENTS_CALLBACK_PATH, default /v1/Callbacks/Rooms) for every method; HEAD, GET,
POST, PATCH, PUT and DELETE are callbacks, anything else is 405 with `Allow`. In order:

1. body over ROOMEVENTS_MAX_BODY_BYTES, or more than ROOMEVENTS_MAX_CALLBACK_PARAMS parameters
   (counted before any parsing) -> 413; a body not received within ROOMEVENTS_BODY_TIMEOUT_S -> 408;
   undecodable query/body -> 400; other media -> 415;
2. X-Twilio-Signature over the public URL (see service/http/urls.py), the raw query as received and, for
   form bodies, the sorted form params (JSON bodies: `bodySHA256`) -> 403 when it does not match
   the primary or the secondary auth token (HMAC-SHA1, or HMAC-SHA256 when
   X-Twilio-Webhooks-Signature-Settings says so);
3. RoomSid and StatusCallbackEvent required -> 400; unknown events and params are kept;
4. publish (acks=all, deadline) -> 204 once acknowledged; 503 + Retry-After when the broker did not
   acknowledge in time (Twilio retries; a retry has the same event_id); 202 when the record can never
   fit the broker and was parked on the dead-letter topic.

Nothing is published for a request answered 4xx.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from service import logs
from service.callbacks import signature
from service.callbacks.parse import ALLOWED_METHODS, CallbackParseError, parse_callback, require
from service.events import cloudevents, record as records
from service.http.connections import BodyTimeout, read_body
from service.http.keys import METRICS, PUBLISHER, ROOM_KEYS, ROOM_SID, SETTINGS
from service.http.responses import json_response
from service.http.urls import request_url
from service.kafka.producer import PublishError, RecordRejected
from service.metrics import Metrics
from service.settings import Settings

log = logs.get("roomevents.callbacks")
ALLOW = ", ".join(sorted(ALLOWED_METHODS))
RETRY_AFTER_S = 1
_VERIFIER = web.AppKey("verifier", signature.SignatureVerifier)
_KNOWN_EVENTS = frozenset(records.ROOM_EVENTS)
_REJECTIONS = logs.RateLimited()


def _error(status: int, message: str, headers: dict | None = None) -> web.Response:
    return json_response({"status": status, "message": message}, status=status, headers=headers)


def _count(metrics: Metrics, label: str, status: str) -> None:
    """One callback answered: Twilio's own counter, and the all-providers one."""
    metrics.callbacks.increment(label, status)
    metrics.webhooks.increment("twilio", label, status)


def _too_large(settings: Settings) -> str:
    return f"Request body exceeds {settings.max_body_bytes} bytes"


def _event_label(name: str | None) -> str:
    """Metric label: documented events by name, anything else as "other" (bounded cardinality:
    the name of a rejected request is attacker-controlled)."""
    if not name:
        return "unknown"
    return name if name in _KNOWN_EVENTS else "other"


async def handle_callback(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    metrics = app[METRICS]
    method = request.method
    if method not in ALLOWED_METHODS:
        _count(metrics, "unknown", "405")
        return _error(405, f"Method {method} is not allowed for status callbacks", {"Allow": ALLOW})
    content_length = request.content_length
    if content_length is not None and content_length > settings.max_body_bytes:
        _count(metrics, "unknown", "413")
        return _error(413, _too_large(settings))
    try:
        body = await read_body(request, settings.body_timeout_s)
    except web.HTTPRequestEntityTooLarge:
        _count(metrics, "unknown", "413")
        return _error(413, _too_large(settings))
    except BodyTimeout:
        _count(metrics, "unknown", "408")
        metrics.connections_timed_out.labels("body").inc()
        response = _error(408, f"Request body not received within {settings.body_timeout_s:g} s")
        response.force_close()
        return response
    headers = request.headers
    raw_path = request.raw_path
    try:
        parsed = parse_callback(
            method,
            raw_path.partition("?")[2],
            headers.get("Content-Type"),
            body,
            settings.max_body_bytes,
            settings.max_callback_params,
        )
    except CallbackParseError as exc:
        _count(metrics, "unknown", str(exc.status))
        return _error(exc.status, exc.message, {"Allow": ALLOW} if exc.status == 405 else None)

    url = request_url(request)
    algorithm = signature.signature_algorithm(headers.get(signature.SIGNATURE_SETTINGS_HEADER))
    ok = app[_VERIFIER].verify(
        url,
        None if parsed.json_body else parsed.body_params,
        headers.get(signature.SIGNATURE_HEADER),
        algorithm,
        body if parsed.json_body else None,
    )
    params = parsed.params
    event_name = parsed.first("StatusCallbackEvent")
    label = _event_label(event_name)
    if not ok:
        metrics.signature_failures.inc()
        _count(metrics, label, "403")
        # Anyone can send these: a few lines per window and a count, not one line each (the metric
        # counts them all); the URL is cut short, it is the client's text.
        allowed, suppressed = _REJECTIONS.allow("signature")
        if allowed:
            log.warning(
                "callback signature rejected",
                method=method,
                url=url[:200],
                algorithm=algorithm[:32],
                signed=bool(request.headers.get(signature.SIGNATURE_HEADER)),
                **({"suppressed": suppressed} if suppressed else {}),
            )
        return _error(
            403,
            "X-Twilio-Signature does not match this request"
            if request.headers.get(signature.SIGNATURE_HEADER)
            else "X-Twilio-Signature header is missing",
        )
    room_sid = parsed.first("RoomSid")
    request[ROOM_SID] = room_sid
    room_keys = app[ROOM_KEYS]
    room_name = parsed.first("RoomName")
    try:
        if not (room_sid and event_name):  # a first value present: nothing missing (else: which is)
            require(params, ("RoomSid", "StatusCallbackEvent"))
        # Without RoomName the record is keyed by the name the room is known by: one fold per room.
        known_name = None if room_name else room_keys.name_of(room_sid)
        event = records.from_callback(params, int(time.time() * 1000), known_name=known_name)
    except (CallbackParseError, records.RecordError) as exc:
        _count(metrics, label, "400")
        return _error(400, getattr(exc, "message", str(exc)))
    try:
        await app[PUBLISHER].publish(
            settings.events_topic, records.partition_key(event), records.encode(event), cloudevents.event_headers(event)
        )
    except RecordRejected as exc:
        # Retrying cannot help: it is parked on the dead-letter topic, and Twilio is told it is done.
        _count(metrics, label, "202")
        log.error(
            "callback dead-lettered",
            room_sid=event["room_sid"],
            event_type=event["type"],
            event_id=event["event_id"],
            error=str(exc),
        )
        return web.Response(status=202)
    except PublishError as exc:
        # Not acknowledged (broker hung, absent or overloaded): never a 2xx; Twilio may retry.
        _count(metrics, label, "503")
        log.warning(
            "callback not published",
            room_sid=event["room_sid"],
            event_type=event["type"],
            event_id=event["event_id"],
            error=str(exc),
        )
        return _error(503, "Event store unavailable; retry shortly", {"Retry-After": str(RETRY_AFTER_S)})
    if room_name:
        room_keys.learn(room_sid, room_name)
    elif known_name is None:
        log.info(
            "callback without RoomName for a room unknown here; keyed by its SID",
            room_sid=room_sid,
            event_type=event["type"],
        )
    _count(metrics, label, "204")
    metrics.records.increment(label)
    if logs.enabled_for(logging.DEBUG):
        log.debug(
            "callback published", room_sid=event["room_sid"], event_type=event["type"], event_id=event["event_id"]
        )
    return web.Response(status=204)


def add_routes(app: web.Application, path: str) -> None:
    app[_VERIFIER] = signature.SignatureVerifier(app[SETTINGS].auth_tokens)
    app.router.add_route("*", path, handle_callback)

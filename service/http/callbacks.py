"""Twilio status callbacks: any configured method, signature verified, published before the 2xx."""
from __future__ import annotations

import time

from aiohttp import web

from service import logs
from service.callbacks import signature
from service.callbacks.parse import ALLOWED_METHODS, CallbackParseError, parse_callback, require
from service.events import cloudevents, record as records
from service.http.app import METRICS, PUBLISHER, SETTINGS, json_response
from service.kafka.producer import RecordRejected

log = logs.get("roomevents.callbacks")
ALLOW = ", ".join(sorted(ALLOWED_METHODS))
_VERIFIER = web.AppKey("verifier", signature.SignatureVerifier)


def _error(status: int, message: str, headers: dict | None = None) -> web.Response:
    return json_response({"status": status, "message": message}, status=status, headers=headers)


def public_url(request: web.Request) -> str:
    """The URL Twilio requested and signed: the configured public base (or trusted X-Forwarded-*
    headers, or the request's own host) plus the path and the raw query exactly as received."""
    settings = request.app[SETTINGS]
    if settings.public_url:
        return settings.public_url.rstrip("/") + request.raw_path
    scheme, host = request.scheme, request.host
    if settings.trust_forwarded_headers:
        scheme = request.headers.get("X-Forwarded-Proto", scheme).split(",")[0].strip()
        host = request.headers.get("X-Forwarded-Host", host).split(",")[0].strip()
        port = request.headers.get("X-Forwarded-Port")
        if port and ":" not in host:
            host = f"{host}:{port.split(',')[0].strip()}"
    return f"{scheme}://{host}{request.raw_path}"


async def handle_callback(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    metrics = app[METRICS]
    method = request.method
    if method not in ALLOWED_METHODS:
        return _error(405, f"Method {method} is not allowed for status callbacks", {"Allow": ALLOW})
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        metrics.callbacks.labels("unknown", "413").inc()
        return _error(413, f"Request body exceeds {settings.max_body_bytes} bytes")
    try:
        parsed = parse_callback(method, request.raw_path.partition("?")[2],
                                request.headers.get("Content-Type"), body, settings.max_body_bytes)
    except CallbackParseError as exc:
        metrics.callbacks.labels("unknown", str(exc.status)).inc()
        return _error(exc.status, exc.message, {"Allow": ALLOW} if exc.status == 405 else None)

    url = public_url(request)
    algorithm = signature.signature_algorithm(request.headers.get(signature.SIGNATURE_SETTINGS_HEADER))
    ok = app[_VERIFIER].verify(url, None if parsed.json_body else parsed.body_params,
                               request.headers.get(signature.SIGNATURE_HEADER), algorithm,
                               body if parsed.json_body else None)
    event_name = parsed.first("StatusCallbackEvent") or "unknown"
    request["room_sid"] = parsed.first("RoomSid")
    if not ok:
        metrics.signature_failures.inc()
        metrics.callbacks.labels(event_name, "403").inc()
        log.warning("callback signature rejected", room_sid=request["room_sid"], event_type=event_name, url=url)
        return _error(403, "X-Twilio-Signature does not match this request")
    try:
        require(parsed.params, ("RoomSid", "StatusCallbackEvent"))
        event = records.from_callback(parsed.params, int(time.time() * 1000))
    except (CallbackParseError, records.RecordError) as exc:
        metrics.callbacks.labels(event_name, "400").inc()
        return _error(400, getattr(exc, "message", str(exc)))
    try:
        await app[PUBLISHER].publish(settings.events_topic, records.partition_key(event),
                                     records.encode(event), cloudevents.event_headers(event))
    except RecordRejected as exc:
        # Retrying cannot help: it is parked on the dead-letter topic, and Twilio is told it is done.
        metrics.callbacks.labels(event_name, "202").inc()
        log.error("callback dead-lettered", room_sid=event["room_sid"], event_type=event_name, error=str(exc))
        return web.Response(status=202)
    metrics.callbacks.labels(event_name, "204").inc()
    metrics.records.labels(event_name).inc()
    log.debug("callback published", room_sid=event["room_sid"], event_type=event_name, event_id=event["event_id"])
    return web.Response(status=204)


def add_routes(app: web.Application, path: str) -> None:
    app[_VERIFIER] = signature.SignatureVerifier(app[SETTINGS].auth_tokens)
    app.router.add_route("*", path, handle_callback)

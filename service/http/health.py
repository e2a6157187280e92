"""Health, readiness and Prometheus metrics. Not behind auth; nothing secret in them."""

from __future__ import annotations

from aiohttp import web

from service.http.keys import METRICS, READINESS, SERVER_LOAD
from service.http.responses import json_response
from service.metrics import CONTENT_TYPE


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    check = request.app[READINESS]
    if request.app[SERVER_LOAD].draining:
        return json_response({"ready": False, "reason": "shutting down"}, status=503)
    report = await check()
    return json_response(report, status=200 if report.get("ready") else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)

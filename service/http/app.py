"""The aiohttp application: its shared keys, middlewares and every route module's routes."""

from __future__ import annotations

from aiohttp import web

from service.http import callbacks, dashboard, health, openapi, providers, rooms, stream
from service.http.keys import FOLLOWER, METRICS, PUBLISHER, ROOM_KEYS, SERVER_LOAD, SETTINGS, ServerLoad
from service.http.middleware import MIDDLEWARES
from service.kafka.producer import Publisher
from service.kafka.state_follower import StateFollower
from service.metrics import Metrics
from service.settings import Settings
from service.state.room_keys import RoomKeyResolver


def build_app(settings: Settings, metrics: Metrics, publisher: Publisher, follower: StateFollower) -> web.Application:
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=settings.max_body_bytes + 1)
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[PUBLISHER] = publisher
    app[FOLLOWER] = follower
    app[ROOM_KEYS] = RoomKeyResolver(follower.index)
    app[SERVER_LOAD] = ServerLoad()
    health.add_routes(app)
    callbacks.add_routes(app, settings.callback_path)
    providers.add_routes(app)
    stream.add_routes(app)
    openapi.add_routes(app)
    rooms.add_routes(app)
    dashboard.add_routes(app)
    return app

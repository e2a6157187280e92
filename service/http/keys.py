"""What the HTTP routes share: the application's keys and the server's load counters.

Route modules and the app factory import this module; nothing imports the app module back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from service.history.store import HistoryStore
from service.kafka.producer import Publisher
from service.kafka.state_follower import StateFollower
from service.metrics import Metrics
from service.settings import Settings
from service.state.room_keys import RoomKeyResolver


@dataclass
class ServerLoad:
    """Requests being served now (for load shedding) and whether the server is shutting down."""

    in_flight: int = 0
    draining: bool = False


Readiness = Callable[[], Awaitable[dict[str, Any]]]

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
PUBLISHER = web.AppKey("publisher", Publisher)
FOLLOWER = web.AppKey("follower", StateFollower)
ROOM_KEYS = web.AppKey("room_keys", RoomKeyResolver)
SERVER_LOAD = web.AppKey("server_load", ServerLoad)
READINESS = web.AppKey("readiness", Readiness)
HISTORY = web.AppKey("history", HistoryStore)  # absent when ROOMEVENTS_DATABASE_URL is unset
ROOM_SID = web.RequestKey("room_sid", str)  # set by handlers, logged by the access log
REQUEST_ID = web.RequestKey("request_id", str)

"""Process runtimes: the ingress (HTTP + read view) and the materializer, with clean shutdown.

SIGTERM/SIGINT: readiness turns false, the listener stops accepting, in-flight requests finish
within the grace period, the producer flushes, offsets are committed, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from typing import Callable

from aiohttp import web

from service import logs
from service.history.archive import Archive
from service.history.store import HistoryStore
from service.http import health
from service.http.app import build_app
from service.http.connections import ConnectionGuard, GuardedAppRunner
from service.http.keys import HISTORY, METRICS, READINESS, SERVER_LOAD, Readiness, ServerLoad
from service.kafka.producer import Publisher
from service.kafka.state_follower import StateFollower
from service.materializer import Materializer
from service.metrics import Metrics
from service.settings import Settings, SettingsError

log = logs.get("roomevents")


GC_THRESHOLDS = (50_000, 20, 20)


def settle_gc() -> None:
    """Once a process has started: what start-up allocated (modules, the app, the state view) moves
    out of the collector's sight (gc.freeze), and young collections run every 50,000 allocations
    rather than 700. A callback allocates a few hundred short-lived objects, a batch of the
    materializer millions: at the default thresholds the collector ran every few requests and, now
    and then, a full collection over every object paused the process for tens of milliseconds (an
    ingress's p99), or took a fifth of the materializer's time."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


class IngressServer:
    """Rooms API, status callbacks, read API and stream: one aiohttp server."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        if not settings.public_url and not settings.allow_any_host:
            # Signatures would be checked against whatever Host a request names (see settings.py).
            raise SettingsError("ROOMEVENTS_PUBLIC_URL is required (or ROOMEVENTS_ALLOW_ANY_HOST=true)")
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.guard = ConnectionGuard(settings.max_connections, settings.header_timeout_s, self.metrics)
        self.publisher = Publisher(settings, self.metrics, client_id="roomevents-ingress")
        self.follower = StateFollower(settings, self.metrics)
        # Rooms that left the hot state are read from here (None: no history store configured).
        self.history = HistoryStore(settings.database_url, max_size=8, timeout=3.0) if settings.database_url else None
        self.app = build_app(settings, self.metrics, self.publisher, self.follower)
        if self.history is not None:
            self.app[HISTORY] = self.history
        self.app[READINESS] = self.readiness
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    async def readiness(self) -> dict:
        # A live metadata round trip, not the cached view: an absent broker makes the ingress unready.
        broker = False
        if self.publisher.started:
            try:
                broker = await asyncio.wait_for(self.publisher.producer.client.force_metadata_update(), 2.0)
            except (asyncio.TimeoutError, Exception):
                broker = False
        view = self.follower.caught_up.is_set()
        # The history store is not part of readiness: while it is away only reads of rooms that left
        # the hot state fail (503), and everything else goes on.
        return {
            "ready": broker and view,
            "broker": broker,
            "state_view_caught_up": view,
            "rooms": len(self.follower.index.docs),
            "history": self.history is not None,
        }

    async def start(self) -> None:
        await self.publisher.start()
        try:
            await self.follower.start()
            self.runner = GuardedAppRunner(
                self.app,
                self.guard,
                access_log=None,
                shutdown_timeout=self.settings.shutdown_grace_s,
                # After an early answer (413, 408), unread body bytes are drained this long at most.
                lingering_time=2.0,
            )
            await self.runner.setup()
            # Several worker processes share the port (SO_REUSEPORT) when ROOMEVENTS_WORKERS > 1.
            site = web.TCPSite(
                self.runner,
                self.settings.host,
                self.settings.port,
                backlog=1024,
                reuse_port=self.settings.workers > 1 or None,
            )
            await site.start()
        except BaseException:
            # E.g. the port was taken after the CLI checked it: close what started, no unclosed clients.
            if self.runner is not None:
                await self.runner.cleanup()
            await self.follower.stop()
            await self.publisher.stop()
            raise
        self.port = self.runner.addresses[0][1]
        log.info(
            "ingress listening",
            url=f"http://{self.settings.host}:{self.port}",
            public_url=self.settings.base_url(),
            callback_path=self.settings.callback_path,
            max_connections=self.guard.max_connections,
            history=self.history.where
            if self.history is not None
            else "none (ROOMEVENTS_DATABASE_URL unset): rooms that leave the hot state are no longer served",
        )

    def open_connections(self) -> int:
        return len(self.guard.open)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Drain: not ready, stop accepting, finish in-flight requests, flush, close."""
        self.app[SERVER_LOAD].draining = True
        if self.settings.drain_delay_s:
            log.info("draining: not ready, still serving", seconds=self.settings.drain_delay_s)
            await asyncio.sleep(self.settings.drain_delay_s)
        if self.runner is not None:
            await self.runner.cleanup()  # closes the listener, waits for handlers up to the grace period
        await self.publisher.stop()
        await self.follower.stop()
        if self.history is not None:
            await self.history.close()
        log.info("ingress stopped")


async def serve_health(settings: Settings, metrics: Metrics, readiness: Readiness) -> web.AppRunner:
    """/healthz, /readyz and /metrics on ROOMEVENTS_METRICS_PORT (the consumer roles). Several
    materializer worker processes share the port (SO_REUSEPORT) when ROOMEVENTS_WORKERS > 1: each
    connection is answered by one of them."""
    app = web.Application()
    app[SERVER_LOAD] = ServerLoad()
    app[METRICS] = metrics
    app[READINESS] = readiness
    health.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.metrics_port, reuse_port=settings.workers > 1 or None).start()
    return runner


class MaterializerService:
    """The materializer plus a small health/metrics server."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        clock: Callable[[], float] = time.time,
        serve_health: bool = True,
        client_id: str = "roomevents-materializer",
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.materializer = Materializer(settings, self.metrics, clock=clock, client_id=client_id)
        self.serve_health = serve_health
        self.runner: web.AppRunner | None = None
        self.task: asyncio.Task | None = None

    async def readiness(self) -> dict:
        m = self.materializer
        return {"ready": m.ready, "partitions": list(m.partitions)}

    async def start(self) -> None:
        await self.materializer.start()
        self.task = asyncio.create_task(self.materializer.run(), name="materializer")
        if self.serve_health:
            self.runner = await serve_health(self.settings, self.metrics, self.readiness)

    async def stop(self) -> None:
        await self.materializer.stop()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, self.settings.shutdown_grace_s + 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self.task.cancel()
            except Exception as exc:  # the loop died: still leave the group and flush
                log.error("materializer loop failed", error=repr(exc))
        await self.materializer.close()
        if self.runner is not None:
            await self.runner.cleanup()
        log.info("materializer stopped")


class ArchiveService:
    """The archive (state topic -> history store) plus a small health/metrics server."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        serve_health: bool = True,
        store: HistoryStore | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.archive = Archive(settings, self.metrics, store)
        self.serve_health = serve_health
        self.runner: web.AppRunner | None = None
        self.task: asyncio.Task | None = None

    async def readiness(self) -> dict:
        return self.archive.status()

    async def start(self) -> None:
        await self.archive.start()
        self.task = asyncio.create_task(self.archive.run(), name="archive")
        self.task.add_done_callback(self._ended)
        if self.serve_health:
            self.runner = await serve_health(self.settings, self.metrics, self.readiness)

    def _ended(self, task: asyncio.Task) -> None:
        # Only a refused migration (an applied migration file was edited) or a bug ends the loop early:
        # say so now, not at shutdown; readiness stays false.
        if not task.cancelled() and task.exception() is not None:
            log.error("archive stopped on an error; not ready until restarted", error=repr(task.exception()))

    async def stop(self) -> None:
        await self.archive.stop()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, self.settings.shutdown_grace_s + 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self.task.cancel()
            except Exception as exc:
                log.error("archive loop failed", error=repr(exc))
        await self.archive.close()
        if self.runner is not None:
            await self.runner.cleanup()
        log.info("archive stopped")

"""Prometheus metrics: one registry per process, names shared by the dashboards in deploy/."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from prometheus_client import CollectorRegistry, Counter as _Counter, Gauge, Histogram as _Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _CachedLabels:
    """labels() by positional values from a dict of the children already made: prometheus_client
    builds and checks the label tuple under a lock on every call, on the request path."""

    def labels(self, *values: str, **by_name: str) -> Any:
        if by_name or not values:
            return super().labels(*values, **by_name)  # type: ignore[misc]
        cache = self.__dict__.setdefault("_children_by_values", {})
        child = cache.get(values)
        if child is None:
            child = cache[values] = super().labels(*values)  # type: ignore[misc]
        return child

    def remove(self, *values: str) -> None:
        self.__dict__.pop("_children_by_values", None)
        self.__dict__.pop("_increments", None)
        super().remove(*values)  # type: ignore[misc]

    def clear(self) -> None:
        self.__dict__.pop("_children_by_values", None)
        self.__dict__.pop("_increments", None)
        super().clear()  # type: ignore[misc]


class Counter(_CachedLabels, _Counter):
    def increment(self, *values: str) -> None:
        """`labels(*values).inc()` on the request path: the child's value incremented directly (its
        `inc` only checks what holds for every child: observable, a non-negative amount)."""
        increments = self.__dict__.get("_increments")
        if increments is None:
            increments = self.__dict__["_increments"] = {}
        inc = increments.get(values)
        if inc is None:
            inc = increments[values] = self.labels(*values)._value.inc
        inc(1)


class Histogram(_CachedLabels, _Histogram):
    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        """prometheus_client's observe, the bucket found by bisection rather than a loop over all."""
        if exemplar or amount != amount or not self._labelvalues and self._labelnames:  # NaN, a parent
            return super().observe(amount, exemplar)
        self._sum.inc(amount)
        self._buckets[bisect_left(self._upper_bounds, amount)].inc(1)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.http_requests = Counter(
            "roomevents_http_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.callbacks = Counter(
            "roomevents_callbacks", "Status callbacks by event and HTTP status", ["event", "status"], registry=r
        )
        # Every provider's webhooks (twilio's status callbacks too) by provider, event and HTTP status;
        # roomevents_callbacks above stays Twilio's alone, as the dashboards in deploy/ read it.
        self.webhooks = Counter(
            "roomevents_webhooks",
            "Provider webhooks (twilio, livekit, zoom) by provider, event and HTTP status",
            ["provider", "event", "status"],
            registry=r,
        )
        self.signature_failures = Counter(
            "roomevents_signature_failures", "Callbacks rejected for their signature", registry=r
        )
        self.publish_seconds = Histogram(
            "roomevents_publish_seconds",
            "Produce latency until the broker's ack",
            ["topic"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.publish_failures = Counter(
            "roomevents_publish_failures", "Produces that failed or timed out", ["topic", "reason"], registry=r
        )
        self.records = Counter(
            "roomevents_records", "Records published (ingress) or folded (materializer) by type", ["type"], registry=r
        )
        self.dead_letters = Counter(
            "roomevents_dead_letters", "Records sent to the dead-letter topic", ["reason"], registry=r
        )
        self.shed = Counter("roomevents_shed_requests", "Requests refused because too many were in flight", registry=r)
        self.consumer_lag = Gauge(
            "roomevents_consumer_lag", "Records behind the partition end", ["partition"], registry=r
        )
        self.conflicting_documents = Counter(
            "roomevents_conflicting_state_documents",
            "State documents ignored because a second, partial fold of the same room published them",
            registry=r,
        )
        self.rooms = Gauge("roomevents_rooms", "Rooms by status", ["status"], registry=r)
        # History store (PostgreSQL): the archive's writes and the API's reads.
        self.archive_rows = Counter("roomevents_archive_rows", "Room rows written to the history store", registry=r)
        self.archive_skipped = Counter(
            "roomevents_archive_skipped", "State records the archive did not write, by reason", ["reason"], registry=r
        )
        self.archive_paused = Gauge(
            "roomevents_archive_paused", "1 while the archive waits for the history store", registry=r
        )
        self.archive_lag = Gauge(
            "roomevents_archive_lag", "State-topic records the archive has not written yet", ["partition"], registry=r
        )
        self.history_reads = Counter(
            "roomevents_history_reads", "API reads that went to the history store", ["outcome"], registry=r
        )
        # Slow and hostile clients (service/http/connections.py, service/http/stream.py).
        self.open_connections = Gauge("roomevents_open_connections", "Open HTTP connections", registry=r)
        self.connections_timed_out = Counter(
            "roomevents_connections_timed_out",
            "Requests whose head or body did not arrive in time",
            ["phase"],
            registry=r,
        )
        self.connections_evicted = Counter(
            "roomevents_connections_evicted", "Idle connections closed to admit a new one at the cap", registry=r
        )
        self.connections_refused = Counter(
            "roomevents_connections_refused", "Connections closed at once: at the cap with none idle", registry=r
        )
        self.stream_clients = Gauge("roomevents_stream_clients", "Connected stream clients", registry=r)
        self.stream_pending = Gauge(
            "roomevents_stream_pending_documents",
            "Room documents waiting to be written to stream clients (at most one per room per client)",
            registry=r,
        )
        self.stream_dropped = Counter(
            "roomevents_stream_clients_dropped", "Stream clients dropped by the server", ["reason"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def forget_archive_partition(self, partition: int) -> None:
        try:
            self.archive_lag.remove(str(partition))
        except KeyError:
            pass

    def forget_partition(self, partition: int) -> None:
        """A revoked partition's lag is its new owner's to report."""
        try:
            self.consumer_lag.remove(str(partition))
        except KeyError:
            pass

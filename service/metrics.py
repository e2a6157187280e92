"""Prometheus metrics: one registry per process, names shared by the dashboards in deploy/."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def forget_partition(self, partition: int) -> None:
        """A revoked partition's lag is its new owner's to report."""
        try:
            self.consumer_lag.remove(str(partition))
        except KeyError:
            pass

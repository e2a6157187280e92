"""Timers: end API-created rooms without a StatusCallback once their empty/unused timeout passed.

The decision is the pure `timer_due` (service/state/book.py); here it is only scanned for, once a
second, and its room-ended record published to the events topic like any other event.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiokafka import TopicPartition

from service import logs
from service.events import cloudevents, record as records
from service.kafka.producer import Publisher
from service.materializer.partitions import OwnedPartitions
from service.settings import Settings
from service.state.book import timer_due, timer_event

log = logs.get(__name__)

TIMER_INTERVAL_S = 1.0


class Timers:
    def __init__(self, settings: Settings, publisher: Publisher, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._publisher = publisher
        self._clock = clock
        self._sent: set[str] = set()  # rooms whose room-ended was published and has not come back yet
        self._last_scan = 0.0

    @property
    def sent(self) -> frozenset[str]:
        return frozenset(self._sent)

    async def maybe_fire(
        self,
        ready: bool,
        partitions: OwnedPartitions,
        highwater: Callable[[TopicPartition], int | None],
        *,
        now: bool = False,
    ) -> None:
        """Scan (at most once a second, or at once with `now`) and publish what is due."""
        if not self._settings.timers_enabled:
            return
        wall = time.monotonic()
        if wall - self._last_scan < TIMER_INTERVAL_S and not now:
            return
        self._last_scan = wall
        if not ready:
            return
        now_ms = int(self._clock() * 1000)
        # A room whose room-ended came back through the topic (or that left) is no longer in progress.
        self._sent.intersection_update(sid for _, book in partitions.items() for sid in book.rooms.live())
        for partition, book in partitions.items():
            # A timer decides from the room's whole history: only where every record is folded.
            high = highwater(TopicPartition(self._settings.events_topic, partition))
            if high is None or partitions.position(partition) < high:
                continue
            for sid, state in book.rooms.live().items():  # only a room in progress can be due
                if sid in self._sent:
                    continue
                due = timer_due(state, now_ms)
                if due is None:
                    continue
                event = timer_event(state, due, now_ms)
                try:
                    await self._publisher.publish(
                        self._settings.events_topic,
                        records.partition_key(event),
                        records.encode(event),
                        cloudevents.event_headers(event),
                    )
                except Exception as exc:  # any failure: the next scan tries again
                    log.warning("timer publish failed; will retry", room_sid=sid, error=repr(exc))
                    continue
                self._sent.add(sid)
                log.info("room ended by timeout", room_sid=sid, end_time=event["occurred_at"])

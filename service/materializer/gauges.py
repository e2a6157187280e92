"""The materializer's gauges: consumer lag per partition and rooms by status, at most once a second."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from aiokafka import TopicPartition

from service.materializer.partitions import OwnedPartitions
from service.metrics import Metrics

GAUGE_INTERVAL_S = 1.0


class Gauges:
    def __init__(
        self, metrics: Metrics, partitions: OwnedPartitions, highwater: Callable[[TopicPartition], int | None]
    ) -> None:
        self._metrics = metrics
        self._partitions = partitions
        self._highwater = highwater
        self._last = 0.0

    def after_commit(self, commits: Mapping[TopicPartition, int]) -> None:
        if time.monotonic() - self._last < GAUGE_INTERVAL_S:
            return
        self._last = time.monotonic()
        for tp, offset in commits.items():
            high = self._highwater(tp)
            if high is not None:
                self._metrics.consumer_lag.labels(str(tp.partition)).set(max(0, high - offset))
        for key, value in self._partitions.status_counts().items():
            self._metrics.rooms.labels(key).set(value)

    def forget(self, partition: int) -> None:
        """A revoked partition's lag is its new owner's to report."""
        self._metrics.forget_partition(partition)

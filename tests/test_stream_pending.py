"""The stream's per-client pending changes: coalesced by room, taken all at once in change order."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from service.http.stream import _Pending


def test_take_all_returns_each_rooms_latest_change_in_change_order_and_keeps_the_gauge() -> None:
    gauge = Gauge("pending_test", "pending", registry=CollectorRegistry())
    pending = _Pending(gauge)
    pending.add({"sid": "RMa", "v": 1})
    pending.add({"sid": "RMb", "v": 1})
    pending.add({"sid": "RMa", "v": 2})  # coalesced: RMa's latest, now the newest change
    assert pending.wake.is_set()
    assert gauge._value.get() == 2

    assert pending.take_all() == [{"sid": "RMb", "v": 1}, {"sid": "RMa", "v": 2}]
    assert gauge._value.get() == 0
    assert not pending.wake.is_set()
    assert pending.take_all() == []

    pending.add({"sid": "RMc", "v": 1})
    assert pending.take_all() == [{"sid": "RMc", "v": 1}]

"""Derived views of a room state: its status, unique name, times and participant timeline. Pure."""

from __future__ import annotations

from typing import Mapping

from service.state.shapes import ParticipantState, RoomState


def status(s: RoomState) -> str:
    if s["failed"] is not None:
        return "failed"
    if s["ended"] is not None or s["completed_seen"] is not None:
        return "completed"
    return "in-progress"


def unique_name(s: RoomState) -> str:
    if s["config"] is not None:
        return s["config"].value.get("unique_name") or s["sid"]
    return s["room_name"] or s["sid"]


def date_created_ms(s: RoomState) -> int:
    created, first_seen = s["created_ms"], s["first_seen_ms"]
    return first_seen if created is None or (first_seen is not None and first_seen < created) else created


def end_ms(s: RoomState) -> int | None:
    if s["ended"] is not None:
        return s["ended"].value.at_ms
    if s["completed_seen"] is not None:
        return s["completed_seen"].value
    if s["failed"] is not None:
        return s["failed"].order.at_ms
    return None


def end_reason(s: RoomState) -> str | None:
    if s["ended"] is not None:
        return s["ended"].value.reason
    if s["completed_seen"] is not None:
        return "callback"
    return None


def participant_interval(p: ParticipantState) -> tuple[int, int | None]:
    """(joined, left) of one participant; a leave stamped before the join (clock skew) is the join."""
    start = p["connected_ms"] if p["connected_ms"] is not None else p["first_seen_ms"]
    left = p["disconnected_ms"]
    if left is not None and left < start:
        left = start
    return start, left


def participant_edges(participants: Mapping[str, ParticipantState]) -> list[tuple[int, int]]:
    """Joins (+1) and leaves (-1) in time order; at one instant leaves sort before joins."""
    edges = []
    for p in participants.values():
        start, left = participant_interval(p)
        edges.append((start, 1))
        if left is not None:
            edges.append((left, -1))
    edges.sort()
    return edges


def peak_concurrency(participants: Mapping[str, ParticipantState]) -> int:
    """Most participants connected at the same instant, from their connect/disconnect times."""
    peak = current = 0
    for _, delta in participant_edges(participants):
        current += delta
        peak = max(peak, current)
    return peak

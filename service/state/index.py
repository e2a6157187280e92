"""RoomIndex: the read model over room documents from the state topic. Pure: no I/O."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

Doc = dict[str, Any]


class RoomIndex:
    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}
        # Unique name -> SIDs of in-progress rooms with it (normally one). Rooms sharing a name sit on
        # different state partitions, read in no fixed order, so an older room's in-progress document
        # may arrive after a newer room's: the name resolves to the most recently created of them.
        self.in_progress: dict[str, set[str]] = {}
        self.listeners: list[Callable[[Doc], None]] = []

    def put(self, doc: Doc) -> bool:
        """Take a room's newer document. Returns False (and keeps the held one) for a document of a
        second, partial fold of the room that knows less about it (see `_names_less`)."""
        sid = doc["sid"]
        # One room's documents share a state-topic partition and the fold only adds information,
        # so the latest document read is the newest state.
        held = self.docs.get(sid)
        if held is not None and _names_less(doc, held):
            return False
        self.docs[sid] = doc
        name = doc.get("unique_name") or sid
        if doc.get("status") == "in-progress":
            self.in_progress.setdefault(name, set()).add(sid)
        elif name in self.in_progress:
            self.in_progress[name].discard(sid)
            if not self.in_progress[name]:
                del self.in_progress[name]
        for listener in list(self.listeners):
            listener(doc)
        return True

    def remove(self, sid: str, position: Mapping[str, Any] | None = None) -> bool:
        """Drop a room (a tombstone on the state topic: it left the hot state). Listeners get a
        marker `{"sid": sid, "_removed": True, ...position}` (not a document: SSE skips it).
        Returns False when the room was not held."""
        held = self.docs.pop(sid, None)
        if held is None:
            return False
        name = held.get("unique_name") or sid
        sids = self.in_progress.get(name)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self.in_progress[name]
        marker = {"sid": sid, "_removed": True, **(position or {})}
        for listener in list(self.listeners):
            listener(marker)
        return True

    def get(self, sid_or_name: str) -> Doc | None:
        return self.docs.get(sid_or_name) or self.in_progress_with_name(sid_or_name)

    def in_progress_with_name(self, name: str) -> Doc | None:
        sids = self.in_progress.get(name)
        if not sids:
            return None
        return max((self.docs[sid] for sid in sids), key=_created)

    def query(self, *, status: str | None = None, unique_name: str | None = None,
              created_after_ms: int | None = None, created_before_ms: int | None = None) -> list[Doc]:
        """Rooms matching the filters, newest first (then by SID, for stable paging)."""
        out: Iterable[Doc] = self.docs.values()
        if status:
            out = (d for d in out if d.get("status") == status)
        if unique_name:
            out = (d for d in out if d.get("unique_name") == unique_name)
        if created_after_ms is not None:
            out = (d for d in out if (d.get("date_created_ms") or 0) >= created_after_ms)
        if created_before_ms is not None:
            out = (d for d in out if (d.get("date_created_ms") or 0) <= created_before_ms)
        return sorted(out, key=lambda d: (-(d.get("date_created_ms") or 0), d["sid"]))



def _named(doc: Mapping[str, Any]) -> bool:
    return doc.get("created_via") == "api" or (doc.get("unique_name") or doc["sid"]) != doc["sid"]


def _names_less(new: Mapping[str, Any], held: Mapping[str, Any]) -> bool:
    """True when `new` comes from a fold that never learned the room's name while `held` did.

    One fold's documents only gain names (a configuration or a RoomName never goes away), so this
    holds only between two folds of one SID: records of a room keyed by different names (a callback
    without RoomName for a room the ingress did not know). The named fold is the room's real one.
    """
    return _named(held) and not _named(new)


def _created(doc: Mapping[str, Any]) -> tuple:
    return (doc.get("date_created_ms") or 0, doc["sid"])

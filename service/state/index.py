"""RoomIndex: the read model over room documents from the state topic. Pure: no I/O."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

Doc = dict[str, Any]


class RoomIndex:
    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}
        # Unique name -> SID of the in-progress room holding it (the name resolves only while in progress).
        self.active_names: dict[str, str] = {}
        self.listeners: list[Callable[[Doc], None]] = []

    def put(self, doc: Doc) -> None:
        sid = doc["sid"]
        # One room's documents share a state-topic partition and the fold only adds information,
        # so the latest document read is the newest state.
        self.docs[sid] = doc
        name = doc.get("unique_name") or sid
        holder = self.docs.get(self.active_names.get(name, ""))
        if doc.get("status") == "in-progress":
            # Rooms sharing a name sit on different state partitions, read in no fixed order: an
            # older room's stale in-progress document must not take the name from a newer room.
            if holder is None or holder.get("status") != "in-progress" or holder is doc or \
                    _created(holder) <= _created(doc):
                self.active_names[name] = sid
        elif holder is not None and holder["sid"] == sid:
            del self.active_names[name]
            successor = max((d for d in self.docs.values()
                             if d.get("status") == "in-progress" and (d.get("unique_name") or d["sid"]) == name),
                            key=_created, default=None)
            if successor is not None:
                self.active_names[name] = successor["sid"]
        for listener in list(self.listeners):
            listener(doc)

    def get(self, sid_or_name: str) -> Doc | None:
        doc = self.docs.get(sid_or_name)
        if doc is not None:
            return doc
        sid = self.active_names.get(sid_or_name)
        return self.docs.get(sid) if sid else None

    def in_progress_with_name(self, name: str) -> Doc | None:
        sid = self.active_names.get(name)
        return self.docs.get(sid) if sid else None

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



def _created(doc: Mapping[str, Any]) -> tuple:
    return (doc.get("date_created_ms") or 0, doc["sid"])

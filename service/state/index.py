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

    def put(self, doc: Doc) -> None:
        sid = doc["sid"]
        # One room's documents share a state-topic partition and the fold only adds information,
        # so the latest document read is the newest state.
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

    def get(self, sid_or_name: str) -> Doc | None:
        return self.docs.get(sid_or_name) or self.in_progress_with_name(sid_or_name)

    def in_progress_with_name(self, name: str) -> Doc | None:
        sids = self.in_progress.get(name)
        if not sids:
            return None
        return max((self.docs[sid] for sid in sids), key=_created)

    def query(
        self,
        *,
        status: str | None = None,
        unique_name: str | None = None,
        created_after_ms: int | None = None,
        created_before_ms: int | None = None,
    ) -> list[Doc]:
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

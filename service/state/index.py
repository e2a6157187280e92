"""RoomIndex: the read model over room documents from the state topic. Pure: no I/O.

Rooms are held compactly: each document as zlib-compressed JSON (a typical 8-participant room:
~5 KiB of JSON, under 1 KiB compressed) plus a small summary of the fields lists and lookups
filter on. A document is decoded only when it is read (a fetch, a page of a list, a stream).
"""

from __future__ import annotations

import zlib
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import orjson

Doc = dict[str, Any]
# zlib level 1: most of the size gain at a third of the cost of the default level.
_LEVEL = 1


class RoomSummary(NamedTuple):
    """What lists, name lookups and the stream's backlog need without decoding a document."""

    sid: str
    unique_name: str
    status: str | None
    created_via: str | None
    failure_reason: str | None
    date_created_ms: int
    end_time_ms: int | None
    partition: int  # where the document sits on the state topic (stream positions)
    offset: int


class _Stored(NamedTuple):
    summary: RoomSummary
    blob: bytes


def _summary(doc: Mapping[str, Any], partition: int, offset: int) -> RoomSummary:
    return RoomSummary(
        doc["sid"],
        doc.get("unique_name") or doc["sid"],
        doc.get("status"),
        doc.get("created_via"),
        doc.get("failure_reason"),
        doc.get("date_created_ms") or 0,
        doc.get("end_time_ms"),
        partition,
        offset,
    )


class CompactDocs(Mapping[str, Doc]):
    """SID -> room document, decoded on access (each access returns a fresh dict)."""

    def __init__(self) -> None:
        self._stored: dict[str, _Stored] = {}

    def __getitem__(self, sid: str) -> Doc:
        stored = self._stored[sid]
        doc = orjson.loads(zlib.decompress(stored.blob))
        doc["_partition"] = stored.summary.partition
        doc["_offset"] = stored.summary.offset
        return doc

    def __len__(self) -> int:
        return len(self._stored)

    def __iter__(self) -> Iterator[str]:
        return iter(self._stored)

    def __contains__(self, sid: object) -> bool:
        return sid in self._stored

    def summary(self, sid: str) -> RoomSummary | None:
        stored = self._stored.get(sid)
        return stored.summary if stored is not None else None

    def summaries(self) -> Iterator[RoomSummary]:
        return (stored.summary for stored in self._stored.values())

    def blob(self, sid: str) -> bytes | None:
        stored = self._stored.get(sid)
        return stored.blob if stored is not None else None

    def json(self, sid: str) -> bytes | None:
        """The room's document as JSON (as read from the state topic), without decoding it."""
        stored = self._stored.get(sid)
        return zlib.decompress(stored.blob) if stored is not None else None


class RoomIndex:
    def __init__(self) -> None:
        self.docs = CompactDocs()
        # Unique name -> SIDs of in-progress rooms with it (normally one). Rooms sharing a name sit on
        # different state partitions, read in no fixed order, so an older room's in-progress document
        # may arrive after a newer room's: the name resolves to the most recently created of them.
        self.in_progress: dict[str, set[str]] = {}
        # Called with each newly taken document, and with {"sid": ..., "retired": True} when a room
        # leaves the hot state.
        self.listeners: list[Callable[[Doc], None]] = []

    def put(self, doc: Doc, raw: bytes | None = None, *, partition: int = 0, offset: int = -1) -> bool:
        """Take a room's newer document (`raw`: its JSON as read from the topic, when at hand; the
        position: where it sits on the state topic). Listeners hear of it unless it is the very
        document held (re-published by a snapshot). Returns False, keeping the held one, for a
        document of a second, partial fold of the room that knows less about it (`_names_less`)."""
        sid = doc["sid"]
        # One room's documents share a state-topic partition and the fold only adds information,
        # so the latest document read is the newest state.
        held = self.docs.summary(sid)
        if held is not None and _names_less(doc, held):
            return False
        # The JSON as read, unless it spans lines (not orjson's: no writer of ours): streams send it
        # as one `data:` line.
        text = raw if raw is not None and b"\n" not in raw else _public_json(doc)
        blob = zlib.compress(text, _LEVEL)
        summary = _summary(doc, partition, offset)
        unchanged = held is not None and self.docs.blob(sid) == blob
        self.docs._stored[sid] = _Stored(summary, blob)
        if unchanged:
            return True  # same document at a newer position
        doc["_partition"] = partition
        doc["_offset"] = offset
        doc["_json"] = text  # what streams send: each client writes it as is, none encodes it again
        name = summary.unique_name
        if summary.status == "in-progress":
            self.in_progress.setdefault(name, set()).add(sid)
        else:
            self._drop_name(name, sid)
        for listener in list(self.listeners):
            listener(doc)
        return True

    def remove(self, sid: str) -> bool:
        """A tombstone: the room left the hot state (retired). Returns whether it was held."""
        stored = self.docs._stored.pop(sid, None)
        if stored is None:
            return False
        self._drop_name(stored.summary.unique_name, sid)
        for listener in list(self.listeners):
            listener({"sid": sid, "retired": True})
        return True

    def _drop_name(self, name: str, sid: str) -> None:
        if name in self.in_progress:
            self.in_progress[name].discard(sid)
            if not self.in_progress[name]:
                del self.in_progress[name]

    def get(self, sid_or_name: str) -> Doc | None:
        return self.docs.get(sid_or_name) or self.in_progress_with_name(sid_or_name)

    def in_progress_with_name(self, name: str) -> Doc | None:
        sids = self.in_progress.get(name)
        if not sids:
            return None
        newest = max((self.docs.summary(sid) for sid in sids), key=_created)
        return self.docs[newest.sid]

    def query(self, *, status: str | None = None, unique_name: str | None = None) -> list[RoomSummary]:
        """Summaries of the rooms matching the filters, newest first (then by SID, for stable paging)."""
        out = self.docs.summaries()
        if status:
            out = (s for s in out if s.status == status)
        if unique_name:
            out = (s for s in out if s.unique_name == unique_name)
        return sorted(out, key=lambda s: (-s.date_created_ms, s.sid))


def _public_json(doc: Mapping[str, Any]) -> bytes:
    """The document as JSON, without what the index adds to it (`_partition`, `_offset`, `_json`)."""
    return orjson.dumps({k: v for k, v in doc.items() if not k.startswith("_")})


def _named(doc: Mapping[str, Any] | RoomSummary) -> bool:
    if isinstance(doc, RoomSummary):
        return doc.created_via == "api" or doc.unique_name != doc.sid
    return doc.get("created_via") == "api" or (doc.get("unique_name") or doc["sid"]) != doc["sid"]


def _names_less(new: Mapping[str, Any], held: RoomSummary) -> bool:
    """True when `new` comes from a fold that never learned the room's name while `held` did.

    One fold's documents only gain names (a configuration or a RoomName never goes away), so this
    holds only between two folds of one SID: records of a room keyed by different names (a callback
    without RoomName for a room the ingress did not know). The named fold is the room's real one.
    """
    return _named(held) and not _named(new)


def _created(summary: RoomSummary) -> tuple:
    return (summary.date_created_ms, summary.sid)

"""GET /v1/Streams/Rooms: Server-Sent Events of room-state changes, for dashboards.

A new client gets a snapshot of the in-progress rooms, then every change (`room`), and
`room-retired` with the SID when a room leaves the hot state. Each event's id is the
stream position (the next state-topic offset of every partition); a client that reconnects with
`Last-Event-ID` gets every room whose document changed after that position, then live changes:
no change is lost, though several changes of one room while away arrive as its latest document.

Events: `room` (a room document), then `snapshot-complete` or `resume-complete` (`{"rooms": N}`,
the backlog's size), then `room` for every change. Backlog events carry no id; the `*-complete`
event carries the position and `retry: 1000`, so a browser's EventSource reconnects after a second
(not its default three) and sends that position as `Last-Event-ID` by itself.

Query parameters, for clients that cannot set headers:
* `LastEventId`: the position to resume from when no `Last-Event-ID` header is sent (an
  EventSource that had to be created anew, e.g. after a proxy answered 502, cannot set the header).
* `RecentlyEnded=N` (0..1000, default 0): a snapshot also carries the N rooms that ended most
  recently (by end time), so a dashboard opened now can show what just ended. Ignored on a resume.

Slow clients (issue 16): what waits for a client is at most one document per room, the room's
latest (`_Pending`: changes coalesce by SID), so a client that reads slowly gets fewer, newer
documents and one that stops reading costs the server no more than the rooms themselves; a write
that does not complete within ROOMEVENTS_STREAM_WRITE_TIMEOUT_S drops the client
(`roomevents_stream_clients_dropped_total{reason="write-timeout"}`), which then resumes with
`Last-Event-ID` and misses nothing.
"""

from __future__ import annotations

import asyncio
import heapq

import orjson
from aiohttp import web
from prometheus_client import Gauge

from service import logs
from service.http.auth import requires_basic_auth
from service.http.keys import FOLLOWER, METRICS, SERVER_LOAD, SETTINGS
from service.rooms.errors import TwilioError
from service.state.book import UNIQUE_NAME_TAKEN

log = logs.get("roomevents.stream")
KEEPALIVE_S = 15.0
POLL_S = 1.0  # how soon a stream notices shutdown (the client then resumes elsewhere)
RETRY_MS = 1000  # EventSource reconnection delay, sent with the position
MAX_RECENTLY_ENDED = 1000
BACKLOG_WRITE_BYTES = 256 * 1024  # a snapshot's documents are written in chunks of about this size


def _encode_position(position: dict[int, int]) -> str:
    return ".".join(f"{p}-{o}" for p, o in sorted(position.items()))


def _decode_position(text: str) -> dict[int, int] | None:
    if not text:
        return None
    try:
        return {int(p): int(o) for p, o in (part.split("-") for part in text.split(".") if part)}
    except ValueError:
        return None


class _Pending:
    """One client's changes not yet written: at most one per room, the latest (coalesced by SID), in
    the order of their latest change, so memory is bounded by the rooms, not by the changes, and a
    position sent with a document never passes a change still waiting (see `take`)."""

    __slots__ = ("docs", "wake", "gauge")

    def __init__(self, gauge: Gauge) -> None:
        self.docs: dict[str, dict] = {}
        self.wake = asyncio.Event()
        self.gauge = gauge

    def add(self, doc: dict) -> None:
        # Move the room to the end: its latest change is the newest pending. Within a partition the
        # pending documents then stay in offset order, so each `id` sent covers only written changes.
        if self.docs.pop(doc["sid"], None) is None:
            self.gauge.inc()
        self.docs[doc["sid"]] = doc
        self.wake.set()

    def take_all(self) -> list[dict]:
        """Every pending document, oldest change first (empty: wait on `wake`)."""
        docs = list(self.docs.values())
        if docs:
            self.gauge.dec(len(docs))
            self.docs.clear()
        self.wake.clear()
        return docs

    def clear(self) -> None:
        self.gauge.dec(len(self.docs))
        self.docs.clear()


class _SlowClient(Exception):
    """A write did not complete within ROOMEVENTS_STREAM_WRITE_TIMEOUT_S."""


@requires_basic_auth
async def stream_rooms(request: web.Request) -> web.StreamResponse:
    recently_ended = _recently_ended(request.query.get("RecentlyEnded"))
    follower = request.app[FOLLOWER]
    metrics = request.app[METRICS]
    write_timeout = request.app[SETTINGS].stream_write_timeout_s
    await follower.caught_up.wait()

    pending = _Pending(metrics.stream_pending)
    follower.index.listeners.append(pending.add)  # before the snapshot, so nothing slips between
    metrics.stream_clients.inc()
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )

    async def write(data: bytes) -> None:
        # A client that stops reading fills the socket buffers and the write waits: past the timeout
        # it is dropped (it reconnects with Last-Event-ID and misses nothing) instead of pinning memory.
        try:
            await asyncio.wait_for(response.write(data), write_timeout)
        except TimeoutError:
            raise _SlowClient() from None

    try:
        await response.prepare(request)
        resume = _decode_position(request.headers.get("Last-Event-ID") or request.query.get("LastEventId", ""))
        position = dict(follower.positions)
        rooms = follower.index.docs
        if resume is None:
            backlog = [s for s in rooms.summaries() if s.status == "in-progress"]
            if recently_ended:
                backlog += heapq.nlargest(
                    recently_ended,
                    (
                        s
                        for s in rooms.summaries()
                        if s.status != "in-progress" and s.failure_reason != UNIQUE_NAME_TAKEN
                    ),
                    key=lambda s: (s.end_time_ms or 0, s.sid),
                )
            kind = "snapshot"
        else:
            backlog = [s for s in rooms.summaries() if s.offset >= resume.get(s.partition, 0)]
            kind = "resume"
        backlog.sort(key=lambda s: (s.partition, s.offset))
        # Backlog events carry no id: a client cut off mid-backlog resumes from where it was, not
        # from the end of a backlog it never finished reading.
        chunk: list[bytes] = []
        size = 0
        for summary in backlog:
            text = rooms.json(summary.sid)
            if text is not None:
                chunk.append(_json_event("room", text, None))
                size += len(chunk[-1])
                if size >= BACKLOG_WRITE_BYTES:
                    await write(b"".join(chunk))
                    chunk, size = [], 0
        if chunk:
            await write(b"".join(chunk))
        await write(_event(kind + "-complete", {"rooms": len(backlog)}, _encode_position(position), retry_ms=RETRY_MS))
        idle = 0.0
        while not request.app[SERVER_LOAD].draining:
            docs = pending.take_all()
            if not docs:
                try:
                    await asyncio.wait_for(pending.wake.wait(), POLL_S)
                except TimeoutError:
                    idle += POLL_S
                    if idle >= KEEPALIVE_S:
                        idle = 0.0
                        await write(b": keepalive\n\n")
                continue
            idle = 0.0
            # Everything pending in one write: a busy server runs this loop once per few event-loop
            # iterations, so one document per write would let changes queue up behind each other.
            events = []
            for doc in docs:
                if doc.get("retired"):  # left the hot state: views drop it
                    events.append(_event("room-retired", {"sid": doc["sid"]}, None))
                    continue
                partition, offset = doc.get("_partition", 0), doc.get("_offset", 0)
                if offset < position.get(partition, 0):
                    continue  # already covered by the snapshot
                position[partition] = offset + 1
                # The document's JSON as the index read it (RoomIndex.put): written as is.
                events.append(_json_event("room", doc["_json"], _encode_position(position)))
            if events:
                await write(b"".join(events))
    except _SlowClient:
        metrics.stream_dropped.labels("write-timeout").inc()
        log.warning("stream client dropped: it did not read in time", seconds=write_timeout)
        if request.transport is not None:
            request.transport.abort()  # frees what the kernel holds for it too
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        follower.index.listeners.remove(pending.add)
        pending.clear()
        metrics.stream_clients.dec()
    return response


def _recently_ended(value: str | None) -> int:
    if value is None or value == "":
        return 0
    try:
        n = int(value)
    except ValueError:
        n = -1
    if not 0 <= n <= MAX_RECENTLY_ENDED:
        raise TwilioError(20001, f"RecentlyEnded must be an integer from 0 to {MAX_RECENTLY_ENDED}", 400)
    return n


def _event(name: str, data: dict, event_id: str | None, retry_ms: int | None = None) -> bytes:
    return _json_event(name, orjson.dumps(data), event_id, retry_ms)


def _json_event(name: str, text: bytes, event_id: str | None, retry_ms: int | None = None) -> bytes:
    """An event whose data is `text`, JSON on one line (as orjson writes it: a newline would end the
    event's data early; SSE data is one `data:` line here)."""
    head = b"id: " + event_id.encode() + b"\n" if event_id is not None else b""
    if retry_ms is not None:
        head += b"retry: %d\n" % retry_ms
    return head + b"event: " + name.encode() + b"\ndata: " + text + b"\n\n"


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/Streams/Rooms", stream_rooms)

"""GET /v1/Streams/Rooms: Server-Sent Events of room-state changes, for dashboards.

A new client gets a snapshot of the in-progress rooms, then every change. Each event's id is the
stream position (the next state-topic offset of every partition); a client that reconnects with
`Last-Event-ID` gets every room whose document changed after that position, then live changes:
no change is lost, though several changes of one room while away arrive as its latest document.
"""
from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from service import logs
from service.http.auth import requires_basic_auth
from service.http.keys import FOLLOWER, SERVER_LOAD

log = logs.get("roomevents.stream")
QUEUE_LIMIT = 10000
KEEPALIVE_S = 15.0
POLL_S = 1.0  # how soon a stream notices shutdown (the client then resumes elsewhere)


def _encode_position(position: dict[int, int]) -> str:
    return ".".join(f"{p}-{o}" for p, o in sorted(position.items()))


def _decode_position(text: str) -> dict[int, int] | None:
    if not text:
        return None
    try:
        return {int(p): int(o) for p, o in (part.split("-") for part in text.split(".") if part)}
    except ValueError:
        return None


def _public(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


@requires_basic_auth
async def stream_rooms(request: web.Request) -> web.StreamResponse:
    follower = request.app[FOLLOWER]
    await follower.caught_up.wait()

    queue: asyncio.Queue = asyncio.Queue(QUEUE_LIMIT)
    overflow = asyncio.Event()

    def listener(doc: dict) -> None:
        try:
            queue.put_nowait(doc)
        except asyncio.QueueFull:
            overflow.set()  # the client reconnects with Last-Event-ID and catches up without gaps

    follower.index.listeners.append(listener)  # before the snapshot, so nothing slips between
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    try:
        resume = _decode_position(request.headers.get("Last-Event-ID", ""))
        position = dict(follower.positions)
        docs = list(follower.index.docs.values())
        if resume is None:
            backlog = [d for d in docs if d.get("status") == "in-progress"]
            kind = "snapshot"
        else:
            backlog = [d for d in docs if d.get("_offset", -1) >= resume.get(d.get("_partition"), 0)]
            kind = "resume"
        backlog.sort(key=lambda d: (d.get("_partition", 0), d.get("_offset", 0)))
        # Backlog events carry no id: a client cut off mid-backlog resumes from where it was, not
        # from the end of a backlog it never finished reading.
        for doc in backlog:
            await response.write(_event("room", _public(doc), None))
        await response.write(_event(kind + "-complete", {"rooms": len(backlog)}, _encode_position(position)))
        idle = 0.0
        while not overflow.is_set() and not request.app[SERVER_LOAD].draining:
            try:
                doc = await asyncio.wait_for(queue.get(), POLL_S)
            except TimeoutError:
                idle += POLL_S
                if idle >= KEEPALIVE_S:
                    idle = 0.0
                    await response.write(b": keepalive\n\n")
                continue
            idle = 0.0
            if doc.get("_removed"):
                continue  # a room leaving the hot state is no change of the room
            partition, offset = doc.get("_partition", 0), doc.get("_offset", 0)
            if offset < position.get(partition, 0):
                continue  # already covered by the snapshot
            position[partition] = offset + 1
            await response.write(_event("room", _public(doc), _encode_position(position)))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        follower.index.listeners.remove(listener)
    return response


def _event(name: str, data: dict, event_id: str | None) -> bytes:
    head = b"id: " + event_id.encode() + b"\n" if event_id is not None else b""
    return head + b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/Streams/Rooms", stream_rooms)

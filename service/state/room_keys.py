"""Which partition key a room's records use, for callbacks that do not say.

Records are keyed by the room's unique name (Twilio's `RoomName`), so a room's create and all of
its callbacks meet in one fold. A callback without `RoomName` would otherwise fall back to the
room SID, land on another partition and start a second, partial fold of the same room whose
documents overwrite the real one on the state topic. The ingress resolves such a callback's name
from what it knows: the read view (every room the materializer has published, rebuilt from the
state topic on every start, so it survives restarts) and, before a document exists, the names of
rooms this process has just created or seen named in a callback.

Pure domain code: no I/O.
"""

from __future__ import annotations

from collections import OrderedDict

from service.state.index import RoomIndex

# Names learned in this process (creates, named callbacks) until the read view has the room.
LEARNED_CAPACITY = 65_536


class RoomKeyResolver:
    def __init__(self, index: RoomIndex, capacity: int = LEARNED_CAPACITY) -> None:
        self._index = index
        self._capacity = capacity
        self._learned: OrderedDict[str, str] = OrderedDict()

    def learn(self, room_sid: str, unique_name: str | None) -> None:
        """Remember a room's name from a create or a callback that carried `RoomName`."""
        if not unique_name or unique_name == room_sid:
            return
        self._learned[room_sid] = unique_name
        self._learned.move_to_end(room_sid)
        while len(self._learned) > self._capacity:
            self._learned.popitem(last=False)

    def name_of(self, room_sid: str) -> str | None:
        """The unique name the room's records are keyed by, or None when unknown here."""
        doc = self._index.docs.get(room_sid)
        if doc is not None and doc.get("unique_name"):
            return doc["unique_name"]
        return self._learned.get(room_sid)

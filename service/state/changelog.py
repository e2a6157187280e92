"""The changelog record of a room: its fold state and version, as bytes. Pure: no I/O.

Key: the room SID (a tombstone when it retires). Keys that start with `__` are not rooms:
`__retired__:<SID>` remembers a retired room (its end time) so a late event cannot bring it
back; `__checkpoint__` says where a restore starts (service/kafka/checkpoints.py).
"""

from __future__ import annotations

from typing import Optional

import msgspec

from service.state.shapes import RoomState

RETIRED_PREFIX = "__retired__:"


class RoomEntry(msgspec.Struct, array_like=True):
    version: Optional[int]
    state: RoomState


class RetiredEntry(msgspec.Struct, array_like=True):
    ended_ms: int


_encoder = msgspec.json.Encoder()
_room_decoder = msgspec.json.Decoder(RoomEntry)
_retired_decoder = msgspec.json.Decoder(RetiredEntry)


def encode_room(state: RoomState, version: int | None) -> bytes:
    return _encoder.encode(RoomEntry(version, state))


def decode_room(value: bytes) -> tuple[RoomState, int | None]:
    entry = _room_decoder.decode(value)
    return entry.state, entry.version


def retired_key(sid: str) -> bytes:
    return (RETIRED_PREFIX + sid).encode()


def encode_retired(ended_ms: int) -> bytes:
    return _encoder.encode(RetiredEntry(ended_ms))


def decode_retired(value: bytes) -> int:
    return _retired_decoder.decode(value).ended_ms

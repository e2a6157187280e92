"""A callback without RoomName reaches its room's one fold (issue: the README's callback corrupted `demo`).

Records are keyed by the room's unique name. A callback that omits RoomName used to be keyed by the
room SID: another partition, a second partial fold, and its document replaced the real one on the
state topic. The ingress now resolves the name; the read view never lets a nameless fold's document
replace a named one.
"""

from __future__ import annotations

import time

import aiohttp
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings as hsettings, strategies as st

from service.events.record import decode, format_ms, from_callback, partition_key, room_created
from service.metrics import Metrics
from service.rooms.params import parse_create_form
from service.runtime import IngressServer
from service.state.book import RoomBook
from service.state.index import RoomIndex
from service.state.render import render
from service.state.room_keys import RoomKeyResolver
from tests.helpers import basic_auth, read_topic, running_system, wait_until
from tests.test_end_to_end import signed

PARTITIONS = 3


def _partition(key: bytes) -> int:
    return DefaultPartitioner()(key, list(range(PARTITIONS)), list(range(PARTITIONS)))


async def _create(http, base: str, name: str) -> tuple[int, dict]:
    async with http.post(f"{base}/v1/Rooms", data={"Type": "group", "UniqueName": name}, headers=basic_auth()) as resp:
        return resp.status, await resp.json()


async def test_readme_callback_without_room_name_ends_the_named_room(settings):
    assert settings.topic_partitions == PARTITIONS
    async with running_system(settings) as (ingress, services), aiohttp.ClientSession() as http:
        base = ingress.url
        # A name whose partition differs from its room's SID partition: the case that corrupted rooms.
        for attempt in range(20):
            name = f"demo-{attempt}"
            status, room = await _create(http, base, name)
            assert status == 201, room
            if _partition(name.encode()) != _partition(room["sid"].encode()):
                break
        else:
            raise AssertionError("no room whose name and SID fall on different partitions")
        sid = room["sid"]

        # Restart the ingress: the key index is the read view, rebuilt from the state topic.
        await ingress.stop()
        ingress = IngressServer(settings, Metrics())
        await ingress.start()
        try:
            await wait_until(lambda: ingress.follower.caught_up.is_set())
            base = ingress.url
            # Exactly the README's callback: RoomSid, StatusCallbackEvent and Timestamp only.
            now = format_ms(int(time.time() * 1000))
            params = {"RoomSid": sid, "StatusCallbackEvent": "room-ended", "Timestamp": now}
            url = f"{base}{settings.callback_path}"
            async with http.post(url, data=params, headers=signed(url, params)) as resp:
                assert resp.status == 204, await resp.text()
            await wait_until(lambda: ingress.follower.index.docs[sid]["status"] == "completed")
            async with http.get(f"{base}/v1/Rooms/{sid}", headers=basic_auth()) as resp:
                done = await resp.json()
            assert done["status"] == "completed"
            assert done["unique_name"] == name
            assert done["type"] == "group"
            assert done["account_sid"] == settings.twilio_account_sid
            assert done["date_created"] == room["date_created"]
            assert done["end_time"] is not None and done["duration"] is not None
            # The name is free again, and the completed room stays completed.
            status, again = await _create(http, base, name)
            assert status == 201, again
            assert again["sid"] != sid
            async with http.get(f"{base}/v1/Rooms/{sid}", headers=basic_auth()) as resp:
                assert (await resp.json())["status"] == "completed"
        finally:
            await ingress.stop()

    events = await read_topic(settings.kafka_bootstrap_servers, settings.events_topic)
    of_room = [m for m in events if decode(m.value)["room_sid"] == sid]
    assert {m.key for m in of_room} == {name.encode()}, "every record of the room has the name as key"
    states = await read_topic(settings.kafka_bootstrap_servers, settings.state_topic)
    docs = [decode_doc(m.value) for m in states if m.key == sid.encode()]
    assert docs and all(d["unique_name"] == name for d in docs), "no nameless document of the room"


def decode_doc(raw: bytes) -> dict:
    import orjson

    return orjson.loads(raw)


# ---------------------------------------------------------------- the read view's guard


def _doc(sid: str, name: str, via: str, status: str) -> dict:
    return {"sid": sid, "unique_name": name, "created_via": via, "status": status, "date_created_ms": 1}


def test_a_nameless_folds_document_never_replaces_the_named_one():
    index = RoomIndex()
    assert index.put(_doc("RM1", "demo", "api", "in-progress"))
    assert index.put(_doc("RM1", "RM1", "callback", "completed")) is False
    assert index.get("RM1")["unique_name"] == "demo" and index.get("demo")["sid"] == "RM1"
    # The named fold's own newer document is taken, and a nameless room is updated as usual.
    assert index.put(_doc("RM1", "demo", "api", "completed"))
    assert index.get("RM1")["status"] == "completed"
    assert index.put(_doc("RM2", "RM2", "callback", "in-progress"))
    assert index.put(_doc("RM2", "RM2", "callback", "completed"))
    assert index.put(_doc("RM2", "named-later", "callback", "completed"))  # a name only adds


# ---------------------------------------------------------------- property: with or without RoomName, one fold

ACCOUNT = "AC" + "0" * 31 + "1"
T0 = 1_900_000_000_000
SID = "RM" + "ab" * 16
NAME = "standup"
EVENTS = st.sampled_from(["participant-connected", "participant-disconnected", "track-added", "room-ended"])


def _callback(event: str, tick: int, participant: int, with_name: bool) -> dict[str, list[str]]:
    raw = {
        "AccountSid": ACCOUNT,
        "RoomSid": SID,
        "RoomType": "group",
        "StatusCallbackEvent": event,
        "RoomStatus": "completed" if event == "room-ended" else "in-progress",
        "Timestamp": format_ms(T0 + tick * 1000),
        "ParticipantSid": f"PA{participant:032x}",
        "ParticipantIdentity": f"user-{participant}",
    }
    if event == "track-added":
        raw |= {"TrackSid": f"MT{participant:032x}", "TrackKind": "audio"}
    if with_name:
        raw["RoomName"] = NAME
    return {k: [v] for k, v in raw.items()}


def _create_record() -> dict:
    form = {"Type": ["group"], "UniqueName": [NAME]}
    config = parse_create_form(form).to_dict() | {"account_sid": ACCOUNT, "sid": SID}
    return room_created(ACCOUNT, SID, config, T0, form)


def _fold_by_partition(records: list[dict]) -> dict[int, RoomBook]:
    books: dict[int, RoomBook] = {}
    for record in records:
        books.setdefault(_partition(partition_key(record)), RoomBook()).apply(record)
    return books


@hsettings(max_examples=120, deadline=None, database=None)
@given(
    st.lists(st.tuples(EVENTS, st.integers(1, 30), st.integers(0, 3), st.booleans()), min_size=1, max_size=25),
    st.sampled_from(["read-view", "learned"]),
)
def test_callbacks_with_and_without_room_name_fold_into_one_room(callbacks, knowledge):
    create = _create_record()
    index = RoomIndex()
    resolver = RoomKeyResolver(index)
    if knowledge == "read-view":  # the materializer's document is already in the view
        book = RoomBook()
        book.apply(create)
        index.put(render(book.rooms[SID]))
    else:  # not yet: this ingress created the room a moment ago
        resolver.learn(SID, NAME)
    mixed = [create]
    named = [create]
    for event, tick, participant, with_name in callbacks:
        params = _callback(event, tick, participant, with_name)
        known = None if with_name else resolver.name_of(SID)
        mixed.append(from_callback(params, T0 + tick * 1000 + 5, known_name=known))
        named.append(from_callback(_callback(event, tick, participant, True), T0 + tick * 1000 + 5))
    books = _fold_by_partition(mixed)
    holders = [b for b in books.values() if SID in b.rooms]
    assert len(holders) == 1, "the room's records must reach one fold"
    expected = RoomBook()
    expected.apply_all(named)
    got, want = render(holders[0].rooms[SID]), render(expected.rooms[SID])
    # Event ids hash the parameters received, and break ties of equal Timestamps: which of two
    # simultaneous events is "last" may differ, not when it was.
    got_last, want_last = got.pop("last_event"), want.pop("last_event")
    assert got == want
    assert got_last["occurred_at"] == want_last["occurred_at"]
    assert got["unique_name"] == NAME and got["type"] == "group"

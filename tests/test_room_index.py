"""RoomIndex: names resolve to the in-progress room whatever order the state partitions are read in."""

from __future__ import annotations

import itertools

import orjson

from service.state.index import RoomIndex


def doc(sid: str, status: str, created: int, name: str = "shared") -> dict:
    return {"sid": sid, "unique_name": name, "status": status, "date_created_ms": created}


def test_reused_name_resolves_to_the_in_progress_room_in_any_read_order():
    # Room A had the name and completed; room B took it afterwards. Their documents live on
    # different partitions, so a fresh reader may see them in any interleaving that keeps each
    # room's own order.
    a = [doc("RMa", "in-progress", 1), doc("RMa", "completed", 1)]
    b = [doc("RMb", "in-progress", 2)]
    for positions in itertools.combinations(range(3), 2):
        order, ai, bi = [], iter(a), iter(b)
        for i in range(3):
            order.append(next(ai) if i in positions else next(bi))
        index = RoomIndex()
        for d in order:
            index.put(d)
        assert index.get("shared")["sid"] == "RMb", [d["sid"] + d["status"] for d in order]
        assert index.in_progress_with_name("shared")["sid"] == "RMb"


def test_name_is_free_once_its_room_completes():
    index = RoomIndex()
    index.put(doc("RMa", "in-progress", 1))
    index.put(doc("RMa", "completed", 1))
    assert index.in_progress_with_name("shared") is None
    assert index.get("RMa")["status"] == "completed"  # still readable by SID
    assert index.get("shared") is None


def test_a_tombstone_removes_the_room_and_tells_the_listeners():
    index = RoomIndex()
    heard = []
    index.listeners.append(heard.append)
    index.put(doc("RMa", "completed", 1))
    index.put(doc("RMb", "in-progress", 2, name="live"))
    assert index.remove("RMa")
    assert index.get("RMa") is None and "RMa" not in index.docs
    assert heard[-1] == {"sid": "RMa", "retired": True}
    assert not index.remove("RMa")  # not held any more: nothing to tell
    assert len(heard) == 3
    # Should an in-progress room be removed, its name no longer resolves either.
    assert index.remove("RMb")
    assert index.get("live") is None and index.in_progress == {}
    assert [s.sid for s in index.query()] == []


def test_listeners_get_each_document_as_json_on_one_line_to_send_as_is():
    """Streams write `_json` as an event's one `data:` line, without encoding the document again: the
    bytes read from the state topic, unless they span lines (then the document re-encoded)."""
    index = RoomIndex()
    heard = []
    index.listeners.append(heard.append)
    as_read = orjson.dumps(doc("RMa", "in-progress", 1))
    index.put(orjson.loads(as_read), as_read, partition=2, offset=7)
    assert heard[-1]["_json"] is as_read and index.docs.json("RMa") == as_read
    assert (heard[-1]["_partition"], heard[-1]["_offset"]) == (2, 7)

    pretty = orjson.dumps(doc("RMa", "completed", 1), option=orjson.OPT_INDENT_2)
    assert b"\n" in pretty
    index.put(orjson.loads(pretty), pretty, partition=2, offset=8)
    assert heard[-1]["_json"] == orjson.dumps(doc("RMa", "completed", 1)) == index.docs.json("RMa")

    index.put(doc("RMb", "in-progress", 2, name="other"))  # no bytes at hand: encoded once, here
    assert orjson.loads(heard[-1]["_json"]) == doc("RMb", "in-progress", 2, name="other")
    assert index.docs.json("RMc") is None

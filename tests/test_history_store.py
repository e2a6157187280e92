"""The history store on a real PostgreSQL: migrations, the guarded upsert (a room never moves
backwards), rows for analysts, reads in the API's order; and the merged hot+history list paging
exactly like one list held in memory."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys

import pytest

from service.history import migrate, rows
from service.history.store import BadDocument, HistoryStore, HistoryUnavailable, redact
from service.rooms.merge import MergedList
from service.rooms.query import room_key
from service.rooms.resource import encode_token, window
from service.settings import SettingsError, load
from service.state.fold import fold
from service.state.render import render
from tests.helpers import create_database
from tests.streams import room_history


def documents(index: int, seed: int = 3, participants: int = 3) -> list[dict]:
    """Every document the materializer would publish for one room, in order (older first)."""
    state, out = None, []
    for event in room_history(index, random.Random(seed + index), participants=participants):
        state = fold(state, event)
        out.append(render(state))
    return out


@pytest.fixture
async def store(database_url):
    history = HistoryStore(database_url)
    await history.migrate()
    yield history
    await history.close()


async def fetch_all(store: HistoryStore, sql: str, *args) -> list[dict]:
    return [dict(r) for r in await store._run(lambda conn: conn.fetch(sql, *args))]  # noqa: SLF001


# ---------------------------------------------------------------- migrations


async def test_migrations_apply_once_and_refuse_edited_files(database_url, monkeypatch):
    store = HistoryStore(database_url)
    try:
        first = await store.migrate()
        assert first == [m.name for m in migrate.migrations()] and first[0].startswith("0001_")
        assert await store.migrate() == []  # applied versions are recorded
        done = await fetch_all(store, f"SELECT version, name, sha256 FROM {migrate.TABLE}")
        assert [(d["version"], d["sha256"]) for d in done] == [(m.version, m.checksum) for m in migrate.migrations()]

        # Two processes starting at once: the advisory lock lets one apply, the other finds it done.
        other = await create_database(database_url)
        a, b = HistoryStore(other), HistoryStore(other)
        try:
            results = await asyncio.gather(a.migrate(), b.migrate())
            assert sorted(map(len, results)) == [0, len(migrate.migrations())]
        finally:
            await a.close()
            await b.close()

        # A migration edited after it was applied is refused, never silently re-run.
        edited = [migrate.Migration(m.version, m.name, m.sql + "\n-- edited") for m in migrate.migrations()]
        monkeypatch.setattr(migrate, "migrations", lambda: edited)
        with pytest.raises(migrate.MigrationError, match="changed after it was applied"):
            await store.migrate()
    finally:
        await store.close()


def test_roomevents_migrate_command(database_url):
    env = os.environ | {"ROOMEVENTS_DATABASE_URL": database_url, "ROOMEVENTS_LOG_LEVEL": "WARNING"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # migrate needs no Kafka

    def run():
        return subprocess.run(
            [sys.executable, "-m", "service.cli", "migrate"], env=env, capture_output=True, text=True, timeout=60
        )

    first = run()
    assert first.returncode == 0, first.stderr
    assert "applied 0001_rooms_and_participants.sql" in first.stdout
    again = run()
    assert again.returncode == 0 and "nothing to apply" in again.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "service.cli", "migrate"],
        capture_output=True,
        text=True,
        env={k: v for k, v in env.items() if k != "ROOMEVENTS_DATABASE_URL"},
        timeout=60,
    )
    assert missing.returncode == 2 and "ROOMEVENTS_DATABASE_URL is required" in missing.stderr


def test_database_url_setting():
    base = {
        "TWILIO_ACCOUNT_SID": "AC" + "a1" * 16,
        "TWILIO_AUTH_TOKEN": "t",
        "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
        "ROOMEVENTS_ALLOW_ANY_HOST": "true",
    }
    assert load(base).database_url == ""
    url = "postgresql://app:s3cret@db.example.com:5432/rooms"
    cfg = load(base | {"ROOMEVENTS_DATABASE_URL": url, "ROOMEVENTS_ARCHIVE_GROUP": "arch"}, role="archive")
    assert (cfg.database_url, cfg.archive_group) == (url, "arch")
    assert "s3cret" not in repr(cfg) and redact(url) == "postgresql://app:***@db.example.com:5432/rooms"
    assert load(base | {"ROOMEVENTS_DATABASE_URL": "postgres://h/db"}).database_url == "postgres://h/db"
    for role in ("ingress", "archive", "migrate", "dev"):
        for bad in ("mysql://h/db", "db.example.com:5432", "postgresql:///nohost"):
            with pytest.raises(SettingsError, match="ROOMEVENTS_DATABASE_URL") as info:
                load(base | {"ROOMEVENTS_DATABASE_URL": bad}, role=role)
            assert "s3cret" not in str(info.value)
    for role in ("archive", "migrate"):
        with pytest.raises(SettingsError, match="ROOMEVENTS_DATABASE_URL is required"):
            load(base, role=role)


def test_each_history_role_reads_only_what_it_needs():
    url = "postgresql://app:s3cret@db.example.com:5432/rooms"
    # The archive: Kafka and the database, no Twilio credentials (neither required nor validated).
    cfg = load(
        {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "ROOMEVENTS_DATABASE_URL": url, "TWILIO_ACCOUNT_SID": "x"}, role="archive"
    )
    assert cfg.database_url == url and cfg.auth_tokens == ()
    with pytest.raises(SettingsError, match="KAFKA_BOOTSTRAP_SERVERS"):
        load({"ROOMEVENTS_DATABASE_URL": url}, role="archive")
    # migrate: the database alone.
    assert load({"ROOMEVENTS_DATABASE_URL": url, "ROOMEVENTS_METRICS_PORT": "x"}, role="migrate").database_url == url
    # The materializer never reads the database URL (a bad one is no error there).
    assert (
        load(
            {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "ROOMEVENTS_DATABASE_URL": "mysql://h/db"}, role="materializer"
        ).database_url
        == ""
    )
    # dev: its private PostgreSQL's folder, apart from the broker's.
    dev = load({"ROOMEVENTS_DEV_POSTGRES_DATA": "/tmp/pg"}, role="dev")
    assert (dev.dev_postgres_data, dev.dev_data, dev.database_url) == ("/tmp/pg", ".dev-data", "")
    assert load({}, role="dev").dev_postgres_data == ".data/postgres"


# ---------------------------------------------------------------- the guarded upsert


async def test_an_older_document_never_overwrites_a_newer_one(store):
    docs = documents(1)
    newest = docs[-1]
    assert newest["status"] == "completed"
    assert await store.upsert([newest]) == 1
    # Every older document (fallback order: last event time, then date_updated): refused, in a batch or alone.
    assert await store.upsert(docs[:-1]) == 0
    for doc in random.Random(1).sample(docs[:-1], 5):
        assert await store.upsert([doc]) == 0
    assert await store.fetch(newest["sid"]) == newest
    # The same document again (a replay) rewrites the same row.
    assert await store.upsert([newest]) == 1 and await store.fetch(newest["sid"]) == newest
    # Within one batch, the newest of a room's documents wins whatever the order.
    other = documents(2)
    assert await store.upsert(list(reversed(other))) == 1
    assert await store.fetch(other[-1]["sid"]) == other[-1]

    # With `version` (the events-topic offset of the latest record folded in), it decides first.
    v_new = dict(docs[3], version=200)
    v_old = dict(docs[-1], version=100)  # later last_event, but an older version
    sid = newest["sid"]
    assert await store.upsert([v_new]) == 1  # a versioned document beats an unversioned one
    assert await store.upsert([v_old]) == 0
    assert await store.fetch(sid) == v_new
    assert await store.upsert([newest]) == 0  # unversioned (-1) never beats a versioned one
    people = await fetch_all(store, "SELECT sid FROM participants WHERE room_sid = $1 ORDER BY sid", sid)
    assert [p["sid"] for p in people] == sorted(p["sid"] for p in v_new["participants"])
    row = (await fetch_all(store, "SELECT version, status FROM rooms WHERE sid = $1", sid))[0]
    assert row == {"version": 200, "status": v_new["status"]}


async def test_rows_an_analyst_can_use(store):
    docs = documents(4, participants=4)
    for doc in docs:  # as the archive sees them: one after another
        await store.upsert([doc])
    final = docs[-1]
    row = (await fetch_all(store, "SELECT * FROM rooms WHERE sid = $1", final["sid"]))[0]
    assert row["doc"] == final
    assert (
        row["status"],
        row["unique_name"],
        row["type"],
        row["provider"],
        row["duration"],
        row["end_reason"],
        row["peak_participants"],
        row["participant_sessions"],
        row["created_via"],
    ) == (
        "completed",
        final["unique_name"],
        "group",
        "twilio",
        final["duration"],
        "callback",
        final["peak_concurrent_participants"],
        4,
        "callback",
    )
    assert int(row["date_created"].timestamp() * 1000) == final["date_created_ms"]
    assert int(row["end_time"].timestamp() * 1000) == final["end_time_ms"]
    people = await fetch_all(store, "SELECT * FROM participants WHERE room_sid = $1 ORDER BY sid", final["sid"])
    assert [(p["sid"], p["identity"], p["status"], p["duration"]) for p in people] == [
        (p["sid"], p["identity"], p["status"], p["duration"]) for p in final["participants"]
    ]
    assert all(p["end_time"] >= p["start_time"] for p in people)


async def test_values_postgresql_would_refuse_do_not_block_the_batch(store):
    good = documents(5)[-1]
    odd = dict(
        documents(6)[-1],
        duration=10**12,
        max_participants="many",
        video_codecs=["VP8", 3],
        unique_name="nul\x00name",
        participants=[{"sid": "PA1", "identity": "a\x00b", "start_time": "not a date", "status": None}],
    )
    assert await store.upsert([good, rows.strip_nul(odd)]) == 2
    row = (
        await fetch_all(
            store, "SELECT duration, max_participants, video_codecs, unique_name FROM rooms WHERE sid = $1", odd["sid"]
        )
    )[0]
    assert row == {"duration": None, "max_participants": None, "video_codecs": ["VP8"], "unique_name": "nul\ufffdname"}
    with pytest.raises(rows.NotARoomDocument):
        await store.upsert([{"no": "sid"}])


async def test_unreachable_database_is_unavailable_not_a_crash():
    store = HistoryStore("postgresql://nobody@127.0.0.1:1/none", timeout=1.0)
    try:
        with pytest.raises(HistoryUnavailable):
            await store.fetch("RM" + "0" * 32)
        with pytest.raises(HistoryUnavailable):
            await store.upsert(documents(7)[-1:])
        assert await store.ping() is False
    finally:
        await store.close()
    assert issubclass(BadDocument, RuntimeError)


# ---------------------------------------------------------------- reads in the API's order


async def test_reads_in_the_api_order_with_keyset_bounds(store):
    finals = [documents(i)[-1] for i in range(10, 18)]
    # Two rooms created in the same millisecond: the SID breaks the tie (in byte order).
    twin = dict(finals[0], sid="RM" + "f" * 32, unique_name="twin")
    finals.append(twin)
    await store.upsert(finals)
    expected = sorted(finals, key=room_key)

    async def page(**kw):
        args = (
            dict(
                status="completed",
                unique_name=None,
                created_from_ms=None,
                created_until_ms=None,
                bound=None,
                inclusive=False,
                descending=False,
                limit=100,
            )
            | kw
        )
        return [d["sid"] for d in await store.rooms(**args)]

    assert await page() == [d["sid"] for d in expected]
    k = room_key(expected[3])
    assert await page(bound=k) == [d["sid"] for d in expected[4:]]
    assert await page(bound=k, inclusive=True, limit=2) == [d["sid"] for d in expected[3:5]]
    assert await page(bound=k, descending=True) == [d["sid"] for d in expected[:3]][::-1]
    assert await page(bound=k, descending=True, inclusive=True, limit=1) == [expected[3]["sid"]]
    assert await page(status="in-progress") == []
    assert await page(unique_name="twin") == [twin["sid"]]
    created = expected[2]["date_created_ms"]
    assert await page(created_from_ms=created) == [d["sid"] for d in expected if d["date_created_ms"] >= created]
    assert await page(created_until_ms=created) == [d["sid"] for d in expected if d["date_created_ms"] < created]
    # Fetch: by SID; a unique name resolves only to an in-progress room (as at Twilio).
    assert (await store.fetch(twin["sid"]))["sid"] == twin["sid"]
    assert await store.fetch("twin") is None
    live = documents(20)[0]
    await store.upsert([live])
    assert (await store.fetch(live["unique_name"]))["sid"] == live["sid"]


# ---------------------------------------------------------------- merged lists page like one list


def fake_room(i: int, created: int, status: str = "completed") -> dict:
    return {"sid": f"RM{i:032x}", "date_created_ms": created, "status": status}


@pytest.mark.parametrize("seed", range(12))
async def test_merged_list_pages_exactly_like_the_union(seed):
    rng = random.Random(seed)
    rooms = [fake_room(i, rng.choice([1000, 2000, 3000]) + rng.randrange(5)) for i in range(rng.randrange(0, 40))]
    hot, history = [], []
    for room in rooms:
        where = rng.random()
        if where < 0.4:
            hot.append(room)
        elif where < 0.8:
            history.append(room)
        else:  # in both: the hot document wins, and here it no longer matches the list
            history.append(room)
            hot.append(dict(room, status="other"))
    matching_hot = sorted((d for d in hot if d["status"] == "completed"), key=room_key)
    union = sorted(matching_hot + [d for d in history if d["sid"] not in {h["sid"] for h in hot}], key=room_key)
    ordered_history = sorted(history, key=room_key)
    calls = []

    async def fetch(bound, inclusive, descending, limit):
        calls.append(limit)
        if descending:
            items = [
                d
                for d in reversed(ordered_history)
                if bound is None or (room_key(d) <= bound if inclusive else room_key(d) < bound)
            ]
        else:
            items = [
                d
                for d in ordered_history
                if bound is None or (room_key(d) >= bound if inclusive else room_key(d) > bound)
            ]
        return items[:limit]

    merged = MergedList(matching_hot, {d["sid"] for d in hot}, fetch, room_key, overfetch=rng.choice([0, 1, 3]))
    for page_size in (1, 2, 5, 50):
        for offset in (0, page_size, 3 * page_size, 100):
            want = window(union, room_key, page_size, offset=offset)
            got = await merged.window(page_size, offset=offset)
            assert ([d["sid"] for d in got.items], got.has_before, got.has_after) == (
                [d["sid"] for d in want.items],
                want.has_before,
                want.has_after,
            )
        for anchor in rng.sample(union, min(4, len(union))) + [fake_room(999, 2500)]:
            for direction in ("A", "B"):
                token = (direction, room_key(anchor))
                want = window(union, room_key, page_size, token=token)
                got = await merged.window(page_size, token=token)
                assert ([d["sid"] for d in got.items], got.has_before, got.has_after) == (
                    [d["sid"] for d in want.items],
                    want.has_before,
                    want.has_after,
                ), (page_size, token)
                assert encode_token(direction, token[1])  # the same key shape as the in-memory tokens
    assert all(limit <= 1000 for limit in calls)

"""The PostgreSQL history store (asyncpg): the archive writes room documents, the API reads them.

Writes: `upsert(docs)` is one transaction: one INSERT ... ON CONFLICT for the batch's rooms, guarded
by the documents' order (service/history/rows.py `order_key`), then the participants of the rooms
whose row was written. Replaying any documents in any order leaves every room at its newest one.

Reads: a room by SID (or by unique name while in progress, as at Twilio), and the rooms of a list
in the API's order (newest `date_created` first, then SID), after or before a key (keyset paging).

The pool connects lazily: a process starts while the database is down and connects once it is up.
Errors are split in two: `HistoryUnavailable` (cannot reach or use the database now: retry later)
and `BadDocument` (the database refuses this data: retrying cannot help).
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from service import logs
from service.history import migrate, rows
from service.state.book import UNIQUE_NAME_TAKEN

log = logs.get(__name__)

R = TypeVar("R")

# SQLSTATE classes that mean "this data", not "this database now": 22 data exception, 23 integrity
# constraint violation, 54 program limit exceeded.
_DATA_CLASSES = ("22", "23", "54")


class HistoryUnavailable(RuntimeError):
    """The history database cannot be reached or used right now."""


class BadDocument(RuntimeError):
    """The database refuses a document (retrying the same document cannot succeed)."""


def redact(url: str) -> str:
    """The database URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def is_data_error(exc: BaseException) -> bool:
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and state[:2] in _DATA_CLASSES


def _jsonb_out(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", schema="pg_catalog", encoder=_jsonb_out, decoder=orjson.loads)


def _unnest_select(columns: Sequence[tuple[str, str]]) -> str:
    """SELECT list over unnest($1::t1[], $2::t2[], ...) with the array-as-text columns split again."""
    args = ", ".join(f"${i}::{'jsonb' if kind == 'jsonb' else kind}[]" for i, (_, kind) in enumerate(columns, 1))
    names = ", ".join(name for name, _ in columns)
    outputs = ", ".join(
        f"string_to_array({name}, ',')" if name in rows.ARRAY_TEXT_COLUMNS else name for name, _ in columns
    )
    return f"SELECT {outputs} FROM unnest({args}) AS t({names})"


_ROOM_NAMES = [name for name, _ in rows.ROOM_COLUMNS]
UPSERT_ROOMS = (
    f"INSERT INTO rooms ({', '.join(_ROOM_NAMES)}) {_unnest_select(rows.ROOM_COLUMNS)}\n"
    "ON CONFLICT (sid) DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in _ROOM_NAMES if name != "sid")
    # The guard: never move a room backwards (equal keys rewrite: the same document, or a replay).
    + "\nWHERE (EXCLUDED.version, EXCLUDED.last_event_ms, EXCLUDED.date_updated_ms)"
    " >= (rooms.version, rooms.last_event_ms, rooms.date_updated_ms)\n"
    "RETURNING sid"
)
DELETE_PARTICIPANTS = "DELETE FROM participants WHERE room_sid = ANY($1::text[])"
INSERT_PARTICIPANTS = (
    f"INSERT INTO participants ({', '.join(n for n, _ in rows.PARTICIPANT_COLUMNS)}) "
    f"{_unnest_select(rows.PARTICIPANT_COLUMNS)}"
)
_VISIBLE = f"failure_reason IS DISTINCT FROM '{UNIQUE_NAME_TAKEN}'"


class HistoryStore:
    def __init__(self, url: str, *, max_size: int = 4, timeout: float = 5.0) -> None:
        self.url = url
        self.max_size = max_size
        self.timeout = timeout
        self.pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    @property
    def where(self) -> str:
        return redact(self.url)

    async def _pool(self) -> asyncpg.Pool:
        if self.pool is not None:
            return self.pool
        async with self._lock:
            if self.pool is None:
                # min_size=0: creating the pool connects nothing, so it cannot fail on a database that
                # is down; each acquire connects (and fails) on its own.
                self.pool = await asyncpg.create_pool(
                    self.url,
                    min_size=0,
                    max_size=self.max_size,
                    timeout=self.timeout,
                    command_timeout=self.timeout * 6,
                    init=_init_connection,
                    max_inactive_connection_lifetime=60.0,
                )
        return self.pool

    async def close(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            try:
                await asyncio.wait_for(pool.close(), 5)
            except (asyncio.TimeoutError, Exception):
                pool.terminate()

    async def _run(self, work: Callable[[asyncpg.Connection], Awaitable[R]], *, timeout: float | None = None) -> R:
        """Run `work(conn)` on a pooled connection; database trouble becomes HistoryUnavailable."""
        try:
            pool = await self._pool()
            async with asyncio.timeout(timeout or self.timeout * 6):
                async with pool.acquire() as conn:
                    return await work(conn)
        except (BadDocument, migrate.MigrationError):
            raise
        except Exception as exc:
            if is_data_error(exc):
                raise BadDocument(f"{type(exc).__name__}: {exc}") from exc
            raise HistoryUnavailable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc

    async def ping(self) -> bool:
        try:
            await self._run(lambda conn: conn.fetchval("SELECT 1"), timeout=2.0)
            return True
        except (HistoryUnavailable, BadDocument):
            return False

    # ------------------------------------------------------------ writes

    async def migrate(self) -> list[str]:
        return await self._run(migrate.apply, timeout=120)

    async def upsert(self, docs: Iterable[Mapping[str, Any]]) -> int:
        """Write the newest of `docs` per room (each only if not older than its row); returns how many
        room rows were written."""
        newest: dict[str, tuple[tuple, Mapping[str, Any]]] = {}
        for doc in docs:
            rows.check_document(doc)
            key = rows.order_key(doc)
            held = newest.get(doc["sid"])
            if held is None or key >= held[0]:
                newest[doc["sid"]] = (key, doc)
        if not newest:
            return 0
        room_rows = [rows.room_row(doc) for _, doc in newest.values()]
        room_columns = list(zip(*room_rows, strict=True))

        async def write(conn: asyncpg.Connection) -> int:
            async with conn.transaction():
                written = [r["sid"] for r in await conn.fetch(UPSERT_ROOMS, *room_columns)]
                if written:
                    await conn.execute(DELETE_PARTICIPANTS, written)
                    people = [p for sid in written for p in rows.participant_rows(newest[sid][1])]
                    if people:
                        await conn.execute(INSERT_PARTICIPANTS, *zip(*people, strict=True))
                return len(written)

        return await self._run(write)

    # ------------------------------------------------------------ reads

    async def fetch(self, key: str) -> dict | None:
        """The document of the room with SID `key`, else of the newest in-progress room named `key`."""

        async def read(conn: asyncpg.Connection) -> dict | None:
            return await conn.fetchval(
                "SELECT doc FROM rooms WHERE sid = $1 OR (unique_name = $1 AND status = 'in-progress') "
                "ORDER BY (sid = $1) DESC, date_created_ms DESC, sid LIMIT 1",
                key,
            )

        return await self._run(read)

    async def rooms(
        self,
        *,
        status: str | None,
        unique_name: str | None,
        created_from_ms: int | None,
        created_until_ms: int | None,
        bound: tuple[int, str] | None,
        inclusive: bool,
        descending: bool,
        limit: int,
    ) -> list[dict]:
        """Visible rooms matching the filters in the API's order (`room_key` ascending), from `bound`:
        keys after it (or before it, `descending`, nearest first), including it when `inclusive`.
        `created_from_ms` is inclusive, `created_until_ms` exclusive."""
        where = [_VISIBLE]
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if status:
            where.append(f"status = {arg(status)}")
        if unique_name:
            where.append(f"unique_name = {arg(unique_name)}")
        if created_from_ms is not None:
            where.append(f"date_created_ms >= {arg(created_from_ms)}")
        if created_until_ms is not None:
            where.append(f"date_created_ms < {arg(created_until_ms)}")
        if bound is not None:
            # room_key = (-date_created_ms, sid): "after" is older, or as old with a greater SID.
            created, sid = -bound[0], bound[1]
            c, s = arg(created), arg(sid)
            if descending:
                where.append(
                    f"(date_created_ms > {c} OR (date_created_ms = {c} AND sid {'<=' if inclusive else '<'} {s}))"
                )
            else:
                where.append(
                    f"(date_created_ms < {c} OR (date_created_ms = {c} AND sid {'>=' if inclusive else '>'} {s}))"
                )
        order = "date_created_ms ASC, sid DESC" if descending else "date_created_ms DESC, sid ASC"
        sql = f"SELECT doc FROM rooms WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {arg(limit)}"

        async def read(conn: asyncpg.Connection) -> list[dict]:
            return [r["doc"] for r in await conn.fetch(sql, *args)]

        return await self._run(read)

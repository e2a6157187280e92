"""Versioned schema migrations: the SQL files in service/history/migrations, applied in order.

A file is `NNNN_description.sql`; NNNN is its version. `apply` runs, in one transaction under an
advisory lock (so several processes starting at once apply each file once), every file whose
version is not yet in `roomevents_schema_migrations`, and records its version, name and SHA-256.
A file changed after it was applied is refused (write a new migration instead). A database that
has versions this code does not know (a newer release applied them) is left as it is.

Applied at the start of `roomevents archive` and `roomevents dev`, or by `roomevents migrate`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from service import logs

if TYPE_CHECKING:
    import asyncpg

log = logs.get(__name__)

TABLE = "roomevents_schema_migrations"
LOCK_ID = 0x726F6F6D  # pg_advisory_xact_lock key: "room"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """The packaged migration files, by version."""
    found: dict[int, Migration] = {}
    for entry in resources.files("service.history").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if not match:
            if entry.name.endswith(".sql"):
                raise MigrationError(f"migration file {entry.name!r} is not named NNNN_description.sql")
            continue
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations with version {version}")
        found[version] = Migration(version, entry.name, entry.read_text("utf-8"))
    return [found[v] for v in sorted(found)]


async def apply(conn: asyncpg.Connection) -> list[str]:
    """Apply the pending migrations on an asyncpg connection; returns the names applied."""
    applied_now: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_ID)
        await conn.execute(f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now())""")
        done = {r["version"]: r for r in await conn.fetch(f"SELECT version, name, sha256 FROM {TABLE}")}
        known = migrations()
        for migration in known:
            row = done.get(migration.version)
            if row is not None:
                if row["sha256"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.name} was changed after it was applied "
                        f"(as {row['name']}); add a new migration instead"
                    )
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                f"INSERT INTO {TABLE} (version, name, sha256) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied_now.append(migration.name)
        newer = sorted(set(done) - {m.version for m in known})
    if newer:
        log.warning("the history database has migrations this release does not know; left as they are", versions=newer)
    if applied_now:
        log.info("history schema migrated", applied=applied_now)
    return applied_now

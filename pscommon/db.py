"""PostgreSQL access: a pool per service pinned to its schema, and ordered SQL migrations at start-up."""

from __future__ import annotations

import logging
import pathlib
import re

import asyncpg
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

# A connection, whether taken from a pool or opened alone: what SQL functions take.
Conn = asyncpg.Connection | PoolConnectionProxy

_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]*")
_COMMON_MIGRATIONS = pathlib.Path(__file__).parent / "migrations"


async def connect(
    dsn: str, schema: str, migrations: pathlib.Path, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    """Migrates the schema with the service's `migrations` folder, then returns a pool whose connections see only
    that schema."""
    if not _SCHEMA_RE.fullmatch(schema):
        raise ValueError(f"bad schema name {schema!r}")
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, schema, migrations)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, server_settings={"search_path": schema}, reset=_no_session_state
    )
    assert pool is not None
    return pool


async def _no_session_state(conn: asyncpg.Connection) -> None:
    """Replaces asyncpg's reset query on release (a round trip on every use of the pool). The services keep no
    session state: no LISTEN, no session advisory locks, no SET outside a transaction, and asyncpg itself still
    rolls back a transaction left open."""


def _migrations(service_dir: pathlib.Path) -> list[tuple[str, str]]:
    """(name, sql): the shared tables first, then the service's own, each in file-name order."""
    found: list[tuple[str, str]] = []
    for folder, prefix in ((_COMMON_MIGRATIONS, "common/"), (service_dir, "")):
        if folder.is_dir():
            found += [(prefix + p.name, p.read_text()) for p in sorted(folder.glob("*.sql"))]
    return found


async def migrate(conn: asyncpg.Connection, schema: str, migrations: pathlib.Path) -> list[str]:
    """Applies pending migrations in one transaction each, serialised across replicas by an advisory lock."""
    applied_now: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch(f"SELECT name FROM {schema}.schema_migrations")}
        await conn.execute(f"SET LOCAL search_path TO {schema}")
        for name, sql in _migrations(migrations):
            if name in done:
                continue
            await conn.execute(sql)
            await conn.execute(f"INSERT INTO {schema}.schema_migrations (name) VALUES ($1)", name)
            applied_now.append(name)
    if applied_now:
        log.info("schema %s migrated: %s", schema, ", ".join(applied_now))
    return applied_now

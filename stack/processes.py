"""Starting, checking and stopping the local stack's processes (detached, logs and pids in the data folder).

A pid file holds the pid and the process's start time: a live process is one that exists, is neither a zombie
(dead, not yet reaped by its parent) nor dead, and started when its file says (not a later process that got the
same pid).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from pscommon.probes import grpc_serving, tcp_open
from pscommon.tls import TlsFiles

# The checkout this stack belongs to: its processes run its code (`python -m` looks in the working directory
# first), whatever directory `up` was run from.
REPO = pathlib.Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Proc:
    name: str
    argv: list[str]
    grpc_port: int | None = None
    tcp_port: int | None = None
    principal: str = ""  # whose certificate it serves and calls with (<data>/pki/<principal>.pem)
    ports: tuple[int, ...] = ()  # every port it listens on (checked free before a stack starts)
    env: dict[str, str] = field(default_factory=dict)  # settings of this process only (a scoring shard's index)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Proc:
        return cls(**{**d, "ports": tuple(d.get("ports", ())), "env": dict(d.get("env", {}))})


def module(
    name: str,
    mod: str,
    grpc_port: int | None = None,
    tcp_port: int | None = None,
    principal: str = "",
    ports: tuple[int, ...] = (),
    env: dict[str, str] | None = None,
) -> Proc:
    own = ports or tuple(p for p in (grpc_port, tcp_port) if p is not None)
    return Proc(name, [sys.executable, "-m", mod], grpc_port, tcp_port, principal, own, env or {})


def started_at(pid: int) -> float | None:
    """The process's start time (seconds since the epoch), None when there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def alive(pid: int, started: float | None = None) -> bool:
    """Whether `pid` runs: not gone, not a zombie, and (when `started` is known) the process started then."""
    try:
        proc = psutil.Process(pid)
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        return started is None or abs(proc.create_time() - started) < 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # someone else's process: it exists


def is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def write_pid(run_dir: pathlib.Path, name: str, pid: int) -> None:
    started = started_at(pid)
    tmp = run_dir / f".{name}.pid"
    tmp.write_text(f"{pid} {started:.2f}\n" if started is not None else f"{pid}\n")
    tmp.replace(run_dir / f"{name}.pid")


def read_pid(run_dir: pathlib.Path, name: str) -> tuple[int, float | None] | None:
    """(pid, start time) from the pid file; files written before start times were recorded hold the pid only."""
    try:
        fields = (run_dir / f"{name}.pid").read_text().split()
        return int(fields[0]), float(fields[1]) if len(fields) > 1 else None
    except (OSError, ValueError, IndexError):
        return None


def pid_of(run_dir: pathlib.Path, name: str) -> int | None:
    """The pid of `name` if it runs; a file naming a process that is gone (or a zombie) is removed."""
    found = read_pid(run_dir, name)
    if found is None:
        return None
    pid, started = found
    if alive(pid, started):
        return pid
    (run_dir / f"{name}.pid").unlink(missing_ok=True)
    return None


def tracing_env(env: dict[str, str], principal: str) -> dict[str, str]:
    """Where a process of the stack sends its spans: the span receiver (pscommon/span_receiver.py), over mutual
    TLS with the process's own certificate. Batches leave every half second, so a trace is readable at once."""
    port, pki = env.get("PSP_SPAN_RECEIVER_PORT"), env.get("PSP_PKI_DIR")
    if not (port and pki and principal):
        return {}
    tls = TlsFiles.in_folder(pathlib.Path(pki), principal)
    return {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"https://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": str(tls.ca),
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE": str(tls.cert),
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": str(tls.key),
        "OTEL_BSP_SCHEDULE_DELAY": "500",
    }


def spawn(p: Proc, data: pathlib.Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Starts `p` detached (its own session), output appended to <data>/logs/<name>.log, pid in <data>/run."""
    with open(data / "logs" / f"{p.name}.log", "ab") as log:  # the child keeps its own copy open
        env = {**env, **p.env, **({"PSP_PRINCIPAL": p.principal} if p.principal else {})}
        env.update(tracing_env(env, p.principal))
        child = subprocess.Popen(
            p.argv,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    write_pid(data / "run", p.name, child.pid)
    return child


def wait_ready(
    p: Proc, probe_as: TlsFiles, failed: Callable[[], str | None] = lambda: None, timeout_s: float = 90
) -> None:
    """Polls until the process answers (a launcher may poll; tests never do); `failed` says why waiting longer is
    pointless (the process keeps exiting, its supervisor is gone)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        why = failed()
        if why:
            raise RuntimeError(f"{p.name}: {why}")
        if p.grpc_port is not None and grpc_serving(p.grpc_port, probe_as):
            return
        if p.grpc_port is None and p.tcp_port is not None and tcp_open(p.tcp_port):
            return
        if p.grpc_port is None and p.tcp_port is None:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{p.name} not ready after {timeout_s:.0f}s")


def reap(pid: int) -> int | None:
    """Collects `pid` if it is a child of this process that has ended; its exit status, or None."""
    with contextlib.suppress(ChildProcessError):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return status
    return None


def terminate(pid: int, started: float | None, timeout_s: float = 15, group: bool = True) -> None:
    """SIGTERM (to its process group), then SIGKILL after `timeout_s`; returns when it runs no more."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        if not alive(pid, started):
            break
        _signal(pid, sig, group)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            reap(pid)
            if not alive(pid, started):
                break
            time.sleep(0.05)
    reap(pid)


def _signal(pid: int, sig: int, group: bool) -> None:
    if group:
        try:
            os.killpg(pid, sig)
            return
        except ProcessLookupError:
            pass  # not the leader of a process group of its own: signal it alone
        except PermissionError:
            return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def stop(name: str, data: pathlib.Path, timeout_s: float = 15) -> bool:
    """Stops the process the pid file names, if it runs; True if it did."""
    run_dir = data / "run"
    found = read_pid(run_dir, name)
    running = found is not None and alive(*found)
    if found is not None and running:
        terminate(found[0], found[1], timeout_s)
    (run_dir / f"{name}.pid").unlink(missing_ok=True)
    return running

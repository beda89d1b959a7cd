"""Starting, checking and stopping the local stack's processes (detached, logs and pids in the data folder)."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from pscommon.probes import grpc_serving, tcp_open
from pscommon.tls import TlsFiles


@dataclass(frozen=True)
class Proc:
    name: str
    argv: list[str]
    grpc_port: int | None = None
    tcp_port: int | None = None
    principal: str = ""  # whose certificate it serves and calls with (.local/pki/<principal>.pem)


def module(name: str, mod: str, grpc_port: int | None = None, tcp_port: int | None = None, principal: str = "") -> Proc:
    return Proc(name, [sys.executable, "-m", mod], grpc_port, tcp_port, principal)


def pid_of(run_dir: pathlib.Path, name: str) -> int | None:
    f = run_dir / f"{name}.pid"
    if not f.exists():
        return None
    pid = int(f.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        f.unlink()
        return None
    return pid


def spawn(p: Proc, data: pathlib.Path, env: dict[str, str]) -> int:
    run_dir, log_dir = data / "run", data / "logs"
    pid = pid_of(run_dir, p.name)
    if pid is not None:
        return pid
    log = open(log_dir / f"{p.name}.log", "ab")  # handed to the child, which keeps it open
    env = {**env, "PSP_PRINCIPAL": p.principal} if p.principal else env
    child = subprocess.Popen(p.argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    (run_dir / f"{p.name}.pid").write_text(str(child.pid))
    return child.pid


def wait_ready(p: Proc, data: pathlib.Path, probe_as: TlsFiles, timeout_s: float = 90) -> None:
    """Polls until the process answers (a launcher may poll; tests never do)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pid_of(data / "run", p.name) is None:
            raise RuntimeError(f"{p.name} exited; see {data / 'logs' / (p.name + '.log')}")
        if p.grpc_port is not None and grpc_serving(p.grpc_port, probe_as):
            return
        if p.tcp_port is not None and tcp_open(p.tcp_port):
            return
        if p.grpc_port is None and p.tcp_port is None:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{p.name} not ready after {timeout_s:.0f}s; see {data / 'logs' / (p.name + '.log')}")


def stop(name: str, data: pathlib.Path, timeout_s: float = 15) -> bool:
    pid = pid_of(data / "run", name)
    if pid is None:
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and pid_of(data / "run", name) is not None:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    if pid_of(data / "run", name) is not None:
        os.killpg(pid, signal.SIGKILL)
    (data / "run" / f"{name}.pid").unlink(missing_ok=True)
    return True

"""What the benches share: free ports, a process's CPU and memory, waiting for a server to serve."""

from __future__ import annotations

import os
import pathlib
import time

from stack.processes import free_port, grpc_serving, tcp_open

__all__ = ["cpu_s", "free_port", "rss_mb", "threads", "wait_serving"]


def rss_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def wait_serving(port: int, timeout_s: float = 60, grpc: bool = True) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if tcp_open(port) and (not grpc or grpc_serving(port)):
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing serving on {port}")

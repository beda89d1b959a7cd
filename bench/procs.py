"""What the benches share: free ports, a process's CPU and memory, waiting for a server to serve."""

from __future__ import annotations

import os
import pathlib
import subprocess
import time
from typing import Any

import psutil

from pscommon.pki import LocalPki
from pscommon.probes import free_port, grpc_serving, tcp_open
from pscommon.tls import TlsFiles

TRUST_DOMAIN = "psp.bench"


def bench_pki(folder: pathlib.Path) -> dict[str, str]:
    """A CA and certificates for a bench's processes; the env that points a process at them."""
    LocalPki(folder, TRUST_DOMAIN).ensure_local()
    return {"PSP_PKI_DIR": str(folder), "PSP_TRUST_DOMAIN": TRUST_DOMAIN}


__all__ = [
    "TRUST_DOMAIN",
    "bench_pki",
    "CpuSplit",
    "cpu_s",
    "free_port",
    "rss_mb",
    "start_profiler",
    "threads",
    "wait_serving",
]


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


def wait_serving(port: int, tls: TlsFiles | None = None, timeout_s: float = 60) -> None:
    """Until the port answers: gRPC health over mutual TLS with `tls`, or only TCP without it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if tcp_open(port) and (tls is None or grpc_serving(port, tls)):
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing serving on {port}")


def start_profiler(pid: int, default_out: str) -> subprocess.Popen | None:
    """BENCH_PYSPY=/path/to/py-spy samples the process during the measured phase (raw flamegraph text in
    BENCH_PYSPY_OUT, else `default_out`). py-spy is a developer tool, not a dependency."""
    pyspy = os.environ.get("BENCH_PYSPY")
    if not pyspy:
        return None
    out = os.environ.get("BENCH_PYSPY_OUT", default_out)
    return subprocess.Popen(
        [pyspy, "record", "--pid", str(pid), "--nonblocking", "-r", "100", "-f", "raw", "-o", out],
        stdout=subprocess.DEVNULL,
    )


class CpuSplit:
    """Where the machine's CPU went between start() and report(): named processes (those in `with_children` with
    their children, e.g. the PostgreSQL postmaster and its backends), and what was idle or stolen by the hypervisor."""

    def __init__(self, pids: dict[str, int], with_children: frozenset[str] = frozenset()) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.with_children = with_children

    def _now(self) -> tuple[dict[str, float], Any, float]:
        used = {}
        for name, p in self.procs.items():
            total = 0.0
            for q in [p, *(p.children(recursive=True) if name in self.with_children else [])]:
                try:
                    t = q.cpu_times()
                    total += t.user + t.system
                except psutil.NoSuchProcess:
                    pass
            used[name] = total
        return used, psutil.cpu_times(), time.perf_counter()

    def start(self) -> None:
        self._t0 = self._now()

    def report(self) -> str:
        (u0, m0, w0), (u1, m1, w1) = self._t0, self._now()
        wall = w1 - w0
        parts = [f"{name} {(u1[name] - u0[name]) / wall:.0%}" for name in u1]
        idle = (m1.idle - m0.idle) / wall
        steal = (getattr(m1, "steal", 0.0) - getattr(m0, "steal", 0.0)) / wall
        return f"CPU in cores: {', '.join(parts)}; machine idle {idle:.0%}, stolen {steal:.0%} (of {os.cpu_count()})"

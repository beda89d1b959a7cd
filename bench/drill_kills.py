"""The drill's own stack (its ports, its data folder) and the SIGKILLs at random moments that its supervisor must
survive.

The stack is `python -m stack up` (stack.__main__.up, in this process) on free ports (PSP_STACK_PORTS) or on the
defaults moved by an offset (PSP_STACK_PORT_OFFSET), in a temporary folder, with the drill's time-compressed case
policy (workflows/policies/drill.yaml): never the default ports or .local/, so it runs beside a developer's stack
and beside the test suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import pathlib
import random
import signal
import time
from dataclasses import dataclass

import stack.__main__ as stack_main
from pscommon.probes import free_port
from stack import ports as stack_ports
from stack import postgres, supervisor
from stack.processes import pid_of

# Everything the drill kills: the four services, the worker, the PostgreSQL postmaster and the Temporal server.
PROCESSES = ("scoring", "suspension", "notify", "verification", "worker", "postgres", "temporal")


def stack_up(data: pathlib.Path, port_offset: int | None) -> None:
    """The whole stack, started as `make up` does; its settings (addresses, keys, DATABASE_URL) land in os.environ."""
    for name in [k for k in os.environ if k.startswith("PSP_STACK_")] + ["DATABASE_URL"]:
        os.environ.pop(name, None)  # always our own ports and the embedded PostgreSQL in `data`
    if port_offset is not None:
        os.environ["PSP_STACK_PORT_OFFSET"] = str(port_offset)
    else:
        ports: set[int] = set()
        while len(ports) < len(stack_ports.DEFAULTS):
            ports.add(free_port())
        os.environ["PSP_STACK_PORTS"] = stack_ports.render(dict(zip(stack_ports.DEFAULTS, sorted(ports), strict=True)))
    os.environ.update(PSP_CASE_POLICY="drill", PSP_DELIVERY_POLICY="delivery_demo")
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data / "run"))  # as `python -m stack` does
    with contextlib.redirect_stdout(io.StringIO()):
        stack_main.up(data)


def stack_down(data: pathlib.Path) -> None:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            stack_main.down(data)
    finally:
        postgres.stop_embedded(data / "pg")


def restarts(data: pathlib.Path) -> dict[str, int]:
    """How often the supervisor restarted each process."""
    return stack_main.restarts(data)


def supervisor_running(data: pathlib.Path) -> bool:
    return pid_of(data / "run", supervisor.PID) is not None


def running_pid(data: pathlib.Path, name: str) -> int | None:
    if name == "postgres":
        return postgres.postmaster(data / "pg")
    return pid_of(data / "run", name)


@dataclass
class Kill:
    name: str
    at: float  # seconds since the drill began
    pid: int = 0
    done_at: float | None = None  # when it was actually sent (the process may have been restarting)
    wall: float | None = None  # the same moment as a Unix time, to set beside the database's timestamps


def schedule(seed: int, kills: int, names: tuple[str, ...], start_s: float, end_s: float, gap_s: float) -> list[Kill]:
    """`kills` kills at random moments in [start_s, end_s], each process at least once when there are enough,
    at least `gap_s` apart."""
    rng = random.Random(seed * 7919 + 1)
    chosen = rng.sample(names, max(kills, 0)) if kills < len(names) else list(names)
    chosen += [rng.choice(names) for _ in range(kills - len(chosen))]
    rng.shuffle(chosen)
    moments = sorted(rng.uniform(start_s, end_s) for _ in chosen)
    for i in range(1, len(moments)):
        moments[i] = max(moments[i], moments[i - 1] + gap_s)
    return [Kill(name, at) for name, at in zip(chosen, moments, strict=True)]


async def run_kills(data: pathlib.Path, plan: list[Kill], began: float, log: list[str]) -> None:
    """Sends each SIGKILL at its moment, once the process runs (it may still be restarting from an earlier kill)."""
    for k in plan:
        await asyncio.sleep(max(0.0, began + k.at - time.monotonic()))
        deadline = time.monotonic() + 90
        pid = running_pid(data, k.name)
        while pid is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # restarting: the supervisor brings it back within seconds
            pid = running_pid(data, k.name)
        if pid is None:
            log.append(f"{k.name}: not running for 90 s; not killed")
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        k.pid, k.done_at, k.wall = pid, time.monotonic() - began, time.time()
        log.append(f"{k.done_at:7.1f}s  SIGKILL {k.name} (pid {pid})")

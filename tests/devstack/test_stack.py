"""The whole local stack, once: `python -m stack up` on free ports in a folder of its own (beside any stack on the
default ports), kill -9 of a service and of the postmaster, both back and SERVING without anyone's help,
`status` telling the restarts, a second stack refused the ports the first one holds, and `down` leaving nothing
behind, not even a zombie."""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import grpc
import pytest

from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from pscommon.probes import grpc_serving
from pscommon.tls import TlsFiles
from stack import ports as stack_ports
from stack import postgres
from stack.processes import REPO, Proc, alive, is_zombie, read_pid, wait_ready


def stack_command(data: pathlib.Path, env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack", *command, "--data-dir", str(data)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture
def stack_folder() -> Iterator[tuple[pathlib.Path, dict[str, int], dict[str, str]]]:
    data = pathlib.Path(tempfile.mkdtemp(prefix="psp-stack-"))
    ports = stack_ports.free()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PSP_STACK_")}
    env["PSP_STACK_PORTS"] = stack_ports.render(ports)
    yield data, ports, env
    stack_command(data, env, "down")
    shutil.rmtree(data, ignore_errors=True)


def test_the_stack_restarts_what_is_killed_and_leaves_nothing_behind(stack_folder):
    data, ports, env = stack_folder
    t0 = time.monotonic()
    started = stack_command(data, env, "up")
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"127.0.0.1:{ports['suspension']}" in started.stdout
    assert f"http://127.0.0.1:{ports['portal']}/h/" in started.stdout  # the holder's page, where SMS links lead
    assert f"PSP_VERIFY_URL=http://127.0.0.1:{ports['portal']}/h" in (data / "stack.env").read_text()
    assert f"PSP_STACK_PORTS={stack_ports.render(ports)}" in (data / "stack.env").read_text()
    up_s = time.monotonic() - t0

    ops = TlsFiles.in_folder(data / "pki", "ops")
    suspension = Proc("suspension", [], grpc_port=ports["suspension"])
    assert grpc_serving(ports["suspension"], ops)
    killed = {name: read_pid(data / "run", name) for name in ("suspension", "postgres")}
    assert all(killed.values()), killed
    for name in ("postgres", "suspension"):
        os.kill(killed[name][0], signal.SIGKILL)
    t1 = time.monotonic()
    # Restarted by the supervisor: suspension first waits for PostgreSQL, then serves.
    wait_ready(suspension, ops, timeout_s=30)
    back_s = time.monotonic() - t1
    for name, (pid, _) in killed.items():
        assert not alive(pid) and not is_zombie(pid), name  # reaped by the supervisor
        now = read_pid(data / "run", name)
        assert now is not None and now[0] != pid and alive(*now), name
    assert postgres.postmaster(data / "pg") == read_pid(data / "run", "postgres")[0]
    with grpc.secure_channel(f"127.0.0.1:{ports['suspension']}", ops.channel_credentials()) as channel:
        history = suspension_pb2_grpc.SuspensionServiceStub(channel).ListLineHistory(
            suspension_pb2.ListLineHistoryRequest(msisdn="19377779999"), timeout=10
        )
    assert list(history.entries) == []  # answered from the restarted database

    status = stack_command(data, env, "status")
    assert status.returncode == 0, status.stdout
    rows = {line.split()[0]: line for line in status.stdout.splitlines() if line.strip()}
    for name in ("postgres", "suspension"):
        assert "running" in rows[name] and "restarted 1 time" in rows[name] and "SIGKILL" in rows[name], rows[name]
    assert "restarted" not in rows["scoring"]
    assert "killed by SIGKILL" in (data / "logs" / "supervisor.log").read_text()

    # A second stack may not take the ports this one holds (gRPC would even share them: SO_REUSEPORT).
    beside = pathlib.Path(tempfile.mkdtemp(prefix="psp-stack-"))
    try:
        refused = stack_command(beside, env, "up")
        assert refused.returncode == 1 and "already in use" in refused.stderr, refused.stderr
        assert not (beside / "run" / "supervisor.pid").exists()
    finally:
        shutil.rmtree(beside, ignore_errors=True)

    running = {p.name[:-4]: read_pid(data / "run", p.name[:-4]) for p in (data / "run").glob("*.pid")}
    stopped = stack_command(data, env, "down")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    for name, found in running.items():
        assert found is not None and not alive(found[0]), name
        if name != "supervisor":  # its parent (the `up` that started it) is gone: whoever adopted it reaps it
            assert not is_zombie(found[0]), name
    assert not list((data / "run").glob("*.pid"))
    print(f"stack up {up_s:.1f}s; suspension and PostgreSQL back {back_s:.1f}s after kill -9")

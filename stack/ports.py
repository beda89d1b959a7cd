"""The local stack's ports: today's defaults, all moved by PSP_STACK_PORT_OFFSET or some set by PSP_STACK_PORTS.

A data folder keeps the ports it was started with (PSP_STACK_PORTS in its stack.env), so the next `up` of that
folder finds them again; PSP_STACK_PORT_OFFSET or PSP_STACK_PORTS in the environment of `up` replace them.
"""

from __future__ import annotations

import os

from pscommon.config import Settings
from pscommon.probes import free_port

DEFAULTS: dict[str, int] = {
    "temporal": 7233,
    "temporal-ui": 8233,
    "codec": 8081,
    "scoring": 50051,
    "scoring-1": 50055,  # the second scoring shard, when the stack runs two (PSP_SCORING_SHARDS=2)
    "suspension": 50052,
    "notify": 50053,
    "verification": 50054,
    "simulators": 50060,
    "smsc": 2775,
    "smtp": 2525,
    "span-receiver": 4319,  # OTLP/gRPC traces of every process (4317 left to a collector the developer may run)
    "portal": 8090,  # the web portal: the holder's page (and the reviewer console), plain HTTP on loopback
    # Each process's Prometheus endpoint (http://127.0.0.1:PORT/metrics; PSP_METRICS_PORT in its environment).
    "suspension-metrics": 9464,
    "notify-metrics": 9465,
    "verification-metrics": 9466,
    "scoring-metrics": 9467,
    "scoring-1-metrics": 9468,
    "worker-metrics": 9469,
}
GRPC_SERVICES = ("simulators", "suspension", "notify", "verification", "scoring")
# The processes that serve metrics: each has a port named "<process>-metrics" above.
METRICS_PROCESSES = ("suspension", "notify", "verification", "scoring", "scoring-1", "worker")


def metrics_port(ports: dict[str, int], process: str) -> int:
    return ports[f"{process}-metrics"]


def metrics_url(ports: dict[str, int], process: str) -> str:
    return f"http://127.0.0.1:{metrics_port(ports, process)}/metrics"


def parse(text: str) -> dict[str, int]:
    """ "scoring=51051,temporal=17233" → {"scoring": 51051, "temporal": 17233}."""
    ports: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in DEFAULTS:
            raise ValueError(f"PSP_STACK_PORTS: {item!r} is not NAME=PORT with NAME one of {', '.join(DEFAULTS)}")
        ports[name] = int(value)
    return ports


def free() -> dict[str, int]:
    """A free port for every part, e.g. for a second stack beside the first (tests)."""
    found: set[int] = set()
    while len(found) < len(DEFAULTS):
        found.add(free_port())
    return dict(zip(DEFAULTS, sorted(found), strict=True))


def render(ports: dict[str, int]) -> str:
    return ",".join(f"{name}={ports[name]}" for name in DEFAULTS)


def resolve(cfg: Settings, recorded: str = "") -> dict[str, int]:
    """The ports of a stack: the defaults moved by the offset when one is given, else those the data folder
    recorded; then whatever PSP_STACK_PORTS names."""
    if cfg.stack_port_offset is not None:
        base = {name: port + cfg.stack_port_offset for name, port in DEFAULTS.items()}
    else:
        base = {**DEFAULTS, **parse(recorded)}
    ports = {**base, **parse(cfg.stack_ports)}
    bad = {name: port for name, port in ports.items() if not 0 < port < 65536}
    if bad:
        raise ValueError(f"ports out of range: {bad}")
    if len(set(ports.values())) != len(ports):
        raise ValueError(f"two parts of the stack on one port: {render(ports)}")
    return ports


def settings_for(ports: dict[str, int]) -> dict[str, str]:
    """What the stack's processes and psctl read (pscommon.config), written into the data folder's stack.env."""
    ui = ports["temporal-ui"]
    return {
        "PSP_STACK_PORTS": render(ports),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
        "TEMPORAL_UI_URL": f"http://127.0.0.1:{ui}",
        "PSP_CODEC_SERVER_PORT": str(ports["codec"]),
        "PSP_CODEC_CORS_ORIGINS": os.environ.get("PSP_CODEC_CORS_ORIGINS")
        or f"http://127.0.0.1:{ui},http://localhost:{ui}",
        **{f"PSP_{name.upper()}_ADDR": f"127.0.0.1:{ports[name]}" for name in GRPC_SERVICES},
        "PSP_SCORING_SHARD_ADDRS": f"127.0.0.1:{ports['scoring']},127.0.0.1:{ports['scoring-1']}",
        "PSP_SMSC_PORT": str(ports["smsc"]),
        "PSP_SMTP_PORT": str(ports["smtp"]),
        "PSP_SPAN_RECEIVER_PORT": str(ports["span-receiver"]),
        "PSP_PORTAL_PORT": str(ports["portal"]),
        # The links in the holder's messages open the local portal.
        "PSP_VERIFY_URL": f"http://127.0.0.1:{ports['portal']}/h",
    }

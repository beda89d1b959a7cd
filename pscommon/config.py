"""Configuration from the environment, the same way for every process (12-factor; ConfigMap in k8s)."""

import os
import pathlib
from dataclasses import dataclass, field


def _shard_index(value: str) -> int:
    """PSP_SCORING_SHARD, or else the ordinal of a StatefulSet pod's host name (scoring-2 -> 2), or 0."""
    if value:
        return int(value)
    host = os.environ.get("HOSTNAME", "")
    ordinal = host.rpartition("-")[2]
    return int(ordinal) if host.startswith("scoring-") and ordinal.isdigit() else 0


def _snapshot_version(value: str) -> int:
    if value not in ("2", "3"):
        raise ValueError(f"PSP_SCORING_SNAPSHOT_VERSION must be 2 or 3, not {value!r}")
    return int(value)


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=lambda: _env("DATABASE_URL", ""))
    temporal_address: str = field(default_factory=lambda: _env("TEMPORAL_ADDRESS", "127.0.0.1:7233"))
    temporal_namespace: str = field(default_factory=lambda: _env("TEMPORAL_NAMESPACE", "default"))
    temporal_ui_url: str = field(default_factory=lambda: _env("TEMPORAL_UI_URL", "http://127.0.0.1:8233"))
    # TLS to the Temporal frontend (pscommon/temporal.py): the CA that signed the frontend's certificate, this
    # process's client certificate and key (the frontend may require one), and the name the frontend's certificate
    # must carry if it is not the host of TEMPORAL_ADDRESS. None set: plaintext (the local dev server).
    temporal_tls_ca: str = field(default_factory=lambda: _env("TEMPORAL_TLS_CA", ""))
    temporal_tls_cert: str = field(default_factory=lambda: _env("TEMPORAL_TLS_CERT", ""))
    temporal_tls_key: str = field(default_factory=lambda: _env("TEMPORAL_TLS_KEY", ""))
    temporal_tls_server_name: str = field(default_factory=lambda: _env("TEMPORAL_TLS_SERVER_NAME", ""))
    task_queue: str = field(default_factory=lambda: _env("PSP_TASK_QUEUE", "protective-suspension"))
    scoring_addr: str = field(default_factory=lambda: _env("PSP_SCORING_ADDR", "127.0.0.1:50051"))
    suspension_addr: str = field(default_factory=lambda: _env("PSP_SUSPENSION_ADDR", "127.0.0.1:50052"))
    notify_addr: str = field(default_factory=lambda: _env("PSP_NOTIFY_ADDR", "127.0.0.1:50053"))
    verification_addr: str = field(default_factory=lambda: _env("PSP_VERIFICATION_ADDR", "127.0.0.1:50054"))
    # The simulated outside systems: registry, HLR, push gateway, identity check (one gRPC port).
    simulators_addr: str = field(default_factory=lambda: _env("PSP_SIMULATORS_ADDR", "127.0.0.1:50060"))
    smsc_host: str = field(default_factory=lambda: _env("PSP_SMSC_HOST", "127.0.0.1"))
    smsc_port: int = field(default_factory=lambda: int(_env("PSP_SMSC_PORT", "2775")))
    smsc_system_id: str = field(default_factory=lambda: _env("PSP_SMSC_SYSTEM_ID", "psp-notify"))
    smsc_password: str = field(default_factory=lambda: _env("PSP_SMSC_PASSWORD", "psp-smsc"))
    # The holder's mail provider (the aiosmtpd simulator locally).
    smtp_host: str = field(default_factory=lambda: _env("PSP_SMTP_HOST", "127.0.0.1"))
    smtp_port: int = field(default_factory=lambda: int(_env("PSP_SMTP_PORT", "2525")))
    mail_from: str = field(default_factory=lambda: _env("PSP_MAIL_FROM", "notice@example-carrier.cn"))
    # How notify reaches the holder: channel ladder and retry schedule (a file under services/notify/).
    delivery_policy: str = field(default_factory=lambda: _env("PSP_DELIVERY_POLICY", "delivery"))
    # Keyed hash of MSISDNs: the same key everywhere, secret in production.
    line_hash_key: str = field(default_factory=lambda: _env("PSP_LINE_HASH_KEY", "local-development-key"))
    # Payload encryption keys "kid=base64key,kid2=..." and the id used to encrypt.
    codec_keys: str = field(default_factory=lambda: _env("PSP_CODEC_KEYS", ""))
    codec_active_key: str = field(default_factory=lambda: _env("PSP_CODEC_ACTIVE_KEY", ""))
    codec_server_port: int = field(default_factory=lambda: int(_env("PSP_CODEC_SERVER_PORT", "8081")))
    verify_url_base: str = field(default_factory=lambda: _env("PSP_VERIFY_URL", "https://verify.example-carrier.cn/h"))
    # Keys signing the holder's links (pscommon/links.py) "kid=base64key,..." and the id new links are signed
    # with; empty: messages carry no link. Shared by notify (signs) and the portal (checks).
    link_keys: str = field(default_factory=lambda: _env("PSP_LINK_KEYS", ""))
    link_active_key: str = field(default_factory=lambda: _env("PSP_LINK_ACTIVE_KEY", ""))
    link_ttl_s: int = field(default_factory=lambda: int(_env("PSP_LINK_TTL_S", str(14 * 86400))))
    # The web portal (services/portal): where it listens, the secret its CSRF tokens are keyed with (empty: a
    # random one per process), where sealed uploads go, the province its gRPC calls name, the hotline it shows.
    portal_host: str = field(default_factory=lambda: _env("PSP_PORTAL_HOST", "127.0.0.1"))
    portal_port: int = field(default_factory=lambda: int(_env("PSP_PORTAL_PORT", "8090")))
    portal_secret: str = field(default_factory=lambda: _env("PSP_PORTAL_SECRET", ""))
    portal_uploads: str = field(default_factory=lambda: _env("PSP_PORTAL_UPLOADS", ""))
    portal_province: str = field(default_factory=lambda: _env("PSP_PORTAL_PROVINCE", "44"))
    portal_hotline: str = field(default_factory=lambda: _env("PSP_PORTAL_HOTLINE", "10086"))
    # Behind TLS (production): session cookies only over HTTPS. The local stack serves plain HTTP on loopback.
    portal_secure_cookies: bool = field(default_factory=lambda: _env("PSP_PORTAL_SECURE_COOKIES", "1") == "1")
    # Which pages this portal process serves: "holder" (the public pages under /h/), "reviewer" (the console under
    # /reviewer/), or both (the local stack). Production runs them apart (deploy/k8s/README.md, "The portal").
    portal_pages: str = field(default_factory=lambda: _env("PSP_PORTAL_PAGES", "holder,reviewer"))
    # Which case policy the worker uses (a file under workflows/policies/).
    case_policy: str = field(default_factory=lambda: _env("PSP_CASE_POLICY", "default"))
    # Path of the verification policy table; empty: the one shipped with the service.
    verification_policy: str = field(default_factory=lambda: _env("PSP_VERIFICATION_POLICY", ""))
    # How often scoring writes changed line windows to PostgreSQL (what a crash can lose, at most).
    scoring_snapshot_s: float = field(default_factory=lambda: float(_env("PSP_SCORING_SNAPSHOT_S", "30")))
    # How late a CDR may arrive and still land in every window (docs/event-time.md); later ones count at day
    # scale only.
    scoring_lateness_s: int = field(default_factory=lambda: int(_env("PSP_SCORING_LATENESS_S", "7200")))
    # The stored form of checkpoints scoring writes (features.SNAPSHOT_VERSION, docs/event-time.md): 3, or 2 so
    # that a release before version 3 can read them (set it, wait one checkpoint round, then roll back).
    scoring_snapshot_version: int = field(
        default_factory=lambda: _snapshot_version(_env("PSP_SCORING_SNAPSHOT_VERSION", "3"))
    )
    # Scoring runs as `scoring_shards` shards; this process is shard `scoring_shard` (0-based; in Kubernetes the
    # StatefulSet ordinal). Each owns the partitions p with p mod shards == shard (services/scoring/partitions.py).
    scoring_shards: int = field(default_factory=lambda: int(_env("PSP_SCORING_SHARDS", "1")))
    scoring_shard: int = field(default_factory=lambda: _shard_index(_env("PSP_SCORING_SHARD", "")))
    # The shards' addresses, in shard order, comma-separated (one shard: unused).
    scoring_shard_addrs: str = field(default_factory=lambda: _env("PSP_SCORING_SHARD_ADDRS", ""))
    # This process's Prometheus endpoint (http://PSP_BIND_HOST:port/metrics); empty: none. The local stack gives
    # each process its own (stack/ports.py); in Kubernetes every pod serves it on the same port.
    metrics_port: int | None = field(default_factory=lambda: int(v) if (v := _env("PSP_METRICS_PORT", "")) else None)
    shutdown_grace_s: float = field(default_factory=lambda: float(_env("PSP_SHUTDOWN_GRACE_S", "5")))
    # Mutual TLS: the platform CA, and this process's certificate and key (its principal, also its server
    # certificate). The local stack issues them into .local/pki; in Kubernetes cert-manager mounts them.
    # Or, instead of the three paths: a folder of <principal>.pem/.key beside ca.pem, and which principal this is.
    pki_dir: str = field(default_factory=lambda: _env("PSP_PKI_DIR", ""))
    principal: str = field(default_factory=lambda: _env("PSP_PRINCIPAL", ""))
    tls_ca: str = field(default_factory=lambda: _env("PSP_TLS_CA", ""))
    tls_cert: str = field(default_factory=lambda: _env("PSP_TLS_CERT", ""))
    tls_key: str = field(default_factory=lambda: _env("PSP_TLS_KEY", ""))
    trust_domain: str = field(default_factory=lambda: _env("PSP_TRUST_DOMAIN", "psp.local"))
    # The access table (who may call what); empty: the one shipped in contracts/.
    access_table: str = field(default_factory=lambda: _env("PSP_ACCESS_TABLE", ""))
    # How long a process starting up waits for PostgreSQL and Temporal to answer before it gives up (seconds).
    startup_wait_s: float = field(default_factory=lambda: float(_env("PSP_STARTUP_WAIT_S", "60")))
    # The local stack's span file (pscommon/spans.py), written by its span receiver, read by `psctl case trace`.
    span_file: str = field(
        default_factory=lambda: _env("PSP_SPAN_FILE", str(pathlib.Path(".local") / "traces" / "spans.jsonl"))
    )
    # The local stack's ports (stack/ports.py): "name=port,..." for some or all of temporal, temporal-ui, codec,
    # scoring, suspension, notify, verification, simulators, smsc, smtp; and an offset added to every default
    # port (PSP_STACK_PORT_OFFSET=100: Temporal on 7333, scoring on 50151 ...), for a second stack beside the first.
    stack_ports: str = field(default_factory=lambda: _env("PSP_STACK_PORTS", ""))
    stack_port_offset: int | None = field(
        default_factory=lambda: int(v) if (v := _env("PSP_STACK_PORT_OFFSET", "")) else None
    )


def settings() -> Settings:
    return Settings()


# A settings file of KEY=VALUE lines: the local stack writes one (.local/stack.env) for its processes and psctl.
DEFAULT_ENV_FILE = pathlib.Path(".local") / "stack.env"


def load_env_file(path: pathlib.Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def write_env_file(path: pathlib.Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)


def apply_env_file(path: pathlib.Path | None = None) -> bool:
    """Fills the environment from a settings file (what is already set wins); PSP_ENV_FILE names the file."""
    values = load_env_file(path or pathlib.Path(os.environ.get("PSP_ENV_FILE", DEFAULT_ENV_FILE)))
    for k, v in values.items():
        os.environ.setdefault(k, v)
    return bool(values)

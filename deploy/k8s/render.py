"""Renders the platform's Kubernetes manifests from one base and a short per-process table.

    python deploy/k8s/render.py           # (re)writes the generated files in deploy/k8s/
    python deploy/k8s/render.py --check   # exits 1 if a committed file differs from what this renders

Every process runs the same image (IMAGE, tagged in one place) with its own command. `deployment()` (or, for
scoring's shards, `stateful_set()` with `headless_service()`), `service()`, `autoscaler()`, `disruption_budget()`
and `ingress_policy()` are the one base; PROCESSES says what differs. `certificate()` and `ca_issuer()` give each
process its mutual-TLS identity through cert-manager.
The files it writes (one per process, certificates.yaml, network-policy.yaml, kustomization.yaml, and the
examples/ that kustomization.yaml leaves out) are committed, so `kubectl apply -k deploy/k8s` needs nothing but
kubectl; namespace.yaml, config.yaml, secret.yaml and codec-jwt-issuer.yaml (HAND_WRITTEN) stay hand-written.
tests/deploy checks that the committed files are exactly this output, then validates them. Needs only PyYAML and
the standard library.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

K8S_DIR = Path(__file__).resolve().parent

NAMESPACE = "protective-suspension"
PART_OF = "protective-suspension"
# The one image, built by deploy/Dockerfile; change the tag here and re-render.
IMAGE_REPOSITORY = "registry.example-carrier.cn/protective-suspension/platform"
IMAGE_TAG = "0.1.0"
IMAGE = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
# The image's non-root user (USER in deploy/Dockerfile).
UID = 10001
SERVICE_ACCOUNT = "platform"
CONFIG_MAP = "platform-config"
SECRET = "platform-secrets"

PORTAL_SECRET = "portal-secrets"
HAND_WRITTEN = ("namespace.yaml", "config.yaml", "secret.yaml", "portal-secret.yaml", "codec-jwt-issuer.yaml")
NETWORK_POLICY_FILE = "network-policy.yaml"
CERTIFICATES_FILE = "certificates.yaml"
REVIEWERS_FILE = "reviewers.yaml"
UPLOADS_FILE = "portal-uploads.yaml"
TEMPORAL_CLIENTS_FILE = "temporal-clients.yaml"
KUSTOMIZATION_FILE = "kustomization.yaml"
# Rendered and committed, but not applied by kustomization.yaml (see README.md).
EXAMPLES_DIR = "examples"

# Mutual TLS. Every principal is spiffe://<TRUST_DOMAIN>/<role>/<id> (roles: contracts/access.yaml); the
# trust domain must equal PSP_TRUST_DOMAIN in config.yaml (tests/deploy checks it).
TRUST_DOMAIN = "psp.carrier.example"
CLUSTER_DOMAIN = "cluster.local"  # the kubelet's --cluster-domain, for the Services' full DNS names
# The namespaced CA Issuer that signs every certificate, and the Secret holding its CA key pair (tls.crt,
# tls.key), which the operator provides: it is deliberately not in these files (README.md, "Certificates").
ISSUER = "psp-ca"
CA_SECRET = "psp-ca"
CERT_DURATION_H = 2160  # 90 days
CERT_RENEW_BEFORE_H = 360  # renewed 15 days before expiry: the window in which pods must restart
CERT_DURATION = f"{CERT_DURATION_H}h"
CERT_RENEW_BEFORE = f"{CERT_RENEW_BEFORE_H}h"
RENEWAL_INTERVAL_D = (CERT_DURATION_H - CERT_RENEW_BEFORE_H) // 24
# Where each pod mounts its certificate Secret (cert-manager's keys tls.crt, tls.key, ca.crt), read-only.
TLS_DIR = "/etc/psp/tls"
TLS_FILES = {"PSP_TLS_CA": "ca.crt", "PSP_TLS_CERT": "tls.crt", "PSP_TLS_KEY": "tls.key"}
TLS_VOLUME = "tls"
# Stakater Reloader (if installed) rolls a Deployment or StatefulSet when a Secret named here changes: README.md,
# "Rotation".
RELOAD_ANNOTATION = "secret.reloader.stakater.com/reload"
# ... and when a ConfigMap named here changes (the codec server's issuer key).
CONFIG_MAP_RELOAD_ANNOTATION = "configmap.reloader.stakater.com/reload"
# Temporal (deploy/temporal/: the official Helm chart in namespace TEMPORAL_NAMESPACE). Its frontend speaks TLS and
# requires a client certificate from the Temporal CA, which is not the platform CA: a platform principal (mediation's,
# say) gets no access to Temporal, and Temporal's own certificates mint no platform principal. The same CA key pair
# backs an Issuer of that name in both namespaces (the Secret TEMPORAL_CA_SECRET, provided by the operator in each:
# docs/operations.md, "Temporal in production"); every process that talks to Temporal mounts its own client
# certificate from it at TEMPORAL_TLS_DIR, named by TEMPORAL_TLS_* (pscommon/temporal.py).
TEMPORAL_NAMESPACE = "temporal"
TEMPORAL_ISSUER = "temporal-ca"
TEMPORAL_CA_SECRET = "temporal-ca"
TEMPORAL_TLS_DIR = "/etc/psp/temporal-tls"
TEMPORAL_TLS_FILES = {"TEMPORAL_TLS_CA": "ca.crt", "TEMPORAL_TLS_CERT": "tls.crt", "TEMPORAL_TLS_KEY": "tls.key"}
TEMPORAL_TLS_VOLUME = "temporal-tls"
# Every process that records metrics serves them on this port (PSP_METRICS_PORT in config.yaml, bound to
# PSP_BIND_HOST) at /metrics, plain HTTP: Prometheus's job psp-pods (deploy/observability/prometheus/prometheus.yaml)
# scrapes the pods annotated with it, and only Prometheus may reach it (network-policy.yaml).
METRICS_PORT_NAME = "metrics"
METRICS_PORT = 9464
METRICS_PATH = "/metrics"
# Where Prometheus runs: its namespace and its pods' label.
PROMETHEUS_NAMESPACE = "observability"
PROMETHEUS_POD = {"app.kubernetes.io/name": "prometheus"}
# The kubelet's gRPC probe cannot present a client certificate: probes run this inside the container, with
# the process's own certificate (PSP_TLS_*), and exit 0 when the named service answers SERVING.
PROBE_MODULE = "pscommon.probes"
GENERATED_NOTE = (
    "GENERATED by deploy/k8s/render.py from its process table: do not edit by hand.\n"
    "Change render.py, then run `python deploy/k8s/render.py` (tests/deploy fails until you do)."
)

Manifest = dict[str, Any]


@dataclass(frozen=True)
class ConfigFiles:
    """Files of a ConfigMap mounted read-only in one folder of a process, each named to it by a setting that holds
    its path (set inline, like PSP_TLS_*: a path into the pod's own volume, not configuration)."""

    volume: str
    config_map: str
    directory: str
    files: dict[str, str]  # setting -> the ConfigMap's key, also the file's name in `directory`


@dataclass(frozen=True)
class Sharding:
    """A process split into shards, one per pod of a StatefulSet named after it: pod <name>-<i> is shard i (the
    process takes i from its HOSTNAME), reachable under its own DNS name <name>-<i>.<name>-shards.<namespace>.svc
    through the headless Service <name>-shards. `shards` is the StatefulSet's replicas AND the value of
    `count_env`, and `addrs_env` lists the shards' addresses in shard order: rendered from one number, so they
    cannot disagree."""

    shards: int
    count_env: str
    addrs_env: str


# Lines are in this many partitions (services/scoring/partitions.py, PARTITIONS; a test checks they agree);
# a shard owns at least one, so there are at most this many shards.
PARTITIONS = 64
# Scoring's shard count. To re-shard, change it here, render and apply (README.md, "Scoring shards").
SCORING_SHARDS = 2


# The codec server accepts only operators' JWTs, verified with the identity provider's public key: a ConfigMap
# (a public key is no secret) written by hand in codec-jwt-issuer.yaml, a placeholder until the carrier puts
# its key there (README.md, "The codec server"). The issuer and audience are in CONFIG_MAP.
CODEC_JWT_ISSUER = ConfigFiles(
    volume="codec-jwt",
    config_map="codec-jwt-issuer",
    directory="/etc/psp/codec-jwt",
    files={"PSP_CODEC_JWT_ISSUER_PEM": "issuer.pem"},
)


# The portal (services/portal) runs as two processes of the same module (README.md, "The portal"): `portal`, the
# holder's pages, public on the internet through PUBLIC_WEB; `reviewer-console`, the review desk's console, only on
# the carrier's internal network through INTERNAL_WEB. Neither is reachable from anywhere else (network-policy.yaml).
PORTAL_PORT = 8090  # PSP_PORTAL_PORT in config.yaml (tests/deploy checks they agree)
HEALTH_PATH = "/healthz"  # services/portal/web.py: "ok", nothing else
# Holders' uploads (evidence, liveness videos), sealed with PSP_CODEC_KEYS: written by the portal, read by the
# console, so one volume that pods of both mount read-write on any node (ReadWriteMany; README.md, "The portal").
UPLOADS_CLAIM = "portal-uploads"
UPLOADS_DIR = "/var/lib/psp/portal-uploads"
UPLOADS_SIZE = "50Gi"
# The review desk: one client certificate per reviewer (spiffe://<trust domain>/reviewer/<id>), all mounted into
# the console's pods as <id>.pem / <id>.key beside ca.pem at REVIEWERS_DIR (PSP_PKI_DIR, the layout
# services/portal/reviewer/directory.py reads). PLACEHOLDER ids: put the desk's own (reviewer-<staff number>),
# render and apply; the console restarts with the new set (README.md, "The portal").
REVIEWERS: tuple[str, ...] = ("reviewer-1", "reviewer-2")
REVIEWERS_DIR = "/etc/psp/reviewers"
REVIEWERS_VOLUME = "reviewers"


@dataclass(frozen=True)
class WebIngress:
    """An Ingress publishing a web process over HTTPS: its host, the path prefixes routed to it (nothing else),
    the ingress class, the cert-manager ClusterIssuer of its TLS certificate (a web CA the browsers trust, never
    the platform's CA), and the namespace of the controller's pods, the only peer its NetworkPolicy admits."""

    host: str
    paths: tuple[str, ...]
    ingress_class: str
    cluster_issuer: str
    controller_namespace: str
    note: str


# PLACEHOLDERS: the carrier's host names, ingress classes, issuers and controller namespaces (README.md, "The portal").
PUBLIC_WEB = WebIngress(
    host="verify.example-carrier.cn",  # PSP_VERIFY_URL in config.yaml is https://<host>/h (checked by tests/deploy)
    paths=("/h/", "/static/"),
    ingress_class="public",
    cluster_issuer="public-web-ca",
    controller_namespace="ingress-public",
    note="""
        The holder's pages, public: only /h/ (the pages the SMS links open) and /static/ (their CSS and the
        status poller) are routed; the pods serve no reviewer route at all (PSP_PORTAL_PAGES=holder).
        """,
)
INTERNAL_WEB = WebIngress(
    host="review.psp.example-carrier.internal",
    paths=("/reviewer", "/static/"),
    ingress_class="internal",
    cluster_issuer="carrier-internal-web-ca",
    controller_namespace="ingress-internal",
    note="""
        The reviewer console, on the carrier's internal network only: an ingress class whose controller is
        reachable from the review desk's network and not from the internet, behind the carrier's SSO proxy
        (README.md, "The portal").
        """,
)


def _text(text: str) -> str:
    """Prose from the table, written as indented triple-quoted strings, without its indentation."""
    return textwrap.dedent(text).strip("\n")


# ------------------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Port:
    name: str
    number: int


@dataclass(frozen=True)
class Process:
    name: str
    module: str  # run as `python -m <module>`
    about: str  # header comment of the process's file
    component: str
    port: Port | None  # None: serves nothing, so no Service and no NetworkPolicy
    readiness: Manifest
    # Its SPIFFE role (contracts/access.yaml): a cert-manager Certificate for spiffe://<trust domain>/<role>/<name>,
    # mounted at TLS_DIR, serving under its Service's names if it has a port. None: no certificate.
    role: str | None = None
    liveness: Manifest | None = None
    startup: Manifest | None = None
    resources: Manifest | None = None  # None: SMALL
    # Keeps per-line state in memory, split into shards: a StatefulSet of one pod per shard (a fixed count, no
    # autoscaler) with a headless Service, and a certificate that also names the pods. None: a Deployment.
    sharding: Sharding | None = None
    min_replicas: int = 2
    max_replicas: int = 6
    autoscaler_note: str = ""
    grace_s: int = 30
    grace_note: str = ""
    # Seconds a preStop hook sleeps so that endpoint removal reaches every node before the process stops
    # accepting connections; None: no hook.
    pre_stop_sleep_s: int | None = 5
    # Extra variables, each taken from the ConfigMap or the Secret (valueFrom), never inline (the only inline ones
    # are paths into the pod's own volumes, which pod_template() adds: PSP_TLS_* for a process with a role, and the
    # settings of `config_files`; and a sharded process's shard count and addresses, rendered from `sharding`).
    env: tuple[Manifest, ...] = ()
    # Files from a ConfigMap, mounted read-only, their paths in the settings that name them.
    config_files: ConfigFiles | None = None
    # Talks to the Temporal frontend: a client certificate from TEMPORAL_ISSUER for its principal, at TEMPORAL_TLS_DIR.
    temporal: bool = False
    # Records metrics (pscommon/metrics.py) and serves them on METRICS_PORT.
    metrics: bool = True
    # NetworkPolicy: peers admitted besides the platform's own pods, and the comment above the policy.
    extra_peers: tuple[Manifest, ...] = ()
    ingress_note: str = ""
    # The Secrets whose every key becomes a variable (envFrom). A process that needs only a few keys of a Secret
    # takes them one by one in `env` (secret_keys()): the portal's processes, which face browsers.
    secrets: tuple[str, ...] = (SECRET,)
    # Its certificate serves its Service's names (a gRPC server); False: a client certificate only.
    serves_tls: bool = True
    # A web process published by an Ingress: its NetworkPolicy admits the ingress controller only.
    web: WebIngress | None = None
    # The portal's pages this process serves (PSP_PORTAL_PAGES, set inline: it is what the process is).
    portal_pages: str | None = None
    # Mounts the holders' uploads volume read-write at UPLOADS_DIR (PSP_PORTAL_UPLOADS).
    uploads: bool = False
    # Mounts the reviewers' certificates at REVIEWERS_DIR (PSP_PKI_DIR).
    reviewer_certs: bool = False


SMALL: Manifest = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
SERVER_GRACE_NOTE = "On SIGTERM the server reports NOT_SERVING and drains in-flight calls for PSP_SHUTDOWN_GRACE_S."
PROBES_NOTE = f"""
    The port speaks mutual TLS only, and the kubelet's own grpc probe cannot present a client certificate, so
    every probe is an exec of `python -m {PROBE_MODULE} 127.0.0.1:<port> <service>` inside the container: it
    calls the standard grpc.health.v1 service (pscommon/grpc_server.py) with the pod's own certificate and
    checks the server's (which lists 127.0.0.1 for this). A Python start costs ~0.3-0.5 s of CPU, hence 5 s
    timeouts and 10 s (readiness) / 20 s (liveness) periods; the startup probe holds both back until it passes.
    """
OWN_PODS_NOTE = "from the platform's own pods (the worker and the other services)."
# The worker's readiness: the Temporal frontend is reachable from the pod (a TCP connect, no HTTP
# endpoint invented for the probe).
TEMPORAL_REACHABLE = (
    "import os, socket;"
    ' host, _, port = os.environ["TEMPORAL_ADDRESS"].rpartition(":");'
    " socket.create_connection((host, int(port)), timeout=3).close()"
)


def secret_keys(*keys: str, secret: str = SECRET) -> tuple[Manifest, ...]:
    """Single keys of a Secret as variables of the same name."""
    return tuple(secret_key(k, k, secret) for k in keys)


def secret_key(var: str, key: str, secret: str) -> Manifest:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def http_probe(*, period: int, failures: int, initial_delay: int | None = None) -> Manifest:
    return probe(
        "httpGet",
        {"path": HEALTH_PATH, "port": "http"},
        initial_delay=initial_delay,
        period=period,
        timeout=3,
        failures=failures,
    )


def probe(
    handler: str, target: Manifest, *, period: int, timeout: int, failures: int, initial_delay: int | None = None
) -> Manifest:
    p: Manifest = {handler: target}
    if initial_delay is not None:
        p["initialDelaySeconds"] = initial_delay
    return p | {"periodSeconds": period, "timeoutSeconds": timeout, "failureThreshold": failures}


def mtls_probe(port: int, grpc_service_name: str, *, period: int, failures: int) -> Manifest:
    """An exec probe: grpc.health.v1 Check of `grpc_service_name` over mutual TLS with the pod's own certificate."""
    command = ["python", "-m", PROBE_MODULE, f"127.0.0.1:{port}", grpc_service_name]
    # The probe's own RPC deadline is 2 s; 5 s leaves room for the interpreter's start on a throttled CPU.
    return probe("exec", {"command": command}, period=period, timeout=5, failures=failures)


def grpc_service(
    name: str,
    port: int,
    grpc_service_name: str,
    about: str,
    *,
    startup_s: int = 120,
    ingress_note: str = "",
    **kw: Any,
) -> Process:
    """A gRPC service: one mutual-TLS port `tls-grpc`, its certificate with role `name`, and startup, readiness
    and liveness probes on its grpc.health.v1 status for `grpc_service_name` (SERVING once it has started, NOT_SERVING
    while it drains)."""
    startup_failures = startup_s // 5
    return Process(
        name=name,
        module=f"services.{name}.server",
        about=(
            f"{_text(about)}\n\n{_text(PROBES_NOTE)}\nPort {port}; identity spiffe://{TRUST_DOMAIN}/{name}/{name}"
            f" (certificates.yaml); the startup probe allows {startup_s // 60} minutes."
        ),
        component="grpc-service",
        port=Port("tls-grpc", port),
        role=name,
        startup=mtls_probe(port, grpc_service_name, period=5, failures=startup_failures),
        readiness=mtls_probe(port, grpc_service_name, period=10, failures=2),
        liveness=mtls_probe(port, grpc_service_name, period=20, failures=3),
        grace_note=SERVER_GRACE_NOTE,
        ingress_note=ingress_note or f"{name}: {OWN_PODS_NOTE}",
        **kw,
    )


PROCESSES: tuple[Process, ...] = (
    grpc_service(
        "scoring",
        50051,
        "carrier.scoring.v1.ScoringService",
        f"""
        scoring: turns call-detail records streamed from mediation into explainable risk assessments and opens cases.

        Shards: lines fall into {PARTITIONS} partitions by line hash; scoring runs as a StatefulSet of
        {SCORING_SHARDS} pods, one shard each. Pod scoring-<i> is shard i (pscommon/config.py takes i from the
        pod's HOSTNAME; PSP_SCORING_SHARD is not set) and owns each partition p where p mod PSP_SCORING_SHARDS
        is i: its sliding windows in memory, its checkpoints and write-ahead journal in PostgreSQL. Any shard takes
        any request and hands the other shards' parts to their owners over mutual TLS (as its own principal
        scoring), so clients keep dialling the Service scoring; the shards dial each other at
        PSP_SCORING_SHARD_ADDRS, their pods' names under the headless Service scoring-shards (which
        publishes pods before they are ready, so that starting shards reach each other). A shard claims its
        partitions in PostgreSQL when it starts and fences out any older process that held them, so two pods
        briefly holding one shard cannot both write. Pods start and stop in parallel (podManagementPolicy
        Parallel); updates roll one pod at a time (RollingUpdate), and the PodDisruptionBudget lets
        voluntary disruptions take one at a time. No autoscaler: the shard count is fixed.

        Changing the number of shards: change SCORING_SHARDS in deploy/k8s/render.py, render and apply. That
        changes the StatefulSet's replicas AND PSP_SCORING_SHARDS (and PSP_SCORING_SHARD_ADDRS) together; never
        `kubectl scale` the StatefulSet alone (the pods would disagree on the shard map). All pods restart with
        the new map; partitions move with their checkpoints and journal, nothing is lost. Until the last pod runs
        the new map, old and new pods take partitions from each other (a fenced-out pod stops and is restarted),
        so some partitions are briefly unavailable; for one clean cut, scale to 0 first (README.md, "Scoring
        shards"). Coming from the single-replica Deployment/scoring of earlier versions: delete it before the
        first apply (README.md). Restoring partitions may take a while, hence a longer startup probe; liveness
        only starts once it passes.
        """,
        sharding=Sharding(SCORING_SHARDS, "PSP_SCORING_SHARDS", "PSP_SCORING_SHARD_ADDRS"),
        temporal=True,  # opens cases: starts (or joins) a line's workflow
        startup_s=180,
        resources={"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
        extra_peers=({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mediation"}}},),
        ingress_note="""
        scoring: from the platform's own pods (the other scoring shards among them, which hand parts of a batch
        to their owners), and from mediation, which streams the CDRs (IngestCdrs).
        """,
    ),
    grpc_service(
        "suspension",
        50052,
        "carrier.suspension.v1.SuspensionService",
        """
        suspension: the line's state machine (protective suspension 保护性停机 / restoration 复机),
        its barring in the network and its audit history.
        """,
    ),
    grpc_service(
        "notify",
        50053,
        "carrier.notify.v1.NotifyService",
        """
        notify: reaches the holder of a line (SMS over SMPP to the SMSC, push) and reports whether, when and
        by which channel it did.
        """,
    ),
    grpc_service(
        "verification",
        50054,
        "carrier.verification.v1.VerificationService",
        "verification: decides what a holder must show to restore a line, checks it and tells the case.",
        temporal=True,  # tells the case (updates and signals its workflow)
    ),
    Process(
        name="worker",
        module="workflows.worker",
        about="""
        worker: the Temporal worker (workflows and activities) polling the PSP_TASK_QUEUE task queue.
        It serves no port, so it has no Service; it only makes outbound connections (Temporal frontend, the
        four gRPC services over mutual TLS as spiffe://<trust domain>/worker/worker, PostgreSQL, the
        OpenTelemetry collector).

        Readiness: the Temporal frontend is reachable from this pod (a TCP connect, no HTTP endpoint invented
        for the probe). It gates rollouts and the disruption budget; no traffic is routed here.
        No livenessProbe on purpose: the worker has no port to probe, and a fatal worker error ends the
        process, so the kubelet restarts the container anyway. Whether workers are actually polling is
        visible in Temporal itself (`temporal task-queue describe`, worker metrics).
        """,
        component="temporal-worker",
        port=None,
        role="worker",  # a client certificate only: it calls the four services
        temporal=True,
        readiness=probe(
            "exec", {"command": ["python", "-c", TEMPORAL_REACHABLE]}, initial_delay=5, period=30, timeout=5, failures=2
        ),
        grace_s=60,
        grace_note="""
        On SIGTERM the worker stops polling and gives running activities PSP_SHUTDOWN_GRACE_S to finish
        (its graceful shutdown timeout); keep this well above it. Workflows are durable in Temporal and
        resume on another worker.
        """,
        pre_stop_sleep_s=None,
        autoscaler_note="""
        CPU is a rough proxy for a worker; scaling on the task queue's backlog needs an external metric
        (e.g. from Temporal's metrics through KEDA or a metrics adapter) and can replace this later.
        """,
    ),
    Process(
        name="codec-server",
        module="pscommon.codec_server",
        about="""
        codec-server: HTTP (POST /encode, /decode) for the Temporal UI and CLI to show encrypted payloads in
        clear to authorised operators. Every POST needs an operator's JWT from the carrier's identity provider
        (iss PSP_CODEC_JWT_ISSUER, aud PSP_CODEC_JWT_AUDIENCE, exp, the role PSP_CODEC_JWT_ROLE in the claim
        PSP_CODEC_JWT_ROLE_CLAIM: config.yaml), verified with the provider's public key from the ConfigMap
        codec-jwt-issuer (codec-jwt-issuer.yaml, a placeholder until replaced) mounted at /etc/psp/codec-jwt;
        without these settings the server does not start. The Temporal UI forwards the operator's token
        (TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true), the CLI sends one with --codec-auth (README.md, "The codec
        server"). The UI calls it from the operator's browser, so in production it is published over HTTPS
        through the carrier's ingress (not defined here: it depends on the carrier's ingress controller); its
        CORS origin is TEMPORAL_UI_URL.
        The server has only POST routes, so the probes are TCP connects to its port.
        """,
        component="codec-server",
        port=Port("http", 8081),
        config_files=CODEC_JWT_ISSUER,
        metrics=False,  # it records none
        readiness=probe("tcpSocket", {"port": "http"}, period=10, timeout=2, failures=3),
        liveness=probe("tcpSocket", {"port": "http"}, initial_delay=10, period=20, timeout=3, failures=3),
        pre_stop_sleep_s=None,
        max_replicas=3,
        autoscaler_note="Light load (operators' browsers); two replicas keep it available through node drains.",
        ingress_note="""
        codec-server: from the platform's own pods only. The Temporal UI calls it from operators' browsers,
        so the ingress controller that publishes it must be added here as another peer (namespaceSelector on
        its namespace); it is carrier-specific and left out.
        """,
    ),
    Process(
        name="portal",
        module="services.portal",
        about=f"""
        portal: the holder's pages (services/portal/holder, PSP_PORTAL_PAGES=holder): the page every warning SMS
        links to (https://{PUBLIC_WEB.host}/h/<signed token>), the online check, the appeal with its uploads,
        the live status. Public on the internet through the Ingress below (TLS at the ingress controller, plain
        HTTP from it to the pods, which no one else may reach: network-policy.yaml). It calls verification over
        mutual TLS as the carrier app's principal spiffe://{TRUST_DOMAIN}/app/portal (certificates.yaml, a client
        certificate only). It checks the links notify signs (PSP_LINK_KEYS), the holder's number against the
        case (PSP_LINE_HASH_KEY), and seals uploads (PSP_CODEC_KEYS) into the volume {UPLOADS_CLAIM}: those five
        keys of {SECRET}, nothing else of it (no database, no SMSC); its CSRF secret PSP_PORTAL_SECRET from
        {PORTAL_SECRET}, the same on every replica so that a form served by one pod is accepted by another.
        Probes: GET {HEALTH_PATH} on its port (it answers "ok" and nothing else).
        """,
        component="web",
        port=Port("http", PORTAL_PORT),
        role="app",
        serves_tls=False,
        readiness=http_probe(period=10, failures=2),
        liveness=http_probe(initial_delay=10, period=20, failures=3),
        secrets=(),
        env=(
            *secret_keys(
                "PSP_LINK_KEYS", "PSP_LINK_ACTIVE_KEY", "PSP_LINE_HASH_KEY", "PSP_CODEC_KEYS", "PSP_CODEC_ACTIVE_KEY"
            ),
            *secret_keys("PSP_PORTAL_SECRET", secret=PORTAL_SECRET),
        ),
        web=PUBLIC_WEB,
        portal_pages="holder",
        uploads=True,
        grace_note="On SIGTERM the portal stops accepting and finishes the requests in flight (uploads included).",
        autoscaler_note="Holders' browsers: bursts follow waves of warning SMS.",
        ingress_note=f"""
        portal: from the public ingress controller's pods only (namespace {PUBLIC_WEB.controller_namespace}); no
        platform pod calls it.
        """,
    ),
    Process(
        name="reviewer-console",
        module="services.portal",
        about=f"""
        reviewer-console: the review desk's console (services/portal/reviewer, PSP_PORTAL_PAGES=reviewer), on the
        carrier's internal network only (the Ingress below, https://{INTERNAL_WEB.host}/reviewer/). Not the
        public portal's pods: the reviewers' private keys, which can open holders' evidence and decide restores
        and terminations, are mounted here only, and a pod facing the internet has no reviewer route to reach.
        It calls verification over mutual TLS with the signed-in reviewer's own certificate (REVIEWERS in
        render.py: reviewers.yaml, mounted at {REVIEWERS_DIR}, which PSP_PKI_DIR names), so it has no certificate
        of its own. It opens the holders' sealed uploads (the volume {UPLOADS_CLAIM}, PSP_CODEC_KEYS); its
        sessions are signed with PSP_PORTAL_SESSION_KEY and its CSRF tokens keyed with PSP_CONSOLE_SECRET, both
        from {PORTAL_SECRET} and the same on every replica; none of the public portal's secrets but the codec keys.
        Sign-in: the carrier's SSO proxy in front of the internal ingress names the reviewer in the header
        PSP_PORTAL_SSO_HEADER (config.yaml); there is no password (README.md, "The portal").
        Probes: GET {HEALTH_PATH} on its port.
        """,
        component="web",
        port=Port("http", PORTAL_PORT),
        readiness=http_probe(period=10, failures=2),
        liveness=http_probe(initial_delay=10, period=20, failures=3),
        secrets=(),
        env=(
            *secret_keys("PSP_CODEC_KEYS", "PSP_CODEC_ACTIVE_KEY"),
            # Its own CSRF secret: a leak from the public pods forges no console form.
            secret_key("PSP_PORTAL_SECRET", "PSP_CONSOLE_SECRET", PORTAL_SECRET),
            *secret_keys("PSP_PORTAL_SESSION_KEY", secret=PORTAL_SECRET),
        ),
        web=INTERNAL_WEB,
        portal_pages="reviewer",
        uploads=True,
        reviewer_certs=True,
        max_replicas=3,
        grace_note="On SIGTERM the console stops accepting and finishes the requests in flight.",
        autoscaler_note="A review desk's worth of users; two replicas keep it up through node drains.",
        ingress_note=f"""
        reviewer-console: from the internal ingress controller's pods only (namespace
        {INTERNAL_WEB.controller_namespace}); no platform pod calls it.
        """,
    ),
)


# ------------------------------------------------------------------------------------------- the base


def selector(p: Process) -> dict[str, str]:
    return {"app.kubernetes.io/name": p.name, "app.kubernetes.io/part-of": PART_OF}


def metadata(name: str, labels: dict[str, str]) -> Manifest:
    return {"name": name, "namespace": NAMESPACE, "labels": labels}


def shard_service(p: Process) -> str:
    """The headless Service that gives each of a sharded process's pods its own DNS name (the StatefulSet's
    serviceName)."""
    return f"{p.name}-shards"


def shard_hosts(p: Process) -> list[str]:
    """The shards' host names in shard order: pod <name>-<i> under the headless Service (StatefulSet pod DNS)."""
    assert p.sharding, p.name
    return [f"{p.name}-{i}.{shard_service(p)}.{NAMESPACE}.svc" for i in range(p.sharding.shards)]


def shard_env(p: Process) -> list[Manifest]:
    """A sharded process's shard count and the shards' addresses (each pod listens on its own entry's port), inline:
    they follow from the StatefulSet's replicas, rendered from the same number. The pod's own index is not set: the
    process takes it from its HOSTNAME (pod <name>-<i>, pscommon/config.py)."""
    assert p.sharding and p.port, p.name
    addrs = ",".join(f"{host}:{p.port.number}" for host in shard_hosts(p))
    return [
        {"name": p.sharding.count_env, "value": str(p.sharding.shards)},
        {"name": p.sharding.addrs_env, "value": addrs},
    ]


def workload_metadata(p: Process) -> Manifest:
    meta = metadata(p.name, pod_labels(p))
    annotations: dict[str, str] = {}
    secrets = ([tls_secret(p)] if p.role else []) + ([temporal_tls_secret(p)] if p.temporal else [])
    secrets += [reviewer_secret(r) for r in REVIEWERS] if p.reviewer_certs else []
    if secrets:
        annotations[RELOAD_ANNOTATION] = ",".join(secrets)
    if p.config_files:
        annotations[CONFIG_MAP_RELOAD_ANNOTATION] = p.config_files.config_map
    if annotations:
        meta["annotations"] = annotations
    return meta


def pod_labels(p: Process) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": p.name,
        "app.kubernetes.io/component": p.component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/version": IMAGE_TAG,
    }


def secret_volume(name: str, secret: str, files: Iterable[str]) -> Manifest:
    """A certificate Secret's ca.crt, tls.crt and tls.key as files of a volume."""
    return {
        "name": name,
        "secret": {
            "secretName": secret,
            "items": [{"key": file, "path": file} for file in files],
            "defaultMode": 0o440,  # readable by the fsGroup (the process's group) only
        },
    }


def scrape_annotations() -> dict[str, str]:
    """What Prometheus's job psp-pods keeps a pod by, and where it scrapes it."""
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT), "prometheus.io/path": METRICS_PATH}


def pod_template(p: Process) -> Manifest:
    restricted: Manifest = {"runAsNonRoot": True, "runAsUser": UID}
    container: Manifest = {
        "name": p.name,
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", p.module],
    }
    ports = [{"name": p.port.name, "containerPort": p.port.number, "protocol": "TCP"}] if p.port else []
    if p.metrics:
        ports.append({"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT, "protocol": "TCP"})
    if ports:
        container["ports"] = ports
    container["envFrom"] = [{"configMapRef": {"name": CONFIG_MAP}}, *({"secretRef": {"name": s}} for s in p.secrets)]
    # The only values set inline: paths into the pod's own volumes, its certificate's (PSP_TRUST_DOMAIN is in the
    # ConfigMap), its config_files', the uploads' and the reviewers' certificates'; a sharded process's shard count
    # and addresses (shard_env()); and which of the portal's pages a portal process serves.
    env = [{"name": var, "value": f"{TLS_DIR}/{file}"} for var, file in TLS_FILES.items()] if p.role else []
    if p.config_files:
        env += [
            {"name": var, "value": f"{p.config_files.directory}/{key}"} for var, key in p.config_files.files.items()
        ]
    if p.temporal:
        env += [{"name": var, "value": f"{TEMPORAL_TLS_DIR}/{file}"} for var, file in TEMPORAL_TLS_FILES.items()]
    if p.sharding:
        env += shard_env(p)
    if p.portal_pages:
        env.append({"name": "PSP_PORTAL_PAGES", "value": p.portal_pages})
    if p.uploads:
        env.append({"name": "PSP_PORTAL_UPLOADS", "value": UPLOADS_DIR})
    if p.reviewer_certs:
        env.append({"name": "PSP_PKI_DIR", "value": REVIEWERS_DIR})
    env += p.env
    if env:
        container["env"] = env
    container["resources"] = p.resources or SMALL
    for key, value in (("startupProbe", p.startup), ("readinessProbe", p.readiness), ("livenessProbe", p.liveness)):
        if value:
            container[key] = value
    if p.pre_stop_sleep_s is not None:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": p.pre_stop_sleep_s}}}
    container["securityContext"] = restricted | {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # The root filesystem is read-only; /tmp is the only writable place.
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[Manifest] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    if p.role:
        # The whole folder, never subPath: the kubelet swaps renewed files in place (README.md, "Rotation").
        container["volumeMounts"].append({"name": TLS_VOLUME, "mountPath": TLS_DIR, "readOnly": True})
        volumes.append(secret_volume(TLS_VOLUME, tls_secret(p), TLS_FILES.values()))
    if p.temporal:
        container["volumeMounts"].append({"name": TEMPORAL_TLS_VOLUME, "mountPath": TEMPORAL_TLS_DIR, "readOnly": True})
        volumes.append(secret_volume(TEMPORAL_TLS_VOLUME, temporal_tls_secret(p), TEMPORAL_TLS_FILES.values()))
    if p.config_files:
        # The whole folder, read-only; the process reads its files at start (a change needs a restart).
        cf = p.config_files
        container["volumeMounts"].append({"name": cf.volume, "mountPath": cf.directory, "readOnly": True})
        volumes.append(
            {
                "name": cf.volume,
                "configMap": {
                    "name": cf.config_map,
                    "items": [{"key": key, "path": key} for key in cf.files.values()],
                    "defaultMode": 0o444,  # public configuration, nothing secret
                },
            }
        )

    if p.uploads:
        # Written by the portal, read by the console; the process's group (fsGroup) owns it.
        container["volumeMounts"].append({"name": "uploads", "mountPath": UPLOADS_DIR})
        volumes.append({"name": "uploads", "persistentVolumeClaim": {"claimName": UPLOADS_CLAIM}})
    if p.reviewer_certs:
        # The whole folder, never subPath (renewals are swapped in place; the process reads them per reviewer on
        # first use, so the Reloader annotation restarts it after a renewal).
        container["volumeMounts"].append({"name": REVIEWERS_VOLUME, "mountPath": REVIEWERS_DIR, "readOnly": True})
        volumes.append(reviewers_volume())

    template_meta: Manifest = {"labels": pod_labels(p)}
    if p.metrics:
        template_meta["annotations"] = scrape_annotations()
    return {
        "metadata": template_meta,
        "spec": {
            "serviceAccountName": SERVICE_ACCOUNT,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": p.grace_s,
            "securityContext": restricted
            | {"runAsGroup": UID, "fsGroup": UID, "seccompProfile": {"type": "RuntimeDefault"}},
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": p.name}},
                }
            ],
            "containers": [container],
            "volumes": volumes,
        },
    }


def deployment(p: Process) -> Manifest:
    """A stateless process: replicas owned by its HorizontalPodAutoscaler (not set here: re-applying must not reset
    them), rolled out one new pod before an old one goes."""
    assert not p.sharding, p.name
    spec: Manifest = {
        "revisionHistoryLimit": 5,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "selector": {"matchLabels": selector(p)},
        "template": pod_template(p),
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": workload_metadata(p), "spec": spec}


def stateful_set(p: Process) -> Manifest:
    """A sharded process: one pod per shard, each with a stable name (<name>-<i>: shard i) under the headless
    Service. Pods start and stop together (Parallel: a shard does not wait for the ones before it); an update
    replaces one pod at a time, highest ordinal first, each ready before the next (RollingUpdate)."""
    assert p.sharding, p.name
    if not 1 <= p.sharding.shards <= PARTITIONS:
        raise ValueError(f"{p.name}: {p.sharding.shards} shards; need 1 to {PARTITIONS} (one partition each at least)")
    spec: Manifest = {
        "replicas": p.sharding.shards,
        "revisionHistoryLimit": 5,
        "serviceName": shard_service(p),
        "podManagementPolicy": "Parallel",
        "updateStrategy": {"type": "RollingUpdate"},
        "selector": {"matchLabels": selector(p)},
        "template": pod_template(p),
    }
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": workload_metadata(p), "spec": spec}


def workload(p: Process) -> Manifest:
    return stateful_set(p) if p.sharding else deployment(p)


def service(p: Process, port: Port) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(p.name, selector(p)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(p),
            "ports": [{"name": port.name, "port": port.number, "targetPort": port.name, "protocol": "TCP"}],
        },
    }


def headless_service(p: Process, port: Port) -> Manifest:
    """The StatefulSet's governing Service: no cluster IP, a DNS record per pod (<pod>.<service>.<namespace>.svc),
    published before the pod is ready, so that starting shards reach each other. Clients use service()."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(shard_service(p), selector(p)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector(p),
            "ports": [{"name": port.name, "port": port.number, "targetPort": port.name, "protocol": "TCP"}],
        },
    }


def autoscaler(p: Process) -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(p.name, selector(p)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": p.name},
            "minReplicas": p.min_replicas,
            "maxReplicas": p.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }


def disruption_budget(p: Process) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(p.name, selector(p)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(p)}},
    }


def default_deny() -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata("default-deny-ingress", {"app.kubernetes.io/part-of": PART_OF}),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }


def ingress_policy(p: Process, port: Port) -> Manifest:
    own_pods = {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}}}
    if p.web:
        # The ingress controller's pods, and nothing else: not even the platform's own pods.
        peers = [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": p.web.controller_namespace}},
                "podSelector": {},
            }
        ]
    else:
        peers = [own_pods, *p.extra_peers]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(f"allow-{p.name}-ingress", selector(p)),
        "spec": {
            "podSelector": {"matchLabels": selector(p)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": port.number}]}],
        },
    }


def metrics_policy() -> Manifest:
    """Prometheus, and nothing else, reaches the metrics port of every process that serves one."""
    names = [p.name for p in PROCESSES if p.metrics]
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": PROMETHEUS_NAMESPACE}},
        "podSelector": {"matchLabels": PROMETHEUS_POD},
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata("allow-metrics-scrape", {"app.kubernetes.io/part-of": PART_OF}),
        "spec": {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/part-of": PART_OF},
                "matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": names}],
            },
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [prometheus], "ports": [{"protocol": "TCP", "port": METRICS_PORT}]}],
        },
    }


def tls_secret(p: Process) -> str:
    return f"{p.name}-tls"


def temporal_tls_secret(p: Process) -> str:
    return f"{p.name}-temporal-tls"


def spiffe_id(role: str, id: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/{role}/{id}"


def service_dns_names(name: str) -> list[str]:
    """Every name a client in the cluster may dial the Service by (the ConfigMap uses the short one)."""
    return [name, f"{name}.{NAMESPACE}", f"{name}.{NAMESPACE}.svc", f"{name}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}"]


def served_dns_names(p: Process) -> list[str]:
    """The Service's names, and for a sharded process every pod's under its headless Service (what shard_env's
    addresses dial), as one wildcard per domain: it covers any shard count, so re-sharding needs no new
    certificate."""
    if not p.port or not p.serves_tls:
        return []
    names = service_dns_names(p.name)
    if p.sharding:
        pods = f"*.{shard_service(p)}.{NAMESPACE}.svc"
        names += [pods, f"{pods}.{CLUSTER_DOMAIN}"]
    return names


ECDSA_P256: Manifest = {"algorithm": "ECDSA", "size": 256, "encoding": "PKCS8", "rotationPolicy": "Always"}
# No "key encipherment": it is RSA key transport, and RFC 8813 forbids it for ECDSA keys; TLS 1.2/1.3 with ECDHE
# only needs the key to sign.
SERVER_AND_CLIENT = ["digital signature", "server auth", "client auth"]
CLIENT_ONLY = ["digital signature", "client auth"]


def certificate_spec(role: str, id: str, secret_name: str, labels: dict[str, str], serves: list[str]) -> Manifest:
    """One principal's certificate from ISSUER: its SPIFFE ID as the only URI SAN; with `serves` (DNS names) also a
    server certificate, with 127.0.0.1 for the exec probe that dials the pod's own port."""
    spec: Manifest = {
        "secretName": secret_name,
        "secretTemplate": {"labels": labels},
        "issuerRef": {"group": "cert-manager.io", "kind": "Issuer", "name": ISSUER},
        "uris": [spiffe_id(role, id)],
    }
    if serves:
        spec["dnsNames"] = serves
        spec["ipAddresses"] = ["127.0.0.1"]
    return spec | {
        "usages": SERVER_AND_CLIENT if serves else CLIENT_ONLY,
        "privateKey": ECDSA_P256,
        "duration": CERT_DURATION,
        "renewBefore": CERT_RENEW_BEFORE,
    }


def certificate(p: Process) -> Manifest:
    assert p.role, p.name
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": metadata(p.name, selector(p)),
        "spec": certificate_spec(p.role, p.name, tls_secret(p), selector(p), served_dns_names(p)),
    }


def ca_issuer() -> Manifest:
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Issuer",
        "metadata": metadata(ISSUER, {"app.kubernetes.io/name": ISSUER, "app.kubernetes.io/part-of": PART_OF}),
        "spec": {"ca": {"secretName": CA_SECRET}},
    }


def kustomization(resources: list[str]) -> Manifest:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": resources,
    }


def reviewer_secret(reviewer: str) -> str:
    return f"{reviewer}-tls"


def reviewer_certificate(reviewer: str) -> Manifest:
    labels = {"app.kubernetes.io/name": "reviewer-console", "app.kubernetes.io/part-of": PART_OF}
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": metadata(reviewer, labels),
        "spec": certificate_spec("reviewer", reviewer, reviewer_secret(reviewer), labels, []),
    }


def reviewers_volume() -> Manifest:
    """Every reviewer's certificate Secret projected into one folder: <id>.pem, <id>.key, and ca.pem (the
    platform CA, from the first; they all carry the same)."""
    if not REVIEWERS:
        raise ValueError("REVIEWERS is empty: the console would have no one to sign in")
    sources = []
    for i, r in enumerate(REVIEWERS):
        items = [{"key": "tls.crt", "path": f"{r}.pem"}, {"key": "tls.key", "path": f"{r}.key"}]
        if i == 0:
            items.insert(0, {"key": "ca.crt", "path": "ca.pem"})
        sources.append({"secret": {"name": reviewer_secret(r), "items": items}})
    return {"name": REVIEWERS_VOLUME, "projected": {"sources": sources, "defaultMode": 0o440}}


def web_ingress(p: Process) -> Manifest:
    assert p.web and p.port, p.name
    web = p.web
    paths = [
        {
            "path": path,
            "pathType": "Prefix",
            "backend": {"service": {"name": p.name, "port": {"name": p.port.name}}},
        }
        for path in web.paths
    ]
    meta = metadata(p.name, selector(p))
    meta["annotations"] = {"cert-manager.io/cluster-issuer": web.cluster_issuer}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": {
            "ingressClassName": web.ingress_class,
            "tls": [{"hosts": [web.host], "secretName": f"{p.name}-web-tls"}],
            "rules": [{"host": web.host, "http": {"paths": paths}}],
        },
    }


def uploads_claim() -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(
            UPLOADS_CLAIM, {"app.kubernetes.io/name": UPLOADS_CLAIM, "app.kubernetes.io/part-of": PART_OF}
        ),
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": UPLOADS_SIZE}}},
    }


# ------------------------------------------------------------------------------------------- rendering


class _Dumper(yaml.SafeDumper):
    """Block style with sequences indented under their key, as kubectl users write them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True  # the same labels twice are written twice, not as an anchor and an alias


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Long one-line strings (the worker's probe script) fold at spaces instead of running off the line.
    style = ">" if len(value) > 80 and " " in value and "\n" not in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _comment(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in _text(text).splitlines())


def _file(header: str, docs: list[tuple[str, Manifest]]) -> str:
    """A multi-document YAML file: `header` on top, each document preceded by its own comment."""
    parts = []
    for i, (note, doc) in enumerate(docs):
        body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=80)
        # The first document's comment follows the file's header, after an empty comment line.
        parts.append(("#\n" if i == 0 and note else "") + _comment(note) + body)
    return _comment(header) + "---\n".join(parts)


SHARD_BUDGET_NOTE = """
    A shard's partitions are unavailable while its pod is down: voluntary disruptions (node drains) take one pod
    at a time.
    """


def process_file(p: Process) -> str:
    docs = [(p.grace_note, workload(p))]
    if p.port:
        docs.append(("", service(p, p.port)))
        if p.web:
            docs.append((p.web.note, web_ingress(p)))
        if p.sharding:
            note = f"""
                The shards' own names: pod {p.name}-<i> is {p.name}-<i>.{shard_service(p)}.{NAMESPACE}.svc (in
                {p.sharding.addrs_env}). Clients use the Service above, which balances over the ready pods.
                """
            docs.append((note, headless_service(p, p.port)))
    if not p.sharding:
        docs.append((p.autoscaler_note, autoscaler(p)))
    docs.append((SHARD_BUDGET_NOTE if p.sharding else "", disruption_budget(p)))
    return _file(f"{GENERATED_NOTE}\n\n{_text(p.about)}", docs)


def network_policy_file() -> str:
    header = (
        f"{GENERATED_NOTE}\n\n"
        "Ingress is denied to every pod of the namespace, then opened port by port. Egress is not restricted\n"
        "here (Temporal, PostgreSQL, the carrier gateway, the SMSC and the collector live in other namespaces\n"
        "or outside the cluster). The gRPC services' probes run inside their own pods (exec), so they need no rule;\n"
        "the codec server's TCP probes come from the node, which common CNIs do not subject to these policies."
    )
    docs = [("", default_deny())]
    docs += [(p.ingress_note, ingress_policy(p, p.port)) for p in PROCESSES if p.port]
    metrics_note = f"""
        The metrics port {METRICS_PORT} of every process that serves one: from Prometheus only (pods labelled
        {PROMETHEUS_POD} in namespace {PROMETHEUS_NAMESPACE}; change PROMETHEUS_* in render.py to match yours).
        """
    docs.append((metrics_note, metrics_policy()))
    return _file(header, docs)


def certificates_file() -> str:
    header = f"""
        Needs cert-manager (cert-manager.io/v1). One certificate per process that speaks gRPC, each naming
        one principal spiffe://{TRUST_DOMAIN}/<role>/<id> (roles: contracts/access.yaml) and used both to serve
        (under its Service's names; scoring's also under a wildcard for its pods' names under the headless
        Service scoring-shards, which the other shards dial) and as the process's client identity; the
        worker's and the portal's (the carrier app's principal, app/portal) are client certificates only. The
        reviewers' are in reviewers.yaml. Every pod mounts its Secret read-only at {TLS_DIR}
        (PSP_TLS_CA/CERT/KEY point there).
        cert-manager renews each Secret {CERT_RENEW_BEFORE} before expiry; the processes read their files at start
        only, so pods must restart after a renewal (README.md, "Rotation").
        """
    issuer_note = f"""
        The one issuer: a CA Issuer, namespaced on purpose (whoever can create Certificates against it can mint
        any principal of the platform, so only this namespace's Certificates can). Its CA key pair is the
        Secret {CA_SECRET} (tls.crt, tls.key) in this namespace, which the operator provides: the platform's own
        CA, or examples/ca-bootstrap.yaml on a test cluster (README.md, "Certificates").
        """
    docs = [(issuer_note, ca_issuer())]
    docs += [("", certificate(p)) for p in PROCESSES if p.role]
    return _file(f"{GENERATED_NOTE}\n\n{_text(header)}", docs)


def reviewers_file() -> str:
    header = f"""
        Needs cert-manager. The review desk: a client certificate per reviewer from the platform's Issuer
        {ISSUER}, each naming spiffe://{TRUST_DOMAIN}/reviewer/<id>, the identity verification records with every
        claim and decision (four eyes for terminations come from it). The console's pods mount them all at
        {REVIEWERS_DIR} (reviewer-console.yaml). The ids are REVIEWERS in render.py, PLACEHOLDERS: a joiner
        adds one (reviewer-<staff number>), a leaver is removed; render and apply, the console restarts
        (README.md, "The portal").
        """
    return _file(f"{GENERATED_NOTE}\n\n{_text(header)}", [("", reviewer_certificate(r)) for r in REVIEWERS])


def uploads_file() -> str:
    header = """
        The holders' uploads (evidence, liveness videos), each sealed with PSP_CODEC_KEYS before it is written
        and deleted after 180 days by the portal itself: written by the portal's pods, read by the console's,
        on any node, hence ReadWriteMany. The cluster's default StorageClass must offer it (CephFS, NFS, EFS,
        Azure Files ...); otherwise add storageClassName in uploads_claim() in render.py (README.md, "The
        portal"). The claim stays
        when the workloads are deleted: the files are evidence a review may still need.
        """
    return _file(f"{GENERATED_NOTE}\n\n{_text(header)}", [("", uploads_claim())])


def temporal_client_certificate(p: Process) -> Manifest:
    assert p.role and p.temporal, p.name
    labels = selector(p)
    spec = certificate_spec(p.role, p.name, temporal_tls_secret(p), labels, [])
    spec["issuerRef"] = {"group": "cert-manager.io", "kind": "Issuer", "name": TEMPORAL_ISSUER}
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": metadata(f"{p.name}-temporal", labels),
        "spec": spec,
    }


def temporal_clients_file() -> str:
    header = f"""
        Needs cert-manager. Client certificates for the Temporal frontend, which requires one from the Temporal CA
        (deploy/temporal/values.yaml: server.tls.frontend.requireClientAuth), for each process that talks to
        Temporal: {", ".join(p.name for p in PROCESSES if p.temporal)}. Each names the process's own principal (as
        in certificates.yaml) and is mounted read-only at {TEMPORAL_TLS_DIR} (TEMPORAL_TLS_CA/CERT/KEY point there;
        the frontend's name is TEMPORAL_TLS_SERVER_NAME in config.yaml). Renewed {CERT_RENEW_BEFORE} before expiry
        like the others; the processes read them at start, so pods restart after a renewal (the Reloader
        annotation lists both Secrets).
        """
    issuer_note = f"""
        The Temporal CA, as a namespaced Issuer of this namespace: its key pair is the Secret {TEMPORAL_CA_SECRET}
        (tls.crt, tls.key), the same CA that the Issuer {TEMPORAL_ISSUER} of namespace {TEMPORAL_NAMESPACE} signs
        Temporal's own certificates with (deploy/temporal/certificates.yaml). The operator provides it in both
        namespaces (docs/operations.md, "Temporal in production").
        """
    issuer = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Issuer",
        "metadata": metadata(
            TEMPORAL_ISSUER, {"app.kubernetes.io/name": TEMPORAL_ISSUER, "app.kubernetes.io/part-of": PART_OF}
        ),
        "spec": {"ca": {"secretName": TEMPORAL_CA_SECRET}},
    }
    docs = [(issuer_note, issuer)]
    docs += [("", temporal_client_certificate(p)) for p in PROCESSES if p.temporal]
    return _file(f"{GENERATED_NOTE}\n\n{_text(header)}", docs)


def mediation_example_file() -> str:
    labels = {"app.kubernetes.io/name": "mediation-client", "app.kubernetes.io/part-of": PART_OF}
    header = f"""
        EXAMPLE, not applied by kustomization.yaml: a client certificate for a principal outside the platform,
        here the carrier's mediation system (role `mediation`: IngestCdrs, ScoreCdrs, UpsertSubscriber ...).
        Issue one per external system, with an id that names it in audit records, from the same Issuer (so only
        the platform's operators decide who gets which role). Apply with
        `kubectl apply -f deploy/k8s/{EXAMPLES_DIR}/mediation-certificate.yaml`, then hand the Secret's
        tls.crt, tls.key and ca.crt to the mediation system through the carrier's secret manager, again after
        every renewal (every ~{RENEWAL_INTERVAL_D} days). The system dials scoring.{NAMESPACE}.svc:50051 and
        checks the server certificate against ca.crt.
        """
    doc = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": metadata("mediation-client", labels),
        "spec": certificate_spec("mediation", "mediation", "mediation-client-tls", labels, []),
    }
    return _file(f"{GENERATED_NOTE}\n\n{_text(header)}", [("", doc)])


def ca_bootstrap_example_file() -> str:
    labels = {"app.kubernetes.io/name": CA_SECRET, "app.kubernetes.io/part-of": PART_OF}
    header = f"""
        EXAMPLE for test clusters, not applied by kustomization.yaml: makes the Secret {CA_SECRET} that the
        Issuer {ISSUER} signs with, from a self-signed CA that cert-manager generates in this namespace. In
        production, create {CA_SECRET} from the platform's own CA instead (README.md, "Certificates").
        The CA's key is never rotated (rotationPolicy: Never): a renewal re-signs the same key, so certificates
        issued earlier stay valid and every pod's ca.crt keeps verifying them.
        """
    selfsigned = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Issuer",
        "metadata": metadata(f"{CA_SECRET}-selfsigned", labels),
        "spec": {"selfSigned": {}},
    }
    ca = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": metadata(CA_SECRET, labels),
        "spec": {
            "isCA": True,
            "commonName": f"{TRUST_DOMAIN} platform CA",
            "secretName": CA_SECRET,
            "secretTemplate": {"labels": labels},
            "issuerRef": {"group": "cert-manager.io", "kind": "Issuer", "name": f"{CA_SECRET}-selfsigned"},
            "usages": ["cert sign", "crl sign"],
            "privateKey": ECDSA_P256 | {"rotationPolicy": "Never"},
            "duration": "87600h",
            "renewBefore": "720h",
        },
    }
    return _file(f"{GENERATED_NOTE}\n\n{_text(header)}", [("", selfsigned), ("", ca)])


def render() -> dict[str, str]:
    """File name in deploy/k8s/ -> its content, for every generated file (examples under EXAMPLES_DIR/)."""
    files = {f"{p.name}.yaml": process_file(p) for p in PROCESSES}
    files[CERTIFICATES_FILE] = certificates_file()
    files[TEMPORAL_CLIENTS_FILE] = temporal_clients_file()
    files[NETWORK_POLICY_FILE] = network_policy_file()
    files[REVIEWERS_FILE] = reviewers_file()
    files[UPLOADS_FILE] = uploads_file()
    resources = [*HAND_WRITTEN, *files]
    header = f"{GENERATED_NOTE}\n\n`kubectl apply -k deploy/k8s` applies everything below; `kubectl apply -f` of the files works too."
    files[KUSTOMIZATION_FILE] = _file(header, [("", kustomization(resources))])
    files[f"{EXAMPLES_DIR}/ca-bootstrap.yaml"] = ca_bootstrap_example_file()
    files[f"{EXAMPLES_DIR}/mediation-certificate.yaml"] = mediation_example_file()
    return files


def drift(directory: Path = K8S_DIR) -> list[str]:
    """What differs between `directory` and render(): generated files missing or changed, and YAML files
    that are neither generated nor hand-written (left over from a renamed or removed process)."""
    rendered = render()
    problems = []
    for name, text in rendered.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{name}: differs from what render.py produces")
    expected = set(rendered) | set(HAND_WRITTEN)
    on_disk = [*directory.glob("*.yaml"), *directory.glob(f"{EXAMPLES_DIR}/*.yaml")]
    problems += [
        f"{name}: neither generated nor hand-written"
        for name in sorted(p.relative_to(directory).as_posix() for p in on_disk)
        if name not in expected
    ]
    return problems


def write(directory: Path = K8S_DIR) -> list[str]:
    """Writes the files whose content changed; returns their names."""
    changed = []
    for name, text in render().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
            changed.append(name)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python deploy/k8s/render.py", description="Renders deploy/k8s/ manifests.")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if the committed files drifted")
    ap.add_argument("--out", type=Path, default=K8S_DIR, help="directory (default: deploy/k8s)")
    args = ap.parse_args(argv)
    if args.check:
        problems = drift(args.out)
        for problem in problems:
            print(f"{args.out}/{problem}", file=sys.stderr)
        if problems:
            print("run `python deploy/k8s/render.py` and commit the result", file=sys.stderr)
        return 1 if problems else 0
    for name in write(args.out):
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

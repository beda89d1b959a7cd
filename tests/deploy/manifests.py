"""The manifests of deploy/k8s/ loaded once, with the helpers the offline checks share (test_k8s_manifests.py for
the Kubernetes objects, test_certificates.py for cert-manager's, test_mtls_probe.py for what the probes run)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "k8s"
# Rendered next to the manifests but not applied by kustomization.yaml.
EXAMPLES_DIR = K8S_DIR / "examples"
KUSTOMIZATION = "kustomization.yaml"

NAMESPACE = "protective-suspension"
PART_OF = "protective-suspension"
CONFIG_MAP = "platform-config"
SECRET = "platform-secrets"
# The portal's own secrets (hand-written portal-secret.yaml), taken key by key by its two processes.
PORTAL_SECRET = "portal-secrets"
CERT_MANAGER_GROUP = "cert-manager.io"

# Workload (Deployment or StatefulSet) name -> (command, gRPC port).
GRPC_SERVICES = {
    "scoring": (["python", "-m", "services.scoring.server"], 50051),
    "suspension": (["python", "-m", "services.suspension.server"], 50052),
    "notify": (["python", "-m", "services.notify.server"], 50053),
    "verification": (["python", "-m", "services.verification.server"], 50054),
}
# Workload name -> the role its certificate must name (contracts/access.yaml): every process that speaks gRPC,
# as a server (the four services) or only as a client (the worker).
SPIFFE_ROLES = {
    "scoring": "scoring",
    "suspension": "suspension",
    "notify": "notify",
    "verification": "verification",
    "worker": "worker",
    "portal": "app",  # the carrier app's principal, as the holder's pages call verification
}
# The portal's two processes (one module, PSP_PORTAL_PAGES tells them apart): name -> the pages it serves.
# test_portal_manifests.py checks them; they serve HTTP behind an Ingress, not gRPC.
PORTAL_PROCESSES = {"portal": "holder", "reviewer-console": "reviewer"}
PORTAL_COMMAND = ["python", "-m", "services.portal"]
PORTAL_PORT = 8090
UPLOADS_DIR = "/var/lib/psp/portal-uploads"
REVIEWERS_DIR = "/etc/psp/reviewers"
# Where a pod's certificate is mounted, and which of cert-manager's keys each setting names.
TLS_DIR = "/etc/psp/tls"
TLS_ENV = {"PSP_TLS_CA": "ca.crt", "PSP_TLS_CERT": "tls.crt", "PSP_TLS_KEY": "tls.key"}


@dataclass(frozen=True)
class Sharded:
    """A service that runs as line shards: a StatefulSet of one pod per shard (pod <name>-<i> is shard i, which
    pscommon/config.py takes from the HOSTNAME), its headless Service, and the two settings rendered with its
    replica count."""

    headless_service: str
    count_env: str
    addrs_env: str
    index_env: str  # set by no one: the pod's HOSTNAME gives the index


# StatefulSet name -> how it is sharded (services/scoring/partitions.py, shards.py).
SHARDED = {"scoring": Sharded("scoring-shards", "PSP_SCORING_SHARDS", "PSP_SCORING_SHARD_ADDRS", "PSP_SCORING_SHARD")}
# The kinds that run the processes' pods: Deployments, and the sharded services' StatefulSets.
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
# The codec server's only: where it mounts its identity provider's public key (the ConfigMap's key issuer.pem),
# which PSP_CODEC_JWT_ISSUER_PEM names.
CODEC_SERVER = "codec-server"
CODEC_JWT_CONFIG_MAP = "codec-jwt-issuer"
CODEC_JWT_DIR = "/etc/psp/codec-jwt"
CODEC_JWT_ENV = {"PSP_CODEC_JWT_ISSUER_PEM": "issuer.pem"}
# The only settings a workload may set inline (everything else comes from the ConfigMap or the Secret): paths
# of files in the pod's own read-only volumes (setting -> the folder its value must lie in), and a sharded
# service's count and addresses (SHARDED: they follow from its replicas, test_scoring_shards.py checks them).
INLINE_PATH_ENV = {var: TLS_DIR for var in TLS_ENV} | {var: CODEC_JWT_DIR for var in CODEC_JWT_ENV}
# The processes that talk to Temporal: their client certificate for the frontend (test_temporal_clients.py).
TEMPORAL_TLS_DIR = "/etc/psp/temporal-tls"
TEMPORAL_TLS_ENV = {"TEMPORAL_TLS_CA": "ca.crt", "TEMPORAL_TLS_CERT": "tls.crt", "TEMPORAL_TLS_KEY": "tls.key"}
INLINE_PATH_ENV |= {var: TEMPORAL_TLS_DIR for var in TEMPORAL_TLS_ENV}
PROBE_MODULE = "pscommon.probes"


@dataclass(frozen=True)
class Doc:
    file: str
    index: int
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", "?"))

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name", "?"))

    @property
    def api_group(self) -> str:
        api_version = str(self.obj.get("apiVersion", ""))
        return api_version.rpartition("/")[0]

    @property
    def ref(self) -> str:
        return f"deploy/k8s/{self.file} (document {self.index}) {self.kind}/{self.name}"


def load(folder: Path = K8S_DIR) -> tuple[list[Doc], list[str]]:
    """Every document of folder/*.yaml but kustomization.yaml; file names relative to deploy/k8s/."""
    docs: list[Doc] = []
    errors: list[str] = []
    for path in sorted(folder.glob("*.yaml")):
        if path.name == KUSTOMIZATION:
            continue
        name = path.relative_to(K8S_DIR).as_posix()
        try:
            loaded = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError as e:
            errors.append(f"deploy/k8s/{name}: not valid YAML: {e}")
            continue
        for index, obj in enumerate(loaded):
            if obj is None:  # empty document, e.g. a trailing "---"
                continue
            if not isinstance(obj, dict):
                errors.append(f"deploy/k8s/{name} (document {index}): not a mapping")
                continue
            docs.append(Doc(name, index, obj))
    return docs, errors


DOCS, LOAD_ERRORS = load()
EXAMPLE_DOCS, EXAMPLE_LOAD_ERRORS = load(EXAMPLES_DIR)


def of_kind(kind: str, docs: list[Doc] = DOCS) -> list[Doc]:
    return [d for d in docs if d.kind == kind]


def workloads(docs: list[Doc] = DOCS) -> list[Doc]:
    """Every Deployment and StatefulSet: what runs the processes' pods."""
    return [d for d in docs if d.kind in WORKLOAD_KINDS]


WORKLOADS = workloads()


def ids(docs: list[Doc]) -> list[str]:
    return [f"{d.file}:{d.kind}/{d.name}" for d in docs]


def single(kind: str, name: str) -> Doc:
    found = [d for d in of_kind(kind) if d.name == name]
    assert len(found) == 1, f"expected exactly one {kind}/{name} in deploy/k8s/, found {len(found)}"
    return found[0]


def pod_spec(dep: Doc) -> dict[str, Any]:
    return dep.obj["spec"]["template"]["spec"]


def containers(dep: Doc) -> Iterator[dict[str, Any]]:
    spec = pod_spec(dep)
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def main_container(dep: Doc) -> dict[str, Any]:
    found = pod_spec(dep)["containers"]
    assert len(found) == 1, f"{dep.ref}: expected one container, found {len(found)}"
    return found[0]


def module_source(dep: Doc) -> str:
    """The source of the module the workload runs (`python -m <module>`; a package runs its __main__.py)."""
    module = ROOT / Path(*main_container(dep)["command"][2].split("."))
    return (module / "__main__.py" if module.is_dir() else module.with_suffix(".py")).read_text(encoding="utf-8")


def selects(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def container_port(container: dict[str, Any], port: int | str) -> int | None:
    """Resolves a probe/target port (number or name) to a declared containerPort."""
    for p in container.get("ports") or []:
        if port in (p.get("containerPort"), p.get("name")):
            return int(p["containerPort"])
    return None


def config_data() -> dict[str, str]:
    return single("ConfigMap", CONFIG_MAP).obj.get("data") or {}


def fail_if(problems: list[str]) -> None:
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """For offline tests: any attempt to open a connection fails loudly."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted during an offline test: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)

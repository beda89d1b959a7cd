"""Offline checks of the Kubernetes manifests in deploy/k8s/ (most of them rendered by deploy/k8s/render.py;
test_render.py checks that the committed files are its output, so these checks cover what it renders).

Every YAML document is validated against the Kubernetes OpenAPI schemas bundled with the pinned
`kubernetes-validate` package (no cluster, no network: sockets are blocked while the tests run), then
the rules that a schema cannot express are checked: hardening, resources, probes, autoscaling and
disruption budgets, configuration through the ConfigMap/Secret, placeholder-only secrets, and that
Services, addresses in the ConfigMap and network policies agree with the container ports.
"""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S_DIR = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUSTOMIZATION = "kustomization.yaml"

# Oldest Kubernetes the manifests claim to support (README) and the current target.
KUBERNETES_VERSIONS = ("1.30", "1.33")

NAMESPACE = "protective-suspension"
PART_OF = "protective-suspension"
# Services that keep per-line state in memory and run as one shard until line sharding lands.
SINGLE_SHARD = {"scoring"}
IMAGE = "registry.example-carrier.cn/protective-suspension/platform:0.1.0"
CONFIG_MAP = "platform-config"
SECRET = "platform-secrets"

# Deployment name -> (command, gRPC port or None).
GRPC_SERVICES = {
    "scoring": (["python", "-m", "services.scoring.server"], 50051),
    "suspension": (["python", "-m", "services.suspension.server"], 50052),
    "notify": (["python", "-m", "services.notify.server"], 50053),
    "verification": (["python", "-m", "services.verification.server"], 50054),
}
OTHER_PROCESSES = {
    "worker": ["python", "-m", "workflows.worker"],
    "codec-server": ["python", "-m", "pscommon.codec_server"],
}
CODEC_SERVER_PORT = 8081
# The Temporal worker serves no port: a liveness probe would have nothing meaningful to check.
NO_LIVENESS_PROBE = {"worker"}

CONFIG_KEYS = {
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_UI_URL",
    "PSP_TASK_QUEUE",
    "PSP_SCORING_ADDR",
    "PSP_SUSPENSION_ADDR",
    "PSP_NOTIFY_ADDR",
    "PSP_VERIFICATION_ADDR",
    "PSP_SIMULATORS_ADDR",
    "PSP_SMSC_HOST",
    "PSP_SMSC_PORT",
    "PSP_BIND_HOST",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "LOG_LEVEL",
    "PSP_CASE_POLICY",
}
SECRET_KEYS = {
    "DATABASE_URL",
    "PSP_LINE_HASH_KEY",
    "PSP_CODEC_KEYS",
    "PSP_CODEC_ACTIVE_KEY",
    "PSP_SMSC_SYSTEM_ID",
    "PSP_SMSC_PASSWORD",
}
# ConfigMap address key -> the Service it must name.
ADDRESS_KEYS = {
    "PSP_SCORING_ADDR": "scoring",
    "PSP_SUSPENSION_ADDR": "suspension",
    "PSP_NOTIFY_ADDR": "notify",
    "PSP_VERIFICATION_ADDR": "verification",
}
PLACEHOLDER = "REPLACE_ME"
SECRET_LOOKING_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|_KEYS?$|DATABASE_URL")
MEDIATION_NAMESPACE = {"kubernetes.io/metadata.name": "mediation"}


# --------------------------------------------------------------------------------------------- loading


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
    def ref(self) -> str:
        return f"deploy/k8s/{self.file} (document {self.index}) {self.kind}/{self.name}"


def _load() -> tuple[list[Doc], list[str]]:
    docs: list[Doc] = []
    errors: list[str] = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        if path.name == KUSTOMIZATION:
            continue
        try:
            loaded = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError as e:
            errors.append(f"deploy/k8s/{path.name}: not valid YAML: {e}")
            continue
        for index, obj in enumerate(loaded):
            if obj is None:  # empty document, e.g. a trailing "---"
                continue
            if not isinstance(obj, dict):
                errors.append(f"deploy/k8s/{path.name} (document {index}): not a mapping")
                continue
            docs.append(Doc(path.name, index, obj))
    return docs, errors


DOCS, LOAD_ERRORS = _load()


def _of_kind(kind: str) -> list[Doc]:
    return [d for d in DOCS if d.kind == kind]


DEPLOYMENTS = _of_kind("Deployment")
SERVICES = _of_kind("Service")


def _ids(docs: list[Doc]) -> list[str]:
    return [f"{d.file}:{d.kind}/{d.name}" for d in docs]


def _single(kind: str, name: str) -> Doc:
    found = [d for d in _of_kind(kind) if d.name == name]
    assert len(found) == 1, f"expected exactly one {kind}/{name} in deploy/k8s/, found {len(found)}"
    return found[0]


def _pod_spec(dep: Doc) -> dict[str, Any]:
    return dep.obj["spec"]["template"]["spec"]


def _containers(dep: Doc) -> Iterator[dict[str, Any]]:
    spec = _pod_spec(dep)
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def _main_container(dep: Doc) -> dict[str, Any]:
    containers = _pod_spec(dep)["containers"]
    assert len(containers) == 1, f"{dep.ref}: expected one container, found {len(containers)}"
    return containers[0]


def _selects(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _container_port(container: dict[str, Any], port: int | str) -> int | None:
    """Resolves a probe/target port (number or name) to a declared containerPort."""
    for p in container.get("ports") or []:
        if port in (p.get("containerPort"), p.get("name")):
            return int(p["containerPort"])
    return None


def _fail_if(problems: list[str]) -> None:
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are offline: any attempt to open a connection fails loudly."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted during an offline test: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


# ----------------------------------------------------------------------------------- files and schema


def test_manifests_load() -> None:
    assert K8S_DIR.is_dir(), f"{K8S_DIR} is missing"
    _fail_if(LOAD_ERRORS)
    assert DOCS, "no Kubernetes documents found in deploy/k8s/*.yaml"


def test_every_object_is_in_the_namespace_and_labelled() -> None:
    problems = []
    for d in DOCS:
        for field in ("apiVersion", "kind", "metadata"):
            if field not in d.obj:
                problems.append(f"{d.ref}: missing {field}")
        meta = d.obj.get("metadata") or {}
        if d.kind != "Namespace" and meta.get("namespace") != NAMESPACE:
            problems.append(f"{d.ref}: metadata.namespace is {meta.get('namespace')!r}, expected {NAMESPACE!r}")
        if (meta.get("labels") or {}).get("app.kubernetes.io/part-of") != PART_OF:
            problems.append(f"{d.ref}: label app.kubernetes.io/part-of={PART_OF} missing")
    seen: dict[tuple[str, str], str] = {}
    for d in DOCS:
        key = (d.kind, d.name)
        if key in seen:
            problems.append(f"{d.ref}: duplicate of {seen[key]}")
        seen[key] = d.ref
    _fail_if(problems)


def test_bundled_schemas_cover_the_target_versions() -> None:
    shipped = {kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()}
    missing = [v for v in KUBERNETES_VERSIONS if v not in shipped]
    assert not missing, (
        f"kubernetes-validate {kubernetes_validate.__version__} ships no schemas for {missing}; "
        f"it has {sorted(shipped)}"
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_schema(doc: Doc, version: str) -> None:
    try:
        validated = kubernetes_validate.validate(doc.obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path) or "<root>"
        pytest.fail(f"{doc.ref}: invalid for Kubernetes {version} at {path}: {e.message}", pytrace=False)
    except kubernetes_validate.SchemaNotFoundError as e:
        pytest.fail(f"{doc.ref}: {e.message}", pytrace=False)
    assert validated == version, f"{doc.ref}: validated against {validated}, not {version}"


def test_kustomization_lists_every_manifest() -> None:
    path = K8S_DIR / KUSTOMIZATION
    if not path.exists():
        pytest.skip("no kustomization.yaml")
    kust = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert kust.get("kind") == "Kustomization", f"deploy/k8s/{KUSTOMIZATION}: kind is not Kustomization"
    assert kust.get("namespace") == NAMESPACE, f"deploy/k8s/{KUSTOMIZATION}: namespace is not {NAMESPACE}"
    listed = list(kust.get("resources") or [])
    on_disk = sorted(p.name for p in K8S_DIR.glob("*.yaml") if p.name != KUSTOMIZATION)
    assert len(listed) == len(set(listed)), f"deploy/k8s/{KUSTOMIZATION}: duplicate resources {listed}"
    assert sorted(listed) == on_disk, (
        f"deploy/k8s/{KUSTOMIZATION}: resources {sorted(listed)} differ from the files on disk {on_disk}"
    )


# -------------------------------------------------------------------------------------------- workloads


def test_expected_deployments_exist() -> None:
    expected = set(GRPC_SERVICES) | set(OTHER_PROCESSES)
    found = {d.name for d in DEPLOYMENTS}
    assert found == expected, f"Deployments in deploy/k8s/: {sorted(found)}, expected {sorted(expected)}"


@pytest.mark.parametrize("dep", DEPLOYMENTS, ids=_ids(DEPLOYMENTS))
def test_deployment_image_command_labels(dep: Doc) -> None:
    problems = []
    c = _main_container(dep)
    if c.get("image") != IMAGE:
        problems.append(f"{dep.ref}: image {c.get('image')!r}, expected {IMAGE!r}")
    expected = GRPC_SERVICES[dep.name][0] if dep.name in GRPC_SERVICES else OTHER_PROCESSES.get(dep.name)
    if c.get("command") != expected:
        problems.append(f"{dep.ref}: command {c.get('command')!r}, expected {expected!r}")
    for where, labels in (
        ("metadata.labels", dep.obj["metadata"].get("labels") or {}),
        ("spec.template.metadata.labels", dep.obj["spec"]["template"]["metadata"].get("labels") or {}),
    ):
        if labels.get("app.kubernetes.io/name") != dep.name:
            problems.append(f"{dep.ref}: {where} lacks app.kubernetes.io/name={dep.name}")
        if labels.get("app.kubernetes.io/part-of") != PART_OF:
            problems.append(f"{dep.ref}: {where} lacks app.kubernetes.io/part-of={PART_OF}")
    template_labels = dep.obj["spec"]["template"]["metadata"].get("labels") or {}
    if not _selects(dep.obj["spec"]["selector"].get("matchLabels"), template_labels):
        problems.append(f"{dep.ref}: spec.selector does not match the pod template labels")
    if dep.name in SINGLE_SHARD:
        if dep.obj["spec"].get("replicas") != 1 or dep.obj["spec"].get("strategy", {}).get("type") != "Recreate":
            problems.append(f"{dep.ref}: a single-shard service needs replicas: 1 and the Recreate strategy")
    elif "replicas" in dep.obj["spec"]:
        problems.append(f"{dep.ref}: spec.replicas is set; the HorizontalPodAutoscaler owns the replica count")
    grace = _pod_spec(dep).get("terminationGracePeriodSeconds")
    if not isinstance(grace, int) or grace < 30:
        problems.append(f"{dep.ref}: terminationGracePeriodSeconds is {grace!r}, expected >= 30")
    _fail_if(problems)


@pytest.mark.parametrize("dep", DEPLOYMENTS, ids=_ids(DEPLOYMENTS))
def test_graceful_shutdown_fits_the_termination_grace_period(dep: Doc) -> None:
    data = _single("ConfigMap", CONFIG_MAP).obj.get("data") or {}
    drain_s = float(data.get("PSP_SHUTDOWN_GRACE_S", "5"))  # pscommon/config.py's default
    pre_stop = (_main_container(dep).get("lifecycle") or {}).get("preStop") or {}
    sleep_s = (pre_stop.get("sleep") or {}).get("seconds", 0)
    grace = _pod_spec(dep).get("terminationGracePeriodSeconds", 30)
    assert sleep_s + drain_s < grace, (
        f"{dep.ref}: preStop sleep {sleep_s}s + PSP_SHUTDOWN_GRACE_S {drain_s}s does not fit in "
        f"terminationGracePeriodSeconds {grace}s; the kubelet would SIGKILL before the drain ends"
    )


@pytest.mark.parametrize("dep", DEPLOYMENTS, ids=_ids(DEPLOYMENTS))
def test_deployment_hardening(dep: Doc) -> None:
    problems = []
    spec = _pod_spec(dep)
    pod_sc = spec.get("securityContext") or {}
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.append(f"{dep.ref}: uses host namespaces")
    for c in _containers(dep):
        where = f"{dep.ref} container {c.get('name')!r}"
        sc = c.get("securityContext") or {}

        def effective(key: str, sc: dict[str, Any] = sc) -> Any:
            return sc[key] if key in sc else pod_sc.get(key)

        if effective("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        run_as_user = effective("runAsUser")
        if not isinstance(run_as_user, int) or run_as_user == 0:
            problems.append(f"{where}: runAsUser is {run_as_user!r}, expected a non-zero uid")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append(f"{where}: privileged")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{where}: capabilities.drop does not contain ALL")
        if (sc.get("capabilities") or {}).get("add"):
            problems.append(f"{where}: adds capabilities {sc['capabilities']['add']}")
        if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: seccompProfile is not RuntimeDefault")
        tmp = [m for m in c.get("volumeMounts") or [] if m.get("mountPath") == "/tmp"]
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        if not tmp or "emptyDir" not in volumes.get(tmp[0].get("name"), {}):
            problems.append(f"{where}: no emptyDir mounted at /tmp (the root filesystem is read-only)")
    _fail_if(problems)


_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MEMORY_UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_MEMORY_UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _quantity(resource: str, value: object) -> float | None:
    text = str(value)
    if resource == "cpu":
        m = _CPU.match(text)
        return None if m is None else float(m[1]) / (1000 if m[2] else 1)
    m = _MEMORY.match(text)
    return None if m is None else float(m[1]) * _MEMORY_UNITS[m[2]]


@pytest.mark.parametrize("dep", DEPLOYMENTS, ids=_ids(DEPLOYMENTS))
def test_deployment_resources(dep: Doc) -> None:
    problems = []
    for c in _containers(dep):
        where = f"{dep.ref} container {c.get('name')!r}"
        res = c.get("resources") or {}
        for resource in ("cpu", "memory"):
            request = (res.get("requests") or {}).get(resource)
            limit = (res.get("limits") or {}).get(resource)
            if request is None or limit is None:
                problems.append(f"{where}: needs both a {resource} request and a {resource} limit")
                continue
            req_q, lim_q = _quantity(resource, request), _quantity(resource, limit)
            if req_q is None or lim_q is None:
                problems.append(f"{where}: cannot read {resource} quantities {request!r}/{limit!r}")
            elif req_q > lim_q:
                problems.append(f"{where}: {resource} request {request} exceeds limit {limit}")
    _fail_if(problems)


@pytest.mark.parametrize("dep", DEPLOYMENTS, ids=_ids(DEPLOYMENTS))
def test_deployment_probes(dep: Doc) -> None:
    problems = []
    c = _main_container(dep)
    probes = {kind: c.get(kind) for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    required = ["readinessProbe"] if dep.name in NO_LIVENESS_PROBE else ["readinessProbe", "livenessProbe"]
    for kind in required:
        if not probes[kind]:
            problems.append(f"{dep.ref}: container {c.get('name')!r} has no {kind}")
    if dep.name in GRPC_SERVICES:
        port = GRPC_SERVICES[dep.name][1]
        declared = [p for p in c.get("ports") or [] if p.get("containerPort") == port]
        if not declared:
            problems.append(f"{dep.ref}: no containerPort {port}")
        for kind in ("readinessProbe", "livenessProbe"):
            probe = probes[kind] or {}
            if "grpc" not in probe:
                problems.append(f"{dep.ref}: {kind} is not a grpc probe (got {sorted(probe)})")
            elif probe["grpc"].get("port") != port:
                problems.append(f"{dep.ref}: {kind} grpc port {probe['grpc'].get('port')!r}, expected {port}")
    if dep.name == "codec-server":
        for kind in ("readinessProbe", "livenessProbe"):
            probe = probes[kind] or {}
            if _container_port(c, (probe.get("tcpSocket") or {}).get("port", -1)) != CODEC_SERVER_PORT:
                problems.append(f"{dep.ref}: {kind} is not a tcpSocket probe on port {CODEC_SERVER_PORT}")
    # Whatever the type, a probe on a port must aim at a port the container declares.
    for kind, probe in probes.items():
        for handler in ("grpc", "tcpSocket", "httpGet"):
            if probe and handler in probe and _container_port(c, probe[handler].get("port")) is None:
                problems.append(f"{dep.ref}: {kind}.{handler} port {probe[handler].get('port')!r} is not declared")
    _fail_if(problems)


@pytest.mark.parametrize("dep", DEPLOYMENTS, ids=_ids(DEPLOYMENTS))
def test_deployment_configuration_comes_from_configmap_and_secret(dep: Doc) -> None:
    problems = []
    for c in _containers(dep):
        where = f"{dep.ref} container {c.get('name')!r}"
        sources = c.get("envFrom") or []
        config_maps = {(s.get("configMapRef") or {}).get("name") for s in sources} - {None}
        secrets = {(s.get("secretRef") or {}).get("name") for s in sources} - {None}
        if config_maps != {CONFIG_MAP}:
            problems.append(f"{where}: envFrom ConfigMaps {sorted(config_maps)}, expected [{CONFIG_MAP!r}]")
        if secrets != {SECRET}:
            problems.append(f"{where}: envFrom Secrets {sorted(secrets)}, expected [{SECRET!r}]")
        for var in c.get("env") or []:
            ref = var.get("valueFrom") or {}
            source = (ref.get("configMapKeyRef") or {}).get("name") or (ref.get("secretKeyRef") or {}).get("name")
            if source not in (CONFIG_MAP, SECRET):
                problems.append(f"{where}: env {var.get('name')!r} is set inline, not from {CONFIG_MAP}/{SECRET}")
    _fail_if(problems)


@pytest.mark.parametrize("dep", DEPLOYMENTS, ids=_ids(DEPLOYMENTS))
def test_deployment_has_pdb_and_hpa(dep: Doc) -> None:
    problems = []
    labels = dep.obj["spec"]["template"]["metadata"].get("labels") or {}
    pdbs = [
        p
        for p in _of_kind("PodDisruptionBudget")
        if _selects((p.obj["spec"].get("selector") or {}).get("matchLabels"), labels)
    ]
    if len(pdbs) != 1:
        problems.append(f"{dep.ref}: expected one PodDisruptionBudget selecting its pods, found {_ids(pdbs)}")
    hpas = [
        h
        for h in _of_kind("HorizontalPodAutoscaler")
        if h.obj["spec"]["scaleTargetRef"].get("kind") == "Deployment"
        and h.obj["spec"]["scaleTargetRef"].get("name") == dep.name
        and h.obj["spec"]["scaleTargetRef"].get("apiVersion") == "apps/v1"
    ]
    if dep.name in SINGLE_SHARD:
        if hpas:
            problems.append(f"{dep.ref}: a single-shard service must not be autoscaled, found {_ids(hpas)}")
    elif len(hpas) != 1:
        problems.append(f"{dep.ref}: expected one HorizontalPodAutoscaler targeting it, found {_ids(hpas)}")
    for hpa in hpas:
        spec = hpa.obj["spec"]
        # One replica plus a disruption budget would block every node drain.
        if spec.get("minReplicas", 1) < 2:
            problems.append(f"{hpa.ref}: minReplicas {spec.get('minReplicas', 1)} < 2")
        if spec["maxReplicas"] < spec.get("minReplicas", 1):
            problems.append(f"{hpa.ref}: maxReplicas below minReplicas")
    _fail_if(problems)


# ------------------------------------------------------------------------------ configuration, secrets


def test_configmap_has_the_platform_settings() -> None:
    cm = _single("ConfigMap", CONFIG_MAP)
    data = cm.obj.get("data") or {}
    problems = [f"{cm.ref}: missing key {k}" for k in sorted(CONFIG_KEYS - set(data))]
    problems += [
        f"{cm.ref}: {k} looks like a secret; it belongs in {SECRET}" for k in data if SECRET_LOOKING_KEY.search(k)
    ]
    problems += [f"{cm.ref}: {k} is also a Secret key" for k in sorted(SECRET_KEYS & set(data))]
    problems += [f"{cm.ref}: {k} is not a string" for k, v in data.items() if not isinstance(v, str)]
    _fail_if(problems)


def test_secret_holds_only_placeholders() -> None:
    secrets = _of_kind("Secret")
    assert [s.name for s in secrets] == [SECRET], f"expected only the Secret {SECRET}, found {_ids(secrets)}"
    secret = secrets[0]
    values: dict[str, str] = dict(secret.obj.get("stringData") or {})
    for key, encoded in (secret.obj.get("data") or {}).items():
        try:
            values[key] = base64.b64decode(str(encoded), validate=True).decode("utf-8")
        except ValueError:
            values[key] = f"<undecodable base64 {encoded!r}>"
    problems = [f"{secret.ref}: missing key {k}" for k in sorted(SECRET_KEYS - set(values))]
    problems += [
        f"{secret.ref}: value of {k} is not an obvious placeholder (must contain {PLACEHOLDER}); "
        "real secrets do not belong in the repository"
        for k, v in sorted(values.items())
        if not isinstance(v, str) or PLACEHOLDER not in v
    ]
    _fail_if(problems)


# ------------------------------------------------------------------------------------ services, network


def _deployment_for(svc: Doc) -> Doc:
    selector = svc.obj["spec"].get("selector") or {}
    matched = [d for d in DEPLOYMENTS if _selects(selector, d.obj["spec"]["template"]["metadata"].get("labels") or {})]
    assert len(matched) == 1, f"{svc.ref}: selector {selector} matches Deployments {_ids(matched)}, expected one"
    return matched[0]


def test_every_server_has_a_service() -> None:
    expected = set(GRPC_SERVICES) | {"codec-server"}
    found = {s.name for s in SERVICES}
    assert found == expected, f"Services in deploy/k8s/: {sorted(found)}, expected {sorted(expected)}"


@pytest.mark.parametrize("svc", SERVICES, ids=_ids(SERVICES))
def test_service_ports_match_containers(svc: Doc) -> None:
    problems = []
    dep = _deployment_for(svc)
    c = _main_container(dep)
    for port in svc.obj["spec"].get("ports") or []:
        target = _container_port(c, port.get("targetPort", port["port"]))
        if target is None:
            problems.append(f"{svc.ref}: targetPort {port.get('targetPort')!r} is not a port of {dep.ref}")
        elif target != port["port"]:
            problems.append(f"{svc.ref}: port {port['port']} forwards to container port {target}; keep them equal")
    if dep.name in GRPC_SERVICES:
        grpc_port = GRPC_SERVICES[dep.name][1]
        if [p["port"] for p in svc.obj["spec"].get("ports") or []] != [grpc_port]:
            problems.append(f"{svc.ref}: expected the single port {grpc_port} of {dep.ref}")
    _fail_if(problems)


def test_configmap_addresses_name_the_services() -> None:
    data = _single("ConfigMap", CONFIG_MAP).obj.get("data") or {}
    problems = []
    for key, service in ADDRESS_KEYS.items():
        expected = f"{service}:{GRPC_SERVICES[service][1]}"
        if data.get(key) != expected:
            problems.append(f"ConfigMap/{CONFIG_MAP}: {key}={data.get(key)!r}, expected {expected!r}")
    _fail_if(problems)


def _allowed_peers(svc_pod_labels: dict[str, str], port: int) -> list[dict[str, Any]]:
    """The `from` peers of every ingress rule that lets traffic reach these pods on this port."""
    peers = []
    for pol in _of_kind("NetworkPolicy"):
        spec = pol.obj["spec"]
        if not _selects(spec["podSelector"].get("matchLabels"), svc_pod_labels):
            continue
        for rule in spec.get("ingress") or []:
            ports = rule.get("ports") or []
            if not ports or any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports):
                peers.extend(rule.get("from") or [{}])
    return peers


def test_network_policies() -> None:
    problems = []
    default_deny = [
        p
        for p in _of_kind("NetworkPolicy")
        if p.obj["spec"].get("podSelector") in ({}, {"matchLabels": {}})
        and "Ingress" in (p.obj["spec"].get("policyTypes") or [])
        and not p.obj["spec"].get("ingress")
    ]
    if not default_deny:
        problems.append("NetworkPolicy: no default deny of ingress (podSelector {}, policyTypes [Ingress], no rules)")
    same_namespace = {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}}}
    for svc in SERVICES:
        dep = _deployment_for(svc)
        labels = dep.obj["spec"]["template"]["metadata"].get("labels") or {}
        for port in svc.obj["spec"].get("ports") or []:
            peers = _allowed_peers(labels, port["port"])
            if same_namespace not in peers:
                problems.append(f"{svc.ref}: no NetworkPolicy admits the platform's pods on port {port['port']}")
            if {} in peers:
                problems.append(f"{svc.ref}: a NetworkPolicy admits any source on port {port['port']}")
    scoring_peers = _allowed_peers({"app.kubernetes.io/name": "scoring", "app.kubernetes.io/part-of": PART_OF}, 50051)
    if {"namespaceSelector": {"matchLabels": MEDIATION_NAMESPACE}} not in scoring_peers:
        problems.append("NetworkPolicy: scoring:50051 is not reachable from the mediation namespace")
    _fail_if(problems)

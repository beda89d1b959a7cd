"""Offline checks of the Kubernetes manifests in deploy/k8s/ (most of them rendered by deploy/k8s/render.py;
test_render.py checks that the committed files are its output, so these checks cover what it renders).

Every YAML document of a Kubernetes API is validated against the Kubernetes OpenAPI schemas bundled with the
pinned `kubernetes-validate` package (no cluster, no network: sockets are blocked while the tests run), then
the rules that a schema cannot express are checked for every workload (the Deployments and scoring's StatefulSet):
hardening, resources, probes (exec probes over mutual TLS for the gRPC services, no plaintext gRPC port or probe
left), autoscaling and disruption budgets, configuration
through the ConfigMap/Secret (inline only: paths into the pod's own read-only volumes), placeholder-only secrets, and that Services, addresses in the ConfigMap and network
policies agree with the container ports. cert-manager's documents (certificates.yaml) are checked by
test_certificates.py, scoring's shards (StatefulSet, headless Service, shard settings) by test_scoring_shards.py.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.manifests import (
    CERT_MANAGER_GROUP,
    CONFIG_MAP,
    DOCS,
    GRPC_SERVICES,
    INLINE_PATH_ENV,
    K8S_DIR,
    KUSTOMIZATION,
    LOAD_ERRORS,
    NAMESPACE,
    PART_OF,
    PORTAL_COMMAND,
    PORTAL_PROCESSES,
    PORTAL_SECRET,
    PROBE_MODULE,
    REVIEWERS_DIR,
    SECRET,
    SHARDED,
    UPLOADS_DIR,
    WORKLOADS,
    Doc,
    block_network,
    container_port,
    containers,
    fail_if,
    ids,
    main_container,
    of_kind,
    pod_spec,
    selects,
    single,
)

# Oldest Kubernetes the manifests claim to support (README) and the current target.
KUBERNETES_VERSIONS = ("1.30", "1.33")

IMAGE = "registry.example-carrier.cn/protective-suspension/platform:0.1.0"
OTHER_PROCESSES = {
    "worker": ["python", "-m", "workflows.worker"],
    "codec-server": ["python", "-m", "pscommon.codec_server"],
} | {name: PORTAL_COMMAND for name in PORTAL_PROCESSES}
CODEC_SERVER_PORT = 8081
METRICS_PORT_NAME = "metrics"
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
    "PSP_TRUST_DOMAIN",
    "PSP_CODEC_JWT_ISSUER",
    "PSP_CODEC_JWT_AUDIENCE",
}
SECRET_KEYS = {
    "DATABASE_URL",
    "PSP_LINE_HASH_KEY",
    "PSP_CODEC_KEYS",
    "PSP_CODEC_ACTIVE_KEY",
    "PSP_SMSC_SYSTEM_ID",
    "PSP_SMSC_PASSWORD",
    "PSP_LINK_KEYS",  # notify signs the holder's links, the portal checks them
    "PSP_LINK_ACTIVE_KEY",
}
PORTAL_SECRET_KEYS = {
    "PSP_PORTAL_SECRET",
    "PSP_CONSOLE_SECRET",
    "PSP_PORTAL_SESSION_KEY",
}
# The portal's processes: what they set inline besides paths (what the process is, test_portal_manifests.py checks
# the values), and the writable uploads volume (every other inline path is into a read-only mount).
PORTAL_INLINE = {"PSP_PORTAL_PAGES"}
PORTAL_PATH_ENV = {"PSP_PORTAL_UPLOADS": UPLOADS_DIR, "PSP_PKI_DIR": REVIEWERS_DIR}
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


SERVICES = of_kind("Service")
# What kubernetes-validate's schemas cover; cert-manager's kinds are checked by test_certificates.py.
CORE_DOCS = [d for d in DOCS if d.api_group != CERT_MANAGER_GROUP]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    block_network(monkeypatch)


# ----------------------------------------------------------------------------------- files and schema


def test_manifests_load() -> None:
    assert K8S_DIR.is_dir(), f"{K8S_DIR} is missing"
    fail_if(LOAD_ERRORS)
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
    fail_if(problems)


def test_bundled_schemas_cover_the_target_versions() -> None:
    shipped = {kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()}
    missing = [v for v in KUBERNETES_VERSIONS if v not in shipped]
    assert not missing, (
        f"kubernetes-validate {kubernetes_validate.__version__} ships no schemas for {missing}; "
        f"it has {sorted(shipped)}"
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("doc", CORE_DOCS, ids=ids(CORE_DOCS))
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


def test_expected_workloads_exist() -> None:
    """One workload per process: a StatefulSet for each sharded service, a Deployment for every other one."""
    expected = set(GRPC_SERVICES) | set(OTHER_PROCESSES)
    found = {d.name for d in WORKLOADS}
    assert found == expected, f"workloads in deploy/k8s/: {sorted(found)}, expected {sorted(expected)}"
    assert len(WORKLOADS) == len(found), f"two workloads share a name: {ids(WORKLOADS)}"
    stateful = {d.name for d in of_kind("StatefulSet")}
    assert stateful == set(SHARDED), f"StatefulSets: {sorted(stateful)}, expected the sharded {sorted(SHARDED)}"


@pytest.mark.parametrize("dep", WORKLOADS, ids=ids(WORKLOADS))
def test_deployment_image_command_labels(dep: Doc) -> None:
    problems = []
    c = main_container(dep)
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
    if not selects(dep.obj["spec"]["selector"].get("matchLabels"), template_labels):
        problems.append(f"{dep.ref}: spec.selector does not match the pod template labels")
    if dep.name in SHARDED:
        # One pod per shard: the replica count is the shard count (test_scoring_shards.py checks the rest).
        if not isinstance(dep.obj["spec"].get("replicas"), int):
            problems.append(f"{dep.ref}: a sharded service sets its replicas, the number of shards")
    elif "replicas" in dep.obj["spec"]:
        problems.append(f"{dep.ref}: spec.replicas is set; the HorizontalPodAutoscaler owns the replica count")
    elif (dep.obj["spec"].get("strategy") or {}).get("type") != "RollingUpdate":
        problems.append(f"{dep.ref}: strategy {dep.obj['spec'].get('strategy')}, expected RollingUpdate")
    grace = pod_spec(dep).get("terminationGracePeriodSeconds")
    if not isinstance(grace, int) or grace < 30:
        problems.append(f"{dep.ref}: terminationGracePeriodSeconds is {grace!r}, expected >= 30")
    fail_if(problems)


@pytest.mark.parametrize("dep", WORKLOADS, ids=ids(WORKLOADS))
def test_graceful_shutdown_fits_the_termination_grace_period(dep: Doc) -> None:
    data = single("ConfigMap", CONFIG_MAP).obj.get("data") or {}
    drain_s = float(data.get("PSP_SHUTDOWN_GRACE_S", "5"))  # pscommon/config.py's default
    pre_stop = (main_container(dep).get("lifecycle") or {}).get("preStop") or {}
    sleep_s = (pre_stop.get("sleep") or {}).get("seconds", 0)
    grace = pod_spec(dep).get("terminationGracePeriodSeconds", 30)
    assert sleep_s + drain_s < grace, (
        f"{dep.ref}: preStop sleep {sleep_s}s + PSP_SHUTDOWN_GRACE_S {drain_s}s does not fit in "
        f"terminationGracePeriodSeconds {grace}s; the kubelet would SIGKILL before the drain ends"
    )


@pytest.mark.parametrize("dep", WORKLOADS, ids=ids(WORKLOADS))
def test_deployment_hardening(dep: Doc) -> None:
    problems = []
    spec = pod_spec(dep)
    pod_sc = spec.get("securityContext") or {}
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.append(f"{dep.ref}: uses host namespaces")
    for c in containers(dep):
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
    fail_if(problems)


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


@pytest.mark.parametrize("dep", WORKLOADS, ids=ids(WORKLOADS))
def test_deployment_resources(dep: Doc) -> None:
    problems = []
    for c in containers(dep):
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
    fail_if(problems)


def _grpc_service_names(proto_area: str) -> set[str]:
    """Full names of the gRPC services declared in protos/carrier/<area>/v1/*.proto."""
    names = set()
    for proto in (K8S_DIR.parents[1] / "protos" / "carrier" / proto_area / "v1").glob("*.proto"):
        text = proto.read_text(encoding="utf-8")
        package = re.search(r"^package\s+([\w.]+);", text, re.M)
        if package:
            names |= {f"{package[1]}.{svc}" for svc in re.findall(r"^service\s+(\w+)\s*\{", text, re.M)}
    return names


ACCESS_TABLE = yaml.safe_load((K8S_DIR.parents[1] / "contracts" / "access.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("dep", WORKLOADS, ids=ids(WORKLOADS))
def test_deployment_probes(dep: Doc) -> None:
    problems = []
    c = main_container(dep)
    probes = {kind: c.get(kind) for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    required = ["readinessProbe"] if dep.name in NO_LIVENESS_PROBE else ["readinessProbe", "livenessProbe"]
    for kind in required:
        if not probes[kind]:
            problems.append(f"{dep.ref}: container {c.get('name')!r} has no {kind}")
    if dep.name == "codec-server":
        for kind in ("readinessProbe", "livenessProbe"):
            probe = probes[kind] or {}
            if container_port(c, (probe.get("tcpSocket") or {}).get("port", -1)) != CODEC_SERVER_PORT:
                problems.append(f"{dep.ref}: {kind} is not a tcpSocket probe on port {CODEC_SERVER_PORT}")
    # Whatever the type, a probe on a port must aim at a port the container declares.
    for kind, probe in probes.items():
        for handler in ("grpc", "tcpSocket", "httpGet"):
            if probe and handler in probe and container_port(c, probe[handler].get("port")) is None:
                problems.append(f"{dep.ref}: {kind}.{handler} port {probe[handler].get('port')!r} is not declared")
    fail_if(problems)


@pytest.mark.parametrize("dep", WORKLOADS, ids=ids(WORKLOADS))
def test_no_plaintext_grpc_port_or_probe(dep: Doc) -> None:
    """The servers listen on a mutual-TLS port only: the kubelet's grpc probe (plaintext, no client certificate)
    would fail against it, a TCP or HTTP probe would prove nothing, and a port named grpc* reads as plaintext
    gRPC to a service mesh's protocol detection. So a gRPC service declares exactly its one port, named tls-*,
    and none of its probes is grpc, tcpSocket or httpGet; no Deployment has a grpc probe at all."""
    problems = []
    c = main_container(dep)
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = c.get(kind) or {}
        if "grpc" in probe:
            problems.append(f"{dep.ref}: {kind} is a kubelet grpc probe (plaintext); use the exec probe")
        if dep.name in GRPC_SERVICES and {"tcpSocket", "httpGet"} & set(probe):
            problems.append(f"{dep.ref}: {kind} is {sorted(probe)}, not the exec probe over mutual TLS")
    if dep.name in GRPC_SERVICES:
        port = GRPC_SERVICES[dep.name][1]
        # Besides its metrics port (plain HTTP /metrics for Prometheus: test_metrics_scrape.py).
        ports = [p for p in c.get("ports") or [] if p.get("name") != METRICS_PORT_NAME]
        if [(p.get("containerPort"), p.get("protocol", "TCP")) for p in ports] != [(port, "TCP")]:
            problems.append(f"{dep.ref}: ports {ports}, expected only the mutual-TLS port {port} (and metrics)")
        problems += [
            f"{dep.ref}: port {p.get('containerPort')} is named {p.get('name')!r}; name it tls-* (it speaks TLS)"
            for p in ports
            if not str(p.get("name", "")).startswith("tls")
        ]
    fail_if(problems)


@pytest.mark.parametrize("dep", [d for d in WORKLOADS if d.name in GRPC_SERVICES], ids=lambda d: d.name)
def test_grpc_probes_are_the_mtls_exec_probe_on_the_own_port(dep: Doc) -> None:
    """startup, readiness and liveness: `python -m pscommon.probes 127.0.0.1:<the container's own gRPC port>
    <a gRPC service this server implements>` (its proto declares it, the access table lists it), with a timeout
    that leaves room for the interpreter's start."""
    problems = []
    c = main_container(dep)
    port = GRPC_SERVICES[dep.name][1]
    own_services = _grpc_service_names(dep.name)
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = c.get(kind)
        if not probe:
            problems.append(f"{dep.ref}: no {kind}")
            continue
        command = (probe.get("exec") or {}).get("command") or []
        if command[:4] != ["python", "-m", PROBE_MODULE, f"127.0.0.1:{port}"] or len(command) != 5:
            problems.append(
                f"{dep.ref}: {kind} runs {command}, expected "
                f"['python', '-m', {PROBE_MODULE!r}, '127.0.0.1:{port}', '<grpc service>']"
            )
            continue
        if container_port(c, port) is None:
            problems.append(f"{dep.ref}: {kind} probes port {port}, which the container does not declare")
        if command[4] not in own_services:
            problems.append(f"{dep.ref}: {kind} checks {command[4]!r}, not one of its services {sorted(own_services)}")
        if command[4] not in (ACCESS_TABLE.get("services") or {}):
            problems.append(f"{dep.ref}: {kind} checks {command[4]!r}, which contracts/access.yaml does not list")
        if probe.get("timeoutSeconds", 1) < 3:
            problems.append(f"{dep.ref}: {kind} timeoutSeconds {probe.get('timeoutSeconds', 1)} < 3 (Python start)")
        if probe.get("periodSeconds", 10) < 5:
            problems.append(
                f"{dep.ref}: {kind} periodSeconds {probe.get('periodSeconds', 10)} < 5 (a Python start each)"
            )
    if c.get("startupProbe") and (c.get("livenessProbe") or {}).get("initialDelaySeconds"):
        problems.append(f"{dep.ref}: livenessProbe has initialDelaySeconds although the startup probe gates it")
    fail_if(problems)


def test_the_probes_principal_may_ask_for_health() -> None:
    """The probe calls as the pod's own principal: the access table must let every known role call Health."""
    health = (ACCESS_TABLE.get("services") or {}).get("grpc.health.v1.Health") or {}
    assert "*" in (health.get("Check") or []), "contracts/access.yaml: grpc.health.v1.Health/Check is not open to '*'"


@pytest.mark.parametrize("dep", WORKLOADS, ids=ids(WORKLOADS))
def test_deployment_configuration_comes_from_configmap_and_secret(dep: Doc) -> None:
    problems = []
    for c in containers(dep):
        where = f"{dep.ref} container {c.get('name')!r}"
        sources = c.get("envFrom") or []
        config_maps = {(s.get("configMapRef") or {}).get("name") for s in sources} - {None}
        secrets = {(s.get("secretRef") or {}).get("name") for s in sources} - {None}
        if config_maps != {CONFIG_MAP}:
            problems.append(f"{where}: envFrom ConfigMaps {sorted(config_maps)}, expected [{CONFIG_MAP!r}]")
        # The portal's processes face browsers: they take single keys (secretKeyRef), never a whole Secret.
        expected_secrets = set() if dep.name in PORTAL_PROCESSES else {SECRET}
        if secrets != expected_secrets:
            problems.append(f"{where}: envFrom Secrets {sorted(secrets)}, expected {sorted(expected_secrets)}")
        read_only_mounts = {m.get("mountPath") for m in c.get("volumeMounts") or [] if m.get("readOnly")}
        mounts = {m.get("mountPath") for m in c.get("volumeMounts") or []}
        sharded = SHARDED.get(dep.name)
        for var in c.get("env") or []:
            if sharded and var.get("name") in (sharded.count_env, sharded.addrs_env) and "value" in var:
                continue  # rendered from the StatefulSet's replicas: test_scoring_shards.py checks the values
            if dep.name in PORTAL_PROCESSES and "value" in var:
                if var.get("name") in PORTAL_INLINE:
                    continue
                folder = PORTAL_PATH_ENV.get(var.get("name"))
                if folder is not None:
                    if var["value"] != folder or folder not in mounts:
                        problems.append(f"{where}: {var.get('name')}={var['value']!r} is not its mount {folder}")
                    continue
            folder = INLINE_PATH_ENV.get(var.get("name"))
            if folder is not None and "value" in var:
                # A path into the pod's own volume (its certificate, the codec server's issuer key), not
                # configuration: test_certificates.py and test_codec_server_auth.py check which file.
                if folder not in read_only_mounts or not str(var["value"]).startswith(f"{folder}/"):
                    problems.append(
                        f"{where}: env {var.get('name')!r}={var['value']!r} is set inline but is not a path into "
                        f"its read-only mount {folder}"
                    )
                continue
            ref = var.get("valueFrom") or {}
            source = (ref.get("configMapKeyRef") or {}).get("name") or (ref.get("secretKeyRef") or {}).get("name")
            if source not in (CONFIG_MAP, SECRET, PORTAL_SECRET):
                problems.append(f"{where}: env {var.get('name')!r} is set inline, not from {CONFIG_MAP}/{SECRET}")
    fail_if(problems)


@pytest.mark.parametrize("dep", WORKLOADS, ids=ids(WORKLOADS))
def test_deployment_has_pdb_and_hpa(dep: Doc) -> None:
    problems = []
    labels = dep.obj["spec"]["template"]["metadata"].get("labels") or {}
    pdbs = [
        p
        for p in of_kind("PodDisruptionBudget")
        if selects((p.obj["spec"].get("selector") or {}).get("matchLabels"), labels)
    ]
    if len(pdbs) != 1:
        problems.append(f"{dep.ref}: expected one PodDisruptionBudget selecting its pods, found {ids(pdbs)}")
    for pdb in pdbs:
        budget = pdb.obj["spec"]
        # Both kinds: the autoscaled ones keep at least one more replica; a shard's partitions are unavailable
        # while its pod is down, so drains take one pod at a time.
        if budget.get("maxUnavailable") != 1 or "minAvailable" in budget:
            problems.append(f"{pdb.ref}: expected maxUnavailable: 1 (and no minAvailable), found {budget}")
    hpas = [
        h
        for h in of_kind("HorizontalPodAutoscaler")
        if h.obj["spec"]["scaleTargetRef"].get("name") == dep.name
        and h.obj["spec"]["scaleTargetRef"].get("apiVersion") == "apps/v1"
    ]
    if dep.name in SHARDED:
        # The shard count is PSP_SCORING_SHARDS too: an autoscaler changing replicas alone would break the map.
        if hpas:
            problems.append(f"{dep.ref}: a sharded service must not be autoscaled, found {ids(hpas)}")
    elif len(hpas) != 1 or hpas[0].obj["spec"]["scaleTargetRef"].get("kind") != dep.kind:
        problems.append(f"{dep.ref}: expected one HorizontalPodAutoscaler targeting it, found {ids(hpas)}")
    for hpa in hpas:
        spec = hpa.obj["spec"]
        # One replica plus a disruption budget would block every node drain.
        if spec.get("minReplicas", 1) < 2:
            problems.append(f"{hpa.ref}: minReplicas {spec.get('minReplicas', 1)} < 2")
        if spec["maxReplicas"] < spec.get("minReplicas", 1):
            problems.append(f"{hpa.ref}: maxReplicas below minReplicas")
    fail_if(problems)


# ------------------------------------------------------------------------------ configuration, secrets


def test_configmap_has_the_platform_settings() -> None:
    cm = single("ConfigMap", CONFIG_MAP)
    data = cm.obj.get("data") or {}
    problems = [f"{cm.ref}: missing key {k}" for k in sorted(CONFIG_KEYS - set(data))]
    problems += [
        f"{cm.ref}: {k} looks like a secret; it belongs in {SECRET}" for k in data if SECRET_LOOKING_KEY.search(k)
    ]
    problems += [f"{cm.ref}: {k} is also a Secret key" for k in sorted(SECRET_KEYS & set(data))]
    problems += [f"{cm.ref}: {k} is not a string" for k, v in data.items() if not isinstance(v, str)]
    fail_if(problems)


@pytest.mark.parametrize("name, keys", [(SECRET, SECRET_KEYS), (PORTAL_SECRET, PORTAL_SECRET_KEYS)])
def test_secret_holds_only_placeholders(name: str, keys: set[str]) -> None:
    secrets = of_kind("Secret")
    assert sorted(s.name for s in secrets) == sorted([SECRET, PORTAL_SECRET]), f"unexpected Secrets {ids(secrets)}"
    secret = single("Secret", name)
    values: dict[str, str] = dict(secret.obj.get("stringData") or {})
    for key, encoded in (secret.obj.get("data") or {}).items():
        try:
            values[key] = base64.b64decode(str(encoded), validate=True).decode("utf-8")
        except ValueError:
            values[key] = f"<undecodable base64 {encoded!r}>"
    problems = [f"{secret.ref}: missing key {k}" for k in sorted(keys - set(values))]
    problems += [
        f"{secret.ref}: value of {k} is not an obvious placeholder (must contain {PLACEHOLDER}); "
        "real secrets do not belong in the repository"
        for k, v in sorted(values.items())
        if not isinstance(v, str) or PLACEHOLDER not in v
    ]
    fail_if(problems)


# ------------------------------------------------------------------------------------ services, network


def _workload_for(svc: Doc) -> Doc:
    selector = svc.obj["spec"].get("selector") or {}
    matched = [d for d in WORKLOADS if selects(selector, d.obj["spec"]["template"]["metadata"].get("labels") or {})]
    assert len(matched) == 1, f"{svc.ref}: selector {selector} matches workloads {ids(matched)}, expected one"
    return matched[0]


def test_every_server_has_a_service() -> None:
    expected = set(GRPC_SERVICES) | {"codec-server"} | {s.headless_service for s in SHARDED.values()}
    expected |= set(PORTAL_PROCESSES)
    found = {s.name for s in SERVICES}
    assert found == expected, f"Services in deploy/k8s/: {sorted(found)}, expected {sorted(expected)}"


@pytest.mark.parametrize("svc", SERVICES, ids=ids(SERVICES))
def test_service_ports_matchcontainers(svc: Doc) -> None:
    problems = []
    dep = _workload_for(svc)
    c = main_container(dep)
    for port in svc.obj["spec"].get("ports") or []:
        target = container_port(c, port.get("targetPort", port["port"]))
        if target is None:
            problems.append(f"{svc.ref}: targetPort {port.get('targetPort')!r} is not a port of {dep.ref}")
        elif target != port["port"]:
            problems.append(f"{svc.ref}: port {port['port']} forwards to container port {target}; keep them equal")
    if dep.name in GRPC_SERVICES:
        grpc_port = GRPC_SERVICES[dep.name][1]
        if [p["port"] for p in svc.obj["spec"].get("ports") or []] != [grpc_port]:
            problems.append(f"{svc.ref}: expected the single port {grpc_port} of {dep.ref}")
    fail_if(problems)


def test_configmap_addresses_name_the_services() -> None:
    data = single("ConfigMap", CONFIG_MAP).obj.get("data") or {}
    problems = []
    for key, service in ADDRESS_KEYS.items():
        expected = f"{service}:{GRPC_SERVICES[service][1]}"
        if data.get(key) != expected:
            problems.append(f"ConfigMap/{CONFIG_MAP}: {key}={data.get(key)!r}, expected {expected!r}")
    fail_if(problems)


def _allowed_peers(svc_pod_labels: dict[str, str], port: int) -> list[dict[str, Any]]:
    """The `from` peers of every ingress rule that lets traffic reach these pods on this port."""
    peers = []
    for pol in of_kind("NetworkPolicy"):
        spec = pol.obj["spec"]
        if not selects(spec["podSelector"].get("matchLabels"), svc_pod_labels):
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
        for p in of_kind("NetworkPolicy")
        if p.obj["spec"].get("podSelector") in ({}, {"matchLabels": {}})
        and "Ingress" in (p.obj["spec"].get("policyTypes") or [])
        and not p.obj["spec"].get("ingress")
    ]
    if not default_deny:
        problems.append("NetworkPolicy: no default deny of ingress (podSelector {}, policyTypes [Ingress], no rules)")
    same_namespace = {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}}}
    for svc in SERVICES:
        dep = _workload_for(svc)
        labels = dep.obj["spec"]["template"]["metadata"].get("labels") or {}
        for port in svc.obj["spec"].get("ports") or []:
            peers = _allowed_peers(labels, port["port"])
            if dep.name in PORTAL_PROCESSES:
                # Reached through their ingress controller only (test_portal_manifests.py), by no platform pod.
                if same_namespace in peers:
                    problems.append(f"{svc.ref}: a NetworkPolicy admits the platform's pods on port {port['port']}")
            elif same_namespace not in peers:
                problems.append(f"{svc.ref}: no NetworkPolicy admits the platform's pods on port {port['port']}")
            if {} in peers:
                problems.append(f"{svc.ref}: a NetworkPolicy admits any source on port {port['port']}")
    # A shard hands parts of a batch to the others' pods directly (PSP_SCORING_SHARD_ADDRS), not via the Service:
    # its own pods must be admitted, by a peer of this namespace (a podSelector without namespaceSelector).
    for name in SHARDED:
        sts = single("StatefulSet", name)
        labels = sts.obj["spec"]["template"]["metadata"].get("labels") or {}
        port = GRPC_SERVICES[name][1]
        own = [
            peer
            for peer in _allowed_peers(labels, port)
            if set(peer) == {"podSelector"} and selects(peer["podSelector"].get("matchLabels"), labels)
        ]
        if not own:
            problems.append(f"{sts.ref}: no NetworkPolicy admits its own pods on port {port} (shard to shard)")
    scoring_peers = _allowed_peers({"app.kubernetes.io/name": "scoring", "app.kubernetes.io/part-of": PART_OF}, 50051)
    if {"namespaceSelector": {"matchLabels": MEDIATION_NAMESPACE}} not in scoring_peers:
        problems.append("NetworkPolicy: scoring:50051 is not reachable from the mediation namespace")
    fail_if(problems)

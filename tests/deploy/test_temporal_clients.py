"""The platform's side of Temporal in production (deploy/k8s/temporal-clients.yaml and the workloads): every process
that connects to Temporal mounts a client certificate from the Temporal CA naming its own principal, its TEMPORAL_TLS_*
settings point at it, and the environment the pod gets makes pscommon.temporal speak mutual TLS to the frontend
under the name the chart's certificate carries."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pscommon import temporal
from pscommon.config import Settings
from pscommon.identity import Principal
from tests.deploy.manifests import (
    DOCS,
    TEMPORAL_TLS_DIR,
    TEMPORAL_TLS_ENV,
    WORKLOADS,
    Doc,
    config_data,
    fail_if,
    main_container,
    module_source,
    pod_spec,
)
from tests.deploy.temporal_files import TEMPORAL_CA_SECRET, TEMPORAL_CLIENTS_FILE, TEMPORAL_ISSUER

RELOAD_ANNOTATION = "secret.reloader.stakater.com/reload"
CLIENT_DOCS = [d for d in DOCS if d.file == TEMPORAL_CLIENTS_FILE]


def _connects_to_temporal() -> set[str]:
    """The processes whose code connects to Temporal: each workload's module calls temporal.connect."""
    found = set()
    for dep in WORKLOADS:
        source = module_source(dep)
        if re.search(r"\btemporal\.connect\(", source):
            found.add(dep.name)
    return found


def _mount(dep: Doc) -> tuple[dict[str, Any], dict[str, Any]] | None:
    mounts = [m for m in main_container(dep).get("volumeMounts") or [] if m.get("mountPath") == TEMPORAL_TLS_DIR]
    if len(mounts) != 1:
        return None
    volumes = {v["name"]: v for v in pod_spec(dep).get("volumes") or []}
    return mounts[0], volumes.get(mounts[0]["name"], {})


TEMPORAL_WORKLOADS = [d for d in WORKLOADS if d.name in _connects_to_temporal()]


def test_the_processes_that_connect_are_the_ones_with_a_temporal_certificate() -> None:
    with_tls = {d.name for d in WORKLOADS if _mount(d)}
    assert _connects_to_temporal() == {"scoring", "verification", "worker"}, _connects_to_temporal()
    assert with_tls == _connects_to_temporal(), f"mounted: {sorted(with_tls)}"


def test_the_issuer_is_the_temporal_ca() -> None:
    issuers = [d for d in CLIENT_DOCS if d.kind == "Issuer"]
    assert [(i.name, i.obj["spec"]) for i in issuers] == [(TEMPORAL_ISSUER, {"ca": {"secretName": TEMPORAL_CA_SECRET}})]


@pytest.mark.parametrize("dep", TEMPORAL_WORKLOADS, ids=lambda d: d.name)
def test_each_mounts_a_client_certificate_of_its_own_principal(dep: Doc) -> None:
    problems = []
    found = _mount(dep)
    assert found, f"{dep.ref}: nothing mounted at {TEMPORAL_TLS_DIR}"
    mount, volume = found
    secret = volume.get("secret") or {}
    if mount.get("readOnly") is not True or mount.get("subPath"):
        problems.append(f"{dep.ref}: {TEMPORAL_TLS_DIR} must be mounted whole and read-only")
    if secret.get("defaultMode", 0o644) & 0o007:
        problems.append(f"{dep.ref}: the Temporal key is readable by other users")
    certs = [
        c for c in CLIENT_DOCS if c.kind == "Certificate" and c.obj["spec"]["secretName"] == secret.get("secretName")
    ]
    if len(certs) != 1:
        fail_if([f"{dep.ref}: Secret {secret.get('secretName')!r} is written by {len(certs)} Certificates"])
    spec = certs[0].obj["spec"]
    if spec["issuerRef"] != {"group": "cert-manager.io", "kind": "Issuer", "name": TEMPORAL_ISSUER}:
        problems.append(f"{certs[0].ref}: issuerRef {spec['issuerRef']}")
    principals = [Principal.parse(u) for u in spec.get("uris") or []]
    own = next(c for c in DOCS if c.kind == "Certificate" and c.file == "certificates.yaml" and c.name == dep.name)
    if principals != [Principal.parse(u) for u in own.obj["spec"]["uris"]]:
        problems.append(f"{certs[0].ref}: uris {spec.get('uris')}, expected the process's own principal")
    if spec.get("usages") != ["digital signature", "client auth"] or spec.get("dnsNames"):
        problems.append(f"{certs[0].ref}: usages {spec.get('usages')}, expected a client certificate only")
    env = {v["name"]: v.get("value") for v in main_container(dep).get("env") or []}
    for var, file in TEMPORAL_TLS_ENV.items():
        if env.get(var) != f"{TEMPORAL_TLS_DIR}/{file}":
            problems.append(f"{dep.ref}: {var}={env.get(var)!r}, expected {TEMPORAL_TLS_DIR}/{file}")
    reload = (dep.obj["metadata"].get("annotations") or {}).get(RELOAD_ANNOTATION, "")
    if secret.get("secretName") not in reload.split(","):
        problems.append(f"{dep.ref}: {RELOAD_ANNOTATION} {reload!r} lacks {secret.get('secretName')!r}")
    fail_if(problems)


@pytest.mark.parametrize("dep", TEMPORAL_WORKLOADS, ids=lambda d: d.name)
def test_the_pods_environment_makes_the_client_speak_mutual_tls(
    dep: Doc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap plus the workload's inline settings (paths moved from the volume to tmp_path) through
    pscommon.config and pscommon.temporal: the frontend's CA, the client certificate and key, and the name checked."""
    for file in TEMPORAL_TLS_ENV.values():
        (tmp_path / file).write_bytes(file.encode())
    env = dict(config_data())
    for var in main_container(dep).get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"]).replace(TEMPORAL_TLS_DIR, str(tmp_path), 1)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    tls = temporal.tls_config(Settings())
    assert not isinstance(tls, bool)
    assert (tls.server_root_ca_cert, tls.client_cert, tls.client_private_key) == (b"ca.crt", b"tls.crt", b"tls.key")
    assert tls.domain == config_data()["TEMPORAL_TLS_SERVER_NAME"]

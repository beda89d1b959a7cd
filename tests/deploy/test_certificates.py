"""Offline checks of the platform's mutual-TLS identities: cert-manager's Issuer and Certificates
(deploy/k8s/certificates.yaml, and the examples in deploy/k8s/examples/ that kustomization.yaml leaves out) and how
the workloads (Deployments, scoring's StatefulSet) use them.

kubernetes-validate's schemas cover no custom resources, so cert-manager's documents are validated against
schemas/cert-manager.io-v1.json, a strict schema of the fields these files use (unknown fields fail). Then the
rules: one namespaced CA Issuer; every process that speaks gRPC mounts, read-only, the Secret of a Certificate
naming its own SPIFFE role (scoring -> spiffe://<trust domain>/scoring/..., worker -> .../worker/...), with the
trust domain of the ConfigMap and a role of contracts/access.yaml; PSP_TLS_* point at that folder's files; servers'
certificates carry their Service's names and 127.0.0.1 (the exec probe's target), a sharded service's also every
shard's host in its shard addresses, the worker's is a client certificate; ECDSA P-256 keys rotated on renewal, with
room to restart before expiry.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pscommon.identity import Principal
from tests.deploy.manifests import (
    CERT_MANAGER_GROUP,
    DOCS,
    EXAMPLE_DOCS,
    EXAMPLE_LOAD_ERRORS,
    GRPC_SERVICES,
    K8S_DIR,
    KUSTOMIZATION,
    NAMESPACE,
    PROBE_MODULE,
    ROOT,
    SHARDED,
    SPIFFE_ROLES,
    TLS_DIR,
    TLS_ENV,
    WORKLOADS,
    Doc,
    block_network,
    config_data,
    fail_if,
    ids,
    main_container,
    of_kind,
    pod_spec,
    single,
)

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "cert-manager.io-v1.json").read_text(encoding="utf-8"))
ISSUER = "psp-ca"
ISSUER_REF = {"group": CERT_MANAGER_GROUP, "kind": "Issuer", "name": ISSUER}
CA_SECRET = "psp-ca"
CERTIFICATES_FILE = "certificates.yaml"
# The Temporal CA's Issuer and the client certificates for the Temporal frontend: test_temporal_clients.py.
TEMPORAL_CLIENTS_FILE = "temporal-clients.yaml"
RELOAD_ANNOTATION = "secret.reloader.stakater.com/reload"
ACCESS_ROLES = set(yaml.safe_load((ROOT / "contracts" / "access.yaml").read_text(encoding="utf-8"))["roles"])
# A renewed certificate must reach every pod (a rolling restart) well before the old one expires.
MIN_RESTART_WINDOW_H = 7 * 24

CM_DOCS = [d for d in DOCS if d.api_group == CERT_MANAGER_GROUP]
CM_EXAMPLE_DOCS = [d for d in EXAMPLE_DOCS if d.api_group == CERT_MANAGER_GROUP]
CERTIFICATES = [d for d in of_kind("Certificate") if d.file == CERTIFICATES_FILE]
GRPC_WORKLOADS = [d for d in WORKLOADS if d.name in SPIFFE_ROLES]
# Every leaf certificate: the platform's own and the examples' (not the bootstrap CA).
LEAF_CERTIFICATES = [
    d for d in CERTIFICATES + of_kind("Certificate", EXAMPLE_DOCS) if not (d.obj.get("spec") or {}).get("isCA")
]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    block_network(monkeypatch)


def _spec(doc: Doc) -> dict[str, Any]:
    return doc.obj.get("spec") or {}


def _hours(duration: str) -> float:
    """A Go duration as cert-manager reads it ("2160h", "1h30m") in hours."""
    units = {"h": 1.0, "m": 1 / 60, "s": 1 / 3600, "ms": 1 / 3.6e6, "us": 1 / 3.6e9, "µs": 1 / 3.6e9, "ns": 1 / 3.6e12}
    parts = re.findall(r"([0-9.]+)(ns|us|µs|ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def _tls_volume(dep: Doc) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The container's mount at TLS_DIR and the pod volume behind it."""
    mounts = [m for m in main_container(dep).get("volumeMounts") or [] if m.get("mountPath") == TLS_DIR]
    if len(mounts) != 1:
        return None
    volumes = {v.get("name"): v for v in pod_spec(dep).get("volumes") or []}
    return mounts[0], volumes.get(mounts[0].get("name"), {})


def _certificate_for_secret(secret: str) -> list[Doc]:
    return [c for c in CERTIFICATES if _spec(c).get("secretName") == secret]


# ------------------------------------------------------------------------------------------------ schema


def test_cert_manager_documents_exist() -> None:
    fail_if(EXAMPLE_LOAD_ERRORS)
    files = {d.file for d in CM_DOCS}
    # The reviewers' certificates: test_portal_manifests.py.
    expected = {CERTIFICATES_FILE, TEMPORAL_CLIENTS_FILE, "reviewers.yaml"}
    assert files == expected, f"cert-manager documents found in {sorted(files)}, expected {sorted(expected)}"
    assert CM_EXAMPLE_DOCS, "no cert-manager documents in deploy/k8s/examples/"


@pytest.mark.parametrize("doc", CM_DOCS + CM_EXAMPLE_DOCS, ids=ids(CM_DOCS + CM_EXAMPLE_DOCS))
def test_cert_manager_schema(doc: Doc) -> None:
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(doc.obj), key=lambda e: list(e.path))
    fail_if([f"{doc.ref}: at {'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors])


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("a misspelt field", lambda d: d["spec"].update(dnsName=["x"])),
        ("an unknown usage", lambda d: d["spec"]["usages"].append("serverAuth")),
        ("an unknown key algorithm", lambda d: d["spec"]["privateKey"].update(algorithm="EC")),
        ("a duration in days", lambda d: d["spec"].update(duration="90d")),
        ("no secretName", lambda d: d["spec"].pop("secretName")),
        ("another apiVersion", lambda d: d.update(apiVersion="cert-manager.io/v1alpha2")),
    ],
)
def test_the_bundled_schema_is_strict(where: str, change: Any) -> None:
    doc = copy.deepcopy(CERTIFICATES[0].obj)
    change(doc)
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(doc), f"the schema accepts {where}"


def test_the_bundled_schema_rejects_an_issuer_of_two_kinds() -> None:
    issuer = {"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": {"name": "x"}}
    assert jsonschema.Draft202012Validator(SCHEMA).is_valid(issuer | {"spec": {"ca": {"secretName": "s"}}})
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(
        issuer | {"spec": {"ca": {"secretName": "s"}, "selfSigned": {}}}
    )


def test_kustomization_applies_the_certificates_but_not_the_examples() -> None:
    resources = yaml.safe_load((K8S_DIR / KUSTOMIZATION).read_text(encoding="utf-8")).get("resources") or []
    assert CERTIFICATES_FILE in resources, f"deploy/k8s/{KUSTOMIZATION} does not list {CERTIFICATES_FILE}"
    listed_examples = [r for r in resources if r.startswith("examples")]
    assert not listed_examples, f"deploy/k8s/{KUSTOMIZATION} applies examples {listed_examples}"


# ------------------------------------------------------------------------------------------------ issuer


def test_one_namespaced_ca_issuer() -> None:
    """A namespaced Issuer: only Certificates in this namespace can mint the platform's principals (a ClusterIssuer
    would let any namespace's Certificate claim spiffe://<trust domain>/worker/...)."""
    problems = []
    kinds = sorted({d.kind for d in CM_DOCS})
    if kinds != ["Certificate", "Issuer"]:
        problems.append(f"cert-manager kinds applied: {kinds}, expected Certificate and Issuer")
    issuers = [i for i in of_kind("Issuer") if i.file == CERTIFICATES_FILE]
    if [i.name for i in issuers] != [ISSUER]:
        problems.append(f"Issuers: {ids(issuers)}, expected only Issuer/{ISSUER}")
    elif _spec(issuers[0]) != {"ca": {"secretName": CA_SECRET}}:
        problems.append(f"{issuers[0].ref}: spec {_spec(issuers[0])}, expected a CA issuer on Secret {CA_SECRET}")
    # The CA key pair is the operator's: a manifest of it would overwrite the real one on every apply.
    problems += [
        f"{s.ref}: the CA Secret must not be applied from the repository"
        for s in of_kind("Secret")
        if s.name == CA_SECRET
    ]
    fail_if(problems)


@pytest.mark.parametrize("cert", LEAF_CERTIFICATES, ids=ids(LEAF_CERTIFICATES))
def test_certificates_come_from_the_platform_issuer(cert: Doc) -> None:
    assert _spec(cert).get("issuerRef") == ISSUER_REF, f"{cert.ref}: issuerRef {_spec(cert).get('issuerRef')}"
    assert cert.obj["metadata"].get("namespace") == NAMESPACE, f"{cert.ref}: not in {NAMESPACE}"


def test_the_bootstrap_example_makes_the_issuers_ca_secret() -> None:
    cas = [d for d in of_kind("Certificate", EXAMPLE_DOCS) if _spec(d).get("isCA")]
    assert len(cas) == 1, f"expected one CA Certificate in deploy/k8s/examples/, found {ids(cas)}"
    spec = _spec(cas[0])
    assert spec.get("secretName") == CA_SECRET, f"{cas[0].ref}: secretName is not {CA_SECRET}"
    self_signed = [d for d in of_kind("Issuer", EXAMPLE_DOCS) if "selfSigned" in _spec(d)]
    assert [spec.get("issuerRef", {}).get("name")] == [d.name for d in self_signed], (
        f"{cas[0].ref}: issuerRef {spec.get('issuerRef')} is not the example's self-signed Issuer"
    )
    # A renewal must keep the key: leaf certificates issued before it still chain to every pod's ca.crt.
    assert (spec.get("privateKey") or {}).get("rotationPolicy") == "Never", f"{cas[0].ref}: the CA key rotates"


# ------------------------------------------------------------------------------------- who gets which name


def test_every_grpc_process_has_a_workload() -> None:
    found = {d.name for d in GRPC_WORKLOADS}
    assert found == set(SPIFFE_ROLES), (
        f"Deployments/StatefulSets with a SPIFFE role: {sorted(found)}, expected {sorted(SPIFFE_ROLES)}"
    )


@pytest.mark.parametrize("dep", GRPC_WORKLOADS, ids=lambda d: d.name)
def test_grpc_deployment_mounts_a_certificate_of_its_own_role(dep: Doc) -> None:
    problems = []
    found = _tls_volume(dep)
    if found is None:
        fail_if([f"{dep.ref}: nothing (or more than one volume) mounted at {TLS_DIR}"])
        return
    mount, volume = found
    secret = volume.get("secret") or {}
    if mount.get("readOnly") is not True:
        problems.append(f"{dep.ref}: {TLS_DIR} is not mounted readOnly")
    if mount.get("subPath") or mount.get("subPathExpr"):
        problems.append(f"{dep.ref}: {TLS_DIR} uses subPath, which the kubelet never updates after a renewal")
    if not secret.get("secretName") or secret.get("optional"):
        problems.append(f"{dep.ref}: {TLS_DIR} is not a (required) Secret volume: {volume}")
    mode = secret.get("defaultMode", 0o644)
    if mode & 0o007:
        problems.append(f"{dep.ref}: the TLS volume's defaultMode {mode:o} lets other users read the key")
    certs = _certificate_for_secret(secret.get("secretName", ""))
    if len(certs) != 1:
        problems.append(
            f"{dep.ref}: Secret {secret.get('secretName')!r} is written by Certificates {ids(certs)}, not one"
        )
        fail_if(problems)
    uris = _spec(certs[0]).get("uris") or []
    principals = [Principal.parse(u) for u in uris]
    expected_role = SPIFFE_ROLES[dep.name]
    if len(principals) != 1 or principals[0] is None:
        problems.append(f"{certs[0].ref}: uris {uris}, expected one spiffe://<trust domain>/<role>/<id>")
    else:
        p = principals[0]
        if p.role != expected_role:
            problems.append(f"{certs[0].ref} (mounted by {dep.name}): role {p.role!r}, expected {expected_role!r}")
        if p.id != dep.name:
            problems.append(f"{certs[0].ref}: id {p.id!r}, expected the process's name {dep.name!r}")
        if p.trust_domain != config_data().get("PSP_TRUST_DOMAIN"):
            problems.append(
                f"{certs[0].ref}: trust domain {p.trust_domain!r} differs from the ConfigMap's PSP_TRUST_DOMAIN "
                f"{config_data().get('PSP_TRUST_DOMAIN')!r} (the servers would refuse every caller)"
            )
    annotation = (dep.obj["metadata"].get("annotations") or {}).get(RELOAD_ANNOTATION) or ""
    # It may list more Secrets (the Temporal client certificate: test_temporal_clients.py), comma-separated.
    if secret.get("secretName") not in annotation.split(","):
        problems.append(f"{dep.ref}: {RELOAD_ANNOTATION} is {annotation!r}, lacks {secret.get('secretName')!r}")
    fail_if(problems)


@pytest.mark.parametrize("dep", GRPC_WORKLOADS, ids=lambda d: d.name)
def test_tls_settings_point_into_the_mounted_folder(dep: Doc) -> None:
    """PSP_TLS_CA/CERT/KEY name ca.crt/tls.crt/tls.key in the mounted folder, and the volume projects exactly those
    keys of cert-manager's Secret."""
    problems = []
    c = main_container(dep)
    env = {v.get("name"): v for v in c.get("env") or []}
    for var, file in TLS_ENV.items():
        expected = f"{TLS_DIR}/{file}"
        if (env.get(var) or {}).get("value") != expected:
            problems.append(f"{dep.ref}: {var} is {env.get(var)}, expected {expected!r}")
    found = _tls_volume(dep)
    items = ((found[1].get("secret") or {}).get("items") or []) if found else []
    projected = {i.get("path"): i.get("key") for i in items}
    if items and projected != {file: file for file in TLS_ENV.values()}:
        problems.append(f"{dep.ref}: the TLS volume projects {projected}, expected ca.crt, tls.crt and tls.key as is")
    for name in ("PSP_PKI_DIR", "PSP_PRINCIPAL"):  # the local stack's way; would compete with PSP_TLS_*
        if name in env or name in config_data():
            problems.append(f"{dep.ref}: {name} is set; in Kubernetes only PSP_TLS_* name the credentials")
    fail_if(problems)


def test_every_certificate_is_used() -> None:
    mounted = {(_tls_volume(d) or ({}, {}))[1].get("secret", {}).get("secretName") for d in WORKLOADS}
    unused = [c.ref for c in CERTIFICATES if _spec(c).get("secretName") not in mounted]
    assert not unused, f"Certificates no workload mounts: {unused}"


def test_each_process_has_its_own_principal() -> None:
    uris = [u for c in LEAF_CERTIFICATES for u in _spec(c).get("uris") or []]
    assert len(uris) == len(set(uris)), f"two certificates name the same principal: {sorted(uris)}"
    problems = []
    for cert in LEAF_CERTIFICATES:
        for uri in _spec(cert).get("uris") or []:
            p = Principal.parse(uri)
            if p is None:
                problems.append(f"{cert.ref}: {uri!r} is not spiffe://<trust domain>/<role>/<id>")
            elif p.role not in ACCESS_ROLES:
                problems.append(f"{cert.ref}: role {p.role!r} is not in contracts/access.yaml {sorted(ACCESS_ROLES)}")
            elif p.trust_domain != config_data().get("PSP_TRUST_DOMAIN"):
                problems.append(f"{cert.ref}: trust domain {p.trust_domain!r} is not the ConfigMap's")
    fail_if(problems)


# ------------------------------------------------------------------------------------ serving and keys


@pytest.mark.parametrize("dep", [d for d in WORKLOADS if d.name in GRPC_SERVICES], ids=lambda d: d.name)
def test_server_certificate_names_what_clients_dial(dep: Doc) -> None:
    """Clients check the server's name: the ConfigMap's address (scoring:50051), the Service's longer names, and
    127.0.0.1, which the exec probe dials inside the pod."""
    found = _tls_volume(dep)
    assert found, f"{dep.ref}: no certificate mounted"
    (cert,) = _certificate_for_secret(found[1]["secret"]["secretName"])
    spec = _spec(cert)
    problems = []
    expected_dns = [dep.name, f"{dep.name}.{NAMESPACE}", f"{dep.name}.{NAMESPACE}.svc"]
    missing = [n for n in expected_dns if n not in (spec.get("dnsNames") or [])]
    if missing:
        problems.append(f"{cert.ref}: dnsNames lacks {missing}")
    if not any(n.startswith(f"{dep.name}.{NAMESPACE}.svc.") for n in spec.get("dnsNames") or []):
        problems.append(f"{cert.ref}: dnsNames lacks the fully qualified {dep.name}.{NAMESPACE}.svc.<cluster domain>")
    address_host = config_data().get(f"PSP_{dep.name.upper()}_ADDR", "").rpartition(":")[0]
    if address_host not in (spec.get("dnsNames") or []):
        problems.append(f"{cert.ref}: the ConfigMap's address host {address_host!r} is not in dnsNames")
    probe_hosts = {
        ((main_container(dep).get(kind) or {}).get("exec") or {}).get("command", [""] * 4)[3].rpartition(":")[0]
        for kind in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    for host in probe_hosts - {""}:
        if host not in (spec.get("ipAddresses") or []) + (spec.get("dnsNames") or []):
            problems.append(f"{cert.ref}: the {PROBE_MODULE} probe dials {host}, which the certificate does not name")
    usages = set(spec.get("usages") or [])
    if not {"server auth", "client auth", "digital signature"} <= usages:
        problems.append(f"{cert.ref}: usages {sorted(usages)} lack server auth, client auth or digital signature")
    fail_if(problems)


def _dns_name_matches(pattern: str, host: str) -> bool:
    """A certificate's DNS name against the host a client dials, as TLS clients match them (RFC 6125 6.4.3, as
    BoringSSL/OpenSSL do): equal ignoring case, or a leftmost label that is exactly "*", standing for one whole
    non-empty label of the host (never several, never a dot)."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if not pattern.startswith("*."):
        return "*" not in pattern and pattern == host
    first, _, rest = host.partition(".")
    return bool(first) and "*" not in pattern[2:] and rest == pattern[2:]


def test_the_name_matching_is_that_of_tls_clients() -> None:
    wildcard = f"*.scoring-shards.{NAMESPACE}.svc"
    assert _dns_name_matches(wildcard, f"scoring-1.scoring-shards.{NAMESPACE}.svc")
    assert _dns_name_matches(wildcard, f"SCORING-1.scoring-shards.{NAMESPACE}.svc")
    assert not _dns_name_matches(wildcard, f"scoring-shards.{NAMESPACE}.svc")
    assert not _dns_name_matches(wildcard, f"a.scoring-1.scoring-shards.{NAMESPACE}.svc")
    assert not _dns_name_matches(wildcard, f"scoring-1.scoring-shards.{NAMESPACE}.svc.cluster.local")
    assert not _dns_name_matches(f"scoring.{NAMESPACE}.svc", f"scoring-1.scoring-shards.{NAMESPACE}.svc")


def _shard_hosts(sts: Doc) -> list[str]:
    env = {v.get("name"): v.get("value") for v in main_container(sts).get("env") or []}
    addrs = str(env.get(SHARDED[sts.name].addrs_env) or "")
    return [a.strip().rpartition(":")[0] for a in addrs.split(",") if a.strip()]


@pytest.mark.parametrize("name", sorted(SHARDED))
def test_server_certificate_names_every_shard(name: str) -> None:
    """Shards call each other at the hosts of PSP_SCORING_SHARD_ADDRS (<pod>.<headless Service>.<namespace>.svc) and
    check the server's name like any client: the certificate must cover each, also fully qualified; its wildcards
    reach no further than the pods under that headless Service."""
    sts = single("StatefulSet", name)
    found = _tls_volume(sts)
    assert found, f"{sts.ref}: no certificate mounted"
    (cert,) = _certificate_for_secret(found[1]["secret"]["secretName"])
    dns_names = _spec(cert).get("dnsNames") or []
    pods_domain = f"{SHARDED[name].headless_service}.{NAMESPACE}.svc"
    qualified = [
        n.removeprefix(f"{name}.{NAMESPACE}.svc.") for n in dns_names if n.startswith(f"{name}.{NAMESPACE}.svc.")
    ]
    hosts = _shard_hosts(sts)
    problems = [] if hosts else [f"{sts.ref}: no shard addresses in {SHARDED[name].addrs_env}"]
    for host in hosts:
        for candidate in [host] + [f"{host}.{cluster_domain}" for cluster_domain in qualified]:
            if not any(_dns_name_matches(n, candidate) for n in dns_names):
                problems.append(f"{cert.ref}: no dnsName covers the shard host {candidate!r} (dnsNames {dns_names})")
    allowed_wildcards = {f"*.{pods_domain}"} | {f"*.{pods_domain}.{cluster_domain}" for cluster_domain in qualified}
    problems += [
        f"{cert.ref}: wildcard {n!r} reaches beyond the pods of {pods_domain}"
        for n in dns_names
        if "*" in n and n not in allowed_wildcards
    ]
    fail_if(problems)


@pytest.mark.parametrize(
    "cert", [c for c in LEAF_CERTIFICATES if c.name not in GRPC_SERVICES], ids=lambda c: f"{c.file}:{c.name}"
)
def test_client_certificates_do_not_serve(cert: Doc) -> None:
    """The worker and the external principals only call: no server usage, no names to serve under."""
    spec = _spec(cert)
    assert "server auth" not in (spec.get("usages") or []), f"{cert.ref}: a client certificate with server auth"
    assert not spec.get("dnsNames") and not spec.get("ipAddresses"), f"{cert.ref}: a client certificate with names"
    assert "client auth" in (spec.get("usages") or []), f"{cert.ref}: no client auth"


@pytest.mark.parametrize("cert", LEAF_CERTIFICATES, ids=lambda c: f"{c.file}:{c.name}")
def test_certificate_key_and_lifetime(cert: Doc) -> None:
    spec = _spec(cert)
    problems = []
    key = spec.get("privateKey") or {}
    if (key.get("algorithm"), key.get("size")) != ("ECDSA", 256):
        problems.append(f"{cert.ref}: private key {key}, expected ECDSA P-256")
    if key.get("rotationPolicy") != "Always":
        problems.append(f"{cert.ref}: rotationPolicy {key.get('rotationPolicy')!r}: a renewal must bring a new key")
    # RFC 8813: no key (or data) encipherment for an elliptic-curve key; ECDHE handshakes only sign.
    for usage in ("key encipherment", "data encipherment"):
        if usage in (spec.get("usages") or []):
            problems.append(f"{cert.ref}: usage {usage!r} with an ECDSA key")
    duration, renew = _hours(spec.get("duration", "2160h")), _hours(spec.get("renewBefore", "0h"))
    if not MIN_RESTART_WINDOW_H <= renew < duration / 2:
        problems.append(
            f"{cert.ref}: renewBefore {spec.get('renewBefore')!r} must leave at least {MIN_RESTART_WINDOW_H}h to "
            f"restart the pods before expiry and stay under half the duration {spec.get('duration')!r}"
        )
    if spec.get("commonName"):
        problems.append(f"{cert.ref}: commonName set; the principal is the URI SAN only")
    fail_if(problems)


def test_the_mediation_example_is_a_mediation_principal() -> None:
    examples = [c for c in of_kind("Certificate", EXAMPLE_DOCS) if not _spec(c).get("isCA")]
    roles = {p.role for c in examples for u in _spec(c).get("uris") or [] if (p := Principal.parse(u))}
    assert roles == {"mediation"}, f"deploy/k8s/examples/ client certificates name roles {sorted(roles)}"

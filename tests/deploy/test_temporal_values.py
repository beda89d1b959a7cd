"""Offline checks of deploy/temporal/values.yaml, the values for the official Temporal Helm chart: every key is one
the chart version reads (schemas/temporal-chart-1.6.0-values.json, recorded from the chart), and the invariants the
platform relies on: both stores PostgreSQL (postgres12, SQL visibility) over verified TLS with the password from a
Secret, TLS between the server's services and on the frontend with client certificates required, the frontend's
name what the platform dials, the Secrets named those of deploy/temporal/certificates.yaml, the platform's
namespace created with a retention."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.manifests import config_data, fail_if
from tests.deploy.temporal_files import (
    CERT_DOCS,
    CHART,
    TEMPORAL_NAMESPACE,
    VALUES,
    certificate_for_secret,
    frontend_host,
    hours,
    job_env,
)

KINDS = {"map": dict, "free-map": dict, "list": list}
STORES = ("default", "visibility")
# Closed cases stay readable at least this long (appeals and audits ask about recent ones).
MIN_RETENTION_H = 7 * 24


def _paths(node: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        out.append((path, value))
        if isinstance(value, dict):
            out += _paths(value, path)
    return out


def _chart_kind(path: str) -> str | None:
    for table in ("values", "documented", "templates"):
        if path in CHART[table]:
            return str(CHART[table][path])
    return None


def _under_free_map(path: str) -> bool:
    parts = path.split(".")
    return any(_chart_kind(".".join(parts[:i])) == "free-map" for i in range(1, len(parts)))


def _store(name: str) -> dict[str, Any]:
    persistence = VALUES["server"]["config"]["persistence"]
    return persistence["datastores"][persistence[f"{name}Store"]]


def test_every_key_is_one_the_chart_reads() -> None:
    problems = []
    for path, value in _paths(VALUES):
        kind = _chart_kind(path)
        if kind is None:
            if not _under_free_map(path):
                problems.append(f"deploy/temporal/values.yaml: {path} is not a key of chart {CHART['version']}")
            continue
        expected = KINDS.get(kind)
        if expected and not isinstance(value, expected):
            problems.append(f"deploy/temporal/values.yaml: {path} is a {type(value).__name__}, the chart has a {kind}")
        if kind == "scalar" and isinstance(value, dict | list):
            problems.append(f"deploy/temporal/values.yaml: {path} is a {type(value).__name__}, the chart has a scalar")
    fail_if(problems)


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("server.tls.frontend.requireClientAuth", "scalar"),
        ("server.config.persistence.datastores.default", "null"),
        ("server.config.persistence.datastores.visibility.sql.tls.enableHostVerification", "scalar"),
        ("web.additionalEnv", "list"),
        ("server.frontend.replicaCount", "scalar"),
    ],
)
def test_the_recorded_chart_structure_has_what_the_values_rely_on(path: str, kind: str) -> None:
    assert _chart_kind(path) == kind, f"{path}: {_chart_kind(path)!r} in the recorded chart, expected {kind!r}"


def test_a_misspelt_key_would_be_caught() -> None:
    assert _chart_kind("server.tls.frontend.requireClientAuths") is None
    assert not _under_free_map("server.tls.frontend.requireClientAuths")
    assert _under_free_map("web.podAnnotations.example.com/anything")


@pytest.mark.parametrize("store", STORES)
def test_both_stores_are_postgresql_over_verified_tls(store: str) -> None:
    config = _store(store)
    problems = []
    if set(config) != {"sql"}:
        problems.append(
            f"{store} store: drivers {sorted(config)}, expected only sql (SQL visibility, no Elasticsearch)"
        )
    sql = config.get("sql") or {}
    if sql.get("pluginName") != "postgres12":
        problems.append(f"{store} store: pluginName {sql.get('pluginName')!r}, expected postgres12")
    tls = sql.get("tls") or {}
    if tls.get("enabled") is not True or tls.get("enableHostVerification") is not True:
        problems.append(f"{store} store: tls {tls}, expected enabled with host verification")
    if not tls.get("caFile") or tls.get("serverName") != sql.get("connectAddr", "").rpartition(":")[0]:
        problems.append(f"{store} store: tls needs the server's CA and the host of connectAddr as serverName")
    if "password" in sql or not sql.get("existingSecret"):
        problems.append(f"{store} store: the password must come from a Secret (existingSecret), never the values")
    if sql.get("createDatabase") is not False:
        problems.append(f"{store} store: createDatabase must be false (the databases are the DBA's)")
    fail_if(problems)


def test_the_database_ca_is_mounted_where_the_server_and_the_schema_job_read_it() -> None:
    problems = []
    ca_files = {_store(s)["sql"]["tls"]["caFile"] for s in STORES}
    for section in ("server", "admintools"):  # the schema job runs in the admin-tools image with its volumes
        mounts = VALUES[section].get("additionalVolumeMounts") or []
        volumes = {v["name"]: v for v in VALUES[section].get("additionalVolumes") or []}
        for ca_file in ca_files:
            folder, _, file = ca_file.rpartition("/")
            found = [m for m in mounts if m.get("mountPath") == folder and m.get("readOnly")]
            items = [
                i["path"] for m in found for i in (volumes.get(m["name"], {}).get("secret") or {}).get("items", [])
            ]
            if file not in items:
                problems.append(f"{section}: {ca_file} is not a file of a read-only Secret volume")
    fail_if(problems)


def test_internode_and_frontend_tls_require_client_certificates() -> None:
    tls = VALUES["server"]["tls"]
    problems = []
    for section in ("internode", "frontend"):
        s = tls.get(section) or {}
        if s.get("enabled") is not True or s.get("requireClientAuth") is not True:
            problems.append(f"server.tls.{section}: {s}, expected enabled with requireClientAuth")
        if s.get("secretName"):
            cert = certificate_for_secret(CERT_DOCS, s["secretName"]).obj["spec"]
            if s.get("serverName") not in (cert.get("dnsNames") or []):
                problems.append(f"server.tls.{section}.serverName {s.get('serverName')!r} is not in its certificate")
            if not {"server auth", "client auth"} <= set(cert.get("usages") or []):
                problems.append(f"server.tls.{section}: its certificate must serve and (for the chart's tools) call")
    if VALUES["server"]["config"].get("tls"):
        problems.append("server.config.tls overrides what server.tls generates; keep TLS in server.tls")
    fail_if(problems)


def test_the_frontend_is_named_as_the_platform_dials_it() -> None:
    """The processes dial TEMPORAL_ADDRESS and check TEMPORAL_TLS_SERVER_NAME; the chart's Service is
    <release>-frontend in the namespace it is installed in; the certificate must carry that name."""
    frontend = VALUES["server"]["tls"]["frontend"]
    assert frontend_host() == f"temporal-frontend.{TEMPORAL_NAMESPACE}.svc", frontend_host()
    assert config_data()["TEMPORAL_TLS_SERVER_NAME"] == frontend["serverName"] == frontend_host()
    cert = certificate_for_secret(CERT_DOCS, frontend["secretName"]).obj["spec"]
    assert frontend_host() in cert["dnsNames"], cert["dnsNames"]
    assert config_data()["TEMPORAL_ADDRESS"].endswith(":7233")  # the chart's server.frontend.service.port


def test_the_web_ui_verifies_the_frontend_with_its_own_client_certificate() -> None:
    web = VALUES["web"]["tls"]
    assert web["enabled"] is True and web["enableHostVerification"] is True, web
    assert web["serverName"] == VALUES["server"]["tls"]["frontend"]["serverName"]
    cert = certificate_for_secret(CERT_DOCS, web["secretName"]).obj["spec"]
    assert "client auth" in cert["usages"] and "server auth" not in cert["usages"], cert["usages"]


def test_the_platforms_namespace_is_created_with_its_retention() -> None:
    namespaces = VALUES["server"]["config"]["namespaces"]
    wanted = config_data()["TEMPORAL_NAMESPACE"]
    found = [n for n in namespaces.get("namespace") or [] if n.get("name") == wanted]
    assert namespaces.get("create") is True and len(found) == 1, namespaces
    retention = found[0].get("retention", "")
    assert hours(retention) >= MIN_RETENTION_H, f"retention {retention!r} is under {MIN_RETENTION_H}h"
    job_retention = job_env()["PSP_TEMPORAL_RETENTION"]["value"]
    assert job_retention == retention, f"the setup Job sets {job_retention!r}, the chart {retention!r}"


def test_every_secret_the_values_mount_is_one_the_files_describe() -> None:
    """TLS Secrets come from deploy/temporal/certificates.yaml; the database's from the operator (docs)."""
    tls = VALUES["server"]["tls"]
    for secret in (tls["internode"]["secretName"], tls["frontend"]["secretName"], VALUES["web"]["tls"]["secretName"]):
        cert = certificate_for_secret(CERT_DOCS, secret)
        assert cert.obj["metadata"]["namespace"] == TEMPORAL_NAMESPACE, cert.obj["metadata"]

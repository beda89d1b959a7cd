"""Offline checks of the portal in deploy/k8s/: the holder's pages (portal.yaml, public) and the reviewer console
(reviewer-console.yaml, internal) as two workloads of the same module, and what ties them to the code.

- The secrets: the link keys reach notify (which signs) and the portal (which checks) from the same Secret; each
  portal process takes exactly the keys it needs, one by one, and no database URL or SMSC password; the console's
  CSRF key is not the public portal's.
- The web: the public Ingress routes only the holder's pages' prefixes, which cover no reviewer route of the app;
  the console is on a different ingress class and host; TLS on both from a web CA, never the platform's CA;
  NetworkPolicies admit each one's ingress controller and nothing else; PSP_VERIFY_URL opens the public pages.
- Identities: the portal calls as spiffe://<trust domain>/app/portal; the console holds every reviewer's
  certificate in the layout the code reads (ca.pem, <id>.pem, <id>.key) and none of its own.
- The uploads: one ReadWriteMany claim, mounted read-write by both at PSP_PORTAL_UPLOADS.
Hardening, resources, schema validation (kubernetes-validate, Ingress and PersistentVolumeClaim included) and
placeholder-only Secrets are test_k8s_manifests.py's, for every workload.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest

from carrier.verification.v1 import verification_pb2_grpc
from pscommon import codec
from pscommon.config import Settings
from pscommon.identity import Principal
from pscommon.tls import TlsFiles
from services.portal.clients import Clients
from services.portal.web import HEALTH_PATH, PAGES, build_app
from tests.deploy.manifests import (
    CONFIG_MAP,
    DOCS,
    PORTAL_COMMAND,
    PORTAL_PORT,
    PORTAL_PROCESSES,
    PORTAL_SECRET,
    REVIEWERS_DIR,
    SECRET,
    TLS_DIR,
    UPLOADS_DIR,
    Doc,
    block_network,
    config_data,
    container_port,
    fail_if,
    main_container,
    of_kind,
    pod_spec,
    selects,
    single,
)

PLATFORM_ISSUER = "psp-ca"
RELOAD_ANNOTATION = "secret.reloader.stakater.com/reload"
REVIEWERS_FILE = "reviewers.yaml"
UPLOADS_CLAIM = "portal-uploads"
# Exactly the Secret keys each process gets (variable -> (Secret, key)), and nothing through envFrom.
EXPECTED_SECRETS = {
    "portal": {
        "PSP_LINK_KEYS": (SECRET, "PSP_LINK_KEYS"),
        "PSP_LINK_ACTIVE_KEY": (SECRET, "PSP_LINK_ACTIVE_KEY"),
        "PSP_LINE_HASH_KEY": (SECRET, "PSP_LINE_HASH_KEY"),  # the holder's number against the case
        "PSP_CODEC_KEYS": (SECRET, "PSP_CODEC_KEYS"),  # seals uploads
        "PSP_CODEC_ACTIVE_KEY": (SECRET, "PSP_CODEC_ACTIVE_KEY"),
        "PSP_PORTAL_SECRET": (PORTAL_SECRET, "PSP_PORTAL_SECRET"),
    },
    "reviewer-console": {
        "PSP_CODEC_KEYS": (SECRET, "PSP_CODEC_KEYS"),  # opens uploads
        "PSP_CODEC_ACTIVE_KEY": (SECRET, "PSP_CODEC_ACTIVE_KEY"),
        "PSP_PORTAL_SECRET": (PORTAL_SECRET, "PSP_CONSOLE_SECRET"),
        "PSP_PORTAL_SESSION_KEY": (PORTAL_SECRET, "PSP_PORTAL_SESSION_KEY"),
    },
}


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    block_network(monkeypatch)


def workload(name: str) -> Doc:
    return single("Deployment", name)


def env(dep: Doc) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in main_container(dep).get("env") or []}


def secret_refs(dep: Doc) -> dict[str, tuple[str, str]]:
    refs = {}
    for name, var in env(dep).items():
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            refs[name] = (ref["name"], ref["key"])
    return refs


def secret_keys(name: str) -> set[str]:
    secret = single("Secret", name).obj
    return set(secret.get("stringData") or {}) | set(secret.get("data") or {})


def mounts(dep: Doc) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """mountPath -> (the mount, the pod volume behind it)."""
    volumes = {v["name"]: v for v in pod_spec(dep).get("volumes") or []}
    return {m["mountPath"]: (m, volumes.get(m["name"], {})) for m in main_container(dep).get("volumeMounts") or []}


def ingresses_to(service: str) -> list[Doc]:
    return [
        ing
        for ing in of_kind("Ingress")
        if any(
            p["backend"]["service"]["name"] == service
            for rule in ing.obj["spec"].get("rules") or []
            for p in (rule.get("http") or {}).get("paths") or []
        )
    ]


def prefix_matches(prefix: str, path: str) -> bool:
    """Kubernetes' pathType Prefix: element-wise on /-separated parts (a trailing / is ignored)."""
    p = prefix.rstrip("/")
    return p == "" or path == p or path.startswith(p + "/")


def app_routes(pages: str) -> set[str]:
    """The route patterns a portal process serving `pages` has (built as its __main__ builds it; no call made)."""
    cfg = dataclasses.replace(
        Settings(), portal_pages=pages, codec_keys=codec.new_key_spec("k"), codec_active_key="k", portal_uploads="/x"
    )
    # Never dialled: building the app makes no call.
    stub = verification_pb2_grpc.VerificationServiceStub(grpc.aio.insecure_channel("127.0.0.1:9"))
    clients = Clients(stub) if "holder" in pages else None
    return {r.canonical for r in build_app(cfg, clients).router.resources()}


# ------------------------------------------------------------------------------------------ two processes


def test_the_portal_runs_as_two_processes_of_one_module() -> None:
    problems = []
    for name, pages in PORTAL_PROCESSES.items():
        dep = workload(name)
        if main_container(dep)["command"] != PORTAL_COMMAND:
            problems.append(f"{dep.ref}: command {main_container(dep)['command']}, expected {PORTAL_COMMAND}")
        got = (env(dep).get("PSP_PORTAL_PAGES") or {}).get("value")
        if got != pages or got not in PAGES:
            problems.append(f"{dep.ref}: PSP_PORTAL_PAGES={got!r}, expected {pages!r} (one of {PAGES})")
    fail_if(problems)


def test_the_public_pods_have_no_reviewer_route_and_the_console_no_holder_route() -> None:
    public = app_routes(PORTAL_PROCESSES["portal"])
    console = app_routes(PORTAL_PROCESSES["reviewer-console"])
    assert "/h/{token}" in public and not [r for r in public if r.startswith("/reviewer")], sorted(public)
    assert "/reviewer/sign-in" in console and not [r for r in console if r.startswith("/h/")], sorted(console)


def test_probes_ask_the_health_route_over_http() -> None:
    problems = []
    for name in PORTAL_PROCESSES:
        dep = workload(name)
        c = main_container(dep)
        if HEALTH_PATH not in app_routes(PORTAL_PROCESSES[name]):
            problems.append(f"{dep.ref}: the app has no {HEALTH_PATH} route")
        for kind in ("readinessProbe", "livenessProbe"):
            get = (c.get(kind) or {}).get("httpGet") or {}
            if get.get("path") != HEALTH_PATH or container_port(c, get.get("port", -1)) != PORTAL_PORT:
                problems.append(f"{dep.ref}: {kind} is {c.get(kind)}, expected GET {HEALTH_PATH} on {PORTAL_PORT}")
    fail_if(problems)


def test_reviewers_sign_in_through_the_sso_proxy_only() -> None:
    """The console takes the reviewer from the proxy's header; no password sign-in exists in the cluster."""
    assert config_data().get("PSP_PORTAL_SSO_HEADER"), (
        "PSP_PORTAL_SSO_HEADER is not set: the console would offer passwords"
    )
    assert "PSP_PORTAL_REVIEWER_PASSWORD" not in secret_keys(PORTAL_SECRET) | set(config_data())
    assert "PSP_PORTAL_REVIEWER_PASSWORD" not in env(workload("reviewer-console"))


def test_the_config_map_serves_the_portal_on_its_container_port() -> None:
    data = config_data()
    assert data["PSP_PORTAL_PORT"] == str(PORTAL_PORT) and data["PSP_PORTAL_HOST"] == "0.0.0.0", data
    assert data["PSP_PORTAL_SECURE_COOKIES"] == "1", "cookies must be Secure behind the HTTPS ingress"
    for name in PORTAL_PROCESSES:
        c = main_container(workload(name))
        assert container_port(c, "http") == PORTAL_PORT, f"{name}: containerPort http is not {PORTAL_PORT}"


# ------------------------------------------------------------------------------------------------- secrets


def test_the_link_keys_reach_notify_and_the_portal_from_one_secret() -> None:
    """notify signs with every key of the platform Secret (envFrom); the portal checks with the same keys."""
    assert {"PSP_LINK_KEYS", "PSP_LINK_ACTIVE_KEY"} <= secret_keys(SECRET)
    notify = single("Deployment", "notify")
    notify_from = {(s.get("secretRef") or {}).get("name") for s in main_container(notify).get("envFrom") or []}
    assert SECRET in notify_from, f"{notify.ref}: does not take {SECRET}"
    refs = secret_refs(workload("portal"))
    for var in ("PSP_LINK_KEYS", "PSP_LINK_ACTIVE_KEY"):
        assert refs.get(var) == (SECRET, var), f"portal: {var} is {refs.get(var)}, expected {SECRET}/{var}"


@pytest.mark.parametrize("name", sorted(PORTAL_PROCESSES))
def test_each_portal_process_gets_exactly_its_secrets(name: str) -> None:
    dep = workload(name)
    problems = []
    env_from = [s for s in main_container(dep).get("envFrom") or [] if "secretRef" in s]
    if env_from:
        problems.append(f"{dep.ref}: takes whole Secrets {env_from}; it faces browsers, so key by key only")
    refs = secret_refs(dep)
    if refs != EXPECTED_SECRETS[name]:
        problems.append(f"{dep.ref}: Secret keys {refs}, expected {EXPECTED_SECRETS[name]}")
    problems += [
        f"{dep.ref}: {var} names {secret}/{key}, which the Secret does not declare"
        for var, (secret, key) in refs.items()
        if key not in secret_keys(secret)
    ]
    fail_if(problems)


def test_the_console_csrf_key_is_not_the_public_portals() -> None:
    assert (
        secret_refs(workload("portal"))["PSP_PORTAL_SECRET"]
        != secret_refs(workload("reviewer-console"))["PSP_PORTAL_SECRET"]
    )


# ------------------------------------------------------------------------------------------------ the web


def test_the_sms_link_opens_the_public_holder_pages() -> None:
    """PSP_VERIFY_URL (what notify puts before /<token>) is https on the public Ingress's host, under a prefix it
    routes to the portal, and the portal has the route /h/{token} under it."""
    url = urlsplit(config_data()["PSP_VERIFY_URL"])
    (public,) = ingresses_to("portal")
    hosts = {rule["host"] for rule in public.obj["spec"]["rules"]}
    assert url.scheme == "https" and url.netloc in hosts, f"PSP_VERIFY_URL {url.geturl()} is not https on {hosts}"
    link_path = f"{url.path}/some-token"
    paths = [p["path"] for rule in public.obj["spec"]["rules"] for p in rule["http"]["paths"]]
    assert any(prefix_matches(p, link_path) for p in paths), f"{public.ref}: {paths} do not route {link_path}"
    assert f"{url.path}/{{token}}" in app_routes("holder")


def test_the_public_ingress_routes_no_reviewer_route() -> None:
    (public,) = ingresses_to("portal")
    reviewer_routes = [r for r in app_routes("holder,reviewer") if r.startswith("/reviewer")]
    assert reviewer_routes
    problems = []
    for rule in public.obj["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            if p["backend"]["service"]["name"] != "portal":
                problems.append(f"{public.ref}: routes {p['path']} to {p['backend']['service']['name']}")
            if p.get("pathType") != "Prefix" or not p["path"].startswith("/") or p["path"] == "/":
                problems.append(f"{public.ref}: path {p['path']} ({p.get('pathType')}) is not a narrow Prefix")
            problems += [
                f"{public.ref}: {p['path']} would route the console's {r}"
                for r in reviewer_routes
                if prefix_matches(p["path"], r)
            ]
    fail_if(problems)


def test_the_console_is_on_another_ingress_class_and_host() -> None:
    (public,) = ingresses_to("portal")
    internal = ingresses_to("reviewer-console")
    assert len(internal) == 1, f"the console must be published by exactly one Ingress, found {len(internal)}"
    assert internal[0] is not public
    assert public.obj["spec"]["ingressClassName"] != internal[0].obj["spec"]["ingressClassName"]
    public_hosts = {r["host"] for r in public.obj["spec"]["rules"]}
    assert not public_hosts & {r["host"] for r in internal[0].obj["spec"]["rules"]}
    assert {d.name for d in of_kind("Ingress")} == {"portal", "reviewer-console"}, "no other Ingress"


@pytest.mark.parametrize("name", sorted(PORTAL_PROCESSES))
def test_ingress_tls_from_a_web_ca(name: str) -> None:
    (ing,) = ingresses_to(name)
    spec = ing.obj["spec"]
    tls_hosts = {h for t in spec.get("tls") or [] for h in t.get("hosts") or []}
    problems = [f"{ing.ref}: host {r['host']} has no TLS" for r in spec["rules"] if r.get("host") not in tls_hosts]
    problems += [f"{ing.ref}: a rule without a host" for r in spec["rules"] if not r.get("host")]
    annotations = ing.obj["metadata"].get("annotations") or {}
    issuer = annotations.get("cert-manager.io/cluster-issuer")
    if not issuer or issuer == PLATFORM_ISSUER or "cert-manager.io/issuer" in annotations:
        # The platform CA mints principals; browsers must not trust it, and it must not sign web names.
        problems.append(f"{ing.ref}: TLS issuer {annotations}, expected a ClusterIssuer of a web CA")
    for rule in spec["rules"]:
        for p in rule["http"]["paths"]:
            svc = single("Service", p["backend"]["service"]["name"])
            names = {port.get("name") for port in svc.obj["spec"]["ports"]}
            if p["backend"]["service"]["port"].get("name") not in names:
                problems.append(f"{ing.ref}: backend port {p['backend']['service']['port']} not on {svc.ref}")
    fail_if(problems)


@pytest.mark.parametrize("name", sorted(PORTAL_PROCESSES))
def test_only_its_ingress_controller_reaches_it(name: str) -> None:
    labels = workload(name).obj["spec"]["template"]["metadata"]["labels"]
    peers = []
    for pol in of_kind("NetworkPolicy"):
        spec = pol.obj["spec"]
        if not selects(spec["podSelector"].get("matchLabels"), labels):
            continue
        for rule in spec.get("ingress") or []:
            if any(p.get("port") in (PORTAL_PORT, "http") for p in rule.get("ports") or [{"port": PORTAL_PORT}]):
                peers += rule.get("from") or [{}]
    assert len(peers) == 1, f"{name}: peers on {PORTAL_PORT}: {peers}, expected its ingress controller only"
    (peer,) = peers
    assert set(peer) == {"namespaceSelector", "podSelector"}, peer
    assert peer["namespaceSelector"]["matchLabels"].get("kubernetes.io/metadata.name"), peer


def test_the_two_controllers_are_not_the_same() -> None:
    namespaces = set()
    for name in PORTAL_PROCESSES:
        pol = single("NetworkPolicy", f"allow-{name}-ingress")
        (rule,) = pol.obj["spec"]["ingress"]
        namespaces.add(rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
    assert len(namespaces) == 2, f"the public and the internal ingress controllers share a namespace: {namespaces}"


# ------------------------------------------------------------------------------------------------ identities


def test_the_portal_calls_as_the_app_principal_and_holds_no_reviewer_key() -> None:
    dep = workload("portal")
    tls = mounts(dep).get(TLS_DIR)
    assert tls is not None, f"{dep.ref}: no certificate at {TLS_DIR}"
    (cert,) = [c for c in of_kind("Certificate") if c.obj["spec"]["secretName"] == tls[1]["secret"]["secretName"]]
    principal = Principal.parse(cert.obj["spec"]["uris"][0])
    assert principal is not None and (principal.role, principal.id) == ("app", "portal"), cert.obj["spec"]["uris"]
    assert "server auth" not in cert.obj["spec"]["usages"] and not cert.obj["spec"].get("dnsNames")
    assert REVIEWERS_DIR not in mounts(dep) and "PSP_PKI_DIR" not in env(dep)


def test_the_console_holds_every_reviewers_certificate_in_the_codes_layout() -> None:
    dep = workload("reviewer-console")
    problems = []
    certs = [d for d in DOCS if d.file == REVIEWERS_FILE]
    assert certs and all(c.kind == "Certificate" for c in certs)
    reviewers = {}
    for cert in certs:
        spec = cert.obj["spec"]
        p = Principal.parse(spec["uris"][0]) if len(spec.get("uris") or []) == 1 else None
        if p is None or p.role != "reviewer" or p.id != cert.name:
            problems.append(f"{cert.ref}: uris {spec.get('uris')}, expected one .../reviewer/{cert.name}")
        if p is not None and p.trust_domain != config_data()["PSP_TRUST_DOMAIN"]:
            problems.append(f"{cert.ref}: trust domain {p.trust_domain}")
        if spec["issuerRef"].get("name") != PLATFORM_ISSUER or "server auth" in spec["usages"]:
            problems.append(f"{cert.ref}: expected a client certificate from {PLATFORM_ISSUER}")
        reviewers[spec["secretName"]] = cert.name
    if (env(dep).get("PSP_PKI_DIR") or {}).get("value") != REVIEWERS_DIR:
        problems.append(f"{dep.ref}: PSP_PKI_DIR is not {REVIEWERS_DIR}")
    mount, volume = mounts(dep).get(REVIEWERS_DIR, ({}, {}))
    if mount.get("readOnly") is not True or mount.get("subPath"):
        problems.append(f"{dep.ref}: {REVIEWERS_DIR} is not a read-only whole-folder mount")
    projected = volume.get("projected") or {}
    if projected.get("defaultMode", 0o644) & 0o007:
        problems.append(f"{dep.ref}: reviewers' keys readable by other users")
    files = {}
    for source in projected.get("sources") or []:
        secret = source["secret"]
        for item in secret["items"]:
            files[item["path"]] = (secret["name"], item["key"])
    expected = {}
    for secret, reviewer in reviewers.items():
        layout = TlsFiles.in_folder(Path(REVIEWERS_DIR), reviewer)  # what services/portal/reviewer reads
        expected[layout.cert.name] = (secret, "tls.crt")
        expected[layout.key.name] = (secret, "tls.key")
    ca = TlsFiles.in_folder(Path(REVIEWERS_DIR), "x").ca.name
    if files.pop(ca, (None, None))[1] != "ca.crt":
        problems.append(f"{dep.ref}: no {ca} from a reviewer's ca.crt")
    if files != expected:
        problems.append(f"{dep.ref}: projects {files}, expected {expected}")
    reload = set((dep.obj["metadata"].get("annotations") or {}).get(RELOAD_ANNOTATION, "").split(","))
    if reload != set(reviewers):
        problems.append(f"{dep.ref}: {RELOAD_ANNOTATION} {sorted(reload)}, expected {sorted(reviewers)}")
    if TLS_DIR in mounts(dep) or {"PSP_TLS_CERT", "PSP_TLS_KEY"} & set(env(dep)):
        problems.append(f"{dep.ref}: has a certificate of its own; it calls only as the signed-in reviewer")
    fail_if(problems)


# ------------------------------------------------------------------------------------------------- uploads


def test_both_mount_the_one_shared_uploads_volume() -> None:
    claim = single("PersistentVolumeClaim", UPLOADS_CLAIM)
    assert claim.obj["spec"]["accessModes"] == ["ReadWriteMany"], f"{claim.ref}: pods on any node write and read"
    problems = []
    for name in PORTAL_PROCESSES:
        dep = workload(name)
        mount, volume = mounts(dep).get(UPLOADS_DIR, ({}, {}))
        if (volume.get("persistentVolumeClaim") or {}).get("claimName") != UPLOADS_CLAIM or mount.get("readOnly"):
            problems.append(f"{dep.ref}: {UPLOADS_DIR} is not the claim {UPLOADS_CLAIM}, read-write")
        if (env(dep).get("PSP_PORTAL_UPLOADS") or {}).get("value") != UPLOADS_DIR:
            problems.append(f"{dep.ref}: PSP_PORTAL_UPLOADS is not {UPLOADS_DIR}")
    fail_if(problems)


def test_nothing_else_takes_the_portals_secret() -> None:
    others = [
        d.ref
        for d in DOCS
        if d.kind in ("Deployment", "StatefulSet")
        and d.name not in PORTAL_PROCESSES
        and (
            PORTAL_SECRET in str(main_container(d).get("envFrom")) or PORTAL_SECRET in str(main_container(d).get("env"))
        )
    ]
    assert not others, f"{others} take {PORTAL_SECRET}"
    assert single("ConfigMap", CONFIG_MAP)

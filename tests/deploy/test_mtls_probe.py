"""The certificates as specified make the probes and the calls work: for each Certificate in
deploy/k8s/certificates.yaml, a certificate with exactly its names, usages and key (what cert-manager's CA issuer
makes of the spec: each usage is one KeyUsage or ExtendedKeyUsage bit) is issued from a throwaway CA into a folder
laid out like the pod's volume (ca.crt, tls.crt, tls.key). A gRPC server on loopback serves it with the servers' own
credentials (pscommon.tls: mutual TLS, client certificate required), and the workload's readiness probe command runs
as a subprocess with the workload's PSP_TLS_* rewritten into that folder; it must exit 0 while the service is
SERVING and 1 once it is NOT_SERVING. The worker's client certificate reaches a server under the ConfigMap's address
and is seen as its principal; a scoring shard reaches the others under their hosts in PSP_SCORING_SHARD_ADDRS (the
certificate's wildcard), and not under a name it does not cover. Without the 127.0.0.1 SAN the probe fails, which is
why the certificates carry it.

Not offline like the other manifest checks: it binds 127.0.0.1 only (no DNS, nothing outside the machine).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from pscommon import pki
from pscommon.identity import Principal
from pscommon.tls import TlsFiles, peer_principal
from tests.deploy.manifests import (
    GRPC_SERVICES,
    NAMESPACE,
    ROOT,
    SHARDED,
    TLS_DIR,
    TLS_ENV,
    WORKLOADS,
    Doc,
    config_data,
    main_container,
    of_kind,
    pod_spec,
    single,
)

CERTIFICATES = {c.obj["spec"]["secretName"]: c for c in of_kind("Certificate")}
SERVER_WORKLOADS = [d for d in WORKLOADS if d.name in GRPC_SERVICES]
KEY_USAGES = {"digital signature", "key encipherment", "key agreement", "content commitment", "data encipherment"}
EXT_KEY_USAGES = {"server auth": ExtendedKeyUsageOID.SERVER_AUTH, "client auth": ExtendedKeyUsageOID.CLIENT_AUTH}


def _certificate_of(dep: Doc) -> Doc:
    mounts = {m["name"] for m in main_container(dep).get("volumeMounts") or [] if m.get("mountPath") == TLS_DIR}
    (secret,) = [v["secret"]["secretName"] for v in pod_spec(dep)["volumes"] if v["name"] in mounts]
    return CERTIFICATES[secret]


def _issue(ca: pki.Issued, spec: dict[str, Any], folder: Path) -> Path:
    """What cert-manager's CA issuer makes of `spec`, written as its Secret's keys into `folder`."""
    key_spec = spec["privateKey"]
    assert (key_spec["algorithm"], key_spec["size"]) == ("ECDSA", 256), key_spec
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    usages = set(spec["usages"])
    unknown = usages - KEY_USAGES - set(EXT_KEY_USAGES)
    assert not unknown, f"this test does not model usages {unknown}"
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in spec.get("uris", [])]
    sans += [x509.DNSName(n) for n in spec.get("dnsNames", [])]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in spec.get("ipAddresses", [])]
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)  # critical: the subject is empty
        .add_extension(
            x509.KeyUsage(
                digital_signature="digital signature" in usages,
                content_commitment="content commitment" in usages,
                key_encipherment="key encipherment" in usages,
                data_encipherment="data encipherment" in usages,
                key_agreement="key agreement" in usages,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([EXT_KEY_USAGES[u] for u in sorted(usages & set(EXT_KEY_USAGES))]), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_format = {"PKCS8": serialization.PrivateFormat.PKCS8, "PKCS1": serialization.PrivateFormat.TraditionalOpenSSL}
    folder.mkdir(parents=True)
    (folder / "ca.crt").write_bytes(ca.cert_pem)
    (folder / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, key_format[key_spec.get("encoding", "PKCS1")], serialization.NoEncryption()
        )
    )
    return folder


def _files(folder: Path) -> TlsFiles:
    return TlsFiles(folder / "ca.crt", folder / "tls.crt", folder / "tls.key")


class _RecordingHealth(health.HealthServicer):
    """grpc.health.v1 that also records who asked."""

    def __init__(self) -> None:
        super().__init__()
        self.callers: list[Principal | None] = []

    def Check(self, request: Any, context: Any) -> Any:
        self.callers.append(peer_principal(context))
        return super().Check(request, context)


@contextmanager
def _server(folder: Path, service: str) -> Iterator[tuple[int, _RecordingHealth]]:
    """A server on 127.0.0.1 with the servers' credentials (pscommon.tls) and `service` SERVING."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = _RecordingHealth()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", _files(folder).server_credentials())
    servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(None)


def _run_probe(dep: Doc, folder: Path, port: int) -> subprocess.CompletedProcess[str]:
    """The workload's readiness probe command, as the kubelet would exec it in the container, but against `port`
    and with its PSP_TLS_* paths moved from the volume to `folder`."""
    container = main_container(dep)
    command = list(container["readinessProbe"]["exec"]["command"])
    own_port = GRPC_SERVICES[dep.name][1]
    assert command[0] == "python" and command[3] == f"127.0.0.1:{own_port}", command
    command[0], command[3] = sys.executable, f"127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSP_")}
    env |= {"PYTHONPATH": str(ROOT), "PSP_TRUST_DOMAIN": config_data()["PSP_TRUST_DOMAIN"]}
    for var in container.get("env") or []:
        if var["name"] in TLS_ENV:
            env[var["name"]] = var["value"].replace(TLS_DIR, str(folder), 1)
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.new_ca(config_data()["PSP_TRUST_DOMAIN"])


@pytest.mark.parametrize("dep", SERVER_WORKLOADS, ids=lambda d: d.name)
def test_the_readiness_probe_passes_with_the_pods_certificate(dep: Doc, ca: pki.Issued, tmp_path: Path) -> None:
    spec = _certificate_of(dep).obj["spec"]
    folder = _issue(ca, spec, tmp_path / "tls")
    service = main_container(dep)["readinessProbe"]["exec"]["command"][4]
    with _server(folder, service) as (port, servicer):
        ok = _run_probe(dep, folder, port)
        assert ok.returncode == 0, f"{dep.name}: the probe failed against a SERVING server:\n{ok.stderr}"
        servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        draining = _run_probe(dep, folder, port)
        assert draining.returncode == 1, f"{dep.name}: the probe passed while NOT_SERVING:\n{draining.stderr}"
    (uri,) = spec["uris"]
    assert servicer.callers[0] == Principal.parse(uri), f"the probe called as {servicer.callers[0]}, not {uri}"


def test_without_the_loopback_address_the_probe_fails(ca: pki.Issued, tmp_path: Path) -> None:
    dep = SERVER_WORKLOADS[0]
    spec = dict(_certificate_of(dep).obj["spec"])
    spec.pop("ipAddresses")
    folder = _issue(ca, spec, tmp_path / "tls")
    with _server(folder, main_container(dep)["readinessProbe"]["exec"]["command"][4]) as (port, servicer):
        result = _run_probe(dep, folder, port)
    assert result.returncode == 1, "the probe passed although the server's certificate does not name 127.0.0.1"
    assert not servicer.callers


@pytest.mark.parametrize("server", SERVER_WORKLOADS, ids=lambda d: d.name)
def test_the_worker_reaches_a_service_under_the_configmaps_address(server: Doc, ca: pki.Issued, tmp_path: Path) -> None:
    """The worker's certificate (client auth only) is accepted, and the server's certificate matches the host the
    worker dials (PSP_<NAME>_ADDR in the ConfigMap)."""
    worker = single("Deployment", "worker")
    worker_spec = _certificate_of(worker).obj["spec"]
    server_folder = _issue(ca, _certificate_of(server).obj["spec"], tmp_path / "server")
    worker_files = _files(_issue(ca, worker_spec, tmp_path / "worker"))
    host = config_data()[f"PSP_{server.name.upper()}_ADDR"].rpartition(":")[0]
    with _server(server_folder, "") as (port, servicer):
        with grpc.secure_channel(
            f"127.0.0.1:{port}",
            worker_files.channel_credentials(),
            options=[("grpc.ssl_target_name_override", host), ("grpc.use_local_subchannel_pool", 1)],
        ) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)  # type: ignore[attr-defined]
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    (uri,) = worker_spec["uris"]
    assert servicer.callers == [Principal.parse(uri)], f"the server saw {servicer.callers}, not {uri}"


def _check_under(host: str, port: int, files: TlsFiles) -> Any:
    """grpc.health.v1 Check on 127.0.0.1:`port`, verifying the server's certificate as a client dialling `host`."""
    with grpc.secure_channel(
        f"127.0.0.1:{port}",
        files.channel_credentials(),
        options=[("grpc.ssl_target_name_override", host), ("grpc.use_local_subchannel_pool", 1)],
    ) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(), timeout=5)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(SHARDED))
def test_a_shard_reaches_the_others_under_their_shard_addresses(name: str, ca: pki.Issued, tmp_path: Path) -> None:
    """Every pod of the StatefulSet mounts the same certificate: as a server it must match each host the other
    shards dial (PSP_SCORING_SHARD_ADDRS), as a client it is accepted and seen as the principal scoring (which the
    shards' access rules expect). A pod name under another Service is refused: the name is really checked."""
    sts = single("StatefulSet", name)
    spec = _certificate_of(sts).obj["spec"]
    files = _files(_issue(ca, spec, tmp_path / "tls"))
    env = {v["name"]: v.get("value") for v in main_container(sts).get("env") or []}
    hosts = [a.strip().rpartition(":")[0] for a in str(env[SHARDED[name].addrs_env]).split(",")]
    assert len(hosts) == sts.obj["spec"]["replicas"], f"{sts.ref}: {hosts} for {sts.obj['spec']['replicas']} replicas"
    with _server(tmp_path / "tls", "") as (port, servicer):
        for host in hosts:
            assert _check_under(host, port, files).status == health_pb2.HealthCheckResponse.SERVING, host
        with pytest.raises(grpc.RpcError) as refused:
            _check_under(f"{name}-0.{name}-elsewhere.{NAMESPACE}.svc", port, files)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
    (uri,) = spec["uris"]
    assert servicer.callers == [Principal.parse(uri)] * len(hosts), f"the shards were seen as {servicer.callers}"

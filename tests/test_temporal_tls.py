"""TLS to the Temporal frontend (pscommon/temporal.py, TEMPORAL_TLS_*): the settings a pod gets in Kubernetes make
the client verify the frontend against the Temporal CA under the configured name and present its own certificate.
A stand-in frontend (grpc.aio with a server certificate, client certificates required, answering GetSystemInfo as
Temporal's does) stands for the chart's frontend; no Temporal server here speaks TLS."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest, GetSystemInfoResponse
from temporalio.service import TLSConfig

from pscommon import codec, pki, temporal
from pscommon.config import Settings
from pscommon.identity import Principal
from pscommon.tls import peer_principal

TRUST_DOMAIN = "psp.test"
FRONTEND_NAME = "temporal-frontend.temporal.svc"
GET_SYSTEM_INFO = "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo"


def _write(folder: Path, name: str, issued: pki.Issued) -> tuple[str, str]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    return str(cert), str(key)


@dataclasses.dataclass
class Frontend:
    port: int
    callers: list[Principal | None]
    ca: str  # the CA that signed the frontend's and the clients' certificates
    client_cert: str
    client_key: str
    folder: Path


@pytest.fixture
async def frontend(tmp_path: Path) -> AsyncIterator[Frontend]:
    ca = pki.new_ca(TRUST_DOMAIN)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    server = pki.issue(ca, Principal(TRUST_DOMAIN, "temporal", "frontend"), (FRONTEND_NAME,))
    client_cert, client_key = _write(tmp_path, "worker", pki.issue(ca, Principal(TRUST_DOMAIN, "worker", "worker")))
    callers: list[Principal | None] = []

    async def get_system_info(request: GetSystemInfoRequest, context: grpc.aio.ServicerContext) -> Any:
        callers.append(peer_principal(context))
        return GetSystemInfoResponse()

    handler = grpc.method_handlers_generic_handler(
        "temporal.api.workflowservice.v1.WorkflowService",
        {
            "GetSystemInfo": grpc.unary_unary_rpc_method_handler(
                get_system_info,
                request_deserializer=GetSystemInfoRequest.FromString,
                response_serializer=GetSystemInfoResponse.SerializeToString,
            )
        },
    )
    srv = grpc.aio.server()
    srv.add_generic_rpc_handlers((handler,))
    credentials = grpc.ssl_server_credentials(
        [(server.key_pem, server.cert_pem)], root_certificates=ca.cert_pem, require_client_auth=True
    )
    port = srv.add_secure_port("127.0.0.1:0", credentials)
    await srv.start()
    try:
        yield Frontend(port, callers, str(tmp_path / "ca.pem"), client_cert, client_key, tmp_path)
    finally:
        await srv.stop(None)


def _settings(f: Frontend, **overrides: str) -> Settings:
    values = {
        "temporal_address": f"127.0.0.1:{f.port}",
        "temporal_tls_ca": f.ca,
        "temporal_tls_cert": f.client_cert,
        "temporal_tls_key": f.client_key,
        "temporal_tls_server_name": FRONTEND_NAME,
        "codec_keys": codec.new_key_spec("test-1"),
        "codec_active_key": "test-1",
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


async def test_connects_with_its_client_certificate_to_a_frontend_that_requires_one(frontend: Frontend) -> None:
    await temporal.connect(_settings(frontend), wait_s=10)
    assert frontend.callers == [Principal(TRUST_DOMAIN, "worker", "worker")]


async def test_without_a_client_certificate_the_frontend_refuses(frontend: Frontend) -> None:
    cfg = _settings(frontend, temporal_tls_cert="", temporal_tls_key="")
    with pytest.raises(RuntimeError, match="Failed client connect"):
        await temporal.connect(cfg, wait_s=0)
    assert frontend.callers == []


async def test_a_frontend_certificate_without_the_expected_name_is_refused(frontend: Frontend) -> None:
    cfg = _settings(frontend, temporal_tls_server_name="temporal-frontend.elsewhere.svc")
    with pytest.raises(RuntimeError, match="Failed client connect"):
        await temporal.connect(cfg, wait_s=0)
    assert frontend.callers == []


async def test_a_frontend_from_another_ca_is_refused(frontend: Frontend) -> None:
    other = frontend.folder / "other-ca.pem"
    other.write_bytes(pki.new_ca(TRUST_DOMAIN).cert_pem)
    with pytest.raises(RuntimeError, match="Failed client connect"):
        await temporal.connect(_settings(frontend, temporal_tls_ca=str(other)), wait_s=0)
    assert frontend.callers == []


def test_no_settings_means_plaintext() -> None:
    assert temporal.tls_config(Settings(temporal_tls_ca="", temporal_tls_cert="", temporal_tls_key="")) is False


def test_the_settings_become_the_sdks_tls_config(tmp_path: Path) -> None:
    for name in ("ca", "cert", "key"):
        (tmp_path / name).write_bytes(name.encode())
    cfg = Settings(
        temporal_tls_ca=str(tmp_path / "ca"),
        temporal_tls_cert=str(tmp_path / "cert"),
        temporal_tls_key=str(tmp_path / "key"),
        temporal_tls_server_name=FRONTEND_NAME,
    )
    assert temporal.tls_config(cfg) == TLSConfig(
        server_root_ca_cert=b"ca", domain=FRONTEND_NAME, client_cert=b"cert", client_private_key=b"key"
    )
    ca_only = Settings(temporal_tls_ca=str(tmp_path / "ca"), temporal_tls_cert="", temporal_tls_key="")
    assert temporal.tls_config(ca_only) == TLSConfig(server_root_ca_cert=b"ca")


@pytest.mark.parametrize(
    ("ca", "cert", "key", "named"),
    [
        ("ca", "cert", "", "TEMPORAL_TLS_KEY"),
        ("ca", "", "key", "TEMPORAL_TLS_CERT"),
        ("", "cert", "key", "TEMPORAL_TLS_CA"),
    ],
)
def test_half_a_tls_setting_is_refused_naming_what_is_missing(ca: str, cert: str, key: str, named: str) -> None:
    cfg = Settings(temporal_tls_ca=ca, temporal_tls_cert=cert, temporal_tls_key=key)
    with pytest.raises(RuntimeError, match=named):
        temporal.tls_config(cfg)

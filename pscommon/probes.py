"""Is it up? Free ports and readiness probes for launchers, benches and psctl (a launcher may poll; tests never do)."""

from __future__ import annotations

import socket

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pscommon.tls import TlsFiles


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now (another process can still take it before it is bound)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def tcp_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def grpc_serving(target: int | str, tls: TlsFiles, service: str = "", timeout: float = 1) -> bool:
    """Whether a gRPC health service answers SERVING to the principal of `tls`; `target` is a local port or
    "host:port"."""
    address = f"127.0.0.1:{target}" if isinstance(target, int) else target
    with grpc.secure_channel(address, tls.channel_credentials()) as ch:
        try:
            stub = health_pb2_grpc.HealthStub(ch)  # its stub (types-grpcio-health-checking) omits the RPCs
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)  # type: ignore[attr-defined]
        except grpc.RpcError:
            return False
    return resp.status == health_pb2.HealthCheckResponse.SERVING


def main() -> int:
    """`python -m pscommon.probes HOST:PORT [SERVICE]`: exit 0 when the server answers SERVING to this process's
    own certificate (PSP_TLS_* or PSP_PKI_DIR + PSP_PRINCIPAL). Kubernetes runs it as an exec probe: the
    kubelet's own gRPC probe cannot present a client certificate."""
    import sys

    from pscommon.config import settings

    if len(sys.argv) not in (2, 3):
        print("usage: python -m pscommon.probes HOST:PORT [SERVICE]", file=sys.stderr)
        return 2
    service = sys.argv[2] if len(sys.argv) == 3 else ""
    return 0 if grpc_serving(sys.argv[1], TlsFiles.from_settings(settings()), service, timeout=2) else 1


if __name__ == "__main__":
    raise SystemExit(main())

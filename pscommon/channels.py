"""Client channels to our services and the simulators, traced, with deadlines inherited."""

from __future__ import annotations

import json

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from pscommon.tls import TlsFiles

_channels: dict[tuple[str, str, TlsFiles], grpc.aio.Channel] = {}


def retrying(service: str, attempts: int = 3, timeout_s: float = 3.0) -> str:
    """A gRPC service config: calls to `service` time out after `timeout_s` in all, and UNAVAILABLE answers are
    retried by gRPC itself (up to `attempts`, with backoff)."""
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": service}],
                    "timeout": f"{timeout_s}s",
                    "retryPolicy": {
                        "maxAttempts": attempts,
                        "initialBackoff": "0.1s",
                        "maxBackoff": "1s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


def channel(target: str, tls: TlsFiles, service_config: str = "") -> grpc.aio.Channel:
    """One shared mutual-TLS channel per target, identity and service config per process; channels multiplex
    calls. `tls` names the CA and the certificate this process calls with (its principal)."""
    key = (target, service_config, tls)
    ch = _channels.get(key)
    if ch is None:
        options = [("grpc.enable_retries", 1), ("grpc.service_config", service_config)] if service_config else []
        ch = grpc.aio.secure_channel(
            target, tls.channel_credentials(), options=options, interceptors=aio_client_interceptors()
        )
        _channels[key] = ch
    return ch


async def close_all() -> None:
    for ch in list(_channels.values()):
        await ch.close()
    _channels.clear()

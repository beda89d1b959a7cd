"""Client channels to our services and the simulators, traced, with deadlines inherited."""

from __future__ import annotations

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

_channels: dict[str, grpc.aio.Channel] = {}


def channel(target: str) -> grpc.aio.Channel:
    """One shared channel per target per event loop user; channels multiplex calls."""
    ch = _channels.get(target)
    if ch is None:
        ch = grpc.aio.insecure_channel(target, interceptors=aio_client_interceptors())
        _channels[target] = ch
    return ch


async def close_all() -> None:
    for ch in list(_channels.values()):
        await ch.close()
    _channels.clear()

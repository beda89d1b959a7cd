"""How the drill's callers talk to the stack: as a carrier's systems do, retrying transient errors.

UNAVAILABLE and DEADLINE_EXCEEDED (a process restarting, PostgreSQL or Temporal away) are retried with the same
request, so with the same request_id: every mutation answers a repeat with its first answer. Any other error is
the platform's answer; it is counted with the method (never with a number in it) and raised to the driver.
"""

from __future__ import annotations

import asyncio
import pathlib
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from temporalio.service import RPCError, RPCStatusCode

from pscommon.identity import mask
from pscommon.tls import TlsFiles

T = TypeVar("T")
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
TEMPORAL_TRANSIENT = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
NUMBER_RE = re.compile(r"(?<![0-9a-zA-Z])1[0-9]{10}(?![0-9a-zA-Z])")  # a number, not digits inside a hash
# Reconnect soon after a restart (gRPC's default backoff grows to two minutes).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


def masked(text: str) -> str:
    """Any mobile number in `text` masked (193****5678)."""
    return NUMBER_RE.sub(lambda m: mask(m[0]), text)


@dataclass
class CallStats:
    retries: Counter[str] = field(default_factory=Counter)  # "Method CODE" -> transient errors retried
    errors: list[str] = field(default_factory=list)  # other errors: "Method CODE: details"
    gave_up: list[str] = field(default_factory=list)  # transient errors past the caller's patience


class GaveUp(Exception):
    pass


class Calls:
    """Stubs per service and principal over mutual TLS, and retrying calls."""

    def __init__(self, pki_dir: pathlib.Path, addresses: dict[str, str], patience_s: float = 240.0) -> None:
        self.pki_dir = pki_dir
        self.addresses = addresses  # service name -> host:port
        self.patience_s = patience_s
        self.stats = CallStats()
        self._channels: dict[tuple[str, str], grpc.aio.Channel] = {}

    def stub(self, service: str, principal: str, stub_class: type[T]) -> T:
        key = (service, principal)
        ch = self._channels.get(key)
        if ch is None:
            tls = TlsFiles.in_folder(self.pki_dir, principal)
            ch = grpc.aio.secure_channel(self.addresses[service], tls.channel_credentials(), options=CHANNEL_OPTIONS)
            self._channels[key] = ch
        return stub_class(ch)  # type: ignore[call-arg]

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()

    async def call(
        self,
        rpc: Callable[..., Awaitable[T]],
        request: Any,
        timeout: float = 10.0,
        expected: frozenset[grpc.StatusCode] = frozenset(),
    ) -> T:
        """One unary RPC, retried while the error is transient, for up to `patience_s`. An `expected` error is
        raised to the caller without being counted (e.g. NOT_FOUND for a line suspension never recorded)."""
        method = _method_name(rpc)
        give_up_at = time.monotonic() + self.patience_s
        delay = 0.2
        while True:
            try:
                return await rpc(request, timeout=timeout)
            except grpc.aio.AioRpcError as err:
                if err.code() in expected:
                    raise
                self.transient_or_raise(method, err, give_up_at)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def transient_or_raise(self, method: str, err: grpc.aio.AioRpcError, give_up_at: float) -> None:
        code = err.code()
        # The client's own gRPC core reports a stream broken by the server's death as INTERNAL with this text (the
        # platform's INTERNAL answers say "internal error"): a broken connection, retried like UNAVAILABLE.
        broken = code == grpc.StatusCode.INTERNAL and (err.details() or "") == "Internal error from Core"
        if code not in TRANSIENT and not broken:
            self.stats.errors.append(f"{method} {code.name}: {masked(err.details() or '')[:200]}")
            raise err
        self.stats.retries[f"{method} {code.name}"] += 1
        if time.monotonic() > give_up_at:
            self.stats.gave_up.append(f"{method} {code.name}")
            raise GaveUp(f"{method}: still {code.name} after {self.patience_s:.0f}s") from err

    async def temporal(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """A Temporal client call, retried while the server is away."""
        give_up_at = time.monotonic() + self.patience_s
        delay = 0.2
        while True:
            try:
                return await call()
            except RPCError as err:
                if err.status not in TEMPORAL_TRANSIENT:
                    raise
                self.stats.retries[f"temporal {what} {err.status.name}"] += 1
                if time.monotonic() > give_up_at:
                    self.stats.gave_up.append(f"temporal {what}")
                    raise GaveUp(f"temporal {what}: still {err.status.name}") from err
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def _method_name(rpc: Any) -> str:
    method = getattr(rpc, "_method", b"")
    name = method.decode() if isinstance(method, bytes) else str(method)
    return name.rsplit("/", 1)[-1] or repr(rpc)

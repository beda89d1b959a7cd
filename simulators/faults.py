"""Latency and failures injected into the simulated outside systems, per target."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import grpc


@dataclass
class Fault:
    """Checked before it is stored (simulators/requests.py): `error` is one its target can answer with."""

    latency_ms: int = 0
    fail_next: int = 0
    error: str = ""


class Faults:
    def __init__(self) -> None:
        self._by_target: dict[str, Fault] = {}

    def set(self, target: str, fault: Fault) -> None:
        self._by_target[target] = fault

    def get(self, target: str) -> Fault | None:
        return self._by_target.get(target)

    def clear(self) -> None:
        self._by_target.clear()

    async def apply(self, target: str) -> str | None:
        """Waits the injected latency; returns the error to answer with, if this call should fail."""
        fault = self._by_target.get(target)
        if fault is None:
            return None
        if fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000)
        if fault.fail_next > 0:
            fault.fail_next -= 1
            return fault.error
        return None


class FaultInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, faults: Faults) -> None:
        self.faults = faults

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or not handler.unary_unary or details.method.startswith("/carrier.simulator."):
            return handler
        inner, faults, method = handler.unary_unary, self.faults, details.method

        async def faulty(request: Any, context: grpc.aio.ServicerContext) -> Any:
            error = await faults.apply(method)
            if error is not None:
                await context.abort(grpc.StatusCode[error], f"injected fault on {method}")
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            faulty, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )

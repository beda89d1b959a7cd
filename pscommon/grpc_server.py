"""One way to run a gRPC service: grpc.aio, health, reflection, rich errors, tracing, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from pscommon.config import Settings, settings
from pscommon.errors import ServiceError
from pscommon.telemetry import setup_logging, setup_tracing

log = logging.getLogger(__name__)

# Absolute monotonic deadline of the RPC being served, so calls it makes downstream inherit it.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


def remaining(default: float) -> float:
    """Timeout for a downstream call: the caller's remaining time, capped by default."""
    deadline = _deadline.get()
    if deadline is None:
        return default
    return max(0.001, min(default, deadline - time.monotonic()))


class _Guard(grpc.aio.ServerInterceptor):
    """Turns ServiceError into a rich status and any unexpected exception into INTERNAL (never UNKNOWN)."""

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method

        @contextlib.asynccontextmanager
        async def guarding(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            left = context.time_remaining()
            token = _deadline.set(time.monotonic() + left if left is not None else None)
            try:
                yield
            except ServiceError as err:
                await context.abort_with_status(err.to_status())
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception:
                log.exception("unhandled error in %s", method)
                await context.abort_with_status(
                    ServiceError(grpc.StatusCode.INTERNAL, "internal error", "INTERNAL").to_status()
                )
            finally:
                _deadline.reset(token)

        def unary_response(behaviour: Any) -> Callable[..., Any]:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with guarding(context):
                    return await behaviour(request, context)

            return call

        def stream_response(behaviour: Any) -> Callable[..., Any]:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with guarding(context):
                    async for response in behaviour(request, context):
                        yield response

            return call

        for kind, make, wrap in (
            ("unary_unary", grpc.unary_unary_rpc_method_handler, unary_response),
            ("stream_unary", grpc.stream_unary_rpc_method_handler, unary_response),
            ("unary_stream", grpc.unary_stream_rpc_method_handler, stream_response),
            ("stream_stream", grpc.stream_stream_rpc_method_handler, stream_response),
        ):
            behaviour = getattr(handler, kind)
            if behaviour:
                return make(
                    wrap(behaviour),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler


@dataclass
class GrpcService:
    name: str
    server: grpc.aio.Server
    health: HealthServicer
    port: int
    service_names: Sequence[str]
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def stop(self, grace: float = 5.0) -> None:
        """Graceful: report NOT_SERVING so balancers drain, then let in-flight calls finish."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for hook in reversed(self.on_stop):
            await hook()


async def start(
    name: str,
    port: int,
    register: Callable[[grpc.aio.Server], Sequence[str]],
    host: str | None = None,
    extra_interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> GrpcService:
    """Starts a server; `register` adds servicers and returns their full service names."""
    server = grpc.aio.server(interceptors=[aio_server_interceptor(), _Guard(), *extra_interceptors])
    service_names = list(register(server))
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    bound = server.add_insecure_port(f"{host or os.environ.get('PSP_BIND_HOST', '127.0.0.1')}:{port}")
    await server.start()
    for svc in ["", *service_names]:
        await health.set(svc, health_pb2.HealthCheckResponse.SERVING)
    log.info("%s serving on port %d", name, bound)
    return GrpcService(name, server, health, bound, service_names)


async def start_servicer(
    name: str,
    port: int,
    add_to_server: Callable[[Any, grpc.aio.Server], None],
    servicer: Any,
    service_name: str,
    on_stop: Sequence[Callable[[], Awaitable[None]]] = (),
) -> GrpcService:
    """Starts a server for one servicer; `on_stop` hooks run after it has drained, last first."""

    def register(server: grpc.aio.Server) -> list[str]:
        add_to_server(servicer, server)
        return [service_name]

    svc = await start(name, port, register)
    svc.on_stop.extend(on_stop)
    return svc


async def run_until_signal(service: GrpcService, grace: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("%s shutting down", service.name)
    await service.stop(grace)


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def serve_forever(
    name: str,
    start_fn: Callable[[Settings, int], Awaitable[GrpcService]],
    address_of: Callable[[Settings], str],
) -> None:
    """Entry point of a service process: logs, traces, start, run until SIGTERM, stop gracefully."""

    async def _main() -> None:
        setup_logging(name)
        setup_tracing(name)
        cfg = settings()
        svc = await start_fn(cfg, port_of(address_of(cfg)))
        await run_until_signal(svc, cfg.shutdown_grace_s)

    asyncio.run(_main())

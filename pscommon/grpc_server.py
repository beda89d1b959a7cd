"""One way to run a gRPC service: grpc.aio, health, reflection, rich errors, tracing, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import os
import pathlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from pscommon import access, bounds
from pscommon.access import AccessTable
from pscommon.config import Settings, settings
from pscommon.errors import ServiceError, invalid_argument, permission_denied, unauthenticated, unavailable
from pscommon.identity import ON_BEHALF_OF, SPIFFE, Principal
from pscommon.telemetry import setup_logging, setup_tracing
from pscommon.tls import TlsFiles, peer_principal

log = logging.getLogger(__name__)

# Absolute monotonic deadline of the RPC being served, so calls it makes downstream inherit it.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


def remaining(default: float) -> float:
    """Timeout for a downstream call: the caller's remaining time, capped by default."""
    deadline = _deadline.get()
    if deadline is None:
        return default
    return max(0.001, min(default, deadline - time.monotonic()))


@dataclass(frozen=True)
class Security:
    """What every server needs to know who calls and whether they may: its TLS files and the access table."""

    tls: TlsFiles
    access: AccessTable
    trust_domain: str
    own: Principal | None = None  # this process: a replica of the same role may call on its caller's behalf

    @classmethod
    def from_settings(cls, cfg: Settings, default_table: pathlib.Path) -> Security:
        tls = TlsFiles.from_settings(cfg)
        return cls(tls, access.load(cfg.access_table or default_table), cfg.trust_domain, tls.own_principal())


class _Undecodable:
    """Stands in for a request whose bytes do not parse, so the handler's guard can answer INVALID_ARGUMENT."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


def _tolerant(deserialize: Callable[[bytes], Any] | None, type_name: str) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:  # noqa: BLE001 - any parse failure of hostile bytes is bad input, not an error
            return _Undecodable(type_name)

    return parse


def checked(request: Any) -> Any:
    """The request if it parsed and lies within the contract's bounds; INVALID_ARGUMENT otherwise."""
    if isinstance(request, _Undecodable):
        raise invalid_argument([("request", f"is not a valid {request.type_name} message")])
    found = bounds.violations(request)
    if found:
        raise invalid_argument(found)
    return request


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        yield checked(request)


class _Guard(grpc.aio.ServerInterceptor):
    """Before any handler: who is calling (mTLS), may they call this method (access table), does the request
    parse and lie within bounds. After: ServiceError becomes a rich status, a database or network failure
    UNAVAILABLE, anything else INTERNAL (never UNKNOWN)."""

    def __init__(self, security: Security) -> None:
        self.security = security

    def _authorize(self, context: grpc.aio.ServicerContext, method: str) -> Principal:
        principal = peer_principal(context)
        table = self.security.access
        if principal is None or principal.trust_domain != self.security.trust_domain:
            raise unauthenticated("the client certificate names no principal of this platform")
        if principal.role not in table.roles:
            raise unauthenticated(f"unknown role {principal.role!r}")
        behalf = dict(context.invocation_metadata() or ()).get(ON_BEHALF_OF)
        if behalf is not None:
            principal = self._delegated(principal, str(behalf))
        if not table.allows(method, principal.role):
            log.warning("denied %s to %s", method, principal.name)
            raise permission_denied(
                f"role {principal.role!r} may not call {method}",
                "METHOD_NOT_ALLOWED",
                {"method": method, "role": principal.role, "access_table": table.version},
            )
        return principal

    def _delegated(self, replica: Principal, behalf: str) -> Principal:
        """A replica of this service (a scoring shard) forwarding its caller's request: the caller is checked
        and recorded as if it had called here. Nobody else may speak for another."""
        own = self.security.own
        if own is None or replica.role != own.role:
            raise permission_denied(f"role {replica.role!r} may not call on another's behalf", "DELEGATION_NOT_ALLOWED")
        caller = Principal.parse(f"{SPIFFE}{self.security.trust_domain}/{behalf}")
        if caller is None or caller.role not in self.security.access.roles:
            raise unauthenticated(f"{ON_BEHALF_OF} names no principal of this platform")
        return caller

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method.lstrip("/")

        @contextlib.asynccontextmanager
        async def guarding(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            left = context.time_remaining()
            deadline = _deadline.set(time.monotonic() + left if left is not None else None)
            who: contextvars.Token[Principal | None] | None = None
            try:
                who = access.set_caller(self._authorize(context, method))
                yield
            except ServiceError as err:
                await context.abort_with_status(err.to_status())
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except TRANSIENT as err:
                log.warning("%s: %s (transient)", method, type(err).__name__)
                await context.abort_with_status(unavailable(_dependency(err)).to_status())
            except asyncpg.DataError as err:
                log.warning("%s: a value the database refused (%s)", method, type(err).__name__)
                await context.abort_with_status(invalid_argument([("request", "a value cannot be stored")]).to_status())
            except Exception:
                log.exception("unhandled error in %s", method)
                await context.abort_with_status(
                    ServiceError(grpc.StatusCode.INTERNAL, "internal error", "INTERNAL").to_status()
                )
            finally:
                if who is not None:
                    access.reset_caller(who)
                _deadline.reset(deadline)

        def unary_request(behaviour: Any) -> Callable[..., Any]:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with guarding(context):
                    return await behaviour(checked(request), context)

            return call

        def stream_request(behaviour: Any) -> Callable[..., Any]:
            async def call(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
                async with guarding(context):
                    return await behaviour(_checked_stream(requests), context)

            return call

        def streamed(behaviour: Any, read: Callable[[Any], Any]) -> Callable[..., Any]:
            if not inspect.isasyncgenfunction(behaviour):
                behaviour = _as_generator(behaviour)

            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with guarding(context):
                    async for response in behaviour(read(request), context):
                        yield response

            return call

        def unary_request_stream_response(behaviour: Any) -> Callable[..., Any]:
            return streamed(behaviour, checked)

        def stream_request_stream_response(behaviour: Any) -> Callable[..., Any]:
            return streamed(behaviour, _checked_stream)

        for kind, make, wrap in (
            ("unary_unary", grpc.unary_unary_rpc_method_handler, unary_request),
            ("stream_unary", grpc.stream_unary_rpc_method_handler, stream_request),
            ("unary_stream", grpc.unary_stream_rpc_method_handler, unary_request_stream_response),
            ("stream_stream", grpc.stream_stream_rpc_method_handler, stream_request_stream_response),
        ):
            behaviour = getattr(handler, kind)
            if behaviour:
                return make(
                    wrap(behaviour),
                    request_deserializer=_tolerant(handler.request_deserializer, method),
                    response_serializer=handler.response_serializer,
                )
        return handler


class _WrittenTo:
    """The handler's context, with what it writes queued for the generator that stands in for it."""

    def __init__(self, context: grpc.aio.ServicerContext, queue: asyncio.Queue[Any]) -> None:
        self._context = context
        self._queue = queue

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def write(self, message: Any) -> None:
        await self._queue.put(message)


def _as_generator(behaviour: Any) -> Callable[..., AsyncIterator[Any]]:
    """A streaming handler that writes with context.write (grpc_health's Watch) as an async generator, the only
    shape the interceptors around it (OpenTelemetry's, this guard) can iterate."""
    finished = object()

    async def responses(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def run() -> None:
            try:
                await behaviour(request, _WrittenTo(context, queue))
            finally:
                queue.put_nowait(finished)

        task = asyncio.create_task(run())
        try:
            while (message := await queue.get()) is not finished:
                yield message
            await task
        finally:
            task.cancel()

    return responses


# Failures a retry can cure: the database restarting or unreachable, a connection dropped.
TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


def _dependency(err: BaseException) -> str:
    return "the database" if isinstance(err, asyncpg.PostgresError | asyncpg.InterfaceError) else "a dependency"


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
    security: Security,
    host: str | None = None,
    extra_interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> GrpcService:
    """Starts a server on a mutual-TLS port only; `register` adds servicers and returns their full service names.
    Refuses to start when the access table leaves one of their methods without a row."""
    server = grpc.aio.server(interceptors=[aio_server_interceptor(), _Guard(security), *extra_interceptors])
    service_names = list(register(server))
    security.access.require_rows(_methods(service_names))
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    address = f"{host or os.environ.get('PSP_BIND_HOST', '127.0.0.1')}:{port}"
    bound = server.add_secure_port(address, security.tls.server_credentials())
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
    security: Security,
    on_stop: Sequence[Callable[[], Awaitable[None]]] = (),
) -> GrpcService:
    """Starts a server for one servicer; `on_stop` hooks run after it has drained, last first."""

    def register(server: grpc.aio.Server) -> list[str]:
        add_to_server(servicer, server)
        return [service_name]

    svc = await start(name, port, register, security)
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


def _methods(service_names: Sequence[str]) -> list[str]:
    pool = descriptor_pool.Default()
    return [f"{name}/{m.name}" for name in service_names for m in pool.FindServiceByName(name).methods]


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

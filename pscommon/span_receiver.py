"""The local stack's span receiver: an OTLP/gRPC trace endpoint that appends every span it is sent to one file.

`python -m pscommon.span_receiver`, started by `make up`; every process of the stack exports its spans here
(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), so one writer owns the file that `psctl case trace` reads. Mutual TLS like
every other port of the stack: only a certificate from the platform CA gets through the handshake.

Settings (environment):
  PSP_SPAN_RECEIVER_PORT   its port
  PSP_SPAN_FILE            the JSON Lines file (pscommon/spans.py for what a line holds)
  PSP_SPAN_FILE_MAX_BYTES  the cap past which the file is rotated (default 20 MiB)
"""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import signal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from pscommon.config import settings
from pscommon.spans import DEFAULT_MAX_BYTES, SpanFile, records
from pscommon.telemetry import setup_logging
from pscommon.tls import TlsFiles

log = logging.getLogger(__name__)


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: SpanFile) -> None:
        self.store = store

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.aio.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        try:
            self.store.append(records(request.resource_spans))
        except OSError as err:
            # The exporter retries on UNAVAILABLE; the spans of this batch are kept when the disk recovers.
            log.warning("span file not written: %s", type(err).__name__)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "span file not writable")
        return trace_service_pb2.ExportTraceServiceResponse()


async def start(store: SpanFile, port: int, tls: TlsFiles, host: str = "127.0.0.1") -> tuple[grpc.aio.Server, int]:
    """Serves the OTLP trace service and gRPC health on `port` (0: any free one); the server and its port."""
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(store), server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    bound = server.add_secure_port(f"{host}:{port}", tls.server_credentials())
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, bound


async def _main() -> None:
    setup_logging("span-receiver")
    cfg = settings()
    path = pathlib.Path(cfg.span_file)
    store = SpanFile(path, int(os.environ.get("PSP_SPAN_FILE_MAX_BYTES", DEFAULT_MAX_BYTES)))
    server, port = await start(
        store,
        int(os.environ["PSP_SPAN_RECEIVER_PORT"]),
        TlsFiles.from_settings(cfg),
        os.environ.get("PSP_BIND_HOST", "127.0.0.1"),
    )
    log.info("span receiver on port %d, writing %s", port, path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(2)  # lets the batches in flight land in the file


if __name__ == "__main__":
    asyncio.run(_main())

"""The local stack's span store and receiver: real OTLP exports over mutual TLS land in the file, one span a
line, with only the kept attributes, numbers masked, the file capped."""

from __future__ import annotations

import asyncio
import json
import pathlib

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from pscommon import span_receiver, spans
from pscommon.spans import SpanFile, SpanRecord
from pscommon.tls import TlsFiles

MSISDN = "13912345678"


def kv(key: str, value: str | int) -> KeyValue:
    v = AnyValue(string_value=value) if isinstance(value, str) else AnyValue(int_value=value)
    return KeyValue(key=key, value=v)


def batch(*spans_: Span, service: str = "notify") -> list[ResourceSpans]:
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans_))])
    rs.resource.attributes.append(kv("service.name", service))
    return [rs]


def test_a_span_keeps_its_ids_times_status_and_only_the_listed_attributes():
    span = Span(
        trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
        span_id=bytes.fromhex("b7ad6b7169203331"),
        parent_span_id=bytes.fromhex("00f067aa0ba902b7"),
        name=f"send to {MSISDN}",
        start_time_unix_nano=1_000_000_000,
        end_time_unix_nano=1_012_500_000,
        status=Status(code=Status.STATUS_CODE_ERROR),
        attributes=[
            kv("rpc.method", "SendNotification"),
            kv("rpc.grpc.status_code", 14),
            kv("temporalWorkflowID", "case-3f2a-1"),
            kv("msisdn", MSISDN),
            kv("net.peer.ip", "127.0.0.1"),
        ],
    )
    [got] = list(spans.records(batch(span)))
    assert (got.trace_id, got.span_id, got.parent_id) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
        "00f067aa0ba902b7",
    )
    assert (got.service, got.status, got.duration_ms) == ("notify", "error", 12.5)
    assert got.name == "send to 139****5678"
    assert got.attributes == {
        "rpc.method": "SendNotification",
        "rpc.grpc.status_code": 14,
        "temporalWorkflowID": "case-3f2a-1",
    }
    assert SpanRecord.from_line(got.to_line()) == got


def rec(i: int, trace: str = "t1", workflow: str = "") -> SpanRecord:
    attrs: dict[str, str | int | float | bool] = {"temporalWorkflowID": workflow} if workflow else {}
    return SpanRecord(trace, f"s{i}", "", "worker", f"span-{i}", i, i + 1, "ok", attrs)


def test_the_file_is_rotated_past_its_cap_and_read_back_oldest_first(tmp_path: pathlib.Path):
    path = tmp_path / "traces" / "spans.jsonl"
    line = len(rec(0).to_line()) + 1
    store = SpanFile(path, max_bytes=line * 3)
    for i in range(8):
        store.append([rec(i)])
    # Never more than twice the cap on disk: the live file and the one before it.
    assert path.stat().st_size <= line * 3 and spans.previous(path).stat().st_size <= line * 3
    assert not list(tmp_path.glob("traces/*.2"))
    kept = [s.name for s in spans.read(path)]
    assert kept == [f"span-{i}" for i in range(3, 8)]  # 0-2 went with the second rotation


def test_a_line_cut_short_is_skipped(tmp_path: pathlib.Path):
    path = tmp_path / "spans.jsonl"
    SpanFile(path).append([rec(1), rec(2)])
    with path.open("a") as f:
        f.write(rec(3).to_line()[:20])
    assert [s.name for s in spans.read(path)] == ["span-1", "span-2"]


def test_a_case_has_its_own_trace_and_every_trace_that_touched_its_workflow():
    kept = [rec(1, "own"), rec(2, "signal", "case-a-1"), rec(3, "other", "case-b-1"), rec(0, "signal")]
    got = spans.traces_of(kept, "case-a-1", ["own"])
    assert set(got) == {"own", "signal"}
    assert [s.name for s in got["signal"]] == ["span-0", "span-2"]


async def test_the_receiver_writes_what_an_otlp_exporter_sends_over_mutual_tls(
    tmp_path: pathlib.Path, pki_dir: pathlib.Path
):
    finished = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "worker"}))
    provider.add_span_processor(SimpleSpanProcessor(finished))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("RunWorkflow:Case", attributes={"temporalWorkflowID": "case-x-1"}) as parent:
        with tracer.start_as_current_span("StartActivity:warn", attributes={"phone": MSISDN}) as child:
            child.set_status(StatusCode.ERROR)

    path = tmp_path / "spans.jsonl"
    server, port = await span_receiver.start(SpanFile(path), 0, TlsFiles.in_folder(pki_dir, "span-receiver"))
    try:
        worker = TlsFiles.in_folder(pki_dir, "worker")
        creds = grpc.ssl_channel_credentials(worker.ca.read_bytes(), worker.key.read_bytes(), worker.cert.read_bytes())
        exporter = OTLPSpanExporter(endpoint=f"https://127.0.0.1:{port}", credentials=creds, timeout=10)
        # The SDK's exporter blocks its thread; the receiver answers on this loop.
        result = await asyncio.to_thread(exporter.export, finished.get_finished_spans())
        exporter.shutdown()
        assert result == SpanExportResult.SUCCESS

        # Without a certificate from the platform CA, the handshake fails.
        ca_only = grpc.ssl_channel_credentials(worker.ca.read_bytes())
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", ca_only) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await trace_service_pb2_grpc.TraceServiceStub(ch).Export(
                    trace_service_pb2.ExportTraceServiceRequest(), timeout=5
                )
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(None)

    lines = path.read_text().splitlines()
    assert MSISDN not in "".join(lines)
    got = {s.name: s for s in map(SpanRecord.from_line, lines)}
    root, warn = got["RunWorkflow:Case"], got["StartActivity:warn"]
    assert root.service == warn.service == "worker"
    assert warn.parent_id == root.span_id == f"{parent.get_span_context().span_id:016x}"
    assert warn.trace_id == root.trace_id and not root.parent_id
    assert (warn.status, warn.attributes) == ("error", {})
    assert root.workflow_id == "case-x-1" and root.end_ns >= warn.end_ns > warn.start_ns
    assert all(json.loads(line)["trace_id"] == root.trace_id for line in lines)

"""The local stack's span store: a JSON Lines file, one finished span a line, written by the span receiver alone.

Each line holds the trace id, span id, parent span id, service, name, start and end (ns since the epoch), status
and the attributes named in KEPT_ATTRIBUTES, nothing else: spans may carry whatever a library chose to record,
and only these are known to hold no personal data. Names and kept values are masked (pscommon.telemetry.redact)
all the same. The file is capped: past `max_bytes` it becomes `<file>.1` (replacing the one before) and a new
one starts, so the store holds between one and two caps' worth of the latest spans.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from pscommon.telemetry import redact

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
KEPT_ATTRIBUTES = frozenset(
    {
        "rpc.system",
        "rpc.service",
        "rpc.method",
        "rpc.grpc.status_code",
        "temporalWorkflowID",
        "temporalRunID",
        "temporalActivityID",
        "temporalUpdateID",
        "psp.risk_level",
    }
)
_STATUS = {Status.STATUS_CODE_UNSET: "unset", Status.STATUS_CODE_OK: "ok", Status.STATUS_CODE_ERROR: "error"}


@dataclass(frozen=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    service: str
    name: str
    start_ns: int
    end_ns: int
    status: str  # unset, ok or error
    attributes: dict[str, str | int | float | bool] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e6

    @property
    def workflow_id(self) -> str:
        return str(self.attributes.get("temporalWorkflowID", ""))

    def to_line(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_line(cls, line: str) -> SpanRecord:
        return cls(**json.loads(line))


def _value(v: AnyValue) -> str | int | float | bool | None:
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return redact(v.string_value)
    if kind in ("int_value", "double_value", "bool_value"):
        got: int | float | bool = getattr(v, kind)
        return got
    return None  # arrays, maps and bytes are never kept


def _kept(attributes: Iterable[KeyValue]) -> dict[str, str | int | float | bool]:
    kept: dict[str, str | int | float | bool] = {}
    for kv in attributes:
        if kv.key in KEPT_ATTRIBUTES and (value := _value(kv.value)) is not None:
            kept[kv.key] = value
    return kept


def _service(resource_spans: ResourceSpans) -> str:
    for kv in resource_spans.resource.attributes:
        if kv.key == "service.name":
            return redact(kv.value.string_value)
    return "unknown"


def record(span: Span, service: str) -> SpanRecord:
    return SpanRecord(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(),
        service=service,
        name=redact(span.name),
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status=_STATUS.get(span.status.code, "unset"),
        attributes=_kept(span.attributes),
    )


def records(batch: Iterable[ResourceSpans]) -> Iterator[SpanRecord]:
    """The spans of one OTLP export request, each with the service its resource names."""
    for rs in batch:
        service = _service(rs)
        for scope in rs.scope_spans:
            for span in scope.spans:
                yield record(span, service)


class SpanFile:
    """Appends spans to `path`, moving it to `<path>.1` once it passes `max_bytes`. One writer per file."""

    def __init__(self, path: pathlib.Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes: must be positive")
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, spans: Iterable[SpanRecord]) -> int:
        text = "".join(s.to_line() + "\n" for s in spans)
        if not text:
            return 0
        size = self.path.stat().st_size if self.path.exists() else 0
        if size and size + len(text.encode()) > self.max_bytes:
            self.path.replace(previous(self.path))
        with self.path.open("a", encoding="utf-8") as f:
            f.write(text)
        return text.count("\n")


def previous(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name + ".1")


def read(path: pathlib.Path) -> list[SpanRecord]:
    """Every span kept, the older file first; a line cut short (the receiver stopped mid-write) is skipped."""
    found: list[SpanRecord] = []
    for p in (previous(path), path):
        if not p.exists():
            continue
        for line in p.read_text(encoding="utf-8").splitlines():
            try:
                found.append(SpanRecord.from_line(line))
            except (ValueError, TypeError):
                continue
    return found


def traces_of(
    spans: Iterable[SpanRecord], workflow_id: str, trace_ids: Iterable[str] = ()
) -> dict[str, list[SpanRecord]]:
    """The spans of each trace that is one of `trace_ids` or touches the workflow (a signal or update sent to
    it later starts its own trace), by trace id, traces in order of their first span."""
    spans = list(spans)
    wanted = set(trace_ids) | {s.trace_id for s in spans if workflow_id and s.workflow_id == workflow_id}
    by_trace: dict[str, list[SpanRecord]] = {}
    for s in sorted(spans, key=lambda s: s.start_ns):
        if s.trace_id in wanted:
            by_trace.setdefault(s.trace_id, []).append(s)
    return by_trace

"""Tracing and structured logs: one trace per case, JSON logs carrying trace ids, no personal data."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from pythonjsonlogger.json import JsonEncoder, JsonFormatter

# What is masked in a formatted line. At each position the first alternative that matches wins, so the "keep"
# tokens are consumed whole and nothing inside them is ever taken for a number:
# - a JSON \uXXXX escape (the formatter writes Chinese as escapes; their hex digits must not start a number),
# - a UUID, and a hex run of 16+ with at least one letter (trace and span ids, line hashes), which can hold
#   eleven decimal digits in a row by chance.
# A number must not continue a digit run or a decimal fraction, so timestamps, durations and ports survive;
# after a \uXXXX escape it may start even though the escape ends in a hex digit ("拨打13912345678").
_START = r"(?:(?<!\d)(?<!\d\.)|(?<=\\u[0-9a-fA-F]{4}))"
_END = r"(?!\d)(?!\.\d)"
_PERSONAL = re.compile(
    rf"""
    (?P<keep>
        \\u[0-9a-fA-F]{{4}}
      | [0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}
      | (?<![0-9A-Za-z])(?=[0-9]*[a-fA-F])[0-9a-fA-F]{{16,}}(?![0-9A-Za-z])
    )
    # resident ID number: region, birth date (19xx/20xx), sequence, check digit or X
  | {_START}(?P<id_head>[1-9]\d{{2}})\d{{3}}(?:19|20)\d{{2}}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{{3}}
    (?P<id_tail>[\dXx])(?![\dXx])
    # mobile number, with or without +86 / 0086 / 86, grouped 3-4-4 by spaces or hyphens or not at all
  | {_START}(?P<cc>(?:\+|00)?86[ -]?)?(?P<head>1[3-9]\d)[ -]?\d{{4}}[ -]?(?P<tail>\d{{4}}){_END}
    """,
    re.VERBOSE | re.ASCII,
)
# Every number masked above holds three digits, four and four (separated or not): lines without such a run, most
# of them, skip the full pattern, which tries its alternatives at every position and costs several times more.
_CANDIDATE = re.compile(r"\d{3}[ -]?\d{4}[ -]?\d{4}", re.ASCII)
# Only ints this large can be a mobile or ID number written as a JSON number.
_SMALLEST_NUMBER = 10**10


def _mask(m: re.Match[str]) -> str:
    if m.group("keep") is not None:
        return m.group(0)
    if m.group("id_head") is not None:
        return f"{m.group('id_head')}{'*' * 14}{m.group('id_tail')}"
    return f"{m.group('cc') or ''}{m.group('head')}****{m.group('tail')}"


def redact(text: str) -> str:
    """Masks mobile numbers (139****5678) and resident ID numbers (110**************X) anywhere in text."""
    found = _CANDIDATE.search(text)
    if found is None:
        return text
    # A quote is never part of a number nor of a token kept whole, so the full pattern needs to run only between
    # the quotes around each candidate (in a JSON line: the one string that holds it), not over the whole line.
    parts: list[str] = []
    done = 0
    while found is not None:
        start = max(text.rfind('"', done, found.start()) + 1, done)
        end = text.find('"', found.end())
        end = len(text) if end < 0 else end
        parts += (text[done:start], _PERSONAL.sub(_mask, text[start:end]))
        done = end
        found = _CANDIDATE.search(text, end)
    parts.append(text[done:])
    return "".join(parts)


def _quote_numbers(value: Any) -> Any:
    """A mobile or ID number logged as an int would be written as a bare JSON number, and masking it would
    break the JSON: such ints become strings before serialisation, so the line redaction masks them."""
    if type(value) is int:
        if abs(value) >= _SMALLEST_NUMBER and _PERSONAL.search(str(value)):
            return str(value)
        return value
    if isinstance(value, dict):
        return {k: _quote_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_quote_numbers(v) for v in value]
    return value


class _QuotingEncoder(JsonEncoder):
    def default(self, o: Any) -> Any:
        # Dataclasses and the like become dicts here, after process_log_record has run.
        return _quote_numbers(super().default(o))


class _JsonFormatter(JsonFormatter):
    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for k, v in log_data.items():
            if isinstance(v, int | dict | list | tuple):
                log_data[k] = _quote_numbers(v)
        return log_data


class RedactingFormatter(logging.Formatter):
    """Redacts what another formatter writes: the whole line, so message, arguments, extra fields, exception
    text, traceback and stack all pass through it."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def json_formatter(service: str) -> RedactingFormatter:
    return RedactingFormatter(
        _JsonFormatter(
            "{asctime}{levelname}{name}{message}{trace_id}{span_id}",
            style="{",
            rename_fields={"levelname": "level", "asctime": "time"},
            static_fields={"service": service},
            json_encoder=_QuotingEncoder,
        )
    )


class _StreamHandler(logging.StreamHandler):
    def handleError(self, record: logging.LogRecord) -> None:
        # The default report of a failed log call prints the record's message and arguments as they are.
        report = io.StringIO()
        with contextlib.redirect_stderr(report):
            super().handleError(record)
        if report.getvalue() and sys.stderr:
            sys.stderr.write(redact(report.getvalue()))


class TraceContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = f"{ctx.trace_id:032x}" if ctx.is_valid else ""
        record.span_id = f"{ctx.span_id:016x}" if ctx.is_valid else ""
        return True


def setup_logging(service: str, level: str | None = None) -> None:
    handler = _StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter(service))
    handler.addFilter(TraceContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))


def setup_tracing(service: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """Installs the global tracer provider; OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set, or
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (traces only: the local stack's span receiver takes no metrics)."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
    else:
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        trace.set_tracer_provider(provider)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def current_trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else ""

"""Metrics: every instrument of the platform, declared once (name, unit, description, label keys), and the
per-process set-up that exports them: a Prometheus endpoint (PSP_METRICS_PORT) and OTLP when
OTEL_EXPORTER_OTLP_ENDPOINT is set (and OTEL_METRICS_EXPORTER does not leave otlp out).

This module is the catalogue the dashboards and alert rules in deploy/observability/ are checked against
(tests/deploy/test_observability.py). Labels are low-cardinality and never personal: no number, no line hash,
no case, review or notification id, no person's id. A recording call must give exactly the label keys its
instrument declares; a value that carries a long run of digits is replaced (it could be a number).

Prometheus names (what PromQL uses) follow the exporter: dots become underscores, the unit is appended
(s → _seconds; a {annotation} unit adds nothing), counters end in _total, histograms have _bucket/_sum/_count.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

log = logging.getLogger(__name__)

Kind = Literal["counter", "histogram", "gauge"]
METER = "psp"

# Label keys no instrument may declare: they name a person, a line or one case (tests/test_metrics.py).
PERSONAL_LABEL_WORDS = (
    "msisdn",
    "number",
    "phone",
    "hash",
    "imsi",
    "imei",
    "holder",
    "name",
    "id_number",
    "case",
    "review_id",
    "notification",
    "request",
    "principal",
    "reviewer",
    "agent",
    "hall",
    "email",
    "address",
    "ip",
    "trace",
    "evidence",
)
_DIGITS = re.compile(r"\d{6,}")
_MAX_VALUE = 64

# Seconds: a scoring batch (milliseconds), a delivery (seconds to a day), a restore (minutes to weeks).
FAST_S = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DELIVERY_S = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0)
LAG_S = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)
RESTORE_S = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0, 172800.0, 604800.0, 2592000.0)


@dataclass(frozen=True)
class Spec:
    name: str
    kind: Kind
    unit: str
    description: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None

    def prometheus_name(self) -> str:
        """The family name the Prometheus exporter gives it (see the module doc)."""
        from opentelemetry.exporter.prometheus._mapping import map_unit, sanitize_full_name

        name = sanitize_full_name(self.name)
        unit = map_unit(self.unit)
        if unit and not name.endswith(f"_{unit}"):
            name = f"{name}_{unit}"
        return name

    def prometheus_series(self) -> tuple[str, ...]:
        """The series names PromQL can select."""
        base = self.prometheus_name()
        if self.kind == "counter":
            return (f"{base}_total",)
        if self.kind == "histogram":
            return (f"{base}_bucket", f"{base}_sum", f"{base}_count")
        return (base,)


CATALOGUE: list[Spec] = []


def _clean(key: str, value: object) -> str:
    text = str(value)
    if len(text) > _MAX_VALUE or _DIGITS.search(text):
        log.warning("metric label %s: a value that may be personal or unbounded was replaced", key)
        return "redacted"
    return text


@dataclass
class _Instrument:
    spec: Spec
    _made: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if any(s.name == self.spec.name for s in CATALOGUE):
            raise ValueError(f"metric {self.spec.name} declared twice")
        CATALOGUE.append(self.spec)

    def _attributes(self, labels: dict[str, object]) -> dict[str, str]:
        if set(labels) != set(self.spec.labels):
            raise ValueError(f"{self.spec.name} takes labels {self.spec.labels}, not {tuple(labels)}")
        return {k: _clean(k, v) for k, v in labels.items()}

    def _instrument(self) -> Any:
        # Made from the global meter on first use: a proxy until setup() installs the SDK's provider.
        if self._made is None:
            self._made = make(metrics.get_meter(METER), self.spec)
        return self._made


class Counter(_Instrument):
    def add(self, amount: float = 1, **labels: object) -> None:
        if amount:
            self._instrument().add(amount, self._attributes(labels))


class Histogram(_Instrument):
    def record(self, value: float, **labels: object) -> None:
        self._instrument().record(max(0.0, value), self._attributes(labels))


class Gauge(_Instrument):
    def set(self, value: float, **labels: object) -> None:
        self._instrument().set(value, self._attributes(labels))


def make(meter: metrics.Meter, spec: Spec) -> Any:
    """The OpenTelemetry instrument for `spec` on `meter`."""
    if spec.kind == "counter":
        return meter.create_counter(spec.name, spec.unit, spec.description)
    if spec.kind == "histogram":
        return meter.create_histogram(
            spec.name, spec.unit, spec.description, explicit_bucket_boundaries_advisory=spec.buckets
        )
    return meter.create_gauge(spec.name, spec.unit, spec.description)


def counter(name: str, unit: str, description: str, labels: Sequence[str] = ()) -> Counter:
    return Counter(Spec(name, "counter", unit, description, tuple(labels)))


def histogram(
    name: str, unit: str, description: str, labels: Sequence[str] = (), buckets: Sequence[float] = FAST_S
) -> Histogram:
    return Histogram(Spec(name, "histogram", unit, description, tuple(labels), tuple(buckets)))


def gauge(name: str, unit: str, description: str, labels: Sequence[str] = ()) -> Gauge:
    return Gauge(Spec(name, "gauge", unit, description, tuple(labels)))


# ---- the catalogue -------------------------------------------------------------------------------------------

# scoring (recorded through services/scoring/metrics.py)
CDRS_INGESTED = counter(
    "psp.scoring.cdrs.ingested",
    "{cdr}",
    "CDRs of accepted batches (repeated batches excluded; those left out for event time are also in cdrs.dropped)",
)
CDRS_REFUSED = counter(
    "psp.scoring.cdrs.refused", "{cdr}", "CDRs in batches refused before scoring, by ErrorInfo reason", ["reason"]
)
CDRS_DROPPED = counter(
    "psp.scoring.cdrs.dropped",
    "{cdr}",
    "CDRs of accepted batches the engine left out for their event time: future (beyond the clock's skew), late (too"
    " late for the hour window)",
    ["reason"],
)
CDRS_LATE = counter(
    "psp.scoring.cdrs.late",
    "{cdr}",
    "CDRs counted although late: within the allowed lateness, or beyond it (day-scale windows only)",
    ["lateness"],
)
DECISION_DURATION = histogram(
    "psp.scoring.decision.duration", "s", "Time to score one CDR batch and record its decisions (per batch)"
)
INGEST_LAG = histogram(
    "psp.scoring.ingest.lag",
    "s",
    "How far behind real time scoring runs: from the start of a batch's newest call to its scoring",
    buckets=LAG_S,
)
CHECKPOINT_AGE = gauge(
    "psp.scoring.checkpoint.age",
    "s",
    "Age of the oldest checkpoint among a scoring shard's partitions: the span of journal a restart would replay",
    ["shard"],
)
DECISIONS = counter(
    "psp.scoring.decisions", "{decision}", "Decisions taken, by risk level and action", ["risk_level", "action"]
)
CASES_OPENED = counter("psp.cases.opened", "{case}", "Cases started by scoring (new workflows)", ["risk_level"])

# the case worker
CASES_CLOSED = counter(
    "psp.cases.closed",
    "{case}",
    "Cases closed, by outcome fed back to scoring: false_positive, confirmed_fraud, closed_unverified",
    ["outcome"],
)
CASES_IN_STAGE = gauge(
    "psp.cases.in_stage",
    "{case}",
    "Open cases by current stage (Temporal visibility; needs_attention included)",
    ["stage"],
)
ACTIVITY_FAILURES = counter(
    "psp.activity.failures",
    "{failure}",
    "Case-saga activity attempts that failed, by activity and error",
    ["activity", "error"],
)

# suspension
LINE_TRANSITIONS = counter(
    "psp.lines.transitions",
    "{transition}",
    "Line state changes applied (HLR and database), by from/to state and kind of actor",
    ["from_state", "to_state", "actor"],
)
STOP_TO_RESTORE = histogram(
    "psp.lines.stop_to_restore.duration",
    "s",
    "Time from a line's restriction or suspension to its restore",
    ["from_state"],
    RESTORE_S,
)
HLR_MISMATCHES = counter(
    "psp.hlr.mismatches",
    "{mismatch}",
    "HLR barring found different from the database (get_line) or put back after a failed change (reconcile)",
    ["source"],
)

# notify
NOTIFY_ATTEMPTS = counter(
    "psp.notify.attempts",
    "{attempt}",
    "Send attempts, by channel, where the handset was and what the channel answered",
    ["channel", "location", "outcome"],
)
NOTIFICATIONS = counter(
    "psp.notify.notifications",
    "{notification}",
    "Notifications finished: delivered (by the channel that landed) or undelivered (channel none), by purpose and"
    " where the handset was",
    ["purpose", "channel", "location", "outcome"],
)
DELIVERY_DURATION = histogram(
    "psp.notify.delivery.duration",
    "s",
    "Time from a notification's request to its delivery",
    ["purpose", "channel", "location"],
    DELIVERY_S,
)

# verification
VERIFICATIONS = counter(
    "psp.verifications", "{verification}", "Verification checks decided, by route and result", ["route", "result"]
)
LOCKOUTS = counter(
    "psp.verification.lockouts",
    "{refusal}",
    "Checks refused because the line or the caller is locked out after failed attempts",
    ["scope"],
)
REVIEWS_WAITING = gauge("psp.reviews.waiting", "{review}", "Reviews waiting for a reviewer, by kind", ["kind"])
REVIEWS_PAST_SLA = gauge("psp.reviews.past_sla", "{review}", "Waiting reviews whose SLA has run out, by kind", ["kind"])
AUTHORITY_ORDERS = counter(
    "psp.authority.orders",
    "{order}",
    "Orders from an authority recorded, by authority and order",
    ["authority", "order"],
)

# every gRPC server (the guard in pscommon/grpc_server.py)
AUTH_DENIALS = counter(
    "psp.rpc.denials",
    "{denial}",
    "Calls refused by the guard: unauthenticated (no or unknown principal) or permission_denied (access table)",
    ["service", "method", "role", "code"],
)

# the portal (services/portal/web.py): by route pattern, never the path (a holder's path carries a link token)
PORTAL_REQUESTS = counter(
    "psp.portal.requests",
    "{request}",
    "Portal requests answered, by route pattern and HTTP status (the reviewer console's and the holder's pages)",
    ["route", "status"],
)

SPECS: dict[str, Spec] = {s.name: s for s in CATALOGUE}


# ---- per-process set-up --------------------------------------------------------------------------------------


@dataclass
class Exporting:
    provider: MeterProvider
    port: int | None  # the Prometheus endpoint's port, None without one


_lock = threading.Lock()
_exporting: Exporting | None = None


def setup(
    service: str, port: int | None = None, host: str | None = None, readers: Sequence[MetricReader] = ()
) -> Exporting:
    """Installs the global meter provider once per process: a Prometheus endpoint at http://host:port/metrics
    when a port is given (0: any free port), OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, and `readers`."""
    global _exporting
    with _lock:
        if _exporting is not None:
            return _exporting
        all_readers: list[MetricReader] = list(readers)
        bound: int | None = None
        if port is not None:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import start_http_server

            all_readers.append(PrometheusMetricReader(scope_info_enabled=False))
            server, _thread = start_http_server(port, addr=host or os.environ.get("PSP_BIND_HOST", "127.0.0.1"))
            bound = int(server.server_port)
            log.info("metrics on http://%s:%d/metrics", server.server_address[0], bound)
        if otlp_metrics():
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            all_readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        provider = MeterProvider(metric_readers=all_readers, resource=Resource.create({"service.name": service}))
        metrics.set_meter_provider(provider)
        _exporting = Exporting(provider, bound)
        return _exporting


def otlp_metrics() -> bool:
    """Metrics go over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, unless OTEL_METRICS_EXPORTER (the SDK's list,
    default otlp) leaves otlp out: Kubernetes scrapes each pod's endpoint and keeps OTLP for traces, so that no
    series reaches Prometheus twice."""
    exporters = {e.strip() for e in os.environ.get("OTEL_METRICS_EXPORTER", "otlp").split(",")}
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")) and "otlp" in exporters


def setup_from_settings(service: str, port: int | None) -> Exporting | None:
    """What a process does at start: export when it has a metrics port or sends metrics over OTLP."""
    if port is None and not otlp_metrics():
        return None
    return setup(service, port)

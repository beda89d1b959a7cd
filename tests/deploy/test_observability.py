"""Offline checks of deploy/observability/: the Grafana dashboard (JSON), the Prometheus configuration and alert
rules (YAML) and the OpenTelemetry Collector configuration parse; every metric a PromQL expression names is one
the code emits, under the name the Prometheus exporter really gives it (found by scraping an exporter fed with
every instrument of the catalogue, pscommon/metrics.py); every label an expression selects or groups by is one
its metrics carry."""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

import pytest
import yaml
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pscommon import metrics

ROOT = pathlib.Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"
DASHBOARD = OBS / "grafana" / "psp-overview.json"
ALERTS = OBS / "prometheus" / "alerts.yaml"
PROMETHEUS = OBS / "prometheus" / "prometheus.yaml"
COLLECTOR = OBS / "otel-collector.yaml"
RUNBOOK = ROOT / "docs" / "operations.md"

# Series Prometheus itself adds; labels every scraped series may carry.
BUILTIN_SERIES = {"up"}
TARGET_LABELS = {"job", "instance", "le"}
PROMQL_WORDS = {
    "sum",
    "rate",
    "increase",
    "by",
    "without",
    "histogram_quantile",
    "clamp_min",
    "clamp_max",
    "max",
    "min",
    "avg",
    "count",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "offset",
    "bool",
    "abs",
    "topk",
    "e",
}


@pytest.fixture(scope="module")
def scraped() -> dict[str, set[str]]:
    """Every series name the exporter writes for the catalogue, with its label names: one value recorded per
    instrument on a private provider and registry, then the text a scrape of /metrics returns, parsed."""
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(scope_info_enabled=False, registry=registry)
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("psp")
    for spec in metrics.CATALOGUE:
        instrument = metrics.make(meter, spec)
        labels = {k: "x" for k in spec.labels}
        record = {"counter": "add", "histogram": "record", "gauge": "set"}[spec.kind]
        getattr(instrument, record)(1, labels)
    text = generate_latest(registry).decode()
    provider.shutdown()
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def test_the_catalogue_names_match_the_exporters(scraped):
    for spec in metrics.CATALOGUE:
        for series in spec.prometheus_series():
            assert series in scraped, f"{spec.name}: {series} not in {sorted(n for n in scraped if 'psp' in n)}"
            assert set(spec.labels) <= scraped[series], series
    counters = [s for s in metrics.CATALOGUE if s.kind == "counter"]
    assert all(s.prometheus_series()[0].endswith("_total") for s in counters)
    assert "psp_scoring_decision_duration_seconds_bucket" in scraped  # unit suffix: s → _seconds


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
        for inner in panel.get("panels", []):
            found += [(inner["title"], t["expr"]) for t in inner.get("targets", [])]
    return found


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def metric_names(expr: str) -> set[str]:
    """The series an expression selects: identifiers that are neither functions, keywords, label names (inside
    braces or after by/without), durations nor numbers."""
    text = _strip_strings(expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)
    idents = set(re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)", text))
    return {i for i in idents if i not in PROMQL_WORDS and not re.fullmatch(r"\d+(e\d+)?", i)}


def selected_labels(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names in its {matchers}) for each selector."""
    text = _strip_strings(expr)
    return [
        (name, set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", body)))
        for name, body in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", text)
    ]


def grouped_labels(expr: str) -> set[str]:
    found: set[str] = set()
    for body in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", _strip_strings(expr)):
        found |= {label.strip() for label in body.split(",") if label.strip()}
    return found


def every_expression() -> list[tuple[str, str]]:
    return dashboard_exprs() + [(rule["alert"], rule["expr"]) for rule in alert_rules()]


def test_the_dashboard_has_the_carrier_and_sre_views():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    titles = " | ".join(p["title"].lower() for p in dash["panels"])
    for words in (
        "stopped",
        "restored",
        "false-positive",
        "roamers",
        "stop to restore",
        "past sla",
        "ingest rate",
        "ingest lag",
        "latency",
        "denials",
        "saga",
        "needing attention",
        "mismatches",
    ):
        assert words in titles, words
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]


def test_every_expression_names_series_the_code_emits(scraped):
    exprs = every_expression()
    assert len(exprs) >= 30
    for where, expr in exprs:
        names = metric_names(expr)
        assert names, (where, expr)
        unknown = {n for n in names if n not in scraped and n not in BUILTIN_SERIES}
        assert not unknown, f"{where}: {sorted(unknown)} not emitted ({expr})"
        for name, labels in selected_labels(expr):
            if name in BUILTIN_SERIES:
                continue
            assert labels <= scraped[name] | TARGET_LABELS, f"{where}: {name} has no label {labels - scraped[name]}"
        carried = set().union(*(scraped.get(n, set()) for n in names)) | TARGET_LABELS
        assert grouped_labels(expr) <= carried, f"{where}: groups by {grouped_labels(expr) - carried}"


def test_the_rules_are_prometheus_rules_with_a_runbook_section_each():
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    runbook = RUNBOOK.read_text().lower()
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule["alert"]
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["alert"]
        anchor = rule["annotations"]["runbook"].rpartition("#")[2]
        assert anchor == rule["alert"].lower() and f"### {anchor}" in runbook, rule["alert"]
    for needed in (
        "PspWarningUndeliveredToRoamer",
        "PspRestoresSlowerThanTarget",
        "PspReviewsPastSla",
        "PspHlrMismatch",
        "PspCasesNeedAttention",
        "PspAuthorizationDenialSpike",
    ):
        assert needed in names
    assert yaml.safe_load(PROMETHEUS.read_text())["rule_files"] == [ALERTS.name]


def test_the_collector_receives_otlp_and_exports_traces_and_metrics():
    cfg = yaml.safe_load(COLLECTOR.read_text())
    assert {"grpc", "http"} <= set(cfg["receivers"]["otlp"]["protocols"])
    pipelines = cfg["service"]["pipelines"]
    assert {"traces", "metrics"} <= set(pipelines)
    for name, pipeline in pipelines.items():
        assert pipeline["receivers"] == ["otlp"], name
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in cfg[kind], f"{name}: {component} is not configured under {kind}"
    used = {c for p in pipelines.values() for kind in ("processors", "exporters") for c in p.get(kind, [])}
    assert set(cfg["exporters"]) | set(cfg["processors"]) <= used, "a configured component no pipeline uses"
    k8s = yaml.safe_load((ROOT / "deploy" / "k8s" / "config.yaml").read_text())
    endpoint = k8s["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert endpoint.endswith(":" + cfg["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].rpartition(":")[2])

"""Every process that records metrics serves them in Kubernetes and Prometheus scrapes them (deploy/k8s/ and
deploy/observability/prometheus/prometheus.yaml, offline): PSP_METRICS_PORT in the ConfigMap, the containerPort and
the prometheus.io/* pod annotations on that port, the psp-pods job's relabelling turning a pod into that target, a
NetworkPolicy letting Prometheus (and only Prometheus) in on it, and no series sent twice (over OTLP as well)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from pscommon import metrics
from tests.deploy.manifests import (
    NAMESPACE,
    ROOT,
    WORKLOADS,
    Doc,
    config_data,
    fail_if,
    main_container,
    module_source,
    of_kind,
)

PROMETHEUS = yaml.safe_load((ROOT / "deploy" / "observability" / "prometheus" / "prometheus.yaml").read_text())
PROMETHEUS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}


def _records_metrics(dep: Doc) -> bool:
    """Its code sets up the metrics exporter (pscommon.metrics.setup_from_settings, directly or through
    pscommon.grpc_server.serve_forever)."""
    source = module_source(dep)
    return bool(re.search(r"setup_from_settings\(|grpc_server\.serve_forever\(", source))


METRIC_WORKLOADS = [d for d in WORKLOADS if _records_metrics(d)]


def _port() -> int:
    return int(config_data()["PSP_METRICS_PORT"])


def test_the_processes_that_record_metrics() -> None:
    names = {d.name for d in METRIC_WORKLOADS}
    assert names == {"scoring", "suspension", "notify", "verification", "worker", "portal", "reviewer-console"}, names


@pytest.mark.parametrize("dep", METRIC_WORKLOADS, ids=lambda d: d.name)
def test_the_pod_declares_and_annotates_its_metrics_port(dep: Doc) -> None:
    problems = []
    ports = [p for p in main_container(dep).get("ports") or [] if p.get("containerPort") == _port()]
    if [(p.get("name"), p.get("protocol", "TCP")) for p in ports] != [("metrics", "TCP")]:
        problems.append(f"{dep.ref}: no containerPort 'metrics' {_port()}/TCP (PSP_METRICS_PORT)")
    annotations = dep.obj["spec"]["template"]["metadata"].get("annotations") or {}
    expected = {"prometheus.io/scrape": "true", "prometheus.io/port": str(_port()), "prometheus.io/path": "/metrics"}
    if {k: annotations.get(k) for k in expected} != expected:
        problems.append(f"{dep.ref}: pod annotations {annotations}, expected {expected}")
    fail_if(problems)


def test_the_bind_host_reaches_outside_the_pod() -> None:
    assert config_data()["PSP_BIND_HOST"] == "0.0.0.0"


def _expand(m: re.Match[str], replacement: str) -> str:
    """$1 or ${1} in a replacement, as Prometheus expands them."""
    return re.sub(r"\$\{(\d+)\}|\$(\d+)", lambda g: m.group(int(g[1] or g[2])), replacement)


def _relabel(job: dict[str, Any], labels: dict[str, str]) -> dict[str, str] | None:
    """Prometheus's relabelling (keep and replace, the actions the job uses) applied to one discovered target."""
    labels = dict(labels)
    for rule in job.get("relabel_configs") or []:
        value = (rule.get("separator", ";")).join(labels.get(s, "") for s in rule.get("source_labels") or [])
        regex = re.compile(f"^(?:{rule.get('regex', '(.*)')})$")
        action = rule.get("action", "replace")
        if action == "keep":
            if not regex.match(value):
                return None
        elif action == "replace":
            m = regex.match(value)
            if m:
                labels[rule["target_label"]] = _expand(m, rule.get("replacement", "$1"))
        else:
            raise AssertionError(f"this test does not model action {action!r}")
    return labels


@pytest.mark.parametrize("dep", METRIC_WORKLOADS, ids=lambda d: d.name)
def test_prometheus_scrapes_the_pod_on_its_metrics_port(dep: Doc) -> None:
    (job,) = [j for j in PROMETHEUS["scrape_configs"] if j["job_name"] == "psp-pods"]
    assert NAMESPACE in job["kubernetes_sd_configs"][0]["namespaces"]["names"]
    template = dep.obj["spec"]["template"]["metadata"]
    # What Kubernetes service discovery gives a pod's target: one per declared port, the first one here.
    first_port = main_container(dep)["ports"][0]["containerPort"]
    discovered = {"__address__": f"10.1.2.3:{first_port}", "__meta_kubernetes_pod_name": f"{dep.name}-0"}
    for key, value in template.get("labels", {}).items():
        discovered["__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
    for key, value in template.get("annotations", {}).items():
        discovered["__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
    target = _relabel(job, discovered)
    assert target is not None, f"{dep.ref}: the psp-pods job drops the pod"
    assert target["__address__"] == f"10.1.2.3:{_port()}", target
    assert target.get("__metrics_path__", template["annotations"]["prometheus.io/path"]) == "/metrics"


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        value, op = labels.get(expr["key"]), expr["operator"]
        if (op == "In" and value not in expr["values"]) or (op == "NotIn" and value in expr["values"]):
            return False
        if (op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
            return False
    return True


@pytest.mark.parametrize("dep", METRIC_WORKLOADS, ids=lambda d: d.name)
def test_only_prometheus_may_reach_the_metrics_port(dep: Doc) -> None:
    labels = dep.obj["spec"]["template"]["metadata"]["labels"]
    peers = []
    for policy in of_kind("NetworkPolicy"):
        spec = policy.obj["spec"]
        if not _selects(spec.get("podSelector") or {}, labels):
            continue
        for rule in spec.get("ingress") or []:
            ports = rule.get("ports") or []
            if not ports or any(p.get("port") in (_port(), "metrics") for p in ports):
                peers += rule.get("from") or [{}]
    assert peers == [PROMETHEUS_PEER], f"{dep.ref}: peers admitted on {_port()}: {peers}"


def test_metrics_reach_prometheus_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the ConfigMap's settings a process serves /metrics and does not also push metrics over OTLP (the
    collector would export them to Prometheus a second time), while traces still go over OTLP."""
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_METRICS_EXPORTER"):
        monkeypatch.setenv(name, config_data()[name])
    assert config_data()["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert metrics.otlp_metrics() is False

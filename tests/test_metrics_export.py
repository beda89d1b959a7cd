"""Where a process sends its metrics (pscommon/metrics.py): OTLP only when an endpoint is set and
OTEL_METRICS_EXPORTER keeps otlp, as Kubernetes does not (deploy/k8s/config.yaml: pods are scraped instead)."""

from __future__ import annotations

import pytest

from pscommon import metrics


@pytest.mark.parametrize(
    ("endpoint", "exporters", "expected"),
    [
        (None, None, False),
        ("http://collector:4317", None, True),  # the SDK's default list is otlp
        ("http://collector:4317", "otlp", True),
        ("http://collector:4317", "prometheus, otlp", True),
        ("http://collector:4317", "prometheus", False),
        ("http://collector:4317", "none", False),
        (None, "otlp", False),
    ],
)
def test_metrics_go_over_otlp_only_when_an_endpoint_is_set_and_otlp_is_listed(
    monkeypatch: pytest.MonkeyPatch, endpoint: str | None, exporters: str | None, expected: bool
) -> None:
    for name, value in (("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint), ("OTEL_METRICS_EXPORTER", exporters)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert metrics.otlp_metrics() is expected


def test_without_a_port_or_otlp_metrics_nothing_is_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    assert metrics.setup_from_settings("test", None) is None

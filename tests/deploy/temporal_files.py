"""deploy/temporal/ loaded once for the tests of Temporal in production (test_temporal_values.py,
test_temporal_setup_job.py, test_temporal_clients.py): the chart's values, Temporal's certificates, the Job."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.manifests import ROOT, Doc, config_data

TEMPORAL_DIR = ROOT / "deploy" / "temporal"
VALUES_FILE = TEMPORAL_DIR / "values.yaml"
CERTIFICATES_FILE = TEMPORAL_DIR / "certificates.yaml"
JOB_FILE = TEMPORAL_DIR / "namespace-setup-job.yaml"
CA_EXAMPLE_FILE = TEMPORAL_DIR / "examples" / "ca-bootstrap.yaml"
# What the chart's values may hold, recorded from the chart version the values are written for.
CHART = json.loads((Path(__file__).parent / "schemas" / "temporal-chart-1.6.0-values.json").read_text(encoding="utf-8"))

TEMPORAL_NAMESPACE = "temporal"  # where the chart is installed (release "temporal")
TEMPORAL_ISSUER = "temporal-ca"
TEMPORAL_CA_SECRET = "temporal-ca"
TEMPORAL_CLIENTS_FILE = "temporal-clients.yaml"  # in deploy/k8s/, rendered by render.py
JOB_NAME = "temporal-namespace-setup"


def load_docs(path: Path) -> list[Doc]:
    name = path.relative_to(ROOT / "deploy").as_posix()
    loaded = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    return [Doc(name, i, obj) for i, obj in enumerate(loaded) if obj is not None]


VALUES: dict[str, Any] = yaml.safe_load(VALUES_FILE.read_text(encoding="utf-8"))
CERT_DOCS = load_docs(CERTIFICATES_FILE)
JOB_DOCS = load_docs(JOB_FILE)
CA_EXAMPLE_DOCS = load_docs(CA_EXAMPLE_FILE)


def certificate_for_secret(docs: list[Doc], secret: str) -> Doc:
    found = [d for d in docs if d.kind == "Certificate" and d.obj["spec"].get("secretName") == secret]
    assert len(found) == 1, f"Certificates writing Secret {secret!r}: {[d.ref for d in found]}, expected one"
    return found[0]


def job() -> Doc:
    (found,) = [d for d in JOB_DOCS if d.kind == "Job"]
    return found


def job_env() -> dict[str, Any]:
    (container,) = job().obj["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container.get("env") or []}


def frontend_host() -> str:
    """The host the platform's processes dial (TEMPORAL_ADDRESS in the ConfigMap)."""
    return config_data()["TEMPORAL_ADDRESS"].rpartition(":")[0]


def hours(duration: str) -> float:
    """A Temporal CLI / chart retention ("30d", "720h") in hours."""
    m = re.fullmatch(r"(\d+)(d|h)", duration)
    assert m, f"not a retention this test reads: {duration!r}"
    return int(m[1]) * (24 if m[2] == "d" else 1)

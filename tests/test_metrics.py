"""Metrics: a small case through the in-process stack, then a scrape of the Prometheus endpoint: the main series
exist with sensible values, every label is one the catalogue declares, and none is personal. Then the local
stack (`python -m stack up`, as `make up`): each process's metrics URL is printed, and after the demo each
serves its series."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio import activity, workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.service import RPCError
from temporalio.worker import Worker

from carrier.common.v1 import common_pb2
from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from carrier.verification.v1 import verification_pb2, verification_pb2_grpc
from contracts.case import UPDATE_WAIT_STAGE, CaseStatus
from pscommon import db, metrics
from services.verification import metrics as verification_metrics
from services.verification.server import MIGRATIONS as VERIFICATION_MIGRATIONS
from stack import ports as stack_ports
from stack.processes import REPO
from tests.helpers import connect, ingest, open_case, reach, register_line, rid, scam_burst
from tests.verification.test_tiers import online
from tests.verification.test_tiers import stub as verification_stub
from workflows import metrics as case_metrics

MSISDN = "19312340077"
HOLDER = "holder-44-0077"


def test_no_label_key_in_the_catalogue_is_personal():
    assert len(metrics.CATALOGUE) >= 20
    for spec in metrics.CATALOGUE:
        assert spec.name.startswith("psp."), spec.name
        assert spec.unit and spec.description, spec.name
        for key in spec.labels:
            parts = set(key.split("_"))
            bad = [w for w in metrics.PERSONAL_LABEL_WORDS if w in parts or key == w or key.endswith("_id")]
            assert not bad, f"{spec.name}: label {key!r} may carry personal data ({bad})"


def test_a_recording_must_give_exactly_the_declared_labels_and_numbers_are_dropped():
    with pytest.raises(ValueError):
        metrics.DECISIONS.add(1, risk_level="high")  # action missing
    with pytest.raises(ValueError):
        metrics.CDRS_INGESTED.add(1, msisdn=MSISDN)
    assert metrics._clean("reason", MSISDN) == "redacted"
    assert metrics._clean("reason", "CDR_TIMESTAMP_OUT_OF_RANGE") == "CDR_TIMESTAMP_OUT_OF_RANGE"


def scrape(port_or_url: int | str) -> dict[str, list[tuple[dict[str, str], float]]]:
    url = port_or_url if isinstance(port_or_url, str) else f"http://127.0.0.1:{port_or_url}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    assert MSISDN not in text and MSISDN[-8:] not in text and HOLDER not in text
    assert not re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", text), "a mobile number in the metrics"
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            series.setdefault(s.name, []).append((dict(s.labels), s.value))
    return series


def total(series, name: str, **labels: str) -> float:
    return sum(v for got, v in series.get(name, []) if all(got.get(k) == want for k, want in labels.items()))


async def test_a_case_shows_in_every_main_series(stack):
    exporting = metrics.setup("tests", port=0)
    assert exporting.port is not None
    cfg = stack.cfg
    await register_line(cfg, MSISDN, "44", HOLDER)
    resp = await ingest(cfg, scam_burst(MSISDN, datetime(2026, 11, 21, 9, 0, tzinfo=UTC)))
    decision = resp.decisions[-1]
    assert decision.action == common_pb2.ACTION_SUSPEND
    handle = stack.client.get_workflow_handle(decision.case_id, result_type=CaseStatus)
    await handle.execute_update(UPDATE_WAIT_STAGE, "warned", result_type=CaseStatus)
    await stack.env.sleep(timedelta(hours=3))
    await handle.execute_update(UPDATE_WAIT_STAGE, "suspended", result_type=CaseStatus)

    # A caller the access table refuses, and the HLR found out of step with the database.
    app = suspension_pb2_grpc.SuspensionServiceStub(connect(cfg, "suspension", "app"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await app.ListLineHistory(suspension_pb2.ListLineHistoryRequest(msisdn=MSISDN))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    ops = suspension_pb2_grpc.SuspensionServiceStub(connect(cfg, "suspension", "ops"))
    handset = stack.sims.network.handset(MSISDN)
    handset.barring.data = not handset.barring.data
    try:
        assert not (await ops.GetLine(suspension_pb2.GetLineRequest(msisdn=MSISDN))).in_sync
    finally:
        handset.barring.data = not handset.barring.data

    hall = verification_pb2_grpc.VerificationServiceStub(connect(cfg, "verification", "hall"))
    reviewer = verification_pb2_grpc.VerificationServiceStub(connect(cfg, "verification", "reviewer-1"))
    outcome = await hall.SubmitInPersonVerification(
        verification_pb2.SubmitInPersonVerificationRequest(
            request_id=rid(),
            case_id=decision.case_id,
            msisdn=MSISDN,
            risk_level=common_pb2.RISK_LEVEL_EXTREME,
            claimed_holder_ref=HOLDER,
            hall_id="GZ-TIANHE-01",
            agent_id="agent-4471",
            province_code_token=f"44-{HOLDER}",
            risk_notice_signed=True,
            extra_evidence=["employment-letter"],
        )
    )
    assert outcome.outcome.result == verification_pb2.RESULT_PENDING_REVIEW
    pool = await db.connect(cfg.database_url, "verification", VERIFICATION_MIGRATIONS)
    try:
        waiting = await verification_metrics.refresh_review_gauges(pool)
    finally:
        await pool.close()
    assert waiting["restore_approval"][0] >= 1
    await handle.execute_update(UPDATE_WAIT_STAGE, "awaiting_reviewer", result_type=CaseStatus)
    try:
        stages = await case_metrics.refresh_stage_gauge(stack.client)
    except RPCError:
        stages = None  # the time-skipping test server has no visibility queries; the dev server (make up) has
    if stages is not None:
        assert stages["awaiting_reviewer"] >= 1
    review_id = outcome.outcome.review_id
    await reviewer.ClaimReview(verification_pb2.ClaimReviewRequest(request_id=rid(), review_id=review_id))
    await reviewer.DecideReview(
        verification_pb2.DecideReviewRequest(
            request_id=rid(), review_id=review_id, decision=verification_pb2.DECISION_APPROVE, note="in order"
        )
    )
    assert (await handle.result()).stage == "restored"

    got = scrape(exporting.port)
    assert total(got, "psp_scoring_cdrs_ingested_total") >= 20
    assert total(got, "psp_scoring_decisions_total", risk_level="extreme", action="suspend") >= 1
    assert total(got, "psp_scoring_decision_duration_seconds_count") >= 1
    assert 0 < total(got, "psp_scoring_decision_duration_seconds_sum") < 60
    assert total(got, "psp_scoring_ingest_lag_seconds_count") >= 1  # the scenario's calls lie in the past
    assert total(got, "psp_cases_opened_total") >= 1
    for to_state in ("warned", "suspended", "restored"):
        assert total(got, "psp_lines_transitions_total", to_state=to_state) >= 1, to_state
    assert total(got, "psp_lines_transitions_total", to_state="restored", actor="reviewer") >= 1
    assert total(got, "psp_lines_stop_to_restore_duration_seconds_count", from_state="suspended") >= 1
    assert total(got, "psp_lines_stop_to_restore_duration_seconds_bucket", le="+Inf") >= 1
    assert total(got, "psp_notify_attempts_total", channel="sms") >= 1
    assert total(got, "psp_notify_notifications_total", purpose="warning", outcome="delivered") >= 1
    assert total(got, "psp_notify_delivery_duration_seconds_count", purpose="warning") >= 1
    assert total(got, "psp_verifications_total", route="in_person_with_review", result="pending_review") >= 1
    assert total(got, "psp_reviews_waiting", kind="restore_approval") >= 1
    assert ("psp_reviews_past_sla", "restore_approval") in {
        (name, labels.get("kind")) for name, rows in got.items() for labels, _ in rows
    }
    assert total(got, "psp_cases_closed_total", outcome="false_positive") >= 1
    assert total(got, "psp_rpc_denials_total", method="ListLineHistory", role="app", code="permission_denied") >= 1
    assert total(got, "psp_hlr_mismatches_total", source="get_line") >= 1

    # Every label of every psp series is one its instrument declares (the exporter adds only `le`).
    declared = {s.prometheus_name(): set(s.labels) for s in metrics.CATALOGUE}
    for name, rows in got.items():
        if not name.startswith("psp_"):
            continue
        base = re.sub(r"_(total|bucket|sum|count|created)$", "", name)
        assert base in declared, name
        for labels, _ in rows:
            assert set(labels) - {"le"} <= declared[base], (name, labels)


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)


def test_every_process_of_the_local_stack_serves_its_metrics_after_the_demo():
    data = pathlib.Path(tempfile.mkdtemp(prefix="psp-metrics-"))
    ports = stack_ports.free()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith(("PSP_STACK_", "PSP_ENV"))}
    env["PSP_STACK_PORTS"] = stack_ports.render(ports)
    stack = [sys.executable, "-m", "stack"]
    try:
        up = run([*stack, "up", "--data-dir", str(data)], env)
        assert up.returncode == 0, up.stdout + up.stderr
        urls = dict(re.findall(r"^  (\S+) +metrics (http://\S+/metrics)$", up.stdout, re.M))
        assert set(urls) == {"suspension", "notify", "verification", "scoring", "worker"}, up.stdout
        assert urls["scoring"] == f"http://127.0.0.1:{ports['scoring-metrics']}/metrics"
        demo = run([sys.executable, "-m", "pscli.main", "demo"], {**env, "PSP_ENV_FILE": str(data / "stack.env")})
        assert demo.returncode == 0, demo.stdout + demo.stderr
        got = {name: scrape(url) for name, url in urls.items()}
    finally:
        run([*stack, "down", "--data-dir", str(data)], env)
        shutil.rmtree(data, ignore_errors=True)

    scoring, suspension, notify, verification, worker = (
        got[n] for n in ("scoring", "suspension", "notify", "verification", "worker")
    )
    assert total(scoring, "psp_scoring_cdrs_ingested_total") >= 20
    assert total(scoring, "psp_scoring_decisions_total", risk_level="extreme", action="suspend") >= 1
    assert 0 < total(scoring, "psp_scoring_decision_duration_seconds_sum") < 60
    assert total(scoring, "psp_cases_opened_total") >= 2
    assert total(suspension, "psp_lines_transitions_total", to_state="warned") >= 2
    assert total(suspension, "psp_lines_transitions_total", to_state="restored") >= 1
    assert total(notify, "psp_notify_notifications_total", purpose="warning", outcome="delivered") >= 1
    assert total(notify, "psp_notify_attempts_total") >= 1
    assert total(notify, "psp_notify_delivery_duration_seconds_count") >= 1
    assert total(verification, "psp_verifications_total", result="passed") >= 1
    assert {labels["kind"] for labels, _ in verification["psp_reviews_waiting"]} == {
        "appeal",
        "restore_approval",
        "termination",
    }
    assert total(worker, "psp_cases_closed_total", outcome="false_positive") >= 1
    stages = {labels["stage"] for labels, _ in worker["psp_cases_in_stage"]}  # from the dev server's visibility
    assert "needs_attention" in stages and len(stages) >= 20
    # Each process exports only its own series (plus the runtime's), the process named by its resource.
    assert not any(n.startswith("psp_scoring") for n in notify)


@activity.defn(name="always_fails")
async def always_fails() -> None:
    raise ApplicationError("the HLR refused", type="FAILED_PRECONDITION", non_retryable=True)


@workflow.defn(name="OneFailingActivity", sandboxed=False)
class OneFailingActivity:
    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.execute_activity(always_fails, start_to_close_timeout=timedelta(seconds=10))
        except ActivityError as err:
            return type(err.cause).__name__
        return "passed"


async def test_the_worker_counts_failed_activity_attempts(stack):
    exporting = metrics.setup("tests", port=0)
    before = total(scrape(exporting.port), "psp_activity_failures_total", activity="always_fails")
    queue = f"metrics-{rid()}"
    interceptors = [case_metrics.ActivityMetrics()]
    async with Worker(
        stack.client,
        task_queue=queue,
        workflows=[OneFailingActivity],
        activities=[always_fails],
        interceptors=interceptors,
    ):
        got = await stack.client.execute_workflow(OneFailingActivity.run, id=queue, task_queue=queue)
    assert got == "ApplicationError"
    after = scrape(exporting.port)
    assert (
        total(after, "psp_activity_failures_total", activity="always_fails", error="FAILED_PRECONDITION") == before + 1
    )


async def test_failed_checks_lockouts_and_authority_orders_are_counted(stack):
    exporting = metrics.setup("tests", port=0)
    before = scrape(exporting.port)
    msisdn, holder = "19312340078", "holder-44-0078"
    await register_line(stack.cfg, msisdn, "44", holder)
    case_id = await open_case(stack, msisdn, "medium", "restrict")
    await reach(stack, case_id, "warned")
    v = verification_stub(stack)
    for i in range(5):
        out = await v.SubmitOnlineVerification(online(case_id, msisdn, "forged-holder", caller_id=f"app-{i}"))
        assert out.outcome.result == verification_pb2.RESULT_FAILED
    with pytest.raises(grpc.aio.AioRpcError) as locked:
        await v.SubmitOnlineVerification(online(case_id, msisdn, holder))
    assert locked.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    police = verification_pb2_grpc.VerificationServiceStub(connect(stack.cfg, "verification", "police"))
    await police.SubmitAuthorityOrder(
        verification_pb2.SubmitAuthorityOrderRequest(
            request_id=rid(),
            case_id=case_id,
            authority=verification_pb2.AUTHORITY_POLICE,
            order=verification_pb2.ORDER_RESTORE,
            order_ref="GA-2026-1201-0001",
        )
    )
    # The case ends (restored) before the test does: no workflow task is left running when a later test blocks
    # the event loop the worker shares (a task held past its timeout stalls the time-skipping server).
    assert (await stack.client.get_workflow_handle(case_id, result_type=CaseStatus).result()).stage == "restored"
    after = scrape(exporting.port)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert grew("psp_verifications_total", route="online", result="failed") == 5
    assert grew("psp_verification_lockouts_total", scope="line") == 1
    assert grew("psp_authority_orders_total", authority="police", order="restore") == 1

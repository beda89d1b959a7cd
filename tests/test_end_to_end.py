"""A protective-suspension case end to end: real gRPC, a real Temporal server, a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from temporalio.api.enums.v1 import EventType

from carrier.common.v1 import common_pb2
from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from carrier.verification.v1 import verification_pb2, verification_pb2_grpc
from contracts.case import UPDATE_WAIT_STAGE, CaseStatus
from pscommon import temporal
from tests.helpers import connect, ingest, register_line, rid, scam_burst

MSISDN = "19312345678"
HOLDER = "holder-44-0001"


async def line_agrees_with_network(stack, state: int) -> suspension_pb2.GetLineResponse:
    got = await suspension_pb2_grpc.SuspensionServiceStub(connect(stack.cfg, "suspension", "ops")).GetLine(
        suspension_pb2.GetLineRequest(msisdn=MSISDN)
    )
    assert got.line.state == state
    assert got.in_sync, (got.line.barring, got.network_barring)
    hlr = stack.sims.network.handset(MSISDN).barring
    assert hlr.outgoing_voice == got.line.barring.outgoing_voice and hlr.incoming_sms == got.line.barring.incoming_sms
    return got


async def test_line_is_warned_suspended_and_restored_after_verification(stack):
    cfg = stack.cfg
    await register_line(cfg, MSISDN, "44", HOLDER)
    resp = await ingest(cfg, scam_burst(MSISDN, datetime(2026, 11, 20, 9, 0, tzinfo=UTC)))
    assert len(resp.decisions) >= 1
    decision = resp.decisions[-1]
    assert decision.action == common_pb2.ACTION_SUSPEND
    assert decision.risk_level == common_pb2.RISK_LEVEL_EXTREME
    # Reasons are evidence against the line only and name their figures; mitigations are kept apart.
    assert decision.reasons and all(r.weight > 0 for r in decision.reasons)
    assert any(c.isdigit() for c in decision.reasons[0].text_en) and decision.reasons[0].text_zh
    assert all(r.weight <= 0 for r in decision.mitigations)
    case_id = decision.case_id
    assert case_id.startswith("case-") and MSISDN not in case_id
    handle = stack.client.get_workflow_handle(case_id, result_type=CaseStatus)

    warned = await handle.execute_update(UPDATE_WAIT_STAGE, "warned", result_type=CaseStatus)
    assert warned.line_state == "LINE_STATE_WARNED"
    got = await line_agrees_with_network(stack, common_pb2.LINE_STATE_WARNED)
    assert not got.line.barring.outgoing_voice

    await stack.env.sleep(timedelta(hours=3))  # past the 2-hour grace window for "suspend"
    await handle.execute_update(UPDATE_WAIT_STAGE, "suspended", result_type=CaseStatus)
    got = await line_agrees_with_network(stack, common_pb2.LINE_STATE_SUSPENDED)
    assert got.line.barring.outgoing_voice and got.line.barring.incoming_voice and got.line.barring.data

    hall = verification_pb2_grpc.VerificationServiceStub(connect(cfg, "verification", "hall"))
    reviewer = verification_pb2_grpc.VerificationServiceStub(connect(cfg, "verification", "reviewer-1"))
    outcome = await hall.SubmitInPersonVerification(
        verification_pb2.SubmitInPersonVerificationRequest(
            request_id=rid(),
            case_id=case_id,
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
    # Extreme risk: every check passed, and a reviewer approves the restore.
    assert outcome.outcome.result == verification_pb2.RESULT_PENDING_REVIEW, outcome.outcome.failures
    review_id = outcome.outcome.review_id
    await handle.execute_update(UPDATE_WAIT_STAGE, "awaiting_reviewer", result_type=CaseStatus)
    await reviewer.ClaimReview(verification_pb2.ClaimReviewRequest(request_id=rid(), review_id=review_id))
    await reviewer.DecideReview(
        verification_pb2.DecideReviewRequest(
            request_id=rid(),
            review_id=review_id,
            decision=verification_pb2.DECISION_APPROVE,
            note="hall check and employment letter in order",
        )
    )
    final = await handle.result()
    assert final.stage == "restored"
    got = await line_agrees_with_network(stack, common_pb2.LINE_STATE_RESTORED)
    assert got.line.restore_count == 1 and not any(
        getattr(got.line.barring, f) for f in ("outgoing_voice", "incoming_sms", "data")
    )

    conn = await asyncpg.connect(cfg.database_url)
    try:
        rows = await conn.fetch(
            "SELECT from_state, to_state, actor_kind, actor_id, case_id, reason FROM suspension.line_history"
            " WHERE line_hash = $1 ORDER BY seq",
            decision.line_hash,
        )
    finally:
        await conn.close()
    assert [(r["from_state"], r["to_state"]) for r in rows] == [
        (common_pb2.LINE_STATE_ACTIVE, common_pb2.LINE_STATE_WARNED),
        (common_pb2.LINE_STATE_WARNED, common_pb2.LINE_STATE_SUSPENDED),
        (common_pb2.LINE_STATE_SUSPENDED, common_pb2.LINE_STATE_RESTORED),
    ]
    assert all(r["case_id"] == case_id and r["actor_id"] for r in rows)
    assert [(r["actor_kind"], r["reason"]) for r in rows] == [
        ("workflow", "RISK_EXTREME"),
        ("workflow", "UNVERIFIED_AFTER_WARNING_SUSPEND"),
        ("reviewer", "REVIEW_APPROVED_RESTORE_APPROVAL"),
    ]

    # Operators: search attributes without personal data, and the raw history is encrypted.
    desc = await handle.describe()
    attrs = desc.typed_search_attributes
    assert attrs.get(temporal.MASKED_NUMBER) == "193****5678"
    assert attrs.get(temporal.CASE_STAGE) == "restored"
    assert attrs.get(temporal.RISK_LEVEL) == "extreme"
    raw = b""
    async for event in stack.env.client.get_workflow_handle(case_id).fetch_history_events():
        raw += event.SerializeToString()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            payload = event.workflow_execution_started_event_attributes.input.payloads[0]
            assert payload.metadata["encoding"] == b"binary/encrypted"
    assert MSISDN.encode() not in raw and HOLDER.encode() not in raw
    # Nor any 7-digit run of it (only the masked 193****5678 may appear, in search attributes).
    assert not [MSISDN[i : i + 7] for i in range(len(MSISDN) - 6) if MSISDN[i : i + 7].encode() in raw]

    # One trace per case: scoring, the worker and the three other services, and no personal data in spans.
    spans = stack.spans.get_finished_spans()
    opened = [s for s in spans if s.name == "open_case" and s.attributes.get("psp.line_hash") == decision.line_hash]
    trace_id = opened[0].context.trace_id
    in_case = [s for s in spans if s.context.trace_id == trace_id]
    names = {s.name for s in in_case}
    assert any(n.startswith("RunActivity:") for n in names)
    for rpc in (
        "/carrier.suspension.v1.SuspensionService/ChangeLineState",
        "/carrier.notify.v1.NotifyService/SendNotification",
        "/carrier.verification.v1.VerificationService/GetRequirements",
        "/carrier.scoring.v1.ScoringService/RecordOutcome",
    ):
        assert rpc in names, f"{rpc} not in the case's trace"
    assert f"{trace_id:032x}" in (await desc.static_details() or "")
    for s in spans:
        text = s.name + repr(dict(s.attributes or {})) + repr([e.attributes for e in s.events])
        assert MSISDN not in text and HOLDER not in text, s.name

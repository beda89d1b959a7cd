"""Each verification tier through the case workflow, on Temporal's time-skipping server: online (low/medium),
in person at a hall (high), in person with a reviewer (extreme and any line restored before), the 24-hour
reminders, appeals with a reviewer asking for more, an appeal whose SLA runs out, and authority orders."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import grpc
import pytest

from carrier.common.v1 import common_pb2
from carrier.verification.v1 import verification_pb2 as vpb
from carrier.verification.v1 import verification_pb2_grpc
from contracts.case import CaseStatus
from pscommon.errors import parse_details
from tests.helpers import AsAllowed, connect, open_case, reach, register_line, rid

VERIFICATION = "carrier.verification.v1.VerificationService"


def stub(stack) -> AsAllowed:
    return AsAllowed(stack.cfg, "verification", verification_pb2_grpc.VerificationServiceStub, VERIFICATION)


def online(case_id: str, msisdn: str, holder: str, level=common_pb2.RISK_LEVEL_MEDIUM, **extra):
    return vpb.SubmitOnlineVerificationRequest(
        request_id=rid(),
        case_id=case_id,
        msisdn=msisdn,
        risk_level=level,
        claimed_holder_ref=holder,
        liveness_token=f"video-{rid()[:8]}",
        risk_notice_acknowledged=True,
        caller_province="44",
        caller_id=extra.pop("caller_id", f"app-{rid()[:8]}"),
        **extra,
    )


def in_person(case_id: str, msisdn: str, holder: str, level: int, province: str = "44"):
    return vpb.SubmitInPersonVerificationRequest(
        request_id=rid(),
        case_id=case_id,
        msisdn=msisdn,
        risk_level=level,
        claimed_holder_ref=holder,
        hall_id=f"{province}-HALL-01",
        agent_id="agent-4471",
        province_code_token=f"{province}-{holder}",
        risk_notice_signed=True,
        extra_evidence=["employment-letter-ref"],
    )


async def reviewer_decides(stack, review_id: str, decision: int, as_: str = "reviewer-1", **extra) -> vpb.Review:
    v = verification_pb2_grpc.VerificationServiceStub(connect(stack.cfg, "verification", as_))
    await v.ClaimReview(vpb.ClaimReviewRequest(request_id=rid(), review_id=review_id))
    got = await v.DecideReview(
        vpb.DecideReviewRequest(request_id=rid(), review_id=review_id, decision=decision, **extra)
    )
    return got.review


async def history(stack, line_hash: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(stack.cfg.database_url)
    try:
        rows = await conn.fetch(
            "SELECT to_state, actor_kind, reason FROM suspension.line_history WHERE line_hash = $1 ORDER BY seq",
            line_hash,
        )
    finally:
        await conn.close()
    return [
        (common_pb2.LineState.Name(r["to_state"]).removeprefix("LINE_STATE_"), r["actor_kind"], r["reason"])
        for r in rows
    ]


async def test_medium_risk_restores_online_within_the_grace_window(stack):
    msisdn, holder = "19320000001", "holder-44-2001"
    await register_line(stack.cfg, msisdn, "44", holder)
    case_id = await open_case(stack, msisdn, "medium", "restrict")
    await reach(stack, case_id, "warned")
    with pytest.raises(grpc.aio.AioRpcError) as lower:  # the case sets how strict the check is, not the caller
        await stub(stack).SubmitOnlineVerification(online(case_id, msisdn, holder, common_pb2.RISK_LEVEL_LOW))
    assert parse_details(lower.value)[0].reason == "RISK_LEVEL_MISMATCH"
    out = await stub(stack).SubmitOnlineVerification(online(case_id, msisdn, holder))
    assert out.outcome.result == vpb.RESULT_PASSED and out.outcome.policy_version == "2026-11-default"
    done = await stack.client.get_workflow_handle(case_id, result_type=CaseStatus).result()
    assert done.stage == "restored" and done.line_state == "LINE_STATE_RESTORED"


async def reminders(stack, case_id: str) -> int:
    conn = await asyncpg.connect(stack.cfg.database_url)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM notify.notifications WHERE case_id = $1 AND template = $2",
            case_id,
            3,  # TEMPLATE_REMINDER
        )
    finally:
        await conn.close()


async def test_high_risk_needs_the_hall_and_is_reminded_every_24_hours(stack):
    msisdn, holder = "19320000002", "holder-44-2002"
    await register_line(stack.cfg, msisdn, "44", holder)
    case_id = await open_case(stack, msisdn, "high", "restrict")
    await reach(stack, case_id, "warned")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub(stack).SubmitOnlineVerification(online(case_id, msisdn, holder, common_pb2.RISK_LEVEL_HIGH))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert parse_details(refused.value)[0].reason == "ROUTE_NOT_ACCEPTED" and "business hall" in refused.value.details()

    await stack.env.sleep(timedelta(hours=25))  # the 24-hour grace window for "restrict" runs out
    await reach(stack, case_id, "restricted")
    assert await reminders(stack, case_id) == 0
    await stack.env.sleep(timedelta(hours=24))
    await reach(stack, case_id, "restricted")
    assert await reminders(stack, case_id) == 1  # one reminder a day while the holder has not come in

    out = await stub(stack).SubmitInPersonVerification(in_person(case_id, msisdn, holder, common_pb2.RISK_LEVEL_HIGH))
    assert out.outcome.result == vpb.RESULT_PASSED and out.outcome.route == vpb.ROUTE_IN_PERSON
    done = await stack.client.get_workflow_handle(case_id, result_type=CaseStatus).result()
    assert done.stage == "restored"


async def test_a_line_restored_before_needs_the_hall_and_a_reviewer_the_second_time(stack):
    msisdn, holder = "19320000003", "holder-44-2003"
    await register_line(stack.cfg, msisdn, "44", holder)
    first = await open_case(stack, msisdn, "medium", "restrict")
    await stack.env.sleep(timedelta(hours=25))
    await reach(stack, first, "restricted")
    assert (
        await stub(stack).SubmitOnlineVerification(online(first, msisdn, holder))
    ).outcome.result == vpb.RESULT_PASSED
    await stack.client.get_workflow_handle(first, result_type=CaseStatus).result()

    second = await open_case(stack, msisdn, "medium", "restrict", seq=2)
    await reach(stack, second, "warned")
    req = await stub(stack).GetRequirements(
        vpb.GetRequirementsRequest(risk_level=common_pb2.RISK_LEVEL_MEDIUM, msisdn=msisdn)
    )
    assert req.escalated_because == "RESTORED_BEFORE"
    assert [r.route for r in req.requirements] == [vpb.ROUTE_IN_PERSON_WITH_REVIEW]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub(stack).SubmitOnlineVerification(online(second, msisdn, holder))
    assert "restored before" in refused.value.details()
    out = await stub(stack).SubmitInPersonVerification(in_person(second, msisdn, holder, common_pb2.RISK_LEVEL_MEDIUM))
    assert out.outcome.result == vpb.RESULT_PENDING_REVIEW
    await reach(stack, second, "awaiting_reviewer")
    await reviewer_decides(stack, out.outcome.review_id, vpb.DECISION_APPROVE, note="second restore approved")
    done = await stack.client.get_workflow_handle(second, result_type=CaseStatus).result()
    assert done.stage == "restored"
    restores = [h for h in await history(stack, second.split("-")[1]) if h[0] == "RESTORED"]
    assert restores == [
        ("RESTORED", "workflow", "VERIFIED_ONLINE"),
        ("RESTORED", "reviewer", "REVIEW_APPROVED_RESTORE_APPROVAL"),
    ]


async def test_appeal_reviewer_asks_for_more_then_approves(stack):
    msisdn, holder = "19320000004", "holder-44-2004"
    await register_line(stack.cfg, msisdn, "44", holder)
    case_id = await open_case(stack, msisdn, "high", "restrict")
    await stack.env.sleep(timedelta(hours=25))
    await reach(stack, case_id, "restricted")
    v = stub(stack)
    appeal = await v.SubmitAppeal(
        vpb.SubmitAppealRequest(
            request_id=rid(),
            case_id=case_id,
            msisdn=msisdn,
            caller_province="65",
            explanation="我是快递员，节前给收件人打电话 / I am a courier calling recipients before the holiday",
            evidence_refs=["upload-courier-badge"],
        )
    )
    review_id = appeal.review.review_id
    assert appeal.review.kind == vpb.REVIEW_KIND_APPEAL and appeal.review.status == vpb.REVIEW_STATUS_OPEN
    await reach(stack, case_id, "in_review")
    listed = await v.ListReviews(vpb.ListReviewsRequest())
    mine = next(r for r in listed.reviews if r.review_id == review_id)
    assert not mine.explanation and mine.masked_msisdn == "193****0004" and mine.evidence_count == 1

    asked = await reviewer_decides(stack, review_id, vpb.DECISION_ASK_FOR_MORE, more_requested="employment_letter")
    assert asked.status == vpb.REVIEW_STATUS_MORE_REQUESTED
    await reach(stack, case_id, "more_requested")
    answered = await v.SubmitAppeal(
        vpb.SubmitAppealRequest(
            request_id=rid(),
            case_id=case_id,
            msisdn=msisdn,
            caller_province="44",
            review_id=review_id,
            explanation="letter attached",
            evidence_refs=["upload-company-letter"],
        )
    )
    assert answered.review.status == vpb.REVIEW_STATUS_CLAIMED and answered.review.evidence_count == 2
    decided = await v.DecideReview(
        vpb.DecideReviewRequest(request_id=rid(), review_id=review_id, decision=vpb.DECISION_APPROVE)
    )
    assert decided.review.status == vpb.REVIEW_STATUS_APPROVED
    done = await stack.client.get_workflow_handle(case_id, result_type=CaseStatus).result()
    assert done.stage == "restored"
    assert (await history(stack, case_id.split("-")[1]))[-1] == ("RESTORED", "reviewer", "REVIEW_APPROVED_APPEAL")


async def test_an_appeal_nobody_decides_is_escalated_when_its_sla_runs_out(stack):
    msisdn, holder = "19320000005", "holder-44-2005"
    await register_line(stack.cfg, msisdn, "44", holder)
    case_id = await open_case(stack, msisdn, "high", "restrict")
    await stack.env.sleep(timedelta(hours=25))
    await reach(stack, case_id, "restricted")
    v = stub(stack)
    appeal = await v.SubmitAppeal(
        vpb.SubmitAppealRequest(
            request_id=rid(), case_id=case_id, msisdn=msisdn, caller_province="44", explanation="not me"
        )
    )
    await reach(stack, case_id, "in_review")
    await stack.env.sleep(timedelta(hours=49))  # the 48-hour review SLA runs out
    status = await reach(stack, case_id, "review_escalated")
    assert status.review is not None and status.review.escalated
    escalated = await v.ListReviews(vpb.ListReviewsRequest(escalated_only=True))
    assert appeal.review.review_id in [r.review_id for r in escalated.reviews]
    assert escalated.reviews[0].escalated  # escalated reviews come first
    await reviewer_decides(stack, appeal.review.review_id, vpb.DECISION_REJECT, note="calls match a scam script")
    status = await reach(stack, case_id, "appeal_rejected")
    assert status.line_state == "LINE_STATE_RESTRICTED"


async def test_police_order_restores_and_confirmed_fraud_is_terminated_only_by_a_reviewer(stack):
    v = stub(stack)
    msisdn, holder = "19320000006", "holder-44-2006"
    await register_line(stack.cfg, msisdn, "44", holder)
    case_id = await open_case(stack, msisdn, "extreme", "suspend")
    await stack.env.sleep(timedelta(hours=3))
    await reach(stack, case_id, "suspended")
    await v.SubmitAuthorityOrder(
        vpb.SubmitAuthorityOrderRequest(
            request_id=rid(),
            case_id=case_id,
            authority=vpb.AUTHORITY_POLICE,
            order=vpb.ORDER_RESTORE,
            order_ref="GA-2026-1122-0042",
        )
    )
    done = await stack.client.get_workflow_handle(case_id, result_type=CaseStatus).result()
    assert done.stage == "restored"
    assert (await history(stack, case_id.split("-")[1]))[-1] == ("RESTORED", "police", "AUTHORITY_POLICE_RESTORE")

    msisdn, holder = "19320000007", "holder-44-2007"
    await register_line(stack.cfg, msisdn, "44", holder)
    case_id = await open_case(stack, msisdn, "extreme", "suspend")
    await reach(stack, case_id, "warned")
    regulator = verification_pb2_grpc.VerificationServiceStub(connect(stack.cfg, "verification", "regulator"))
    await regulator.SubmitAuthorityOrder(
        vpb.SubmitAuthorityOrderRequest(
            request_id=rid(),
            case_id=case_id,
            authority=vpb.AUTHORITY_REGULATOR,
            order=vpb.ORDER_CONFIRM_FRAUD,
            order_ref="FZ-2026-7781",
        )
    )
    status = await reach(stack, case_id, "termination_review")
    assert status.line_state == "LINE_STATE_SUSPENDED"  # at once, without waiting out the grace window
    review_id = status.review.review_id
    first = await reviewer_decides(stack, review_id, vpb.DECISION_APPROVE, note="regulator file FZ-2026-7781")
    # Four eyes: one approval only hands the termination to a second, different reviewer.
    assert first.status == vpb.REVIEW_STATUS_SECOND_APPROVAL and first.first_approved_by == "reviewer-1"
    with pytest.raises(grpc.aio.AioRpcError) as same:
        await reviewer_decides(stack, review_id, vpb.DECISION_APPROVE)
    assert same.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await reach(stack, case_id, "termination_review")).line_state == "LINE_STATE_SUSPENDED"
    await reviewer_decides(stack, review_id, vpb.DECISION_APPROVE, as_="reviewer-2")
    done = await stack.client.get_workflow_handle(case_id, result_type=CaseStatus).result()
    assert done.stage == "terminated" and done.line_state == "LINE_STATE_TERMINATED"
    assert (await history(stack, case_id.split("-")[1]))[-1] == (
        "TERMINATED",
        "reviewer",
        "REVIEWER_CONFIRMED_TERMINATION",
    )

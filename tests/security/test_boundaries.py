"""Behind the access table: identity from certificates, attribution, lockouts nobody else can cause, rate
limits, and no half-done change when the database fails after the network was barred."""

from __future__ import annotations

import dataclasses
import pathlib

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from carrier.common.v1 import common_pb2
from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from carrier.verification.v1 import verification_pb2 as vpb
from carrier.verification.v1 import verification_pb2_grpc
from pscommon.errors import parse_details
from services.suspension import store as suspension_store
from services.verification import server as verification_server
from tests.helpers import AsAllowed, connect, open_case, register_line, rid
from tests.verification.test_tiers import VERIFICATION, in_person, online, reach


def verification_as(stack, principal: str) -> verification_pb2_grpc.VerificationServiceStub:
    return verification_pb2_grpc.VerificationServiceStub(connect(stack.cfg, "verification", principal))


async def fetch(stack, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(stack.cfg.database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def change(msisdn: str, target: int, request_id: str | None = None) -> suspension_pb2.ChangeLineStateRequest:
    return suspension_pb2.ChangeLineStateRequest(
        request_id=request_id or rid(),
        msisdn=msisdn,
        home_province="44",
        target_state=target,
        actor=common_pb2.Actor(kind="workflow", id="protective-suspension-case"),
        case_id="case-boundary",
        reason="TEST",
    )


async def test_a_database_failure_after_the_hlr_leaves_network_and_database_equal(stack, monkeypatch) -> None:
    msisdn = "19350000001"
    worker = suspension_pb2_grpc.SuspensionServiceStub(connect(stack.cfg, "suspension", "worker"))
    await worker.ChangeLineState(change(msisdn, common_pb2.LINE_STATE_WARNED))
    real = suspension_store.apply_transition

    async def fails(*args: object, **kwargs: object) -> object:
        raise asyncpg.exceptions.ConnectionDoesNotExistError("injected: the connection was lost mid-write")

    monkeypatch.setattr(suspension_store, "apply_transition", fails)
    request = change(msisdn, common_pb2.LINE_STATE_SUSPENDED)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await worker.ChangeLineState(request)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE  # retryable, not INTERNAL
    got = await worker.GetLine(suspension_pb2.GetLineRequest(msisdn=msisdn))
    assert got.line.state == common_pb2.LINE_STATE_WARNED and got.in_sync  # the HLR bar was taken back
    assert not stack.sims.network.handset(msisdn).barring.outgoing_voice

    monkeypatch.setattr(suspension_store, "apply_transition", real)
    done = await worker.ChangeLineState(request)  # the retry of the same request applies, network included
    assert done.line.state == common_pb2.LINE_STATE_SUSPENDED
    assert (await worker.GetLine(suspension_pb2.GetLineRequest(msisdn=msisdn))).in_sync
    assert stack.sims.network.handset(msisdn).barring.outgoing_voice


async def test_every_change_records_the_principal_that_made_it(stack) -> None:
    msisdn = "19350000002"
    worker = suspension_pb2_grpc.SuspensionServiceStub(connect(stack.cfg, "suspension", "worker"))
    await worker.ChangeLineState(change(msisdn, common_pb2.LINE_STATE_WARNED))
    history = await worker.ListLineHistory(suspension_pb2.ListLineHistoryRequest(msisdn=msisdn))
    assert [e.principal for e in history.entries] == ["worker/worker"]


async def test_report_sources_belong_to_their_authority(stack) -> None:
    msisdn = "19350000003"
    await register_line(stack.cfg, msisdn, "44", "holder-44-5003")
    police = scoring_pb2.ReportLineRequest(request_id=rid(), msisdn=msisdn, source=scoring_pb2.REPORT_SOURCE_POLICE)
    police.at.GetCurrentTime()
    as_cs = scoring_pb2_grpc.ScoringServiceStub(connect(stack.cfg, "scoring", "customer-service"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await as_cs.ReportLine(police)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert parse_details(refused.value)[0].reason == "REPORT_SOURCE_NOT_YOURS"
    assert not await fetch(stack, "SELECT 1 FROM scoring.reports WHERE request_id = $1", police.request_id)
    as_police = scoring_pb2_grpc.ScoringServiceStub(connect(stack.cfg, "scoring", "police"))
    police.request_id = rid()
    await as_police.ReportLine(police)
    rows = await fetch(stack, "SELECT principal FROM scoring.reports WHERE request_id = $1", police.request_id)
    assert [r["principal"] for r in rows] == ["police/police"]


async def test_an_authority_speaks_only_for_itself_and_is_recorded(stack) -> None:
    msisdn = "19350000004"
    await register_line(stack.cfg, msisdn, "44", "holder-44-5004")
    case_id = await open_case(stack, msisdn, "high", "restrict")
    await reach(stack, case_id, "warned")
    order = vpb.SubmitAuthorityOrderRequest(
        request_id=rid(), case_id=case_id, authority=vpb.AUTHORITY_REGULATOR, order=vpb.ORDER_RESTORE, order_ref="X-1"
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await verification_as(stack, "police").SubmitAuthorityOrder(order)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    order.authority = vpb.AUTHORITY_POLICE
    await verification_as(stack, "police").SubmitAuthorityOrder(order)
    rows = await fetch(stack, "SELECT principal FROM verification.authority_orders WHERE case_id = $1", case_id)
    assert [r["principal"] for r in rows] == ["police/police"]
    await reach(stack, case_id, "restored")


async def test_the_reviewer_is_the_certificate_never_a_request_field(stack) -> None:
    msisdn = "19350000005"
    await register_line(stack.cfg, msisdn, "44", "holder-44-5005")
    case_id = await open_case(stack, msisdn, "medium", "restrict")
    await reach(stack, case_id, "warned")
    app = verification_as(stack, "app")
    appeal = await app.SubmitAppeal(
        vpb.SubmitAppealRequest(
            request_id=rid(), case_id=case_id, msisdn=msisdn, caller_province="44", explanation="I am a courier"
        )
    )
    review_id = appeal.review.review_id
    reviewer = verification_as(stack, "reviewer-2")
    with pytest.raises(grpc.aio.AioRpcError) as forged:
        await reviewer.ClaimReview(vpb.ClaimReviewRequest(request_id=rid(), review_id=review_id, reviewer_id="boss"))
    assert forged.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    claimed = await reviewer.ClaimReview(vpb.ClaimReviewRequest(request_id=rid(), review_id=review_id))
    assert claimed.review.claimed_by == "reviewer-2"
    # What a reviewer asks the holder for comes from the policy's list, never free text.
    ask = vpb.DecideReviewRequest(
        request_id=rid(), review_id=review_id, decision=vpb.DECISION_ASK_FOR_MORE, more_requested="send your ID photo"
    )
    with pytest.raises(grpc.aio.AioRpcError) as free_text:
        await reviewer.DecideReview(ask)
    assert parse_details(free_text.value)[1][0][0] == "more_requested"
    ask.request_id, ask.more_requested, ask.note = rid(), "payslip", "holder sounded unsure; call 13912345678"
    await reviewer.DecideReview(ask)
    status = await reach(stack, case_id, "more_requested")
    assert "payslips" in status.more_requested and "13912345678" not in repr(status)
    seen = await app.GetCaseStatus(vpb.GetCaseStatusRequest(case_id=case_id))
    assert seen.review.claimed_by == "reviewer" and not seen.review.decision_note  # the role, not the person
    assert [c.by for c in seen.line_changes] == ["workflow"]


async def test_remote_failures_never_lock_the_hall(stack, tmp_path: pathlib.Path) -> None:
    """With a policy accepting both routes, five failed online checks lock the online route only."""
    table = tmp_path / "policy.yaml"
    table.write_text(
        verification_server.policy_mod.DEFAULT_PATH.read_text().replace(
            "  medium:\n    - route: online",
            "  medium:\n    - route: in_person\n      evidence: [holder_match, province_code, risk_notice, hall,"
            " agent]\n    - route: online",
        )
    )
    svc = await verification_server.start(
        dataclasses.replace(stack.cfg, verification_policy=str(table), principal="verification"), 0
    )
    try:
        there = dataclasses.replace(stack.cfg, verification_addr=f"127.0.0.1:{svc.port}")
        v = AsAllowed(there, "verification", verification_pb2_grpc.VerificationServiceStub, VERIFICATION)
        msisdn, holder = "19350000006", "holder-44-5006"
        await register_line(stack.cfg, msisdn, "44", holder)
        case_id = await open_case(stack, msisdn, "medium", "restrict")
        await reach(stack, case_id, "warned")
        for i in range(5):
            await v.SubmitOnlineVerification(online(case_id, msisdn, "someone-else", caller_id=f"attacker-{i}"))
        with pytest.raises(grpc.aio.AioRpcError) as locked:
            await v.SubmitOnlineVerification(online(case_id, msisdn, holder))
        assert parse_details(locked.value)[0].metadata["scope"] == "line"
        passed = await v.SubmitInPersonVerification(in_person(case_id, msisdn, holder, common_pb2.RISK_LEVEL_MEDIUM))
        assert passed.outcome.result == vpb.RESULT_PASSED
        await reach(stack, case_id, "restored")
    finally:
        await svc.stop(0.5)


async def test_holder_lookups_are_rate_limited_per_line(stack) -> None:
    msisdn = "19350000007"
    await register_line(stack.cfg, msisdn, "44", "holder-44-5007")
    cs = verification_as(stack, "customer-service")
    guesses = [f"guess-{i}" for i in range(10)]
    for guess in guesses:  # policy.yaml: 10 lookups of a line per hour
        ask = vpb.LookupHolderRequest(msisdn=msisdn, caller_province="65", claimed_holder_ref=guess)
        assert not (await cs.LookupHolder(ask)).holder_confirmed
    hall = verification_as(stack, "hall")  # another caller changes nothing: the line's own limit is reached
    with pytest.raises(grpc.aio.AioRpcError) as limited:
        await hall.LookupHolder(vpb.LookupHolderRequest(msisdn=msisdn, caller_province="44", claimed_holder_ref="x"))
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, _ = parse_details(limited.value)
    assert info.reason == "TOO_MANY_LOOKUPS" and info.metadata["scope"] == "line"
    status = next(
        status_pb2.Status.FromString(v) for k, v in limited.value.trailing_metadata() if k == "grpc-status-details-bin"
    )
    retry = next(d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR))
    info_retry = error_details_pb2.RetryInfo()
    retry.Unpack(info_retry)
    assert 0 < info_retry.retry_delay.seconds <= 3600  # when the window has room again


@pytest.mark.parametrize("server", ["scoring", "simulators"])
async def test_health_watch_streams_the_serving_status_through_the_guard(stack, server: str) -> None:
    watch = health_pb2_grpc.HealthStub(connect(stack.cfg, server, "ops")).Watch(health_pb2.HealthCheckRequest())
    first = await watch.read()
    watch.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING

"""Every service: health, reflection, INVALID_ARGUMENT naming the field, and request_id idempotency."""

from __future__ import annotations

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from carrier.common.v1 import common_pb2
from carrier.notify.v1 import notify_pb2, notify_pb2_grpc
from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from carrier.verification.v1 import verification_pb2, verification_pb2_grpc
from pscommon.errors import parse_details
from tests.helpers import allowed_principal, connect, register_line, rid

SERVICES = {
    "scoring": "carrier.scoring.v1.ScoringService",
    "suspension": "carrier.suspension.v1.SuspensionService",
    "notify": "carrier.notify.v1.NotifyService",
    "verification": "carrier.verification.v1.VerificationService",
}


@pytest.mark.parametrize("name", SERVICES)
async def test_health_and_reflection(stack, name):
    ch = connect(stack.cfg, name, "ops")
    health = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=SERVICES[name]))
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    call = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    listed = [s.name async for r in call for s in r.list_services_response.service]
    assert SERVICES[name] in listed and "grpc.health.v1.Health" in listed


STUBS = {
    "scoring": scoring_pb2_grpc.ScoringServiceStub,
    "suspension": suspension_pb2_grpc.SuspensionServiceStub,
    "notify": notify_pb2_grpc.NotifyServiceStub,
    "verification": verification_pb2_grpc.VerificationServiceStub,
}


def stub_for(cfg, service: str, method: str):
    """A stub of `service` calling as a principal the access table lets call `method`."""
    return STUBS[service](connect(cfg, service, allowed_principal(f"{SERVICES[service]}/{method}")))


async def _one_batch(req):
    yield req


BAD = [
    (
        "scoring",
        "UpsertSubscriber",
        scoring_pb2.UpsertSubscriberRequest(
            request_id=rid(), msisdn="1931234567", home_province="44", opened_at="2020-01-01", language="zh"
        ),
        "msisdn",
    ),
    (
        "scoring",
        "UpsertSubscriber",
        scoring_pb2.UpsertSubscriberRequest(
            request_id=rid(), msisdn="19312345678", home_province="44", opened_at="2020-13-01", language="zh"
        ),
        "opened_at",
    ),
    ("scoring", "GetAssessment", scoring_pb2.GetAssessmentRequest(msisdn="abc"), "msisdn"),
    (
        "scoring",
        "RecordOutcome",
        scoring_pb2.RecordOutcomeRequest(request_id=rid(), msisdn="19312345678", case_id="case-x"),
        "outcome",
    ),
    (
        "scoring",
        "IngestCdrs",
        scoring_pb2.IngestCdrsRequest(
            request_id=rid(),
            cdrs=[scoring_pb2.Cdr(msisdn="19312345678", peer="13700000000", peer_province="5", direction=1, service=1)],
        ),
        "cdrs[0].peer_province",
    ),
    (
        "scoring",
        "ScoreCdrs",
        scoring_pb2.ScoreCdrsRequest(
            request_id=rid(),
            cdrs=[
                scoring_pb2.Cdr(msisdn="19312345678", peer="13700000000", peer_province="51", direction=1, service=3)
            ],
        ),
        "cdrs[0].service",
    ),
    (
        "scoring",
        "ReplayScenario",
        scoring_pb2.ReplayScenarioRequest(
            subscriber=scoring_pb2.ReplaySubscriber(
                msisdn="19312345678", home_province="4", opened_at="2020-01-01", language="zh"
            )
        ),
        "items[0].subscriber.home_province",
    ),
    (
        "scoring",
        "UpdateCells",
        scoring_pb2.UpdateCellsRequest(request_id=rid(), cells=[scoring_pb2.Cell(cell_id="460-00-1-2", province="52")]),
        "cells[0].risk",
    ),
    ("scoring", "UpdateNumberFeed", scoring_pb2.UpdateNumberFeedRequest(request_id=rid(), add=["12x"]), "add[0]"),
    (
        "scoring",
        "ReportLine",
        scoring_pb2.ReportLineRequest(request_id=rid(), msisdn="19312345678", source=scoring_pb2.REPORT_SOURCE_POLICE),
        "at",
    ),
    (
        "scoring",
        "SetEnterpriseBinding",
        scoring_pb2.SetEnterpriseBindingRequest(request_id="short", msisdn="19312345678", enterprise="SF"),
        "request_id",
    ),
    (
        "suspension",
        "ChangeLineState",
        suspension_pb2.ChangeLineStateRequest(
            request_id=rid(),
            msisdn="19312345678",
            home_province="44",
            actor=common_pb2.Actor(kind="agent", id="a1"),
            case_id="c",
            reason="r",
        ),
        "target_state",
    ),
    (
        "suspension",
        "ChangeLineState",
        suspension_pb2.ChangeLineStateRequest(
            request_id="x",
            msisdn="19312345678",
            home_province="44",
            target_state=common_pb2.LINE_STATE_WARNED,
            actor=common_pb2.Actor(kind="agent", id="a1"),
            case_id="c",
            reason="r",
        ),
        "request_id",
    ),
    ("suspension", "GetLine", suspension_pb2.GetLineRequest(msisdn=""), "msisdn"),
    ("suspension", "ListLineHistory", suspension_pb2.ListLineHistoryRequest(msisdn="2931234567"), "msisdn"),
    (
        "notify",
        "SendNotification",
        notify_pb2.SendNotificationRequest(
            request_id=rid(),
            msisdn="19312345678",
            home_province="44",
            case_id="c",
            template=notify_pb2.TEMPLATE_WARNING,
            language="fr",
        ),
        "language",
    ),
    ("notify", "GetNotification", notify_pb2.GetNotificationRequest(notification_id="nope"), "notification_id"),
    ("verification", "GetRequirements", verification_pb2.GetRequirementsRequest(), "risk_level"),
    (
        "verification",
        "LookupHolder",
        verification_pb2.LookupHolderRequest(msisdn="19312345678", caller_province="6", claimed_holder_ref="h"),
        "caller_province",
    ),
    (
        "verification",
        "SubmitOnlineVerification",
        verification_pb2.SubmitOnlineVerificationRequest(
            request_id=rid(),
            case_id="c",
            msisdn="19312345678",
            risk_level=2,
            claimed_holder_ref="h",
            caller_province="44",
        ),
        "liveness_token",
    ),
    (
        "verification",
        "SubmitInPersonVerification",
        verification_pb2.SubmitInPersonVerificationRequest(
            request_id=rid(), case_id="c", msisdn="19312345678", risk_level=3, claimed_holder_ref="h", agent_id="a"
        ),
        "hall_id",
    ),
    (
        "verification",
        "SubmitOnlineVerification",
        verification_pb2.SubmitOnlineVerificationRequest(
            request_id=rid(),
            case_id="c",
            msisdn="19312345678",
            risk_level=2,
            claimed_holder_ref="h",
            liveness_token="v",
            caller_province="44",
        ),
        "caller_id",
    ),
    (
        "verification",
        "SubmitAppeal",
        verification_pb2.SubmitAppealRequest(
            request_id=rid(),
            case_id="case-x",
            msisdn="19312345678",
            explanation="I was driving for a delivery firm",
            caller_province="44",
        ),
        "case_id",
    ),
    (
        "verification",
        "SubmitAppeal",
        verification_pb2.SubmitAppealRequest(request_id=rid(), msisdn="19312345678", caller_province="44"),
        "explanation",
    ),
    (
        "verification",
        "ClaimReview",
        verification_pb2.ClaimReviewRequest(request_id=rid(), review_id="r1", reviewer_id="rev"),
        "review_id",
    ),
    (
        "verification",
        "DecideReview",
        verification_pb2.DecideReviewRequest(
            request_id=rid(),
            review_id="00000000-0000-0000-0000-000000000001",
            reviewer_id="rev",
            decision=verification_pb2.DECISION_ASK_FOR_MORE,
        ),
        "more_requested",
    ),
    (
        "verification",
        "SubmitAuthorityOrder",
        verification_pb2.SubmitAuthorityOrderRequest(
            request_id=rid(),
            case_id="case-0123456789abcdef0123-1",
            authority=verification_pb2.AUTHORITY_POLICE,
            order_ref="GA-1",
        ),
        "order",
    ),
    ("verification", "GetCaseStatus", verification_pb2.GetCaseStatusRequest(), "case_id"),
    (
        "verification",
        "ActOnCase",
        verification_pb2.ActOnCaseRequest(request_id=rid(), case_id="case-0123456789abcdef0123-1", note="why"),
        "choice",
    ),
    (
        "verification",
        "ActOnCase",
        verification_pb2.ActOnCaseRequest(
            request_id=rid(), case_id="case-0123456789abcdef0123-1", choice=verification_pb2.OPERATOR_CHOICE_RETRY
        ),
        "note",
    ),
    ("verification", "ListReviews", verification_pb2.ListReviewsRequest(page_size=501), "page_size"),
    ("verification", "GetReview", verification_pb2.GetReviewRequest(review_id="r1"), "review_id"),
    ("suspension", "ListLineHistory", suspension_pb2.ListLineHistoryRequest(line_hash="not-a-hash"), "line_hash"),
]


@pytest.mark.parametrize(("service", "method", "request_", "field"), BAD, ids=[f"{b[1]}-{b[3]}" for b in BAD])
async def test_bad_field_is_invalid_argument_naming_it(stack, service, method, request_, field):
    stub_ = stub_for(stack.cfg, service, method)
    streaming = method in ("IngestCdrs", "ScoreCdrs", "ReplayScenario")
    arg = _one_batch(request_) if streaming else request_
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if method == "ScoreCdrs":
            async for _ in stub_.ScoreCdrs(arg):
                pass
        else:
            await getattr(stub_, method)(arg)
    err = caught.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    info, violations = parse_details(err)
    assert info is not None and info.reason == "INVALID_FIELD"
    assert field in [f for f, _ in violations]


async def _count(cfg, sql: str, *args) -> int:
    conn = await asyncpg.connect(cfg.database_url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def test_repeated_change_returns_first_answer_and_writes_nothing(stack):
    msisdn = "19300000001"
    await register_line(stack.cfg, msisdn, "44", "holder-x")
    stub = stub_for(stack.cfg, "suspension", "ChangeLineState")
    req = suspension_pb2.ChangeLineStateRequest(
        request_id=rid(),
        msisdn=msisdn,
        home_province="44",
        target_state=common_pb2.LINE_STATE_RESTRICTED,
        actor=common_pb2.Actor(kind="agent", id="cs-4401"),
        case_id="manual-1",
        reason="AGENT_REQUEST",
    )
    first = await stub.ChangeLineState(req)
    before = await _count(stack.cfg, "SELECT count(*) FROM suspension.line_history")
    again = await stub.ChangeLineState(req)
    assert again == first
    assert await _count(stack.cfg, "SELECT count(*) FROM suspension.line_history") == before
    req.reason = "SOMETHING_ELSE"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ChangeLineState(req)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert parse_details(caught.value)[1][0][0] == "request_id"
    # A refused transition changes nothing either.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ChangeLineState(
            suspension_pb2.ChangeLineStateRequest(
                request_id=rid(),
                msisdn=msisdn,
                home_province="44",
                target_state=common_pb2.LINE_STATE_TERMINATED,
                actor=common_pb2.Actor(kind="agent", id="cs-4401"),
                case_id="manual-1",
                reason="AGENT_REQUEST",
            )
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await _count(stack.cfg, "SELECT count(*) FROM suspension.line_history") == before


async def test_hlr_outage_leaves_no_half_written_state(stack):
    from carrier.simulator.v1 import simulator_pb2, simulator_pb2_grpc

    msisdn = "19300000002"
    await register_line(stack.cfg, msisdn, "44", "holder-y")
    faults = simulator_pb2_grpc.FaultInjectionServiceStub(connect(stack.cfg, "simulators", "ops"))
    await faults.SetFault(
        simulator_pb2.SetFaultRequest(
            fault=simulator_pb2.Fault(target="/carrier.hlr.v1.HlrService/SetBarring", fail_next=1, error="UNAVAILABLE")
        )
    )
    stub = stub_for(stack.cfg, "suspension", "ChangeLineState")
    req = suspension_pb2.ChangeLineStateRequest(
        request_id=rid(),
        msisdn=msisdn,
        home_province="44",
        target_state=common_pb2.LINE_STATE_SUSPENDED,
        actor=common_pb2.Actor(kind="agent", id="cs-4401"),
        case_id="manual-2",
        reason="AGENT_REQUEST",
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ChangeLineState(req)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetLine(suspension_pb2.GetLineRequest(msisdn=msisdn))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # nothing recorded
    done = await stub.ChangeLineState(req)  # the retry succeeds and network and database agree
    assert done.line.state == common_pb2.LINE_STATE_SUSPENDED
    assert (await stub.GetLine(suspension_pb2.GetLineRequest(msisdn=msisdn))).in_sync


async def test_repeated_notification_is_sent_once_and_its_receipt_is_kept(stack):
    stub = stub_for(stack.cfg, "notify", "SendNotification")
    req = notify_pb2.SendNotificationRequest(
        request_id=rid(),
        msisdn="19300000003",
        home_province="44",
        case_id="case-n",
        template=notify_pb2.TEMPLATE_WARNING,
        language="en",
        reasons=[
            common_pb2.Reason(code="CALL_BURST", text_en="23 calls in 90 minutes", text_zh="90分钟内拨出23个电话")
        ],
        next_step_en="verify online",
        next_step_zh="在线核验",
    )
    first = await stub.SendNotification(req)
    again = await stub.SendNotification(req)
    assert again.notification_id == first.notification_id
    assert await _count(stack.cfg, "SELECT count(*) FROM notify.notifications WHERE case_id = 'case-n'") == 1
    got = await stub.GetNotification(
        notify_pb2.GetNotificationRequest(notification_id=first.notification_id, wait_for_outcome=Duration(seconds=10))
    )
    assert got.status == notify_pb2.DELIVERY_STATUS_DELIVERED
    assert got.delivered_channel == notify_pb2.CHANNEL_SMS
    assert [(a.channel, a.outcome) for a in got.attempts] == [(notify_pb2.CHANNEL_SMS, "delivered")]
    assert "stat:DELIVRD" in got.attempts[0].detail
    sent = [dest for _, dest in stack.sims.smsc.submitted if dest == "19300000003"]
    assert len(sent) == 1


async def test_deadline_is_honoured_and_inherited_downstream(stack):
    from carrier.simulator.v1 import simulator_pb2, simulator_pb2_grpc

    msisdn = "19300000004"
    faults = simulator_pb2_grpc.FaultInjectionServiceStub(connect(stack.cfg, "simulators", "ops"))
    await faults.SetFault(
        simulator_pb2.SetFaultRequest(
            fault=simulator_pb2.Fault(target="/carrier.hlr.v1.HlrService/SetBarring", latency_ms=3000)
        )
    )
    stub = stub_for(stack.cfg, "suspension", "ChangeLineState")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ChangeLineState(
                suspension_pb2.ChangeLineStateRequest(
                    request_id=rid(),
                    msisdn=msisdn,
                    home_province="44",
                    target_state=common_pb2.LINE_STATE_RESTRICTED,
                    actor=common_pb2.Actor(kind="agent", id="cs-1"),
                    case_id="manual-3",
                    reason="AGENT_REQUEST",
                ),
                timeout=0.3,
            )
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await faults.ClearFaults(simulator_pb2.ClearFaultsRequest())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetLine(suspension_pb2.GetLineRequest(msisdn=msisdn))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

"""An operator answers a case that waits for them (needs_attention) through ActOnCase: recorded with their
principal, refused when the case is not waiting or the choice is not offered, told to the case after commit."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from carrier.common.v1 import common_pb2
from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from carrier.verification.v1 import verification_pb2 as vpb
from carrier.verification.v1 import verification_pb2_grpc
from contracts.case import CaseStatus
from pscommon.errors import parse_details
from tests.helpers import AsAllowed, connect, open_case, reach, register_line, rid

MSISDN = "19355503030"


def verification(stack, principal: str = "ops") -> verification_pb2_grpc.VerificationServiceStub:
    return verification_pb2_grpc.VerificationServiceStub(connect(stack.cfg, "verification", principal))


async def terminated_line(stack, msisdn: str) -> None:
    """A line another process already ended: no case step can move it, a permanent refusal."""
    await register_line(stack.cfg, msisdn, "44", "holder-operator")
    lines = AsAllowed(
        stack.cfg, "suspension", suspension_pb2_grpc.SuspensionServiceStub, "carrier.suspension.v1.SuspensionService"
    )
    await lines.ChangeLineState(
        suspension_pb2.ChangeLineStateRequest(
            request_id=rid(),
            msisdn=msisdn,
            home_province="44",
            target_state=common_pb2.LINE_STATE_TERMINATED,
            actor=common_pb2.Actor(kind="reviewer", id="reviewer-1"),
            case_id="case-earlier",
            reason="TEST_TERMINATED_BEFORE",
        )
    )


async def act(stack, case_id: str, choice: int, request_id: str = "") -> vpb.ActOnCaseResponse:
    request = vpb.ActOnCaseRequest(
        request_id=request_id or rid(), case_id=case_id, choice=choice, note="checked by phone"
    )
    return await verification(stack).ActOnCase(request)


async def refused(stack, case_id: str, choice: int) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await act(stack, case_id, choice)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info, _ = parse_details(err.value)
    assert info is not None
    return info.reason


async def test_an_operator_sees_a_stuck_step_retries_it_and_closes_the_case(stack) -> None:
    await terminated_line(stack, MSISDN)
    case_id = await open_case(stack, MSISDN, "high", "restrict")
    st = await reach(stack, case_id, "needs_attention")
    assert st.attention is not None and st.attention.step == "line → warned"
    assert st.attention.error.startswith("FAILED_PRECONDITION") and MSISDN not in st.attention.error

    shown = await verification(stack, "customer-service").GetCaseStatus(vpb.GetCaseStatusRequest(case_id=case_id))
    assert shown.stage == "needs_attention" and shown.attention.step == "line → warned"
    assert list(shown.attention.choices) == [
        vpb.OPERATOR_CHOICE_RETRY,
        vpb.OPERATOR_CHOICE_RESTORE,
        vpb.OPERATOR_CHOICE_CLOSE,
    ]
    assert shown.next_step_en  # the holder still reads what to do

    assert (
        await refused(stack, case_id, vpb.OPERATOR_CHOICE_SKIP) == "CHOICE_NOT_OFFERED"
    )  # a line change is not skipped
    rid_retry = rid()
    assert (await act(stack, case_id, vpb.OPERATOR_CHOICE_RETRY, rid_retry)).step == "line → warned"
    assert (await act(stack, case_id, vpb.OPERATOR_CHOICE_RETRY, rid_retry)).step == "line → warned"  # repeated: once
    handle = stack.client.get_workflow_handle(case_id, result_type=CaseStatus)
    # The retry meets the same refusal: the case asks again (a second needs_attention in its history).
    while [h.stage for h in (await handle.query("status", result_type=CaseStatus)).history].count(
        "needs_attention"
    ) < 2:
        await reach(stack, case_id, "needs_attention")
    await act(stack, case_id, vpb.OPERATOR_CHOICE_CLOSE)
    done = await handle.result()
    assert done.stage == "closed_unverified"
    assert await refused(stack, case_id, vpb.OPERATOR_CHOICE_RETRY) == "CASE_NOT_WAITING"

    conn = await asyncpg.connect(stack.cfg.database_url)
    try:
        rows = await conn.fetch(
            "SELECT choice, principal, step FROM verification.operator_actions WHERE case_id = $1 ORDER BY at", case_id
        )
    finally:
        await conn.close()
    assert [(r["choice"], r["principal"], r["step"]) for r in rows] == [
        ("retry", "ops/ops", "line → warned"),
        ("close", "ops/ops", "line → warned"),
    ]

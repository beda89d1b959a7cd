"""The case acts on whether its warning reached the holder (the traveller in Nepal, design.md §1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from carrier.common.v1 import common_pb2
from carrier.hlr.v1 import hlr_pb2
from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from contracts.case import UPDATE_WAIT_STAGE, WORKFLOW_NAME, Assessment, CaseInput, CaseStatus, ReasonText
from pscommon import temporal
from pscommon.identity import line_hash, mask
from tests.helpers import connect, register_line

REASONS = [
    ReasonText(
        "CALL_BURST",
        "1小时内拨出18次，其中16个号码从未联系过",
        "18 calls in 1 hour, 16 to numbers never called before",
        30,
    )
]


async def start_case(stack, msisdn: str, province: str, risk: str, action: str):
    """Opens a case as scoring does when a line crosses an action threshold."""
    case = CaseInput(
        msisdn=msisdn,
        line_hash=line_hash(msisdn, stack.cfg.line_hash_key),
        masked_msisdn=mask(msisdn),
        home_province=province,
        language="zh",
        assessment=Assessment(risk, action, 60.0, REASONS, datetime.now(UTC).isoformat()),
    )
    return await stack.client.start_workflow(
        WORKFLOW_NAME,
        case,
        id=f"case-{case.line_hash}-1",
        task_queue=stack.cfg.task_queue,
        result_type=CaseStatus,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(temporal.LINE_HASH, case.line_hash),
                SearchAttributePair(temporal.MASKED_NUMBER, case.masked_msisdn),
                SearchAttributePair(temporal.CASE_STAGE, "opened"),
            ]
        ),
    )


async def line(stack, msisdn: str) -> suspension_pb2.GetLineResponse:
    return await suspension_pb2_grpc.SuspensionServiceStub(connect(stack.cfg, "suspension", "ops")).GetLine(
        suspension_pb2.GetLineRequest(msisdn=msisdn)
    )


async def test_traveller_in_nepal_is_reached_by_push_and_only_restricted(stack):
    msisdn = "18999000065"
    await register_line(stack.cfg, msisdn, "65", "holder-65-nepal", push_token="app-65-nepal", email="ma@example.cn")
    stack.sims.network.move(msisdn, hlr_pb2.LOCATION_STATUS_ROAMING_INTERNATIONAL, "NP")
    handle = await start_case(stack, msisdn, "65", "high", "restrict")

    status = await handle.execute_update(UPDATE_WAIT_STAGE, "warning_delivered", result_type=CaseStatus)
    d = status.warning_delivery
    assert d is not None and d.status == "delivered" and d.channel == "push"
    assert (d.location, d.country) == ("roaming_international", "NP")
    assert [(a.channel, a.outcome, a.error_class) for a in d.attempts] == [
        ("sms", "undeliv", "absent"),
        ("push", "delivered", ""),
    ]
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(temporal.ROAMING) is True
    assert desc.typed_search_attributes.get(temporal.CASE_STAGE) == "warning_delivered"
    assert msisdn not in repr(d)  # the case's record of the delivery names no contact in clear

    await stack.env.sleep(timedelta(hours=25))  # past the 24-hour grace window for "restrict"
    status = await handle.execute_update(UPDATE_WAIT_STAGE, "restricted", result_type=CaseStatus)
    got = await line(stack, msisdn)
    assert got.line.state == common_pb2.LINE_STATE_RESTRICTED and got.in_sync
    assert got.line.barring.outgoing_voice and not got.line.barring.incoming_sms and not got.line.barring.data


@pytest.mark.parametrize(("risk", "expected"), [("high", "restricted"), ("extreme", "suspended")])
async def test_undelivered_warning_restricts_unless_risk_is_extreme(stack, risk, expected):
    msisdn = {"high": "18999000101", "extreme": "18999000102"}[risk]
    await register_line(stack.cfg, msisdn, "44", f"holder-44-{risk}")  # no app, no email, no alternate contact
    stack.sims.network.move(msisdn, hlr_pb2.LOCATION_STATUS_ABSENT)  # switched off
    # A carrier whose table sends high risk straight to suspension still only restricts an unwarned holder.
    handle = await start_case(stack, msisdn, "44", risk, "suspend")
    await handle.execute_update(UPDATE_WAIT_STAGE, "warned", result_type=CaseStatus)

    await stack.env.sleep(timedelta(hours=3))  # past the 2-hour grace window for "suspend"
    status = await handle.execute_update(UPDATE_WAIT_STAGE, expected, result_type=CaseStatus)
    assert [h.stage for h in status.history][:3] == ["warned", "warning_undelivered", expected]
    assert status.warning_delivery is not None and status.warning_delivery.status != "delivered"
    got = await line(stack, msisdn)
    state = {"restricted": common_pb2.LINE_STATE_RESTRICTED, "suspended": common_pb2.LINE_STATE_SUSPENDED}[expected]
    assert got.line.state == state and got.in_sync
    assert got.line.barring.incoming_sms is (expected == "suspended")

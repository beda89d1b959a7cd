"""`psctl case find MSISDN`: from a phone number to its cases, without the number ever reaching Temporal.
`psctl case status CASE_ID|MSISDN`: where a case stands, as every channel sees it (GetCaseStatus).
`psctl case act CASE_ID CHOICE --note WHY`: an operator's answer to a case waiting in needs_attention."""

from __future__ import annotations

import uuid

import grpc

from carrier.common.v1 import common_pb2
from carrier.verification.v1 import verification_pb2 as vpb
from carrier.verification.v1 import verification_pb2_grpc
from contracts.case import QUERY_STATUS, CaseStatus, OperatorChoice
from contracts.pb import OPERATOR_CHOICE_PB
from pscommon import temporal
from pscommon.channels import channel
from pscommon.config import settings
from pscommon.errors import parse_details
from pscommon.identity import is_msisdn, line_hash, mask
from pscommon.tls import TlsFiles


async def find_cases(msisdn: str) -> int:
    if not is_msisdn(msisdn):
        print("msisdn: must be an 11-digit mobile number starting with 1")
        return 2
    cfg = settings()
    client = await temporal.connect(cfg, wait_s=5)
    h = line_hash(msisdn, cfg.line_hash_key)
    found = 0
    async for wf in client.list_workflows(f"LineHash = '{h}'"):
        found += 1
        line = f"{wf.id}  {wf.status.name.lower() if wf.status else '?'}"
        if wf.status is not None and wf.status.name == "RUNNING":
            st = await client.get_workflow_handle(wf.id).query(QUERY_STATUS, result_type=CaseStatus)
            line += (
                f"  stage={st.stage}  line={st.line_state.removeprefix('LINE_STATE_').lower()}  next: {st.next_step}"
            )
        else:
            stage = wf.typed_search_attributes.get(temporal.CASE_STAGE)
            line += f"  stage={stage}"
        print(line)
        print(f"  {temporal.case_url(cfg, wf.id)}")
    if not found:
        print(f"no case for {mask(msisdn)} (line hash {h})")
        return 1
    return 0


def _verification() -> verification_pb2_grpc.VerificationServiceAsyncStub:
    cfg = settings()
    return verification_pb2_grpc.VerificationServiceStub(channel(cfg.verification_addr, TlsFiles.from_settings(cfg)))


def _refused(err: grpc.aio.AioRpcError) -> int:
    info, violations = parse_details(err)
    print(f"{err.code().name}: {err.details()}" + (f" ({info.reason})" if info else ""))
    for field, why in violations:
        print(f"  {field}: {why}")
    return 1


async def case_status(case: str) -> int:
    request = vpb.GetCaseStatusRequest(msisdn=case) if is_msisdn(case) else vpb.GetCaseStatusRequest(case_id=case)
    try:
        st = await _verification().GetCaseStatus(request, timeout=10)
    except grpc.aio.AioRpcError as err:
        return _refused(err)
    print(f"{st.case_id}  {st.masked_msisdn}  stage={st.stage}  line={common_pb2.LineState.Name(st.line_state)}")
    print(f"  next: {st.next_step_en}" + (f" ({st.where_en})" if st.where_en else ""))
    if st.HasField("deadline"):
        print(f"  by: {st.deadline.ToDatetime().isoformat()}Z")
    for h in st.history:
        print(f"  {h.at.ToDatetime().isoformat()}Z  {h.stage}")
    if st.HasField("attention"):
        a = st.attention
        choices = ", ".join(vpb.OperatorChoice.Name(c).removeprefix("OPERATOR_CHOICE_").lower() for c in a.choices)
        print(f"  NEEDS ATTENTION since {a.since.ToDatetime().isoformat()}Z: '{a.step}' failed: {a.error}")
        print(f"  psctl case act {st.case_id} <{choices}> --note WHY")
    return 0


async def act_on_case(case_id: str, choice: str, note: str) -> int:
    request = vpb.ActOnCaseRequest(
        request_id=uuid.uuid4().hex, case_id=case_id, choice=OPERATOR_CHOICE_PB[OperatorChoice(choice)], note=note
    )
    try:
        resp = await _verification().ActOnCase(request, timeout=10)
    except grpc.aio.AioRpcError as err:
        return _refused(err)
    print(f"{case_id}: {choice} '{resp.step}' sent to the case")
    print(f"  {temporal.case_url(settings(), case_id)}")
    return 0

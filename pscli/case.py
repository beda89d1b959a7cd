"""`psctl case find MSISDN`: from a phone number to its cases, without the number ever reaching Temporal."""

from __future__ import annotations

from contracts.case import QUERY_STATUS, CaseStatus
from pscommon import temporal
from pscommon.config import settings
from pscommon.identity import is_msisdn, line_hash, mask


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

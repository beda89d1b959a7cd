"""Opening a case for a line, or joining the one already open (one open case per line)."""

from __future__ import annotations

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from pscommon import temporal
from pscommon.config import Settings
from workflows.contracts import SIGNAL_ASSESSMENT, WORKFLOW_NAME, CaseInput


def case_id(line_hash: str, seq: int) -> str:
    return f"case-{line_hash}-{seq}"


def summary(case: CaseInput) -> str:
    a = case.assessment
    return f"{case.masked_msisdn} · province {case.home_province} · {a.risk_level} risk → {a.action}"


def details(case: CaseInput) -> str:
    a = case.assessment
    lines = [
        f"**Line** {case.masked_msisdn} (home province {case.home_province})",
        f"**Risk** {a.risk_level}, score {a.score:g} → **{a.action}** (event time {a.decided_at})",
        "",
        "**Reasons**",
        *[f"- {r.text_en} / {r.text_zh}" for r in a.reasons],
        "",
        f"**Trace** `{case.trace_id}`",
    ]
    return "\n".join(lines)


async def _running(client: Client, workflow_id: str) -> bool:
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return desc.status == WorkflowExecutionStatus.RUNNING


async def open_or_join(client: Client, pool: asyncpg.Pool, cfg: Settings, case: CaseInput) -> str:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 2))", case.line_hash)
        seq = await conn.fetchval("SELECT last_seq FROM cases WHERE line_hash = $1", case.line_hash) or 0
        if seq and await _running(client, case_id(case.line_hash, seq)):
            wid = case_id(case.line_hash, seq)
            await client.get_workflow_handle(wid).signal(SIGNAL_ASSESSMENT, case.assessment)
            return wid
        seq += 1
        wid = case_id(case.line_hash, seq)
        await client.start_workflow(
            WORKFLOW_NAME,
            case,
            id=wid,
            task_queue=cfg.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(temporal.LINE_HASH, case.line_hash),
                    SearchAttributePair(temporal.MASKED_NUMBER, case.masked_msisdn),
                    SearchAttributePair(temporal.RISK_LEVEL, case.assessment.risk_level),
                    SearchAttributePair(temporal.HOME_PROVINCE, case.home_province),
                    SearchAttributePair(temporal.CASE_STAGE, "opened"),
                ]
            ),
            static_summary=summary(case),
            static_details=details(case),
        )
        await conn.execute(
            "INSERT INTO cases (line_hash, last_seq) VALUES ($1, $2)"
            " ON CONFLICT (line_hash) DO UPDATE SET last_seq = excluded.last_seq",
            case.line_hash,
            seq,
        )
        return wid

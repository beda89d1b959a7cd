"""Opening a case for a line, or joining the one already open (one open case per line).

Decisions are written with the batch that caused them (the outbox); the opener starts or signals the
workflow. Ingest never loses a case when Temporal is briefly unreachable: the opener retries pending rows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from pscommon import temporal
from pscommon.config import Settings
from pscommon.identity import mask
from pscommon.telemetry import current_trace_id
from services.scoring import store
from workflows.contracts import SIGNAL_ASSESSMENT, WORKFLOW_NAME, Assessment, CaseInput, ReasonText

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
RETRY_S = 2.0


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


def case_input(row: asyncpg.Record) -> CaseInput:
    return CaseInput(
        msisdn=row["msisdn"],
        line_hash=row["line_hash"],
        masked_msisdn=mask(row["msisdn"]),
        home_province=row["home_province"],
        language=row["language"],
        assessment=Assessment(
            risk_level=row["risk_level"],
            action=row["action"],
            score=row["score"],
            reasons=[ReasonText(*r) for r in json.loads(row["reason_texts"])],
            decided_at=row["event_time"].isoformat(),
        ),
        trace_id="",
    )


def ingest_link(ref: str) -> list[trace.Link]:
    """A link to the ingest span that caused the decision ("<trace id>:<span id>" in hex)."""
    trace_hex, _, span_hex = ref.partition(":")
    if not span_hex:
        return []
    ctx = trace.SpanContext(int(trace_hex, 16), int(span_hex, 16), True, trace.TraceFlags(trace.TraceFlags.SAMPLED))
    return [trace.Link(ctx)]


def span_ref() -> str:
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}:{ctx.span_id:016x}" if ctx.is_valid else ""


class CaseOpener:
    def __init__(self, client: Client, pool: asyncpg.Pool, cfg: Settings) -> None:
        self.client = client
        self.pool = pool
        self.cfg = cfg
        self.wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    def open_soon(self, ids: list[int]) -> None:
        task = asyncio.create_task(self.open(ids))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def open(self, ids: list[int]) -> None:
        """Opens the cases of these decisions now; failures are left to the background retry."""
        try:
            await self._open(ids)
        except Exception:  # the outbox keeps them; the loop retries
            log.warning("case opening deferred", exc_info=True)
            self.wake.set()

    async def _run(self) -> None:
        while True:
            try:
                while await self._open(None):
                    pass
            except Exception:
                log.warning("case opener: will retry", exc_info=True)
                await asyncio.sleep(RETRY_S)
                continue
            try:
                await asyncio.wait_for(self.wake.wait(), RETRY_S * 15)
            except TimeoutError:
                pass
            self.wake.clear()

    async def _open(self, ids: list[int] | None) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await store.pending_decisions(conn, ids)
            for row in rows:
                await self._open_one(row)
                await store.mark_opened(conn, row["id"])
        return len(rows)

    async def _open_one(self, row: asyncpg.Record) -> None:
        wid = row["case_id"]
        # Each case is its own trace, linked to the ingest that triggered it.
        root = otel_context.Context()
        with tracer.start_as_current_span("open_case", context=root, links=ingest_link(row["trace_id"])) as span:
            case = dataclasses.replace(case_input(row), trace_id=current_trace_id())
            span.set_attribute("psp.line_hash", case.line_hash)
            span.set_attribute("psp.risk_level", case.assessment.risk_level)
            if row["join_case"]:
                try:
                    await self.client.get_workflow_handle(wid).signal(SIGNAL_ASSESSMENT, case.assessment)
                    return
                except RPCError as err:
                    if err.status != RPCStatusCode.NOT_FOUND:
                        raise
                    # Closed outside the platform (e.g. an operator terminated it): run the case again.
            await self.client.start_workflow(
                WORKFLOW_NAME,
                case,
                id=wid,
                task_queue=self.cfg.task_queue,
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

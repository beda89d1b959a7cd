"""Opening a case for a line, or joining the one already open (one open case per line).

Decisions are written with the batch that caused them (the outbox); the opener starts or signals the
workflow. Ingest never loses a case when Temporal is briefly unreachable: the opener retries pending rows.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from contracts.case import (
    SIGNAL_ASSESSMENT,
    WORKFLOW_NAME,
    Action,
    Assessment,
    CaseInput,
    ReasonText,
    RiskLevel,
    Stage,
    case_id,
    case_seq,
)
from pscommon import temporal
from pscommon.config import Settings
from pscommon.db import Conn
from pscommon.identity import mask
from pscommon.outbox import Relay
from pscommon.telemetry import current_trace_id
from services.scoring import metrics as scoring_metrics
from services.scoring import store
from services.scoring.scorecard import split_reason_texts

tracer = trace.get_tracer(__name__)
log = logging.getLogger(__name__)


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
    ]
    if a.mitigations:
        lines += ["", "**In the holder's favour**", *[f"- {r.text_en} / {r.text_zh}" for r in a.mitigations]]
    lines += ["", f"**Trace** `{case.trace_id}`"]
    return "\n".join(lines)


def case_input(row: asyncpg.Record) -> CaseInput:
    against, favour = split_reason_texts(json.loads(row["reason_texts"]))
    return CaseInput(
        msisdn=row["msisdn"],
        line_hash=row["line_hash"],
        masked_msisdn=mask(row["msisdn"]),
        home_province=row["home_province"],
        language=row["language"],
        assessment=Assessment(
            risk_level=RiskLevel(row["risk_level"]),
            action=Action(row["action"]),
            score=row["score"],
            reasons=[ReasonText(*r) for r in against],
            mitigations=[ReasonText(*r) for r in favour],
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


class CaseStarter:
    """Delivers one decision from the outbox: starts the line's case, or tells the open one (new assessment)."""

    def __init__(self, client: Client, cfg: Settings, pool: asyncpg.Pool) -> None:
        self.client = client
        self.cfg = cfg
        self.pool = pool

    def relay(self) -> Relay:
        return Relay(
            "case opener", self.pool, store.claim_decisions, self.open_one, store.mark_opened, store.release_decisions
        )

    async def open_one(self, row: asyncpg.Record) -> None:
        # Each case is its own trace, linked to the ingest that triggered it.
        root = otel_context.Context()
        with tracer.start_as_current_span("open_case", context=root, links=ingest_link(row["trace_id"])) as span:
            case = dataclasses.replace(case_input(row), trace_id=current_trace_id())
            span.set_attribute("psp.line_hash", case.line_hash)
            span.set_attribute("psp.risk_level", case.assessment.risk_level)
            wid, join = row["case_id"], row["join_case"]
            for _ in range(3):
                if await (self._join(wid, case) if join else self._start(wid, case)):
                    scoring_metrics.case_opened(case.assessment.risk_level, joined=join)
                    return
                # That case has ended (its outcome recorded, or closed outside the platform): this incident is
                # the line's next case. A case id never gets a second run, so no request id is reused.
                async with self.pool.acquire() as conn, conn.transaction():
                    wid, join = await self._next_case(conn, row["id"], case.line_hash, wid)
            raise RuntimeError("no case to open or join after three tries")

    async def _join(self, wid: str, case: CaseInput) -> bool:
        try:
            await self.client.get_workflow_handle(wid).signal(SIGNAL_ASSESSMENT, case.assessment)
            return True
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return False

    async def _start(self, wid: str, case: CaseInput) -> bool:
        try:
            await self.client.start_workflow(
                WORKFLOW_NAME,
                case,
                id=wid,
                task_queue=self.cfg.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,  # a repeated delivery: already running
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(temporal.LINE_HASH, case.line_hash),
                        SearchAttributePair(temporal.MASKED_NUMBER, case.masked_msisdn),
                        SearchAttributePair(temporal.RISK_LEVEL, case.assessment.risk_level),
                        SearchAttributePair(temporal.HOME_PROVINCE, case.home_province),
                        SearchAttributePair(temporal.CASE_STAGE, Stage.OPENED),
                    ]
                ),
                static_summary=summary(case),
                static_details=details(case),
            )
            return True
        except WorkflowAlreadyStartedError:
            return False

    async def _next_case(self, conn: Conn, decision_id: int, line_hash: str, ended: str) -> tuple[str, bool]:
        seq = case_seq(ended)
        if seq is not None:
            await store.close_case(conn, line_hash, seq)
        seq, join = await store.assign_case(conn, line_hash)
        wid = case_id(line_hash, seq)
        await store.move_decision(conn, decision_id, wid, join)
        log.info("case %s had ended: the decision goes to %s", ended, wid)
        return wid, join

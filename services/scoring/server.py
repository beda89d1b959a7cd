"""gRPC wiring of the scoring service."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace
from temporalio.client import Client

from carrier.common.v1 import common_pb2
from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from pscommon import db, grpc_server, idempotency, temporal
from pscommon.config import Settings
from pscommon.errors import not_found
from pscommon.identity import line_hash, mask
from pscommon.telemetry import current_trace_id
from pscommon.validation import Violations
from services.scoring import cases, store
from services.scoring.engine import CallRecord, Engine, Escalation
from services.scoring.features import Profile
from services.scoring.scorecard import ACTIONS, LEVELS, Assessment, load
from workflows.contracts import Assessment as CaseAssessment
from workflows.contracts import CaseInput, ReasonText

SERVICE = "carrier.scoring.v1.ScoringService"
tracer = trace.get_tracer(__name__)
LEVEL_PB = dict(zip(LEVELS, range(1, 5), strict=True))
ACTION_PB = dict(zip(ACTIONS, range(1, 5), strict=True))


def decision_pb(h: str, masked: str, a: Assessment, at: datetime, case_id: str) -> scoring_pb2.Decision:
    d = scoring_pb2.Decision(
        line_hash=h,
        masked_msisdn=masked,
        risk_level=LEVEL_PB[a.level],
        score=a.score,
        action=ACTION_PB[a.action],
        reasons=[
            common_pb2.Reason(code=r.code, text_zh=r.text_zh, text_en=r.text_en, weight=r.points) for r in a.reasons
        ],
        case_id=case_id,
    )
    d.decided_at.FromDatetime(at)
    return d


def validate_cdr(v: Violations, i: int, c: scoring_pb2.Cdr) -> None:
    p = f"cdrs[{i}]"
    v.msisdn(c.msisdn, f"{p}.msisdn")
    v.required(c.peer, f"{p}.peer")
    v.check(
        c.peer_province == "00" or c.peer_province.isdigit() and len(c.peer_province) == 2,
        f"{p}.peer_province",
        "must be a 2-digit province code or '00' for international",
    )
    v.enum(c.direction, f"{p}.direction", {scoring_pb2.DIRECTION_OUT, scoring_pb2.DIRECTION_IN})
    v.enum(c.service, f"{p}.service", {scoring_pb2.SERVICE_KIND_VOICE, scoring_pb2.SERVICE_KIND_SMS})
    v.check(c.HasField("start"), f"{p}.start", "required")


class Scoring(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, pool: asyncpg.Pool, cfg: Settings, client: Client, engine: Engine) -> None:
        self.pool = pool
        self.cfg = cfg
        self.client = client
        self.engine = engine

    def _hash(self, msisdn: str) -> str:
        return line_hash(msisdn, self.cfg.line_hash_key)

    async def IngestCdrs(self, request_iterator, context):  # noqa: N802
        resp = scoring_pb2.IngestCdrsResponse()
        async for batch in request_iterator:
            v = Violations()
            v.request_id(batch.request_id)
            for i, c in enumerate(batch.cdrs):
                validate_cdr(v, i, c)
            v.raise_if_any()
            async with self.pool.acquire() as conn:
                if await store.batch_seen(conn, batch.request_id, len(batch.cdrs)):
                    resp.batches_repeated += 1
                    continue
            for c in batch.cdrs:
                escalation = self.engine.observe(
                    CallRecord(
                        c.msisdn,
                        c.peer,
                        c.peer_province,
                        c.direction == scoring_pb2.DIRECTION_OUT,
                        c.start.ToDatetime(tzinfo=UTC),
                        c.duration_s,
                        c.cell_id,
                    )
                )
                if escalation is not None:
                    resp.decisions.append(await self._act(escalation))
            resp.batches_accepted += 1
            resp.cdrs_accepted += len(batch.cdrs)
        return resp

    async def _act(self, e: Escalation) -> scoring_pb2.Decision:
        profile = self.engine.profiles[e.msisdn]
        h, masked = self._hash(e.msisdn), mask(e.msisdn)
        a = e.assessment
        # Each case is its own trace, linked to the ingest that triggered it.
        link = trace.Link(trace.get_current_span().get_span_context())
        with tracer.start_as_current_span("open_case", context=otel_context.Context(), links=[link]) as span:
            span.set_attribute("psp.line_hash", h)
            span.set_attribute("psp.risk_level", a.level)
            case = CaseInput(
                msisdn=e.msisdn,
                line_hash=h,
                masked_msisdn=masked,
                home_province=profile.home_province,
                language=profile.language,
                assessment=CaseAssessment(
                    risk_level=a.level,
                    action=a.action,
                    score=a.score,
                    reasons=[ReasonText(r.code, r.text_zh, r.text_en, r.points) for r in a.reasons],
                    decided_at=e.at.isoformat(),
                ),
                trace_id=current_trace_id(),
            )
            case_id = await cases.open_or_join(self.client, self.pool, self.cfg, case)
        await store.record_decision(self.pool, h, a, self.engine.scorecard.version, e.at, case_id)
        return decision_pb(h, masked, a, e.at, case_id)

    async def UpsertSubscriber(self, request, context):  # noqa: N802
        v = Violations()
        v.request_id(request.request_id)
        v.msisdn(request.msisdn)
        v.province(request.home_province, "home_province")
        v.iso_date(request.opened_at, "opened_at")
        v.check(request.language in ("zh", "en"), "language", "must be 'zh' or 'en'")
        v.raise_if_any()
        h = self._hash(request.msisdn)
        profile = Profile(
            request.home_province, store.parse_date(request.opened_at), request.enterprise, request.language
        )

        async def work(conn: asyncpg.Connection) -> scoring_pb2.UpsertSubscriberResponse:
            await store.upsert_subscriber(conn, h, request.msisdn, profile)
            return scoring_pb2.UpsertSubscriberResponse(line_hash=h)

        resp = await idempotency.once(
            self.pool, "UpsertSubscriber", request.request_id, request, scoring_pb2.UpsertSubscriberResponse, work
        )
        self.engine.set_profile(request.msisdn, profile)
        return resp

    async def GetAssessment(self, request, context):  # noqa: N802
        v = Violations()
        v.msisdn(request.msisdn)
        v.raise_if_any()
        now = datetime.now(UTC)
        w = self.engine.windows.get(request.msisdn)
        if w is not None and w.out_hour:
            now = w.out_hour[-1].at  # event time of the line's latest call
        found = self.engine.current(request.msisdn, now)
        if found is None:
            raise not_found("subscriber", "SUBSCRIBER_NOT_FOUND")
        a, features = found
        return scoring_pb2.GetAssessmentResponse(
            assessment=decision_pb(self._hash(request.msisdn), mask(request.msisdn), a, now, ""),
            features={k: float(val) for k, val in features.items()},
            model_version=self.engine.scorecard.version,
        )

    async def RecordOutcome(self, request, context):  # noqa: N802
        v = Violations()
        v.request_id(request.request_id)
        v.msisdn(request.msisdn)
        v.required(request.case_id, "case_id")
        v.enum(request.outcome, "outcome", {scoring_pb2.OUTCOME_FALSE_POSITIVE, scoring_pb2.OUTCOME_CONFIRMED_FRAUD})
        v.raise_if_any()

        async def work(conn: asyncpg.Connection) -> scoring_pb2.RecordOutcomeResponse:
            await store.record_outcome(conn, self._hash(request.msisdn), request.case_id, request.outcome)
            return scoring_pb2.RecordOutcomeResponse()

        resp = await idempotency.once(
            self.pool, "RecordOutcome", request.request_id, request, scoring_pb2.RecordOutcomeResponse, work
        )
        self.engine.clear(request.msisdn)
        return resp


async def start(cfg: Settings, port: int) -> grpc_server.GrpcService:
    pool = await db.connect(cfg.database_url, "scoring")
    client = await temporal.connect(cfg)
    engine = Engine(load())
    for msisdn, profile in await store.subscribers(pool):
        engine.set_profile(msisdn, profile)

    return await grpc_server.start_servicer(
        "scoring",
        port,
        scoring_pb2_grpc.add_ScoringServiceServicer_to_server,
        Scoring(pool, cfg, client, engine),
        SERVICE,
        [pool.close],
    )


if __name__ == "__main__":
    grpc_server.serve_forever("scoring", start, lambda cfg: cfg.scoring_addr)

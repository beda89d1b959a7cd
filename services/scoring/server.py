"""gRPC wiring of the scoring service."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, date, datetime

import asyncpg

from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from pscommon import db, grpc_server, idempotency, temporal
from pscommon.config import Settings
from pscommon.errors import not_found
from pscommon.identity import line_hash, mask
from pscommon.streams import read_ahead
from pscommon.validation import Violations
from services.scoring import cases, requests, store
from services.scoring.engine import Engine, Escalation
from services.scoring.features import Profile
from services.scoring.replay import Sandbox, reasons_pb, score_cdrs
from services.scoring.scorecard import ACTIONS, LEVELS, Assessment, load
from services.scoring.snapshots import SnapshotWriter

SERVICE = "carrier.scoring.v1.ScoringService"
GC_YOUNG_THRESHOLD = 50_000
LEVEL_PB = dict(zip(LEVELS, range(1, 5), strict=True))
ACTION_PB = dict(zip(ACTIONS, range(1, 5), strict=True))


def decision_pb(h: str, masked: str, a: Assessment, at: int, case_id: str) -> scoring_pb2.Decision:
    d = scoring_pb2.Decision(
        line_hash=h,
        masked_msisdn=masked,
        risk_level=LEVEL_PB[a.level],
        score=a.score,
        action=ACTION_PB[a.action],
        reasons=reasons_pb(a),
        case_id=case_id,
    )
    d.decided_at.FromDatetime(datetime.fromtimestamp(at, UTC))
    return d


class Scoring(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, pool: asyncpg.Pool, cfg: Settings, engine: Engine, opener: cases.CaseOpener) -> None:
        self.pool = pool
        self.cfg = cfg
        self.engine = engine
        self.opener = opener

    def _hash(self, msisdn: str) -> str:
        return line_hash(msisdn, self.cfg.line_hash_key)

    async def _decide(self, conn: asyncpg.Connection, e: Escalation) -> tuple[scoring_pb2.Decision, int]:
        """Records a decision and the case it opens or joins, in the caller's transaction."""
        h = self._hash(e.msisdn)
        seq, join = await store.assign_case(conn, h)
        cid = cases.case_id(h, seq)
        version = self.engine.scorecard.version
        did = await store.insert_decision(conn, h, e.assessment, version, e.at, cid, join, cases.span_ref())
        return decision_pb(h, mask(e.msisdn), e.assessment, e.at, cid), did

    async def _ingest(self, request_id: str, cdrs) -> tuple[bool, list[scoring_pb2.Decision], list[int]]:
        """Scores one batch atomically with its record; returns (repeated, decisions, decision ids to open)."""
        v = Violations()
        v.request_id(request_id)
        rows = requests.cdr_rows(v, cdrs)
        v.raise_if_any()
        decisions, ids = [], []
        async with self.pool.acquire() as conn, conn.transaction():
            if await store.batch_seen(conn, request_id, len(cdrs)):
                return True, [], []
            for e in score_cdrs(self.engine, rows):
                d, did = await self._decide(conn, e)
                decisions.append(d)
                ids.append(did)
        return False, decisions, ids

    async def IngestCdrs(self, request_iterator, context):
        resp = scoring_pb2.IngestCdrsResponse()
        openings = []
        async for batch in read_ahead(request_iterator):
            repeated, decisions, ids = await self._ingest(batch.request_id, batch.cdrs)
            if repeated:
                resp.batches_repeated += 1
                continue
            if ids:
                openings.append(asyncio.create_task(self.opener.open(ids)))
            resp.decisions.extend(decisions)
            resp.batches_accepted += 1
            resp.cdrs_accepted += len(batch.cdrs)
        await asyncio.gather(*openings)
        return resp

    async def ScoreCdrs(self, request_iterator, context):
        async for batch in read_ahead(request_iterator):
            repeated, decisions, ids = await self._ingest(batch.request_id, batch.cdrs)
            if ids:  # the case ids are already assigned and durable: acknowledge without waiting for Temporal
                self.opener.open_soon(ids)
            yield scoring_pb2.ScoreCdrsResponse(request_id=batch.request_id, repeated=repeated, decisions=decisions)

    async def ReplayScenario(self, request_iterator, context):
        sandbox = Sandbox(self.engine.scorecard)
        async for item in request_iterator:
            sandbox.apply(item)
        return sandbox.verdicts()

    async def UpsertSubscriber(self, request, context):
        v = Violations()
        v.request_id(request.request_id)
        requests.check_profile(v, request)
        v.raise_if_any()
        h = self._hash(request.msisdn)
        profile = Profile(
            request.home_province, date.fromisoformat(request.opened_at), request.enterprise, request.language
        )

        async def work(conn: asyncpg.Connection) -> scoring_pb2.UpsertSubscriberResponse:
            await store.upsert_subscriber(conn, h, request.msisdn, profile)
            return scoring_pb2.UpsertSubscriberResponse(line_hash=h)

        resp = await idempotency.once(
            self.pool, "UpsertSubscriber", request.request_id, request, scoring_pb2.UpsertSubscriberResponse, work
        )
        self.engine.set_profile(request.msisdn, profile)
        return resp

    async def SetEnterpriseBinding(self, request, context):
        v = Violations()
        v.request_id(request.request_id)
        v.msisdn(request.msisdn)
        v.check(len(request.enterprise) <= 128, "enterprise", "at most 128 characters")
        v.raise_if_any()

        async def work(conn: asyncpg.Connection) -> scoring_pb2.SetEnterpriseBindingResponse:
            if not await store.set_enterprise(conn, self._hash(request.msisdn), request.enterprise):
                raise not_found("subscriber", "SUBSCRIBER_NOT_FOUND")
            return scoring_pb2.SetEnterpriseBindingResponse()

        resp = await idempotency.once(
            self.pool,
            "SetEnterpriseBinding",
            request.request_id,
            request,
            scoring_pb2.SetEnterpriseBindingResponse,
            work,
        )
        profile = self.engine.profiles.get(request.msisdn)
        if profile is not None:
            profile.enterprise = request.enterprise
        return resp

    async def UpdateCells(self, request, context):
        v = Violations()
        v.request_id(request.request_id)
        for i, c in enumerate(request.cells):
            requests.check_cell(v, c, f"cells[{i}]")
        v.raise_if_any()
        rows = [(c.cell_id, c.province, c.risk) for c in request.cells]

        async def work(conn: asyncpg.Connection) -> scoring_pb2.UpdateCellsResponse:
            await store.save_cells(conn, rows, request.replace)
            listed = await conn.fetchval("SELECT count(*) FROM cells")
            return scoring_pb2.UpdateCellsResponse(listed_cells=listed)

        resp = await idempotency.once(
            self.pool, "UpdateCells", request.request_id, request, scoring_pb2.UpdateCellsResponse, work
        )
        self.engine.cells = await store.cells(self.pool)
        return resp

    async def UpdateNumberFeed(self, request, context):
        v = Violations()
        v.request_id(request.request_id)
        v.check(bool(request.add or request.remove), "add", "give numbers to add or to remove")
        for field in ("add", "remove"):
            for i, n in enumerate(getattr(request, field)):
                v.check(3 <= len(n) <= 20 and n.lstrip("+").isdigit(), f"{field}[{i}]", "must be 3-20 digits")
        v.raise_if_any()

        async def work(conn: asyncpg.Connection) -> scoring_pb2.UpdateNumberFeedResponse:
            listed = await store.update_hot_numbers(conn, list(request.add), list(request.remove))
            return scoring_pb2.UpdateNumberFeedResponse(listed_numbers=listed)

        resp = await idempotency.once(
            self.pool, "UpdateNumberFeed", request.request_id, request, scoring_pb2.UpdateNumberFeedResponse, work
        )
        self.engine.hot_numbers = await store.hot_numbers(self.pool)
        return resp

    async def ReportLine(self, request, context):
        v = Violations()
        v.request_id(request.request_id)
        requests.check_report(v, request)
        v.raise_if_any()
        if request.msisdn not in self.engine.profiles:
            raise not_found("subscriber", "SUBSCRIBER_NOT_FOUND")
        opened: list[int] = []

        async def work(conn: asyncpg.Connection) -> scoring_pb2.ReportLineResponse:
            at = request.at.ToDatetime(tzinfo=UTC)
            await store.insert_report(conn, self._hash(request.msisdn), request.source, at, request.request_id)
            e = self.engine.report(request.msisdn, request.at.seconds, requests.report_source(request.source))
            if e is None:
                return scoring_pb2.ReportLineResponse()
            d, did = await self._decide(conn, e)
            opened.append(did)
            return scoring_pb2.ReportLineResponse(decision=d)

        resp = await idempotency.once(
            self.pool, "ReportLine", request.request_id, request, scoring_pb2.ReportLineResponse, work
        )
        if opened:
            await self.opener.open(opened)
        return resp

    async def GetAssessment(self, request, context):
        v = Violations()
        v.msisdn(request.msisdn)
        v.raise_if_any()
        found = self.engine.current(request.msisdn)
        if found is None:
            raise not_found("subscriber", "SUBSCRIBER_NOT_FOUND")
        a, features, at = found
        return scoring_pb2.GetAssessmentResponse(
            assessment=decision_pb(self._hash(request.msisdn), mask(request.msisdn), a, at, ""),
            features={k: float(val) for k, val in features.items()},
            model_version=self.engine.scorecard.version,
        )

    async def RecordOutcome(self, request, context):
        v = Violations()
        v.request_id(request.request_id)
        v.msisdn(request.msisdn)
        v.required(request.case_id, "case_id")
        v.enum(request.outcome, "outcome", {scoring_pb2.OUTCOME_FALSE_POSITIVE, scoring_pb2.OUTCOME_CONFIRMED_FRAUD})
        v.raise_if_any()
        h = self._hash(request.msisdn)

        async def work(conn: asyncpg.Connection) -> scoring_pb2.RecordOutcomeResponse:
            codes = await store.case_reason_codes(conn, request.case_id)
            fp = request.outcome == scoring_pb2.OUTCOME_FALSE_POSITIVE
            cleared = sorted(self.engine.label(request.msisdn, fp, frozenset(codes)))
            version = self.engine.scorecard.version
            await store.record_outcome(conn, h, request.case_id, request.outcome, version, codes, cleared)
            prefix = f"case-{h}-"
            if request.case_id.startswith(prefix) and request.case_id[len(prefix) :].isdigit():
                await store.close_case(conn, h, int(request.case_id[len(prefix) :]))
            return scoring_pb2.RecordOutcomeResponse(cleared_reason_codes=cleared)

        return await idempotency.once(
            self.pool, "RecordOutcome", request.request_id, request, scoring_pb2.RecordOutcomeResponse, work
        )


async def build_engine(pool: asyncpg.Pool) -> Engine:
    """The engine as the last process left it: profiles, feeds, and every line's windows."""
    engine = Engine(load())
    for msisdn, profile in await store.subscribers(pool):
        engine.set_profile(msisdn, profile)
    engine.cells = await store.cells(pool)
    engine.hot_numbers = await store.hot_numbers(pool)
    for msisdn, snap in await store.load_windows(pool):
        engine.restore(msisdn, snap)
    return engine


def tune_gc() -> None:
    """The windows are millions of small long-lived objects without reference cycles: the default collector
    would rescan them every few hundred allocations. Freeze what was restored and collect young objects rarely."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 100)


async def start(cfg: Settings, port: int) -> grpc_server.GrpcService:
    pool = await db.connect(cfg.database_url, "scoring")
    client = await temporal.connect(cfg)
    engine = await build_engine(pool)
    tune_gc()
    opener = cases.CaseOpener(client, pool, cfg)
    opener.start()
    snapshots = SnapshotWriter(pool, engine, lambda m: line_hash(m, cfg.line_hash_key), cfg.scoring_snapshot_s)
    snapshots.start()
    return await grpc_server.start_servicer(
        "scoring",
        port,
        scoring_pb2_grpc.add_ScoringServiceServicer_to_server,
        Scoring(pool, cfg, engine, opener),
        SERVICE,
        [pool.close, opener.stop, snapshots.stop],
    )


if __name__ == "__main__":
    grpc_server.serve_forever("scoring", start, lambda cfg: cfg.scoring_addr)

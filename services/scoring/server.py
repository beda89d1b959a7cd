"""gRPC wiring of the scoring service."""

from __future__ import annotations

import asyncio
import gc
import json
import pathlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime

import asyncpg
import grpc

from carrier.common.v1 import common_pb2
from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from contracts import ACCESS_TABLE
from contracts.case import case_id, case_line_hash, case_seq
from contracts.pb import ACTION_PB, RISK_LEVEL_PB
from pscommon import db, grpc_server, temporal
from pscommon.access import caller
from pscommon.config import Settings
from pscommon.db import Conn
from pscommon.errors import ServiceError, not_found
from pscommon.idempotency import Tx, mutation
from pscommon.identity import line_hash, mask
from pscommon.outbox import Relay
from pscommon.streams import read_ahead
from pscommon.validation import Violations
from services.scoring import cases, requests, store
from services.scoring.engine import Engine, Escalation
from services.scoring.features import Profile
from services.scoring.replay import Sandbox, reasons_pb, score_cdrs
from services.scoring.scorecard import Assessment, load
from services.scoring.snapshots import SnapshotWriter

MIGRATIONS = pathlib.Path(__file__).with_name("migrations")
SERVICE = "carrier.scoring.v1.ScoringService"
GC_YOUNG_THRESHOLD = 50_000


def decision_pb(h: str, masked: str, a: Assessment, at: int, case_id: str) -> scoring_pb2.Decision:
    d = scoring_pb2.Decision(
        line_hash=h,
        masked_msisdn=masked,
        risk_level=RISK_LEVEL_PB[a.level],
        score=a.score,
        action=ACTION_PB[a.action],
        reasons=reasons_pb(a),
        case_id=case_id,
    )
    d.decided_at.FromDatetime(datetime.fromtimestamp(at, UTC))
    return d


def stored_decision_pb(row: asyncpg.Record) -> scoring_pb2.Decision:
    d = scoring_pb2.Decision(
        line_hash=row["line_hash"],
        masked_msisdn=row["masked_msisdn"],
        risk_level=RISK_LEVEL_PB[row["risk_level"]],
        score=row["score"],
        action=ACTION_PB[row["action"]],
        reasons=[
            common_pb2.Reason(code=code, text_zh=zh, text_en=en, weight=points)
            for code, zh, en, points in json.loads(row["reason_texts"])
        ],
        case_id=row["case_id"],
    )
    d.decided_at.FromDatetime(row["event_time"])
    return d


class Scoring(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, pool: asyncpg.Pool, cfg: Settings, engine: Engine, opener: Relay) -> None:
        self.pool = pool
        self.cfg = cfg
        self.engine = engine
        self.opener = opener

    def _hash(self, msisdn: str) -> str:
        return line_hash(msisdn, self.cfg.line_hash_key)

    async def _decide(self, conn: Conn, e: Escalation, batch_id: str | None = None) -> tuple[scoring_pb2.Decision, int]:
        """Records a decision and the case it opens or joins, in the caller's transaction."""
        h = self._hash(e.msisdn)
        seq, join = await store.assign_case(conn, h)
        cid = case_id(h, seq)
        version = self.engine.scorecard.version
        masked = mask(e.msisdn)
        did = await store.insert_decision(
            conn, h, e.assessment, version, e.at, cid, join, cases.span_ref(), batch_id, masked
        )
        return decision_pb(h, masked, e.assessment, e.at, cid), did

    async def _ingest(
        self, request_id: str, cdrs: Sequence[scoring_pb2.Cdr]
    ) -> tuple[bool, list[scoring_pb2.Decision], list[int]]:
        """Scores one batch atomically with its record; returns (repeated, decisions, decision ids to open).

        A repeated batch answers with the decisions it took the first time."""
        v = Violations()
        v.request_id(request_id)
        rows = requests.cdr_rows(v, cdrs)
        v.raise_if_any()
        decisions, ids = [], []
        async with self.pool.acquire() as conn, conn.transaction():
            if await store.batch_seen(conn, request_id, len(cdrs)):
                return True, [stored_decision_pb(r) for r in await store.batch_decisions(conn, request_id)], []
            for e in score_cdrs(self.engine, rows):
                d, did = await self._decide(conn, e, request_id)
                decisions.append(d)
                ids.append(did)
        return False, decisions, ids

    async def IngestCdrs(
        self, request_iterator: AsyncIterator[scoring_pb2.IngestCdrsRequest], context: grpc.aio.ServicerContext
    ) -> scoring_pb2.IngestCdrsResponse:
        resp = scoring_pb2.IngestCdrsResponse()
        openings = []
        position = 0
        async for batch in read_ahead(request_iterator):
            try:
                repeated, decisions, ids = await self._ingest(batch.request_id, batch.cdrs)
            except ServiceError as err:
                # Each batch is its own request: the ones before stay applied, and say so.
                err.metadata["batch_index"] = str(position)
                err.message = f"batch {position}: {err.message}"
                raise
            position += 1
            resp.decisions.extend(decisions)
            if repeated:
                resp.batches_repeated += 1
                continue
            if ids:
                openings.append(asyncio.create_task(self.opener.deliver_now(ids)))
            resp.batches_accepted += 1
            resp.cdrs_accepted += len(batch.cdrs)
        await asyncio.gather(*openings)
        return resp

    async def ScoreCdrs(
        self, request_iterator: AsyncIterator[scoring_pb2.ScoreCdrsRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scoring_pb2.ScoreCdrsResponse]:
        async for batch in read_ahead(request_iterator):
            repeated, decisions, ids = await self._ingest(batch.request_id, batch.cdrs)
            if ids:  # the case ids are already assigned and durable: acknowledge without waiting for Temporal
                self.opener.deliver_soon(ids)
            yield scoring_pb2.ScoreCdrsResponse(request_id=batch.request_id, repeated=repeated, decisions=decisions)

    async def ReplayScenario(
        self, request_iterator: AsyncIterator[scoring_pb2.ReplayScenarioRequest], context: grpc.aio.ServicerContext
    ) -> scoring_pb2.ReplayScenarioResponse:
        sandbox = Sandbox(self.engine.scorecard)
        async for item in request_iterator:
            sandbox.apply(item)
        return sandbox.verdicts()

    @mutation(requests.check_upsert)
    async def UpsertSubscriber(
        self, request: scoring_pb2.UpsertSubscriberRequest, tx: Tx
    ) -> scoring_pb2.UpsertSubscriberResponse:
        h = self._hash(request.msisdn)
        profile = Profile(
            request.home_province, date.fromisoformat(request.opened_at), request.enterprise, request.language
        )
        await store.upsert_subscriber(tx.conn, h, request.msisdn, profile)
        tx.after_commit(lambda: self.engine.set_profile(request.msisdn, profile))
        return scoring_pb2.UpsertSubscriberResponse(line_hash=h)

    @mutation(requests.check_enterprise)
    async def SetEnterpriseBinding(
        self, request: scoring_pb2.SetEnterpriseBindingRequest, tx: Tx
    ) -> scoring_pb2.SetEnterpriseBindingResponse:
        if not await store.set_enterprise(tx.conn, self._hash(request.msisdn), request.enterprise):
            raise not_found("subscriber", "SUBSCRIBER_NOT_FOUND")
        tx.after_commit(lambda: self.engine.set_enterprise(request.msisdn, request.enterprise))
        return scoring_pb2.SetEnterpriseBindingResponse()

    @mutation(requests.check_cells)
    async def UpdateCells(self, request: scoring_pb2.UpdateCellsRequest, tx: Tx) -> scoring_pb2.UpdateCellsResponse:
        await store.save_cells(tx.conn, [(c.cell_id, c.province, c.risk) for c in request.cells], request.replace)
        cells = await store.cells(tx.conn)
        tx.after_commit(lambda: self.engine.set_feeds(cells=cells))
        return scoring_pb2.UpdateCellsResponse(listed_cells=len(cells))

    @mutation(requests.check_number_feed)
    async def UpdateNumberFeed(
        self, request: scoring_pb2.UpdateNumberFeedRequest, tx: Tx
    ) -> scoring_pb2.UpdateNumberFeedResponse:
        await store.update_hot_numbers(tx.conn, list(request.add), list(request.remove))
        numbers = await store.hot_numbers(tx.conn)
        tx.after_commit(lambda: self.engine.set_feeds(hot_numbers=numbers))
        return scoring_pb2.UpdateNumberFeedResponse(listed_numbers=len(numbers))

    @mutation(requests.check_report_line)
    async def ReportLine(self, request: scoring_pb2.ReportLineRequest, tx: Tx) -> scoring_pb2.ReportLineResponse:
        who = caller()
        requests.check_reporter(request.source, who.role)
        if request.msisdn not in self.engine.profiles:
            raise not_found("subscriber", "SUBSCRIBER_NOT_FOUND")
        at = request.at.ToDatetime(tzinfo=UTC)
        h = self._hash(request.msisdn)
        await store.insert_report(tx.conn, h, request.source, at, request.request_id, who.name)
        e = self.engine.report(request.msisdn, request.at.seconds, requests.report_source(request.source))
        if e is None:
            return scoring_pb2.ReportLineResponse()
        d, did = await self._decide(tx.conn, e)
        tx.after_commit(lambda: self.opener.deliver_now([did]))
        return scoring_pb2.ReportLineResponse(decision=d)

    async def GetAssessment(
        self, request: scoring_pb2.GetAssessmentRequest, context: grpc.aio.ServicerContext
    ) -> scoring_pb2.GetAssessmentResponse:
        requests.check_get_assessment(request)
        found = self.engine.current(request.msisdn)
        if found is None:
            raise not_found("subscriber", "SUBSCRIBER_NOT_FOUND")
        a, features, at = found
        return scoring_pb2.GetAssessmentResponse(
            assessment=decision_pb(self._hash(request.msisdn), mask(request.msisdn), a, at, ""),
            features={k: float(val) for k, val in features.items()},
            model_version=self.engine.scorecard.version,
        )

    @mutation(requests.check_outcome)
    async def RecordOutcome(
        self, request: scoring_pb2.RecordOutcomeRequest, tx: Tx
    ) -> scoring_pb2.RecordOutcomeResponse:
        h = self._hash(request.msisdn)
        codes = await store.case_reason_codes(tx.conn, request.case_id)
        fp = request.outcome == scoring_pb2.OUTCOME_FALSE_POSITIVE
        cleared = sorted(self.engine.label(request.msisdn, fp, frozenset(codes)))
        version = self.engine.scorecard.version
        await store.record_outcome(tx.conn, h, request.case_id, request.outcome, version, codes, cleared, caller().name)
        seq = case_seq(request.case_id)
        if case_line_hash(request.case_id) == h and seq is not None:
            await store.close_case(tx.conn, h, seq)
        return scoring_pb2.RecordOutcomeResponse(cleared_reason_codes=cleared)


async def build_engine(pool: asyncpg.Pool) -> Engine:
    """The engine as the last process left it: profiles, feeds, and every line's windows."""
    engine = Engine(load())
    for msisdn, profile in await store.subscribers(pool):
        engine.set_profile(msisdn, profile)
    engine.set_feeds(await store.cells(pool), await store.hot_numbers(pool))
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
    pool = await db.connect(cfg.database_url, "scoring", MIGRATIONS)
    client = await temporal.connect(cfg)
    engine = await build_engine(pool)
    tune_gc()
    opener = cases.CaseStarter(client, cfg).relay(pool)
    opener.start()
    snapshots = SnapshotWriter(pool, engine, lambda m: line_hash(m, cfg.line_hash_key), cfg.scoring_snapshot_s)
    snapshots.start()
    return await grpc_server.start_servicer(
        "scoring",
        port,
        scoring_pb2_grpc.add_ScoringServiceServicer_to_server,
        Scoring(pool, cfg, engine, opener),
        SERVICE,
        grpc_server.Security.from_settings(cfg, ACCESS_TABLE),
        [pool.close, opener.stop, snapshots.stop],
    )


if __name__ == "__main__":
    grpc_server.serve_forever("scoring", start, lambda cfg: cfg.scoring_addr)

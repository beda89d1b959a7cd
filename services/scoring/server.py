"""gRPC wiring of the scoring service."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import pathlib
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, date, datetime

import asyncpg
import grpc

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
from pscommon.validation import CLOCK_SKEW_S, Violations
from services.scoring import cases, heap, requests, store
from services.scoring import metrics as scoring_metrics
from services.scoring.engine import Engine, Escalation
from services.scoring.features import Profile
from services.scoring.feeds import FeedListener
from services.scoring.ledger import Ingested, Ledger, Part
from services.scoring.partitions import ShardMap, partition_of
from services.scoring.replay import Sandbox, mitigations_pb, reasons_pb, stored_reasons_pb
from services.scoring.scorecard import Assessment, load
from services.scoring.shards import Shards, at_line_owner
from services.scoring.snapshots import SnapshotWriter

MIGRATIONS = pathlib.Path(__file__).with_name("migrations")
SERVICE = "carrier.scoring.v1.ScoringService"
SHARD_SERVICE = "carrier.scoring.v1.ScoringShardService"
MAX_STREAM_DECISIONS = 10_000  # decisions one IngestCdrs answers; the rest are counted (decisions_omitted)


def decision_pb(h: str, masked: str, a: Assessment, at: int, case_id: str) -> scoring_pb2.Decision:
    d = scoring_pb2.Decision(
        line_hash=h,
        masked_msisdn=masked,
        risk_level=RISK_LEVEL_PB[a.level],
        score=a.score,
        action=ACTION_PB[a.action],
        reasons=reasons_pb(a),
        mitigations=mitigations_pb(a),
        case_id=case_id,
    )
    d.decided_at.FromDatetime(datetime.fromtimestamp(at, UTC))
    return d


def stored_decision_pb(row: asyncpg.Record) -> scoring_pb2.Decision:
    against, favour = stored_reasons_pb(json.loads(row["reason_texts"]))
    d = scoring_pb2.Decision(
        line_hash=row["line_hash"],
        masked_msisdn=row["masked_msisdn"],
        risk_level=RISK_LEVEL_PB[row["risk_level"]],
        score=row["score"],
        action=ACTION_PB[row["action"]],
        reasons=against,
        mitigations=favour,
        case_id=row["case_id"],
    )
    d.decided_at.FromDatetime(row["event_time"])
    return d


def _ledger_lock(servicer: Scoring) -> asyncio.Lock:
    return servicer.ledger.lock


class Scoring(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(
        self,
        pool: asyncpg.Pool,
        cfg: Settings,
        engine: Engine,
        opener: Relay,
        shards: Shards,
        token: uuid.UUID,
        on_lost: Callable[[], None] = lambda: None,
    ) -> None:
        self.pool = pool
        self.cfg = cfg
        self.engine = engine
        self.opener = opener
        self.shards = shards
        self.ledger: Ledger[scoring_pb2.Decision] = Ledger(
            pool, engine, shards.map, self._hash, self._decide, self._recorded, token, on_lost
        )

    def _hash(self, msisdn: str) -> str:
        return line_hash(msisdn, self.cfg.line_hash_key)

    async def _decide(
        self, conn: Conn, e: Escalation, cause: str, batch_id: str | None = None
    ) -> tuple[scoring_pb2.Decision, int]:
        """Records a decision and the case it opens or joins, in the caller's transaction; a cause already
        decided (the journal replayed after a crash) answers its decision."""
        found = await store.decision_of(conn, cause)
        if found is not None:
            return stored_decision_pb(found), found["id"]
        h = self._hash(e.msisdn)
        seq, join = await store.assign_case(conn, h)
        cid = case_id(h, seq)
        version = self.engine.scorecard.version
        masked = mask(e.msisdn)
        did = await store.insert_decision(
            conn, h, e.assessment, version, e.at, cid, join, cases.span_ref(), batch_id, masked, cause
        )
        return decision_pb(h, masked, e.assessment, e.at, cid), did

    async def _recorded(self, conn: Conn, batch_id: str, partitions: list[int] | None) -> list[scoring_pb2.Decision]:
        return [stored_decision_pb(r) for r in await store.batch_decisions(conn, batch_id, partitions)]

    async def _ingest(self, request_id: str, cdrs: Sequence[scoring_pb2.Cdr]) -> Ingested[scoring_pb2.Decision]:
        """Scores one batch (see ledger.py); a repeated batch answers with the decisions it took the first time.
        With several shards, each owner applies its part (shards.py); a part that fails fails the batch, and
        sending it again applies only the parts not applied yet."""
        v = Violations()
        v.request_id(request_id)
        rows = requests.cdr_rows(v, cdrs)
        v.raise_if_any()
        done = await self._apply(request_id, cdrs, rows)
        done.newest = max((r[4] for r in rows), default=0)  # read from the rows: a protobuf read costs more
        return done

    async def _apply(
        self, request_id: str, cdrs: Sequence[scoring_pb2.Cdr], rows: list[requests.CdrRow]
    ) -> Ingested[scoring_pb2.Decision]:
        if self.shards.single:
            return await self.ledger.ingest(request_id, rows)
        split = self.shards.split([r[0] for r in rows])
        mine = split.parts.pop(self.shards.map.shard, None)
        work: list[asyncio.Future[Ingested[scoring_pb2.Decision]]] = [
            asyncio.ensure_future(self._apply_remote(owner, request_id, cdrs, part))
            for owner, part in split.parts.items()
        ]
        if mine is not None:
            work.append(asyncio.ensure_future(self.ledger.ingest(request_id, [rows[i] for i in mine.indices], mine)))
        done = await asyncio.gather(*work, return_exceptions=True)
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome
        parts = [d for d in done if not isinstance(d, BaseException)]
        return Ingested(
            all(d.repeated for d in parts),
            [decision for d in parts for decision in d.decisions],
            [i for d in parts for i in d.decision_ids],
        )

    async def _apply_remote(
        self, owner: int, request_id: str, cdrs: Sequence[scoring_pb2.Cdr], part: Part
    ) -> Ingested[scoring_pb2.Decision]:
        request = scoring_pb2.ApplyPartRequest(
            request_id=request_id,
            partitions=part.partitions,
            cdrs=[cdrs[i] for i in part.indices],
            indices=part.indices,
        )
        answer = await self.shards.call(owner, "ApplyPart", request, on_behalf=False)
        return Ingested(answer.repeated, list(answer.decisions), [])  # the owner opens its cases

    async def IngestCdrs(
        self, request_iterator: AsyncIterator[scoring_pb2.IngestCdrsRequest], context: grpc.aio.ServicerContext
    ) -> scoring_pb2.IngestCdrsResponse:
        resp = scoring_pb2.IngestCdrsResponse()
        openings: list[asyncio.Task[None]] = []
        position = 0
        stream = read_ahead(request_iterator)
        while True:
            try:  # a message that does not parse (or breaks the bounds) is refused here, as the batch it is
                batch = await anext(stream)
                done = await scoring_metrics.scored(self._ingest(batch.request_id, batch.cdrs), batch.cdrs)
            except StopAsyncIteration:
                break
            except ServiceError as err:
                # Each batch is its own request: the ones before stay applied, and say so.
                err.metadata["batch_index"] = str(position)
                err.message = f"batch {position}: {err.message}"
                raise
            position += 1
            room = MAX_STREAM_DECISIONS - len(resp.decisions)
            resp.decisions.extend(done.decisions[: max(0, room)])
            resp.decisions_omitted += max(0, len(done.decisions) - max(0, room))
            if done.repeated:
                resp.batches_repeated += 1
                continue
            if done.decision_ids:
                openings = [t for t in openings if not t.done()]
                openings.append(asyncio.create_task(self.opener.deliver_now(done.decision_ids)))
            resp.batches_accepted += 1
            resp.cdrs_accepted += len(batch.cdrs)
        await asyncio.gather(*openings)  # the cases are started (or left to the opener's retries) when we answer
        return resp

    async def ScoreCdrs(
        self, request_iterator: AsyncIterator[scoring_pb2.ScoreCdrsRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scoring_pb2.ScoreCdrsResponse]:
        async for batch in read_ahead(request_iterator):
            done = await scoring_metrics.scored(self._ingest(batch.request_id, batch.cdrs), batch.cdrs)
            if done.decision_ids:  # the case ids are already assigned and durable: acknowledge without waiting
                self.opener.deliver_soon(done.decision_ids)
            yield scoring_pb2.ScoreCdrsResponse(
                request_id=batch.request_id, repeated=done.repeated, decisions=done.decisions
            )

    async def ReplayScenario(
        self, request_iterator: AsyncIterator[scoring_pb2.ReplayScenarioRequest], context: grpc.aio.ServicerContext
    ) -> scoring_pb2.ReplayScenarioResponse:
        sandbox = Sandbox(self.engine.scorecard)
        async for item in request_iterator:
            sandbox.apply(item)
        return sandbox.verdicts()

    @at_line_owner
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

    @at_line_owner
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
        await store.announce_feeds(tx.conn)
        tx.after_commit(lambda: self.engine.set_feeds(cells=cells))
        return scoring_pb2.UpdateCellsResponse(listed_cells=len(cells))

    @mutation(requests.check_number_feed)
    async def UpdateNumberFeed(
        self, request: scoring_pb2.UpdateNumberFeedRequest, tx: Tx
    ) -> scoring_pb2.UpdateNumberFeedResponse:
        await store.update_hot_numbers(tx.conn, list(request.add), list(request.remove))
        numbers = await store.hot_numbers(tx.conn)
        await store.announce_feeds(tx.conn)
        tx.after_commit(lambda: self.engine.set_feeds(hot_numbers=numbers))
        return scoring_pb2.UpdateNumberFeedResponse(listed_numbers=len(numbers))

    @at_line_owner
    @mutation(requests.check_report_line, serialized=_ledger_lock)
    async def ReportLine(self, request: scoring_pb2.ReportLineRequest, tx: Tx) -> scoring_pb2.ReportLineResponse:
        who = caller()
        requests.check_reporter(request.source, who.role)
        if request.msisdn not in self.engine.profiles:
            raise not_found("subscriber", "SUBSCRIBER_NOT_FOUND")
        at = request.at.ToDatetime(tzinfo=UTC)
        h = self._hash(request.msisdn)
        await store.insert_report(tx.conn, h, request.source, at, request.request_id, who.name)
        source = requests.report_source(request.source)
        e = await self.ledger.journal_report(tx, request.request_id, request.msisdn, request.at.seconds, source)
        if e is None:
            return scoring_pb2.ReportLineResponse()
        d, did = await self._decide(tx.conn, e, request.request_id)
        tx.after_commit(lambda: self.opener.deliver_soon([did]))
        return scoring_pb2.ReportLineResponse(decision=d)

    @at_line_owner
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

    @at_line_owner
    @mutation(requests.check_outcome, serialized=_ledger_lock)
    async def RecordOutcome(
        self, request: scoring_pb2.RecordOutcomeRequest, tx: Tx
    ) -> scoring_pb2.RecordOutcomeResponse:
        h = self._hash(request.msisdn)
        codes = frozenset(await store.case_reason_codes(tx.conn, request.case_id))
        fp = request.outcome == scoring_pb2.OUTCOME_FALSE_POSITIVE
        cleared = sorted(await self.ledger.journal_label(tx, request.request_id, request.msisdn, fp, codes))
        version = self.engine.scorecard.version
        await store.record_outcome(
            tx.conn, h, request.case_id, request.outcome, version, sorted(codes), cleared, caller().name
        )
        seq = case_seq(request.case_id)
        if case_line_hash(request.case_id) == h and seq is not None:
            await store.close_case(tx.conn, h, seq)
        return scoring_pb2.RecordOutcomeResponse(cleared_reason_codes=cleared)


class ShardPeer(scoring_pb2_grpc.ScoringShardServiceServicer):
    """What one scoring shard asks of another: apply the part of a client's batch that it owns."""

    def __init__(self, scoring: Scoring) -> None:
        self.scoring = scoring

    async def ApplyPart(
        self, request: scoring_pb2.ApplyPartRequest, context: grpc.aio.ServicerContext
    ) -> scoring_pb2.ApplyPartResponse:
        s = self.scoring
        v = Violations()
        v.request_id(request.request_id)
        rows = requests.cdr_rows(v, request.cdrs)
        v.check(len(request.indices) == len(request.cdrs), "indices", "one per CDR")
        v.check(len(set(request.indices)) == len(request.indices), "indices", "each position once")
        v.raise_if_any()
        row_partitions = [partition_of(s._hash(r[0])) for r in rows]
        partitions = sorted(set(row_partitions))
        if any(s.shards.map.owner(p) != s.shards.map.shard for p in partitions):
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE,
                "the shards disagree on who owns these lines (the shards are being re-counted); retry",
                "SHARD_MAP_CHANGED",
            )
        done = await s.ledger.ingest(request.request_id, rows, Part(partitions, row_partitions, list(request.indices)))
        if done.decision_ids:
            s.opener.deliver_soon(done.decision_ids)
        return scoring_pb2.ApplyPartResponse(repeated=done.repeated, decisions=done.decisions)


async def build_engine(pool: asyncpg.Pool, shards: ShardMap, lateness_s: int = 7200) -> Engine:
    """The engine of this shard's partitions as they were saved: profiles, feeds and windows (the journal after
    the checkpoints is replayed by the ledger)."""
    engine = Engine(load(), lateness_s=lateness_s, wall_clock=time.time)
    owned = shards.owned
    for msisdn, profile in await store.subscribers(pool, owned):
        engine.set_profile(msisdn, profile)
    engine.set_feeds(await store.cells(pool), await store.hot_numbers(pool))
    latest = int(time.time()) + CLOCK_SKEW_S
    for msisdn, snap in await store.load_windows(pool, owned, latest):
        engine.restore(msisdn, snap)
    return engine


async def start(cfg: Settings, port: int, on_lost: Callable[[], None] | None = None) -> grpc_server.GrpcService:
    """One scoring shard: claims its partitions, loads them (checkpoints + journal), then serves. `on_lost`:
    what to do when another process claims them (default: stop this one, as SIGTERM would)."""
    pool = await db.connect(cfg.database_url, "scoring", MIGRATIONS)
    client = await temporal.connect(cfg)
    shard_map = ShardMap(cfg.scoring_shards, cfg.scoring_shard)
    hash_of = functools.partial(line_hash, key=cfg.line_hash_key)
    shards = Shards(cfg, shard_map, hash_of)
    stop_me = on_lost or (lambda: os.kill(os.getpid(), signal.SIGTERM))
    token = uuid.uuid4()
    await store.claim_partitions(pool, shard_map.owned, token, shard_map.shard, shard_map.shards)
    # After the claim: no earlier owner writes these partitions any more.
    engine = await build_engine(pool, shard_map, cfg.scoring_lateness_s)
    opener = cases.CaseStarter(client, cfg, pool).relay()
    servicer = Scoring(pool, cfg, engine, opener, shards, token, stop_me)
    await servicer.ledger.replay(await store.checkpoints(pool, shard_map.owned))
    heap.tune()
    freezer = heap.Freezer()
    if heap.whole_process:
        freezer.start()
    opener.start()
    snapshots = SnapshotWriter(pool, servicer.ledger, hash_of, cfg.scoring_snapshot_s, cfg.scoring_snapshot_version)
    snapshots.start()
    feeds = FeedListener(cfg.database_url, pool, servicer.engine)
    await feeds.start()

    def register(server: grpc.aio.Server) -> list[str]:
        scoring_pb2_grpc.add_ScoringServiceServicer_to_server(servicer, server)
        scoring_pb2_grpc.add_ScoringShardServiceServicer_to_server(ShardPeer(servicer), server)
        return [SERVICE, SHARD_SERVICE]

    svc = await grpc_server.start("scoring", port, register, grpc_server.Security.from_settings(cfg, ACCESS_TABLE))
    svc.on_stop.extend([pool.close, feeds.stop, opener.stop, snapshots.stop, freezer.stop])
    return svc


def address(cfg: Settings) -> str:
    """This shard's address: its entry in PSP_SCORING_SHARD_ADDRS, or PSP_SCORING_ADDR for one shard."""
    addrs = [a.strip() for a in cfg.scoring_shard_addrs.split(",") if a.strip()]
    return addrs[cfg.scoring_shard] if cfg.scoring_shards > 1 and addrs else cfg.scoring_addr


if __name__ == "__main__":
    heap.whole_process = True
    grpc_server.serve_forever("scoring", start, address)

"""gRPC wiring of the suspension service."""

from __future__ import annotations

import logging
import pathlib
import uuid
from dataclasses import asdict
from datetime import UTC, datetime

import asyncpg
import grpc

from carrier.common.v1 import common_pb2
from carrier.hlr.v1 import hlr_pb2, hlr_pb2_grpc
from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from contracts import ACCESS_TABLE
from pscommon import db, grpc_server, metrics
from pscommon.access import caller
from pscommon.channels import channel
from pscommon.config import Settings
from pscommon.errors import failed_precondition, not_found, unavailable
from pscommon.idempotency import Tx, mutation
from pscommon.identity import line_hash, mask
from pscommon.tls import TlsFiles
from services.suspension import requests, store
from services.suspension.state_machine import (
    NOTHING_BARRED,
    Barring,
    TransitionRefused,
    barring_for,
    check_transition,
    is_restore,
)

MIGRATIONS = pathlib.Path(__file__).with_name("migrations")
SERVICE = "carrier.suspension.v1.SuspensionService"
log = logging.getLogger(__name__)


def barring_pb(b: Barring) -> suspension_pb2.Barring:
    return suspension_pb2.Barring(**asdict(b))


def line_pb(rec: asyncpg.Record) -> suspension_pb2.Line:
    line = suspension_pb2.Line(
        line_hash=rec["line_hash"],
        masked_msisdn=rec["masked_msisdn"],
        home_province=rec["home_province"],
        state=rec["state"],
        barring=barring_pb(store.barring_of(rec)),
        restore_count=rec["restore_count"],
    )
    line.updated_at.FromDatetime(rec["updated_at"])
    return line


class Suspension(suspension_pb2_grpc.SuspensionServiceServicer):
    def __init__(self, pool: asyncpg.Pool, cfg: Settings) -> None:
        self.pool = pool
        self.cfg = cfg
        self.hlr = hlr_pb2_grpc.HlrServiceStub(channel(cfg.simulators_addr, TlsFiles.from_settings(cfg)))

    def _hash(self, msisdn: str) -> str:
        return line_hash(msisdn, self.cfg.line_hash_key)

    @mutation(requests.check_change)
    async def ChangeLineState(
        self, request: suspension_pb2.ChangeLineStateRequest, tx: Tx
    ) -> suspension_pb2.ChangeLineStateResponse:
        h = self._hash(request.msisdn)
        current = await store.lock_line(tx.conn, h, request.msisdn, mask(request.msisdn), request.home_province)
        try:
            check_transition(current["state"], request.target_state, request.actor.kind)
        except TransitionRefused as refused:
            raise failed_precondition(str(refused), refused.reason) from None
        barring = barring_for(request.target_state)
        # The network first, inside the row lock: if the HLR refuses, nothing is recorded and the caller retries.
        # If the write or the commit fails after the HLR applied it, the network is put back to what the database
        # holds, so the two never disagree.
        await self._set_network_barring(request.msisdn, request.home_province, barring, request.request_id)
        tx.on_rollback(lambda: self._reconcile(request.msisdn, request.home_province, h, store.barring_of(current)))
        line, seq = await store.apply_transition(
            tx.conn,
            h,
            current["state"],
            request.target_state,
            barring,
            is_restore(current["state"], request.target_state),
            (request.actor.kind, request.actor.id),
            request.case_id,
            request.reason,
            request.request_id,
            caller().name,
        )
        tx.after_commit(lambda: _count_change(current, request.target_state, request.actor.kind))
        return suspension_pb2.ChangeLineStateResponse(line=line_pb(line), history_seq=seq)

    async def _set_network_barring(self, msisdn: str, province: str, barring: Barring, request_id: str) -> None:
        # Each attempt its own HLR request id: the profile is absolute, so applying it again is harmless, while
        # reusing an id would make the HLR skip a re-application after a compensation.
        try:
            await self.hlr.SetBarring(
                hlr_pb2.SetBarringRequest(
                    request_id=f"{request_id[:96]}:hlr:{uuid.uuid4().hex[:12]}",
                    province=province,
                    msisdn=msisdn,
                    barring=hlr_pb2.BarringProfile(**asdict(barring)),
                ),
                timeout=grpc_server.remaining(5.0),
            )
        except grpc.aio.AioRpcError as err:
            raise unavailable(f"HLR of province {province}", err) from err

    async def _reconcile(self, msisdn: str, province: str, line_hash: str, before: Barring) -> None:
        """After a failed transaction: the network takes the barring the database holds (read under the line's
        lock); when the database cannot answer, nothing else can have changed the line, so the barring from
        before this transaction."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                rec = await store.lock_existing_line(conn, line_hash)
                barring = store.barring_of(rec) if rec is not None else NOTHING_BARRED
                await self._set_network_barring(msisdn, province, barring, "reconcile")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await self._set_network_barring(msisdn, province, before, "reconcile")
        log.warning("line %s: the network was put back to the database's barring after a failed change", line_hash)
        metrics.HLR_MISMATCHES.add(1, source="reconcile")

    async def GetLine(
        self, request: suspension_pb2.GetLineRequest, context: grpc.aio.ServicerContext
    ) -> suspension_pb2.GetLineResponse:
        requests.check_get_line(request)
        rec = await store.get_line(self.pool, self._hash(request.msisdn))
        if rec is None:
            raise not_found("line", "LINE_NOT_FOUND")
        try:
            net = await self.hlr.GetBarring(
                hlr_pb2.GetBarringRequest(province=rec["home_province"], msisdn=request.msisdn),
                timeout=grpc_server.remaining(5.0),
            )
        except grpc.aio.AioRpcError as err:
            raise unavailable(f"HLR of province {rec['home_province']}", err) from err
        line = line_pb(rec)
        network = suspension_pb2.Barring(**{f: getattr(net.barring, f) for f in asdict(Barring())})
        if network != line.barring:
            metrics.HLR_MISMATCHES.add(1, source="get_line")
            log.warning("line %s: the HLR's barring differs from the database's", line.line_hash)
        return suspension_pb2.GetLineResponse(line=line, network_barring=network, in_sync=network == line.barring)

    async def ListLineHistory(
        self, request: suspension_pb2.ListLineHistoryRequest, context: grpc.aio.ServicerContext
    ) -> suspension_pb2.ListLineHistoryResponse:
        requests.check_list_history(request)
        rows = await store.history(self.pool, request.line_hash or self._hash(request.msisdn))
        entries = []
        for r in rows:
            e = suspension_pb2.HistoryEntry(
                seq=r["seq"],
                from_state=r["from_state"],
                to_state=r["to_state"],
                actor=common_pb2.Actor(kind=r["actor_kind"], id=r["actor_id"]),
                case_id=r["case_id"],
                reason=r["reason"],
                request_id=r["request_id"],
                barring=barring_pb(store.barring_of(r)),
                principal=r["principal"],
            )
            e.at.FromDatetime(r["at"])
            entries.append(e)
        restores = sum(is_restore(e.from_state, e.to_state) for e in entries)
        return suspension_pb2.ListLineHistoryResponse(entries=entries, restore_count=restores)


# Kinds of actor a metric names; any other kind a caller writes counts as "other" (labels stay bounded).
ACTOR_KINDS = frozenset({"workflow", "reviewer", "operator", "ops", "customer-service", "police", "regulator", "hall"})


def _state_name(state: common_pb2.LineState.ValueType) -> str:
    return common_pb2.LineState.Name(state).removeprefix("LINE_STATE_").lower()


def _count_change(before: asyncpg.Record, to_state: common_pb2.LineState.ValueType, actor_kind: str) -> None:
    """A committed change: counted by states and kind of actor; a restore also records how long the line was
    stopped (since it entered the barred state it leaves)."""
    actor = actor_kind if actor_kind in ACTOR_KINDS else "other"
    from_state = _state_name(before["state"])
    metrics.LINE_TRANSITIONS.add(1, from_state=from_state, to_state=_state_name(to_state), actor=actor)
    if is_restore(before["state"], to_state):
        stopped_s = (datetime.now(UTC) - before["updated_at"]).total_seconds()
        metrics.STOP_TO_RESTORE.record(stopped_s, from_state=from_state)


async def start(cfg: Settings, port: int) -> grpc_server.GrpcService:
    pool = await db.connect(cfg.database_url, "suspension", MIGRATIONS)

    return await grpc_server.start_servicer(
        "suspension",
        port,
        suspension_pb2_grpc.add_SuspensionServiceServicer_to_server,
        Suspension(pool, cfg),
        SERVICE,
        grpc_server.Security.from_settings(cfg, ACCESS_TABLE),
        [pool.close],
    )


if __name__ == "__main__":
    grpc_server.serve_forever("suspension", start, lambda cfg: cfg.suspension_addr)

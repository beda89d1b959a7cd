"""gRPC wiring of the suspension service."""

from __future__ import annotations

import re
from dataclasses import asdict

import asyncpg
import grpc

from carrier.common.v1 import common_pb2
from carrier.hlr.v1 import hlr_pb2, hlr_pb2_grpc
from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from pscommon import db, grpc_server, idempotency
from pscommon.channels import channel
from pscommon.config import Settings
from pscommon.errors import failed_precondition, not_found, unavailable
from pscommon.identity import line_hash, mask
from pscommon.validation import Violations
from services.suspension import store
from services.suspension.state_machine import (
    Barring,
    TransitionRefused,
    barring_for,
    check_transition,
    is_restore,
)

LINE_HASH_RE = re.compile(r"^[0-9a-f]{20}$")
SERVICE = "carrier.suspension.v1.SuspensionService"
TARGET_STATES = set(common_pb2.LineState.values()) - {
    common_pb2.LINE_STATE_UNSPECIFIED,
    common_pb2.LINE_STATE_ACTIVE,
}


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
        self.hlr = hlr_pb2_grpc.HlrServiceStub(channel(cfg.simulators_addr))

    def _hash(self, msisdn: str) -> str:
        return line_hash(msisdn, self.cfg.line_hash_key)

    async def ChangeLineState(self, request, context):
        v = Violations()
        v.request_id(request.request_id)
        v.msisdn(request.msisdn)
        v.province(request.home_province, "home_province")
        v.enum(request.target_state, "target_state", TARGET_STATES)
        v.required(request.actor.kind, "actor.kind")
        v.required(request.actor.id, "actor.id")
        v.required(request.case_id, "case_id")
        v.required(request.reason, "reason")
        v.raise_if_any()
        h = self._hash(request.msisdn)

        async def work(conn: asyncpg.Connection) -> suspension_pb2.ChangeLineStateResponse:
            current = await store.lock_line(conn, h, request.msisdn, mask(request.msisdn), request.home_province)
            try:
                check_transition(current["state"], request.target_state, request.actor.kind)
            except TransitionRefused as refused:
                raise failed_precondition(str(refused), refused.reason) from None
            barring = barring_for(request.target_state)
            # The network first, inside the row lock: if the HLR refuses, nothing is recorded and the caller
            # retries; the HLR applies a repeated request_id once, so a retry after a lost commit is safe.
            await self._set_network_barring(request, barring)
            line, seq = await store.apply_transition(
                conn,
                h,
                current["state"],
                request.target_state,
                barring,
                is_restore(current["state"], request.target_state),
                (request.actor.kind, request.actor.id),
                request.case_id,
                request.reason,
                request.request_id,
            )
            return suspension_pb2.ChangeLineStateResponse(line=line_pb(line), history_seq=seq)

        return await idempotency.once(
            self.pool, "ChangeLineState", request.request_id, request, suspension_pb2.ChangeLineStateResponse, work
        )

    async def _set_network_barring(self, request, barring: Barring) -> None:
        try:
            await self.hlr.SetBarring(
                hlr_pb2.SetBarringRequest(
                    request_id=f"{request.request_id}:hlr",
                    province=request.home_province,
                    msisdn=request.msisdn,
                    barring=hlr_pb2.BarringProfile(**asdict(barring)),
                ),
                timeout=grpc_server.remaining(5.0),
            )
        except grpc.aio.AioRpcError as err:
            raise unavailable(f"HLR of province {request.home_province}", err) from err

    async def GetLine(self, request, context):
        v = Violations()
        v.msisdn(request.msisdn)
        v.raise_if_any()
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
        return suspension_pb2.GetLineResponse(line=line, network_barring=network, in_sync=network == line.barring)

    async def ListLineHistory(self, request, context):
        v = Violations()
        if request.line_hash:
            v.check(not request.msisdn, "msisdn", "give the number or its line_hash, not both")
            v.check(bool(LINE_HASH_RE.match(request.line_hash)), "line_hash", "must be a line hash as in case ids")
        else:
            v.msisdn(request.msisdn)
        v.raise_if_any()
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
            )
            e.at.FromDatetime(r["at"])
            entries.append(e)
        return suspension_pb2.ListLineHistoryResponse(entries=entries)


async def start(cfg: Settings, port: int) -> grpc_server.GrpcService:
    pool = await db.connect(cfg.database_url, "suspension")

    return await grpc_server.start_servicer(
        "suspension",
        port,
        suspension_pb2_grpc.add_SuspensionServiceServicer_to_server,
        Suspension(pool, cfg),
        SERVICE,
        [pool.close],
    )


if __name__ == "__main__":
    grpc_server.serve_forever("suspension", start, lambda cfg: cfg.suspension_addr)

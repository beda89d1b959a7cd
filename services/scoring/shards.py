"""Scoring as several shards, each owning some partitions of the lines: any shard takes any request.

A batch is split by owner: the shard applies its own part and hands the others to their owners (ApplyPart),
concurrently, then answers with every part's decisions. A request about one line (GetAssessment, ReportLine,
RecordOutcome, UpsertSubscriber, SetEnterpriseBinding) is forwarded whole to the line's owner, on the caller's
behalf (the owner checks and records the original caller). Mediation needs no shard map, and the line-hash key
(which partitions lines) never leaves the platform.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_status import rpc_status

from carrier.scoring.v1 import scoring_pb2_grpc
from pscommon import grpc_server
from pscommon.access import caller
from pscommon.channels import channel
from pscommon.config import Settings
from pscommon.errors import ServiceError, unavailable
from pscommon.identity import ON_BEHALF_OF
from pscommon.tls import TlsFiles
from services.scoring.ledger import Part
from services.scoring.partitions import ShardMap, partition_of


class Forwarded(ServiceError):
    """The owning shard's answer to a forwarded request, passed on to the caller as it was."""

    def __init__(self, err: grpc.aio.AioRpcError) -> None:
        super().__init__(err.code(), err.details() or "", "FORWARDED")
        self.status = rpc_status.from_call(err)  # type: ignore[arg-type]
        self.err = err

    def to_status(self) -> grpc.Status:
        if self.status is not None:
            return rpc_status.to_status(self.status)
        return super().to_status()


@dataclass
class Split:
    """A batch by owning shard: its part per shard (this one's under `mine`)."""

    parts: dict[int, Part] = field(default_factory=dict)

    def add(self, owner: int, partition: int, index: int) -> None:
        part = self.parts.get(owner)
        if part is None:
            part = self.parts[owner] = Part([], [], [])
        part.row_partitions.append(partition)
        part.indices.append(index)


class Shards:
    def __init__(self, cfg: Settings, shard_map: ShardMap, hash_of: Callable[[str], str]) -> None:
        self.map = shard_map
        self.hash_of = hash_of
        self.addrs = [a.strip() for a in cfg.scoring_shard_addrs.split(",") if a.strip()]
        if shard_map.shards > 1 and len(self.addrs) != shard_map.shards:
            raise ValueError(
                f"PSP_SCORING_SHARD_ADDRS must list the {shard_map.shards} shards' addresses in order;"
                f" it lists {len(self.addrs)}"
            )
        self.cfg = cfg

    @property
    def single(self) -> bool:
        return self.map.shards == 1

    def owner_of(self, msisdn: str) -> int:
        return self.map.owner(partition_of(self.hash_of(msisdn)))

    def split(self, msisdns: list[str]) -> Split:
        """Each row's owner, partition and position; a line's hash is computed once per batch."""
        split = Split()
        seen: dict[str, int] = {}
        for i, m in enumerate(msisdns):
            p = seen.get(m)
            if p is None:
                p = seen[m] = partition_of(self.hash_of(m))
            split.add(self.map.owner(p), p, i)
        for part in split.parts.values():
            part.partitions = sorted(set(part.row_partitions))
        return split

    @functools.cached_property
    def tls(self) -> TlsFiles:
        """This process's certificate, resolved on the first forwarded call (one shard never forwards)."""
        return TlsFiles.from_settings(self.cfg)

    def stub(self, shard: int) -> Any:
        return scoring_pb2_grpc.ScoringServiceStub(channel(self.addrs[shard], self.tls))

    def shard_stub(self, shard: int) -> Any:
        return scoring_pb2_grpc.ScoringShardServiceStub(channel(self.addrs[shard], self.tls))

    async def call(self, shard: int, method: str, request: Any, on_behalf: bool = True) -> Any:
        """Calls `method` on another shard (as the caller, when `on_behalf`), within the caller's deadline."""
        stub = self.shard_stub(shard) if method == "ApplyPart" else self.stub(shard)
        metadata = ((ON_BEHALF_OF, caller().name),) if on_behalf else ()
        try:
            return await getattr(stub, method)(request, metadata=metadata, timeout=grpc_server.remaining(10.0))
        except grpc.aio.AioRpcError as err:
            if rpc_status.from_call(err) is not None:  # type: ignore[arg-type]
                raise Forwarded(err) from None
            raise unavailable(f"scoring shard {shard}", err) from None


def at_line_owner(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A servicer method about one line (request.msisdn): handled here when this shard owns the line, else
    forwarded whole to the owner (which validates it, applies it once per request_id and answers)."""

    @functools.wraps(handler)
    async def owner_handles(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        shards: Shards = self.shards
        if not shards.single:
            owner = shards.owner_of(request.msisdn)
            if owner != shards.map.shard:
                return await shards.call(owner, handler.__name__, request)
        return await handler(self, request, context)

    return owner_handles

"""Two scoring shards over mutual TLS: any shard takes any request. A batch is split by owner (ApplyPart between
the shards), a request about one line is forwarded to its owner on the caller's behalf, and a batch sent again to
the other shard is a repeat. Nobody but a scoring shard may apply a part or speak for another caller."""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from pscommon import channels
from pscommon.errors import parse_details
from pscommon.identity import ON_BEHALF_OF
from pscommon.probes import free_port
from services.scoring import server as scoring_server
from stack import postgres
from tests.helpers import rid, tls_as

LINES = [f"1935570{i:04d}" for i in range(12)]


def stub(cfg, shard: int, principal: str):
    addr = cfg.scoring_shard_addrs.split(",")[shard]
    return scoring_pb2_grpc.ScoringServiceStub(channels.channel(addr, tls_as(cfg, principal)))


def calls(start: datetime) -> list[scoring_pb2.Cdr]:
    out = []
    for i, m in enumerate(LINES):
        for k in range(i % 4 + 1):  # line i makes i % 4 + 1 ordinary calls
            c = scoring_pb2.Cdr(
                msisdn=m,
                peer=f"1380000{k:04d}",
                peer_province="44",
                direction=scoring_pb2.DIRECTION_OUT,
                service=scoring_pb2.SERVICE_KIND_VOICE,
                duration_s=60,
                roaming=scoring_pb2.ROAMING_NONE,
            )
            c.start.FromDatetime(start + timedelta(minutes=5 * k + i))
            out.append(c)
    return out


async def test_any_shard_takes_any_request(stack, database_server) -> None:
    dsn = await postgres.ensure_database(database_server, f"psp_shards_{uuid.uuid4().hex[:8]}")
    ports = [free_port(), free_port()]
    addrs = ",".join(f"127.0.0.1:{p}" for p in ports)
    base = dataclasses.replace(
        stack.cfg, principal="scoring", database_url=dsn, scoring_shards=2, scoring_shard_addrs=addrs
    )
    shards = [
        await scoring_server.start(dataclasses.replace(base, scoring_shard=i), ports[i], on_lost=lambda: None)
        for i in range(2)
    ]
    try:
        for m in LINES:  # all through shard 0: half of them are forwarded to shard 1
            await stub(base, 0, "mediation").UpsertSubscriber(
                scoring_pb2.UpsertSubscriberRequest(
                    request_id=rid(), msisdn=m, home_province="44", opened_at="2020-01-01", language="zh"
                )
            )
        cdrs = calls(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1))
        batch = scoring_pb2.IngestCdrsRequest(request_id=rid(), cdrs=cdrs)

        async def once(request):
            yield request

        first = await stub(base, 0, "mediation").IngestCdrs(once(batch))
        assert first.cdrs_accepted == len(cdrs) and first.batches_accepted == 1
        again = await stub(base, 1, "mediation").IngestCdrs(once(batch))
        assert again.batches_repeated == 1 and again.cdrs_accepted == 0

        made = Counter(c.msisdn for c in cdrs)
        for shard in (0, 1):
            for m in LINES:
                got = await stub(base, shard, "customer-service").GetAssessment(
                    scoring_pb2.GetAssessmentRequest(msisdn=m)
                )
                assert got.features["calls_24h"] == made[m], (shard, m)

        bad = stub(base, 1, "mediation")
        with pytest.raises(grpc.aio.AioRpcError) as refused:  # the owner validates and answers through shard 1
            await bad.UpsertSubscriber(
                scoring_pb2.UpsertSubscriberRequest(request_id=rid(), msisdn=LINES[0], home_province="4")
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "home_province" in dict(parse_details(refused.value)[1])
    finally:
        for svc in shards:
            await svc.stop(0)


async def test_only_a_shard_applies_parts_or_speaks_for_a_caller(stack) -> None:
    peer = scoring_pb2_grpc.ScoringShardServiceStub(
        channels.channel(stack.cfg.scoring_addr, tls_as(stack.cfg, "mediation"))
    )
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await peer.ApplyPart(scoring_pb2.ApplyPartRequest(request_id=rid()))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    as_police = ((ON_BEHALF_OF, "police/station-1"),)
    scoring = scoring_pb2_grpc.ScoringServiceStub(
        channels.channel(stack.cfg.scoring_addr, tls_as(stack.cfg, "mediation"))
    )
    with pytest.raises(grpc.aio.AioRpcError) as forged:
        await scoring.ReportLine(
            scoring_pb2.ReportLineRequest(request_id=rid(), msisdn=LINES[0], source=scoring_pb2.REPORT_SOURCE_POLICE),
            metadata=as_police,
        )
    assert forged.value.code() == grpc.StatusCode.PERMISSION_DENIED
    info, _ = parse_details(forged.value)
    assert info is not None and info.reason == "DELEGATION_NOT_ALLOWED"

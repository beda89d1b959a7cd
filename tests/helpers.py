"""Shared test helpers: talking to the in-process stack like any other carrier system would."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from carrier.registry.v1 import registry_pb2, registry_pb2_grpc
from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from pscommon.channels import channel


def rid() -> str:
    return uuid.uuid4().hex


async def register_line(
    cfg,
    msisdn: str,
    province: str,
    holder_ref: str,
    opened_at: str = "2026-10-01",
    enterprise: str = "",
    *,
    email: str = "",
    push_token: str = "",
    alternate_contact: str = "",
) -> None:
    await registry_pb2_grpc.RegistryServiceStub(channel(cfg.simulators_addr)).RegisterSubscriber(
        registry_pb2.RegisterSubscriberRequest(
            request_id=rid(),
            subscriber=registry_pb2.Subscriber(
                msisdn=msisdn,
                province=province,
                holder_ref=holder_ref,
                opened_at=opened_at,
                language="zh",
                email=email,
                push_token=push_token,
                alternate_contact=alternate_contact,
            ),
        )
    )
    await scoring_pb2_grpc.ScoringServiceStub(channel(cfg.scoring_addr)).UpsertSubscriber(
        scoring_pb2.UpsertSubscriberRequest(
            request_id=rid(),
            msisdn=msisdn,
            home_province=province,
            opened_at=opened_at,
            enterprise=enterprise,
            language="zh",
        )
    )


def scam_burst(msisdn: str, start: datetime, calls: int = 20) -> list[scoring_pb2.Cdr]:
    """Calls every two minutes to distinct numbers in another province, half unanswered."""
    cdrs = []
    for i in range(calls):
        c = scoring_pb2.Cdr(
            msisdn=msisdn,
            peer=f"137{i:08d}",
            peer_province="51",
            direction=scoring_pb2.DIRECTION_OUT,
            service=scoring_pb2.SERVICE_KIND_VOICE,
            duration_s=0 if i % 2 else 25,
            cell_id="460-00-22817-10391",
            roaming=scoring_pb2.ROAMING_NONE,
            imei="356938035643809",
        )
        c.start.FromDatetime(start + timedelta(minutes=2 * i))
        cdrs.append(c)
    return cdrs


async def ingest(cfg, cdrs: list[scoring_pb2.Cdr], batch: int = 50) -> scoring_pb2.IngestCdrsResponse:
    async def batches():
        for i in range(0, len(cdrs), batch):
            yield scoring_pb2.IngestCdrsRequest(request_id=rid(), cdrs=cdrs[i : i + batch])

    return await scoring_pb2_grpc.ScoringServiceStub(channel(cfg.scoring_addr)).IngestCdrs(batches())

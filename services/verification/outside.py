"""The systems verification asks: the home province's registry (found from any province), the identity-check
provider, the provincial public-security code service, and the suspension service for the line's history.
Timeouts and retries come from gRPC's service config."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc

from carrier.idcheck.v1 import idcheck_pb2, idcheck_pb2_grpc
from carrier.registry.v1 import registry_pb2, registry_pb2_grpc
from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from carrier.verification.v1 import verification_pb2 as vpb
from pscommon import grpc_server
from pscommon.channels import channel, retrying
from pscommon.config import Settings
from pscommon.errors import not_found, unavailable
from pscommon.tls import TlsFiles
from services.verification.policy import RouteRule

REGISTRY_ATTEMPTS = 3
REGISTRY_TIMEOUT_S = 3.0
# Knowledge factors: how many recent contacts the holder must name correctly for the factor to count.
CONTACTS_NEEDED = 2


@dataclass(frozen=True)
class LineChange:
    state: int  # LineState proto value
    at: datetime
    by: str  # the kind of actor on whose authority: workflow, reviewer, police ... (never a person)
    case_id: str


@dataclass(frozen=True)
class LineRecord:
    """What the suspension service knows of a line: its latest case, how often it was restored, its changes."""

    latest_case_id: str
    restore_count: int
    changes: tuple[LineChange, ...] = ()


class Outside:
    def __init__(self, cfg: Settings) -> None:
        registry = channel(
            cfg.simulators_addr,
            TlsFiles.from_settings(cfg),
            retrying("carrier.registry.v1.RegistryService", REGISTRY_ATTEMPTS, REGISTRY_TIMEOUT_S),
        )
        self.registry = registry_pb2_grpc.RegistryServiceStub(registry)
        self.idcheck = idcheck_pb2_grpc.IdentityCheckServiceStub(
            channel(cfg.simulators_addr, TlsFiles.from_settings(cfg))
        )
        self.suspension = suspension_pb2_grpc.SuspensionServiceStub(
            channel(cfg.suspension_addr, TlsFiles.from_settings(cfg))
        )

    async def line_record(self, line_hash: str) -> LineRecord:
        req = suspension_pb2.ListLineHistoryRequest(line_hash=line_hash)
        resp = await self.call("line history (suspension service)", self.suspension.ListLineHistory, req)
        latest = next((e.case_id for e in reversed(resp.entries) if e.case_id), "")
        changes = tuple(
            LineChange(e.to_state, e.at.ToDatetime(tzinfo=UTC), e.actor.kind, e.case_id) for e in resp.entries
        )
        return LineRecord(latest, resp.restore_count, changes)

    async def call(
        self, what: str, rpc: Callable[..., Awaitable[Any]], request: Any, timeout: float = 5.0, **meta: str
    ) -> Any:
        try:
            return await rpc(request, timeout=grpc_server.remaining(timeout))
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise not_found(what, "NOT_FOUND") from err
            raise unavailable(what, err, **meta) from err

    async def holder(self, msisdn: str) -> registry_pb2.Subscriber:
        """The registered holder, from the registry of the line's home province, whichever province asks: the
        national directory names the province, then that province's registry answers."""
        try:
            home = await self.registry.FindHomeProvince(
                registry_pb2.FindHomeProvinceRequest(msisdn=msisdn), timeout=grpc_server.remaining(REGISTRY_TIMEOUT_S)
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise not_found("line in the national number directory", "LINE_NOT_REGISTERED") from err
            raise unavailable(f"the national number directory, after {REGISTRY_ATTEMPTS} attempts", err) from err
        try:
            found = await self.registry.GetSubscriber(
                registry_pb2.GetSubscriberRequest(province=home.province, msisdn=msisdn),
                timeout=grpc_server.remaining(REGISTRY_TIMEOUT_S),
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise not_found(f"line in the registry of province {home.province}", "LINE_NOT_REGISTERED") from err
            what = f"the subscriber registry of province {home.province}, after {REGISTRY_ATTEMPTS} attempts"
            raise unavailable(what, err, province=home.province) from err
        return found.subscriber

    async def identity(self, request_id: str, claimed: str, liveness: str) -> idcheck_pb2.CheckIdentityResponse:
        req = idcheck_pb2.CheckIdentityRequest(request_id=request_id, holder_ref=claimed, liveness_token=liveness)
        return await self.call("the identity-check provider", self.idcheck.CheckIdentity, req)

    async def province_code(self, province: str, claimed: str, token: str) -> bool:
        req = registry_pb2.CheckProvinceCodeRequest(province=province, holder_ref=claimed, code_token=token)
        resp = await self.call(
            f"the public-security code service of province {province}",
            self.registry.CheckProvinceCode,
            req,
            province=province,
        )
        return resp.valid

    async def knowledge(
        self, holder: registry_pb2.Subscriber, offered: vpb.KnowledgeFactors, rule: RouteRule
    ) -> dict[str, bool]:
        """Checks the knowledge factors the holder offered and the policy accepts; the rest are left out."""
        wanted = {
            k
            for k in rule.optional
            if (k == "service_password" and offered.service_password)
            or (k == "recent_contacts" and offered.recent_contacts)
        }
        if not wanted:
            return {}
        req = registry_pb2.CheckKnowledgeRequest(
            province=holder.province,
            msisdn=holder.msisdn,
            service_password=offered.service_password,
            recent_contacts=offered.recent_contacts,
        )
        resp = await self.call(
            f"the registry of province {holder.province}", self.registry.CheckKnowledge, req, province=holder.province
        )
        got = {
            "service_password": resp.service_password_ok,
            "recent_contacts": resp.recent_contacts_matched >= min(CONTACTS_NEEDED, len(offered.recent_contacts)),
        }
        return {k: got[k] for k in wanted}

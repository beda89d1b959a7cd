"""gRPC wiring of the verification service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import grpc
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from carrier.idcheck.v1 import idcheck_pb2, idcheck_pb2_grpc
from carrier.registry.v1 import registry_pb2, registry_pb2_grpc
from carrier.verification.v1 import verification_pb2 as vpb
from carrier.verification.v1 import verification_pb2_grpc
from pscommon import db, grpc_server, idempotency, temporal
from pscommon.channels import channel
from pscommon.config import Settings
from pscommon.errors import failed_precondition, not_found, unavailable
from pscommon.identity import line_hash, mask
from pscommon.validation import Violations
from services.verification import policy as policy_mod
from workflows.contracts import SIGNAL_VERIFIED, VerificationPassed

SERVICE = "carrier.verification.v1.VerificationService"
LEVELS = set(policy_mod.LEVELS.values())
ROUTE_NAMES = {v: k for k, v in policy_mod.ROUTES.items()}


class Verification(verification_pb2_grpc.VerificationServiceServicer):
    def __init__(self, pool: asyncpg.Pool, cfg: Settings, client: Client, policy_path=policy_mod.DEFAULT_PATH) -> None:
        self.pool = pool
        self.cfg = cfg
        self.client = client
        self.policy_path = policy_path
        sims = channel(cfg.simulators_addr)
        self.registry = registry_pb2_grpc.RegistryServiceStub(sims)
        self.idcheck = idcheck_pb2_grpc.IdentityCheckServiceStub(sims)

    def policy(self) -> policy_mod.Policy:
        # Read per check so a changed table applies to new checks without a restart.
        return policy_mod.load(self.policy_path)

    async def GetRequirements(self, request, context):  # noqa: N802
        v = Violations()
        v.enum(request.risk_level, "risk_level", LEVELS)
        v.raise_if_any()
        p = self.policy()
        return vpb.GetRequirementsResponse(
            policy_version=p.version,
            requirements=[
                vpb.Requirement(
                    route=r.route, evidence=r.evidence, description_zh=r.description_zh, description_en=r.description_en
                )
                for r in p.by_level[request.risk_level]
            ],
        )

    async def _holder(self, msisdn: str) -> registry_pb2.Subscriber:
        """The registered holder, from the home province's registry, whichever province asks."""
        try:
            home = await self.registry.FindHomeProvince(
                registry_pb2.FindHomeProvinceRequest(msisdn=msisdn), timeout=grpc_server.remaining(3.0)
            )
            found = await self.registry.GetSubscriber(
                registry_pb2.GetSubscriberRequest(province=home.province, msisdn=msisdn),
                timeout=grpc_server.remaining(3.0),
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise not_found("line in any provincial registry", "LINE_NOT_REGISTERED") from err
            raise unavailable("provincial subscriber registry", err) from err
        return found.subscriber

    async def LookupHolder(self, request, context):  # noqa: N802
        v = Violations()
        v.msisdn(request.msisdn)
        v.province(request.caller_province, "caller_province")
        v.required(request.claimed_holder_ref, "claimed_holder_ref")
        v.raise_if_any()
        sub = await self._holder(request.msisdn)
        return vpb.LookupHolderResponse(
            holder_confirmed=sub.holder_ref == request.claimed_holder_ref,
            home_province=sub.province,
            masked_msisdn=mask(request.msisdn),
        )

    def _rule(self, p: policy_mod.Policy, level: int, route: int) -> policy_mod.RouteRule:
        rule = p.rule(level, route)
        if rule is None:
            accepted = " or ".join(r.description_en for r in p.by_level[level])
            raise failed_precondition(
                f"this route is not accepted at this risk level; instead: {accepted}", "ROUTE_NOT_ACCEPTED"
            )
        return rule

    async def _identity(self, request_id: str, claimed: str, liveness: str) -> idcheck_pb2.CheckIdentityResponse:
        try:
            return await self.idcheck.CheckIdentity(
                idcheck_pb2.CheckIdentityRequest(request_id=request_id, holder_ref=claimed, liveness_token=liveness),
                timeout=grpc_server.remaining(5.0),
            )
        except grpc.aio.AioRpcError as err:
            raise unavailable("identity-check provider", err) from err

    async def _record(
        self,
        conn: asyncpg.Connection,
        request,
        rule: policy_mod.RouteRule,
        policy_version: str,
        failures: list[str],
        caller_province: str,
        hall: tuple[str, str] = ("", ""),
    ) -> vpb.VerificationOutcome:
        vid = uuid.uuid4()
        result = vpb.RESULT_FAILED if failures else vpb.RESULT_PASSED
        now = datetime.now(UTC)
        await conn.execute(
            "INSERT INTO verifications (verification_id, case_id, line_hash, route, result, failures, policy_version,"
            " caller_province, hall_id, agent_id, decided_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
            vid,
            request.case_id,
            line_hash(request.msisdn, self.cfg.line_hash_key),
            rule.route,
            result,
            failures,
            policy_version,
            caller_province,
            *hall,
            now,
        )
        if result == vpb.RESULT_PASSED:
            # Inside the transaction: if the case cannot be told, the verification is not recorded either.
            await self._tell_case(
                request.case_id, VerificationPassed(str(vid), ROUTE_NAMES[rule.route], policy_version)
            )
        outcome = vpb.VerificationOutcome(
            verification_id=str(vid), result=result, route=rule.route, failures=failures, policy_version=policy_version
        )
        outcome.decided_at.FromDatetime(now)
        return outcome

    async def _tell_case(self, case_id: str, passed: VerificationPassed) -> None:
        try:
            await self.client.get_workflow_handle(case_id).signal(SIGNAL_VERIFIED, passed)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise failed_precondition("no open case with this case_id", "CASE_NOT_OPEN") from err
            raise unavailable("case workflow service") from err

    def _validate_common(self, request, v: Violations) -> None:
        v.request_id(request.request_id)
        v.required(request.case_id, "case_id")
        v.msisdn(request.msisdn)
        v.enum(request.risk_level, "risk_level", LEVELS)
        v.required(request.claimed_holder_ref, "claimed_holder_ref")

    async def SubmitOnlineVerification(self, request, context):  # noqa: N802
        v = Violations()
        self._validate_common(request, v)
        v.required(request.liveness_token, "liveness_token")
        v.province(request.caller_province, "caller_province")
        v.raise_if_any()
        p = self.policy()
        rule = self._rule(p, request.risk_level, vpb.ROUTE_ONLINE)

        async def work(conn: asyncpg.Connection) -> vpb.SubmitOnlineVerificationResponse:
            holder = await self._holder(request.msisdn)
            ident = await self._identity(request.request_id, request.claimed_holder_ref, request.liveness_token)
            checks = {
                "holder_match": holder.holder_ref == request.claimed_holder_ref and ident.identity_valid,
                "liveness": ident.liveness_passed and ident.match_score >= 0.8,
                "risk_notice": request.risk_notice_acknowledged,
            }
            outcome = await self._record(
                conn, request, rule, p.version, policy_mod.judge(rule, checks), request.caller_province
            )
            return vpb.SubmitOnlineVerificationResponse(outcome=outcome)

        return await idempotency.once(
            self.pool,
            "SubmitOnlineVerification",
            request.request_id,
            request,
            vpb.SubmitOnlineVerificationResponse,
            work,
        )

    async def SubmitInPersonVerification(self, request, context):  # noqa: N802
        v = Violations()
        self._validate_common(request, v)
        v.required(request.hall_id, "hall_id")
        v.required(request.agent_id, "agent_id")
        v.raise_if_any()
        p = self.policy()
        rule = p.rule(request.risk_level, vpb.ROUTE_IN_PERSON_WITH_REVIEW) or self._rule(
            p, request.risk_level, vpb.ROUTE_IN_PERSON
        )

        async def work(conn: asyncpg.Connection) -> vpb.SubmitInPersonVerificationResponse:
            holder = await self._holder(request.msisdn)
            try:
                code = await self.registry.CheckProvinceCode(
                    registry_pb2.CheckProvinceCodeRequest(
                        province=holder.province,
                        holder_ref=request.claimed_holder_ref,
                        code_token=request.province_code_token,
                    ),
                    timeout=grpc_server.remaining(3.0),
                )
            except grpc.aio.AioRpcError as err:
                raise unavailable("provincial public-security code service", err) from err
            checks = {
                "holder_match": holder.holder_ref == request.claimed_holder_ref,
                "province_code": code.valid,
                "risk_notice": request.risk_notice_signed,
                "hall": bool(request.hall_id),
                "agent": bool(request.agent_id),
                "extra_evidence": bool(request.extra_evidence),
            }
            outcome = await self._record(
                conn,
                request,
                rule,
                p.version,
                policy_mod.judge(rule, checks),
                holder.province,
                (request.hall_id, request.agent_id),
            )
            return vpb.SubmitInPersonVerificationResponse(outcome=outcome)

        return await idempotency.once(
            self.pool,
            "SubmitInPersonVerification",
            request.request_id,
            request,
            vpb.SubmitInPersonVerificationResponse,
            work,
        )


async def start(cfg: Settings, port: int) -> grpc_server.GrpcService:
    pool = await db.connect(cfg.database_url, "verification")
    client = await temporal.connect(cfg)

    return await grpc_server.start_servicer(
        "verification",
        port,
        verification_pb2_grpc.add_VerificationServiceServicer_to_server,
        Verification(pool, cfg, client),
        SERVICE,
        [pool.close],
    )


if __name__ == "__main__":
    grpc_server.serve_forever("verification", start, lambda cfg: cfg.verification_addr)

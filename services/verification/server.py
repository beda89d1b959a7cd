"""gRPC wiring of the verification service: protobuf in, calls into its modules, protobuf out."""

from __future__ import annotations

import asyncio
import logging
import pathlib
from datetime import datetime

import asyncpg
import grpc

from carrier.common.v1 import common_pb2
from carrier.verification.v1 import verification_pb2 as vpb
from carrier.verification.v1 import verification_pb2_grpc
from contracts import ACCESS_TABLE
from contracts.case import AuthorityOrder, case_line_hash
from contracts.pb import AUTHORITY_OF, OPERATOR_CHOICE_OF, OPERATOR_CHOICE_PB, ORDER_OF, RISK_LEVEL_PB
from pscommon import codec, db, grpc_server, temporal
from pscommon.access import caller
from pscommon.config import Settings
from pscommon.idempotency import Tx, mutation
from pscommon.identity import line_hash, mask
from pscommon.validation import PROVINCE_RE
from services.verification import lookups, requests, review_rules, store
from services.verification import metrics as verification_metrics
from services.verification import policy as policy_mod
from services.verification.authority import AuthorityOrders
from services.verification.case_gateway import CaseGateway
from services.verification.checks import Checks, Claim
from services.verification.operations import CaseOperations
from services.verification.outside import Outside
from services.verification.policy import RESTORED_BEFORE, Policy, RouteRule
from services.verification.reviews import Reviews
from services.verification.status import StatusReader, StatusView

log = logging.getLogger(__name__)
MIGRATIONS = pathlib.Path(__file__).with_name("migrations")
SERVICE = "carrier.verification.v1.VerificationService"
PURGE_EVERY_S = 3600.0


class Verification(verification_pb2_grpc.VerificationServiceServicer):
    def __init__(self, pool: asyncpg.Pool, cfg: Settings, case: CaseGateway) -> None:
        self.pool = pool
        self.cfg = cfg
        self.policy_path = cfg.verification_policy or policy_mod.DEFAULT_PATH
        sealer = codec.sealer_from_settings(cfg.codec_keys, cfg.codec_active_key)
        self.outside = Outside(cfg)
        self.reviews = Reviews(self.policy, case, sealer)
        self.checks = Checks(self.policy, self.outside, case, self.reviews, sealer)
        self.authority = AuthorityOrders(self.policy, case, self.reviews)
        self.status = StatusReader(self.policy, self.outside, case, pool)
        self.operations = CaseOperations(case)

    def policy(self) -> Policy:
        # Read per use so a changed table applies to new checks without a restart.
        return policy_mod.load(self.policy_path)

    def _hash(self, msisdn: str) -> str:
        return line_hash(msisdn, self.cfg.line_hash_key)

    async def GetRequirements(
        self, request: vpb.GetRequirementsRequest, context: grpc.aio.ServicerContext
    ) -> vpb.GetRequirementsResponse:
        requests.check_requirements(request)
        p = self.policy()
        again = bool(request.msisdn) and (await self.outside.line_record(self._hash(request.msisdn))).restore_count > 0
        return vpb.GetRequirementsResponse(
            policy_version=p.version,
            requirements=[requirement_pb(r) for r in p.rules(request.risk_level, again)],
            escalated_because=RESTORED_BEFORE if again else "",
        )

    async def LookupHolder(
        self, request: vpb.LookupHolderRequest, context: grpc.aio.ServicerContext
    ) -> vpb.LookupHolderResponse:
        requests.check_lookup(request)
        await lookups.admit(self.pool, self.policy(), self._hash(request.msisdn), caller().name)
        sub = await self.outside.holder(request.msisdn)
        return vpb.LookupHolderResponse(
            holder_confirmed=sub.holder_ref == request.claimed_holder_ref,
            home_province=sub.province,
            masked_msisdn=mask(request.msisdn),
        )

    def _claim(self, r: vpb.SubmitOnlineVerificationRequest | vpb.SubmitInPersonVerificationRequest) -> Claim:
        h = self._hash(r.msisdn)
        requests.check_same_line(r.case_id, h)
        who = caller().name
        if isinstance(r, vpb.SubmitOnlineVerificationRequest):
            return Claim(r.case_id, h, r.risk_level, f"{who}:{r.caller_id}", r.caller_province, "remote")
        hall_province = r.hall_id[:2] if PROVINCE_RE.fullmatch(r.hall_id[:2]) else ""
        return Claim(r.case_id, h, r.risk_level, f"{who}:{r.agent_id}", hall_province, "hall", r.hall_id, r.agent_id)

    @mutation(requests.check_online)
    async def SubmitOnlineVerification(
        self, request: vpb.SubmitOnlineVerificationRequest, tx: Tx
    ) -> vpb.SubmitOnlineVerificationResponse:
        outcome = await self.checks.online(tx, self._claim(request), request)
        verification_metrics.checked(outcome)
        return vpb.SubmitOnlineVerificationResponse(outcome=outcome)

    @mutation(requests.check_in_person)
    async def SubmitInPersonVerification(
        self, request: vpb.SubmitInPersonVerificationRequest, tx: Tx
    ) -> vpb.SubmitInPersonVerificationResponse:
        outcome = await self.checks.in_person(tx, self._claim(request), request)
        verification_metrics.checked(outcome)
        return vpb.SubmitInPersonVerificationResponse(outcome=outcome)

    @mutation(requests.check_appeal)
    async def SubmitAppeal(self, request: vpb.SubmitAppealRequest, tx: Tx) -> vpb.SubmitAppealResponse:
        requests.check_same_line(request.case_id, self._hash(request.msisdn))
        row = await self.reviews.appeal(
            tx, request.case_id, request.explanation, request.evidence_refs, request.review_id
        )
        return vpb.SubmitAppealResponse(review=review_pb(row))

    async def ListReviews(
        self, request: vpb.ListReviewsRequest, context: grpc.aio.ServicerContext
    ) -> vpb.ListReviewsResponse:
        requests.check_list_reviews(request)
        statuses = [request.status] if request.status else list(review_rules.WAITING)
        rows = await store.list_reviews(self.pool, statuses, request.escalated_only, request.page_size or 50)
        # The holder's explanation stays sealed in listings: it opens for the claiming reviewer only.
        return vpb.ListReviewsResponse(reviews=[review_pb(r) for r in rows])

    async def GetReview(
        self, request: vpb.GetReviewRequest, context: grpc.aio.ServicerContext
    ) -> vpb.GetReviewResponse:
        requests.check_review_id(request)
        # Whatever its status, and without the holder's explanation: that opens through GetReviewEvidence only.
        return vpb.GetReviewResponse(review=review_pb(await self.reviews.get(self.pool, request.review_id)))

    @mutation(requests.check_claim)
    async def ClaimReview(self, request: vpb.ClaimReviewRequest, tx: Tx) -> vpb.ClaimReviewResponse:
        reviewer = caller().id
        requests.check_reviewer_field(request.reviewer_id, reviewer)
        row = await self.reviews.claim(tx, request.review_id, reviewer)
        return vpb.ClaimReviewResponse(review=review_pb(row))

    @mutation(requests.check_decide)
    async def DecideReview(self, request: vpb.DecideReviewRequest, tx: Tx) -> vpb.DecideReviewResponse:
        reviewer = caller().id
        requests.check_reviewer_field(request.reviewer_id, reviewer)
        row = await self.reviews.decide(
            tx, request.review_id, reviewer, request.decision, request.note, request.more_requested
        )
        return vpb.DecideReviewResponse(review=review_pb(row))

    async def GetReviewEvidence(
        self, request: vpb.GetReviewEvidenceRequest, context: grpc.aio.ServicerContext
    ) -> vpb.GetReviewEvidenceResponse:
        requests.check_review_id(request)
        async with self.pool.acquire() as conn, conn.transaction():
            row, text, refs = await self.reviews.evidence(conn, request.review_id, caller().id)
        log.info("review %s: evidence opened by its reviewer", row["review_id"])
        return vpb.GetReviewEvidenceResponse(review=review_pb(row, text), evidence_refs=refs)

    @mutation(requests.check_escalate)
    async def EscalateReview(self, request: vpb.EscalateReviewRequest, tx: Tx) -> vpb.EscalateReviewResponse:
        row = await self.reviews.escalate(tx, request.review_id)
        return vpb.EscalateReviewResponse(review=review_pb(row))

    @mutation(requests.check_authority_order)
    async def SubmitAuthorityOrder(
        self, request: vpb.SubmitAuthorityOrderRequest, tx: Tx
    ) -> vpb.SubmitAuthorityOrderResponse:
        order = AuthorityOrder(AUTHORITY_OF[request.authority], ORDER_OF[request.order], request.order_ref)
        await self.authority.submit(tx, request.request_id, request.case_id, order, request.note, caller())
        tx.after_commit(lambda: verification_metrics.ordered(order))
        return vpb.SubmitAuthorityOrderResponse(case_id=request.case_id)

    @mutation(requests.check_act_on_case)
    async def ActOnCase(self, request: vpb.ActOnCaseRequest, tx: Tx) -> vpb.ActOnCaseResponse:
        choice = OPERATOR_CHOICE_OF[request.choice]
        step = await self.operations.act(tx, request.request_id, request.case_id, choice, request.note, caller())
        return vpb.ActOnCaseResponse(step=step)

    async def GetCaseStatus(
        self, request: vpb.GetCaseStatusRequest, context: grpc.aio.ServicerContext
    ) -> vpb.GetCaseStatusResponse:
        requests.check_case_status(request)
        h = self._hash(request.msisdn) if request.msisdn else case_line_hash(request.case_id) or ""
        return case_status_pb(await self.status.read(request.case_id, h))


def case_status_pb(s: StatusView) -> vpb.GetCaseStatusResponse:
    case, view = s.case, s.holder
    resp = vpb.GetCaseStatusResponse(
        case_id=s.case_id,
        masked_msisdn=case.masked_msisdn,
        stage=case.stage,
        line_state=common_pb2.LineState.Value(case.line_state),
        risk_level=RISK_LEVEL_PB[case.risk_level] if case.risk_level else common_pb2.RISK_LEVEL_UNSPECIFIED,
        reasons=[
            common_pb2.Reason(code=r.code, text_zh=r.text_zh, text_en=r.text_en, weight=r.weight) for r in case.reasons
        ],
        mitigations=[
            common_pb2.Reason(code=r.code, text_zh=r.text_zh, text_en=r.text_en, weight=r.weight)
            for r in case.mitigations
        ],
        next_step_zh=view.next_step_zh,
        next_step_en=view.next_step_en,
        where_zh=view.where_zh,
        where_en=view.where_en,
        restore_count=s.restore_count,
    )
    if view.deadline:
        resp.deadline.FromDatetime(view.deadline)
    if view.estimated_restore_at:
        resp.estimated_restore_at.FromDatetime(view.estimated_restore_at)
    for entry in case.history:
        resp.history.add(stage=entry.stage).at.FromDatetime(datetime.fromisoformat(entry.at))
    for change in s.line_changes:
        resp.line_changes.add(state=change.state, by=change.by).at.FromDatetime(change.at)
    if s.waiting_review is not None:
        resp.review.CopyFrom(review_pb(s.waiting_review, for_holder=True))
    if case.attention is not None:
        a = case.attention
        resp.attention.CopyFrom(
            vpb.Attention(
                step=a.step,
                error=a.error,
                resumes_stage=a.resumes_stage,
                choices=[OPERATOR_CHOICE_PB[c] for c in a.choices],
            )
        )
        resp.attention.since.FromDatetime(datetime.fromisoformat(a.since))
    return resp


def review_pb(row: asyncpg.Record, explanation: str = "", for_holder: bool = False) -> vpb.Review:
    """A review as reviewers see it; `for_holder`: reviewers by role only, without their notes."""
    r = vpb.Review(
        review_id=str(row["review_id"]),
        kind=row["kind"],
        status=row["status"],
        case_id=row["case_id"],
        masked_msisdn=row["masked_msisdn"],
        home_province=row["home_province"],
        explanation=explanation,
        evidence_count=row["evidence_count"],
        claimed_by=_role(row["claimed_by"]) if for_holder else row["claimed_by"],
        escalated=row["escalated"],
        decision=row["decision"],
        decision_note="" if for_holder else row["decision_note"],
        more_requested=row["more_requested"],
        first_approved_by=_role(row["first_approved_by"]) if for_holder else row["first_approved_by"],
    )
    r.due_at.FromDatetime(row["due_at"])
    r.created_at.FromDatetime(row["created_at"])
    if row["decided_at"] is not None:
        r.decided_at.FromDatetime(row["decided_at"])
    return r


def _role(reviewer: str) -> str:
    return "reviewer" if reviewer else ""


def requirement_pb(r: RouteRule) -> vpb.Requirement:
    return vpb.Requirement(
        route=r.route,
        evidence=r.evidence,
        optional_evidence=r.optional,
        description_zh=r.description_zh,
        description_en=r.description_en,
    )


async def _purge_evidence(pool: asyncpg.Pool) -> None:
    """Evidence past its retention period is deleted, hourly."""
    while True:
        try:
            n = await store.purge_expired_evidence(pool)
            if n:
                log.info("deleted %d evidence items past retention", n)
        except (OSError, asyncpg.PostgresError) as err:
            log.warning("evidence purge failed (%s); next hour", type(err).__name__)
        await asyncio.sleep(PURGE_EVERY_S)


async def start(cfg: Settings, port: int) -> grpc_server.GrpcService:
    pool = await db.connect(cfg.database_url, "verification", MIGRATIONS)
    case = CaseGateway(await temporal.connect(cfg), pool)
    case.relay.start()
    purge = asyncio.create_task(_purge_evidence(pool))
    gauges = asyncio.create_task(verification_metrics.keep_review_gauges(pool))

    async def stop_purge() -> None:
        purge.cancel()
        gauges.cancel()

    return await grpc_server.start_servicer(
        "verification",
        port,
        verification_pb2_grpc.add_VerificationServiceServicer_to_server,
        Verification(pool, cfg, case),
        SERVICE,
        grpc_server.Security.from_settings(cfg, ACCESS_TABLE),
        [pool.close, case.relay.stop, stop_purge],
    )


if __name__ == "__main__":
    grpc_server.serve_forever("verification", start, lambda cfg: cfg.verification_addr)

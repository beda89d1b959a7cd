"""gRPC wiring of the verification service."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from carrier.common.v1 import common_pb2
from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from carrier.verification.v1 import verification_pb2 as vpb
from carrier.verification.v1 import verification_pb2_grpc
from pscommon import codec, db, grpc_server, idempotency, temporal
from pscommon.channels import channel
from pscommon.config import Settings
from pscommon.errors import failed_precondition, not_found, permission_denied, resource_exhausted, unavailable
from pscommon.identity import case_line_hash, line_hash, mask
from pscommon.validation import Violations
from services.suspension.state_machine import is_restore
from services.verification import limits, reviews, status, store
from services.verification import policy as policy_mod
from services.verification.checks import Checks
from services.verification.policy import RESTORED_BEFORE, Policy, RouteRule
from workflows.contracts import (
    QUERY_STATUS,
    SIGNAL_AUTHORITY_ORDER,
    SIGNAL_REVIEW_DECIDED,
    SIGNAL_REVIEW_OPENED,
    SIGNAL_VERIFIED,
    AuthorityOrder,
    CaseStatus,
    ReviewDecided,
    ReviewOpened,
    VerificationPassed,
)

log = logging.getLogger(__name__)
SERVICE = "carrier.verification.v1.VerificationService"
LEVELS = set(policy_mod.LEVELS.values())
LEVEL_NAMES = {v: k for k, v in policy_mod.LEVELS.items()}
ROUTE_NAMES = {v: k for k, v in policy_mod.ROUTES.items()}
DECISIONS = set(reviews.DECISION_NAMES)
AUTHORITIES = {vpb.AUTHORITY_POLICE: "police", vpb.AUTHORITY_REGULATOR: "regulator"}
ORDERS = {vpb.ORDER_RESTORE: "restore", vpb.ORDER_CONFIRM_FRAUD: "confirm_fraud"}
MAX_EXPLANATION = 4000
PURGE_EVERY_S = 3600.0


class Verification(verification_pb2_grpc.VerificationServiceServicer):
    def __init__(self, pool: asyncpg.Pool, cfg: Settings, client: Client) -> None:
        self.pool = pool
        self.cfg = cfg
        self.client = client
        self.policy_path = cfg.verification_policy or policy_mod.DEFAULT_PATH
        self.sealer = codec.sealer_from_settings(cfg.codec_keys, cfg.codec_active_key)
        self.checks = Checks(cfg)
        self.suspension = suspension_pb2_grpc.SuspensionServiceStub(channel(cfg.suspension_addr))

    def policy(self) -> Policy:
        # Read per check so a changed table applies to new checks without a restart.
        return policy_mod.load(self.policy_path)

    def _hash(self, msisdn: str) -> str:
        return line_hash(msisdn, self.cfg.line_hash_key)

    async def _history(self, h: str) -> list[suspension_pb2.HistoryEntry]:
        resp = await self.checks.call(
            "line history (suspension service)",
            self.suspension.ListLineHistory,
            suspension_pb2.ListLineHistoryRequest(line_hash=h),
        )
        return list(resp.entries)

    async def _restored_before(self, h: str) -> bool:
        return restores(await self._history(h)) > 0

    # ---- requirements and holder lookup ---------------------------------------------------------

    async def GetRequirements(self, request, context):
        v = Violations()
        v.enum(request.risk_level, "risk_level", LEVELS)
        if request.msisdn:
            v.msisdn(request.msisdn)
        v.raise_if_any()
        p = self.policy()
        again = bool(request.msisdn) and await self._restored_before(self._hash(request.msisdn))
        return vpb.GetRequirementsResponse(
            policy_version=p.version,
            requirements=[requirement_pb(r) for r in p.rules(request.risk_level, again)],
            escalated_because=RESTORED_BEFORE if again else "",
        )

    async def LookupHolder(self, request, context):
        v = Violations()
        v.msisdn(request.msisdn)
        v.province(request.caller_province, "caller_province")
        v.required(request.claimed_holder_ref, "claimed_holder_ref")
        v.raise_if_any()
        sub = await self.checks.holder(request.msisdn)
        return vpb.LookupHolderResponse(
            holder_confirmed=sub.holder_ref == request.claimed_holder_ref,
            home_province=sub.province,
            masked_msisdn=mask(request.msisdn),
        )

    # ---- the checks ---------------------------------------------------------------------------------

    def _rule(self, p: Policy, level: int, route: int, again: bool) -> RouteRule:
        rule = p.rule(level, route, again)
        if rule is None:
            accepted = " or ".join(r.description_en for r in p.rules(level, again))
            why = "this line was restored before, so " if again else ""
            raise failed_precondition(
                f"this route is not accepted: {why}the holder must {accepted}", "ROUTE_NOT_ACCEPTED"
            )
        return rule

    async def _judge(
        self,
        request,
        route: int,
        caller: str,
        gather: Callable[[RouteRule], Awaitable[dict[str, bool]]],
        evidence: list[tuple[str, str]],
        hall: tuple[str, str],
        caller_province: str,
    ) -> vpb.VerificationOutcome:
        """One check, whatever the route: the policy in force, the lockouts, the evidence, the record, the case."""
        p = self.policy()
        h = self._hash(request.msisdn)
        case, again = await asyncio.gather(self._case(request.case_id), self._restored_before(h))
        if policy_mod.LEVELS.get(case.risk_level) != request.risk_level:
            # The case decides how strict the check is, not the caller: a stale or forged level is refused.
            raise failed_precondition(
                f"the case is at {case.risk_level or 'no'} risk, not {LEVEL_NAMES.get(request.risk_level)}; ask"
                " GetCaseStatus for what the holder must do",
                "RISK_LEVEL_MISMATCH",
            )
        if route == vpb.ROUTE_IN_PERSON:  # a hall check satisfies the reviewed route too, with a reviewer after
            rule = p.rule(request.risk_level, vpb.ROUTE_IN_PERSON_WITH_REVIEW, again) or self._rule(
                p, request.risk_level, route, again
            )
        else:
            rule = self._rule(p, request.risk_level, route, again)
        now = datetime.now(UTC)

        async def work(conn: asyncpg.Connection):
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 2))", h)
            line_standing, caller_standing = await self._standing(conn, p, h, caller, now)
            checks = await gather(rule)
            failures = policy_mod.judge(rule, checks)
            vid = uuid.uuid4()
            result = vpb.RESULT_FAILED if failures else vpb.RESULT_PASSED
            review_id = None
            if not failures:
                await store.clear_line_failures(conn, h)
                if rule.needs_reviewer:
                    result = vpb.RESULT_PENDING_REVIEW
                    review = await self._open_review(conn, request.case_id, case, vpb.REVIEW_KIND_RESTORE_APPROVAL, p)
                    review_id = review["review_id"]
            else:
                await store.record_failure(conn, h, caller, now)
            await store.insert_verification(
                conn,
                verification_id=vid,
                case_id=request.case_id,
                line_hash=h,
                route=rule.route,
                result=result,
                failures=failures,
                policy_version=p.version,
                caller_province=caller_province,
                hall_id=hall[0],
                agent_id=hall[1],
                decided_at=now,
                caller_id=caller,
                review_id=review_id,
                escalated_because=RESTORED_BEFORE if again else "",
            )
            await store.seal_evidence(conn, self.sealer, vid, evidence, p.evidence_retention_s)
            # Inside the transaction: if the case cannot be told, the verification is not recorded either.
            if result == vpb.RESULT_PASSED:
                await self._signal(
                    request.case_id, SIGNAL_VERIFIED, VerificationPassed(str(vid), ROUTE_NAMES[rule.route], p.version)
                )
            elif result == vpb.RESULT_PENDING_REVIEW:
                await self._signal(
                    request.case_id,
                    SIGNAL_REVIEW_OPENED,
                    ReviewOpened(str(review_id), "restore_approval", p.review_sla_s),
                )
            left = min(line_standing.left, caller_standing.left) - (1 if failures else 0)
            outcome = vpb.VerificationOutcome(
                verification_id=str(vid),
                result=result,
                route=rule.route,
                failures=failures,
                policy_version=p.version,
                attempts_left=max(0, left) if failures else p.per_line.max_failures,
                review_id=str(review_id or ""),
            )
            outcome.decided_at.FromDatetime(now)
            return outcome

        return await self._once(request, work)

    async def _once(self, request, work) -> vpb.VerificationOutcome:
        method = type(request).__name__.removesuffix("Request")
        response_type = getattr(vpb, f"{method}Response")

        async def respond(conn: asyncpg.Connection):
            return response_type(outcome=await work(conn))

        return await idempotency.once(self.pool, method, request.request_id, request, response_type, respond)

    async def _standing(self, conn, p: Policy, h: str, caller: str, now: datetime):
        since = now - timedelta(seconds=max(p.per_line.window_s, p.per_caller.window_s))
        line_failures, caller_failures = await store.failures(conn, h, caller, since)
        line_standing = limits.standing(line_failures, p.per_line, now)
        caller_standing = limits.standing(caller_failures, p.per_caller, now)
        for scope, st in (("line", line_standing), ("caller", caller_standing)):
            if st.locked_until is not None:
                raise resource_exhausted(
                    f"too many failed checks for this {scope}; checks are locked until {st.locked_until.isoformat()}",
                    "TOO_MANY_FAILED_ATTEMPTS",
                    (st.locked_until - now).total_seconds(),
                    {"scope": scope, "lifts_at": st.locked_until.isoformat()},
                )
        return line_standing, caller_standing

    def _case_of_line(self, case_id: str, msisdn: str, v: Violations) -> None:
        if case_id and case_line_hash(case_id) is None:
            v.add("case_id", "must be a case id as returned by scoring (case-<line hash>-<n>)")
        elif case_id and msisdn and case_line_hash(case_id) != self._hash(msisdn):
            v.add("case_id", "is not a case of this line")

    def _validate_common(self, request, v: Violations) -> None:
        v.request_id(request.request_id)
        v.required(request.case_id, "case_id")
        v.msisdn(request.msisdn)
        v.enum(request.risk_level, "risk_level", LEVELS)
        v.required(request.claimed_holder_ref, "claimed_holder_ref")
        self._case_of_line(request.case_id, request.msisdn, v)

    async def SubmitOnlineVerification(self, request, context):
        v = Violations()
        self._validate_common(request, v)
        v.required(request.liveness_token, "liveness_token")
        v.province(request.caller_province, "caller_province")
        v.required(request.caller_id, "caller_id")
        v.raise_if_any()

        async def gather(rule: RouteRule) -> dict[str, bool]:
            holder = await self.checks.holder(request.msisdn)
            ident = await self.checks.identity(request.request_id, request.claimed_holder_ref, request.liveness_token)
            return {
                "holder_match": holder.holder_ref == request.claimed_holder_ref and ident.identity_valid,
                "liveness": ident.liveness_passed and ident.match_score >= 0.8,
                "risk_notice": request.risk_notice_acknowledged,
                **await self.checks.knowledge(holder, request.knowledge, rule),
            }

        evidence = [("holder_ref", request.claimed_holder_ref), ("liveness_token", request.liveness_token)]
        return await self._judge(
            request,
            vpb.ROUTE_ONLINE,
            f"online:{request.caller_id}",
            gather,
            evidence,
            ("", ""),
            request.caller_province,
        )

    async def SubmitInPersonVerification(self, request, context):
        v = Violations()
        self._validate_common(request, v)
        v.required(request.hall_id, "hall_id")
        v.required(request.agent_id, "agent_id")
        v.raise_if_any()
        province: list[str] = []

        async def gather(rule: RouteRule) -> dict[str, bool]:
            holder = await self.checks.holder(request.msisdn)
            province.append(holder.province)
            code_ok = await self.checks.province_code(
                holder.province, request.claimed_holder_ref, request.province_code_token
            )
            return {
                "holder_match": holder.holder_ref == request.claimed_holder_ref,
                "province_code": code_ok,
                "risk_notice": request.risk_notice_signed,
                "hall": bool(request.hall_id),
                "agent": bool(request.agent_id),
                "extra_evidence": bool(request.extra_evidence),
                **await self.checks.knowledge(holder, request.knowledge, rule),
            }

        evidence = [("holder_ref", request.claimed_holder_ref), ("province_code_token", request.province_code_token)]
        evidence += [("extra_evidence", ref) for ref in request.extra_evidence]
        hall_province = request.hall_id[:2] if request.hall_id[:2].isdigit() else ""
        return await self._judge(
            request,
            vpb.ROUTE_IN_PERSON,
            f"hall:{request.agent_id}",
            gather,
            evidence,
            (request.hall_id, request.agent_id),
            hall_province,
        )

    # ---- the case -----------------------------------------------------------------------------------

    async def _signal(self, case_id: str, signal: str, arg: object) -> None:
        try:
            await self.client.get_workflow_handle(case_id).signal(signal, arg)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise failed_precondition("no open case with this case_id", "CASE_NOT_OPEN") from err
            raise unavailable("case workflow service") from err

    async def _case(self, case_id: str) -> CaseStatus:
        try:
            return await self.client.get_workflow_handle(case_id).query(QUERY_STATUS, result_type=CaseStatus)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise not_found("case", "CASE_NOT_FOUND") from err
            raise unavailable("case workflow service") from err

    # ---- appeals and manual review --------------------------------------------------------------------

    async def _open_review(
        self, conn: asyncpg.Connection, case_id: str, case: CaseStatus, kind: int, p: Policy, evidence_count: int = 0
    ) -> asyncpg.Record:
        if await store.waiting_review(conn, case_id) is not None:
            raise failed_precondition("a review of this case is already waiting for a decision", "REVIEW_WAITING")
        return await store.open_review(
            conn,
            review_id=uuid.uuid4(),
            kind=kind,
            status=vpb.REVIEW_STATUS_OPEN,
            case_id=case_id,
            line_hash=case_line_hash(case_id),
            masked_msisdn=case.masked_msisdn,
            home_province=case.home_province,
            evidence_count=evidence_count,
            due_at=datetime.now(UTC) + timedelta(seconds=p.review_sla_s),
        )

    async def SubmitAppeal(self, request, context):
        v = Violations()
        v.request_id(request.request_id)
        v.required(request.case_id, "case_id")
        v.msisdn(request.msisdn)
        v.required(request.explanation, "explanation")
        v.check(len(request.explanation) <= MAX_EXPLANATION, "explanation", f"at most {MAX_EXPLANATION} characters")
        v.province(request.caller_province, "caller_province")
        if request.review_id:
            v.uuid(request.review_id, "review_id")
        self._case_of_line(request.case_id, request.msisdn, v)
        v.raise_if_any()
        p = self.policy()

        async def work(conn: asyncpg.Connection) -> vpb.SubmitAppealResponse:
            if request.review_id:
                row = await store.review(conn, uuid.UUID(request.review_id), lock=True)
                if row is None or row["case_id"] != request.case_id:
                    raise not_found("review of this case", "REVIEW_NOT_FOUND")
                if row["status"] != vpb.REVIEW_STATUS_MORE_REQUESTED:
                    raise failed_precondition("the reviewer has not asked for more on this review", "NOTHING_ASKED")
                row = await store.update_review(
                    conn,
                    row["review_id"],
                    status=vpb.REVIEW_STATUS_CLAIMED if row["claimed_by"] else vpb.REVIEW_STATUS_OPEN,
                    due_at=datetime.now(UTC) + timedelta(seconds=p.review_sla_s),
                    evidence_count=row["evidence_count"] + len(request.evidence_refs),
                    escalated=False,
                )
            else:
                case = await self._case(request.case_id)
                row = await self._open_review(
                    conn, request.case_id, case, vpb.REVIEW_KIND_APPEAL, p, len(request.evidence_refs)
                )
            items = [("explanation", request.explanation)] + [("evidence_ref", r) for r in request.evidence_refs]
            await store.seal_evidence(conn, self.sealer, row["review_id"], items, p.evidence_retention_s)
            kind = reviews.KIND_NAMES[row["kind"]]
            await self._signal(
                request.case_id, SIGNAL_REVIEW_OPENED, ReviewOpened(str(row["review_id"]), kind, p.review_sla_s)
            )
            return vpb.SubmitAppealResponse(review=await self._review_pb(conn, row))

        return await idempotency.once(
            self.pool, "SubmitAppeal", request.request_id, request, vpb.SubmitAppealResponse, work
        )

    async def _reviews_pb(self, conn, rows: list[asyncpg.Record]) -> list[vpb.Review]:
        """Reviews as reviewers see them, with the holder's explanations (decrypted in one query)."""
        texts = await store.open_evidence(conn, self.sealer, [r["review_id"] for r in rows], "explanation")
        return [review_pb(r, "\n\n".join(texts.get(r["review_id"], []))) for r in rows]

    async def _review_pb(self, conn, row: asyncpg.Record) -> vpb.Review:
        return (await self._reviews_pb(conn, [row]))[0]

    async def ListReviews(self, request, context):
        v = Violations()
        v.check(request.status in (0, *vpb.ReviewStatus.values()), "status", "unknown review status")
        v.check(0 <= request.page_size <= 500, "page_size", "between 1 and 500 (0: 50)")
        v.raise_if_any()
        statuses = [request.status] if request.status else list(reviews.WAITING)
        rows = await store.list_reviews(self.pool, statuses, request.escalated_only, request.page_size or 50)
        return vpb.ListReviewsResponse(reviews=await self._reviews_pb(self.pool, rows))

    def _validate_review_call(self, request, v: Violations) -> None:
        v.request_id(request.request_id)
        v.uuid(request.review_id, "review_id")

    async def _locked_review(self, conn: asyncpg.Connection, review_id: str) -> asyncpg.Record:
        row = await store.review(conn, uuid.UUID(review_id), lock=True)
        if row is None:
            raise not_found("review", "REVIEW_NOT_FOUND")
        return row

    async def ClaimReview(self, request, context):
        v = Violations()
        self._validate_review_call(request, v)
        v.required(request.reviewer_id, "reviewer_id")
        v.raise_if_any()

        async def work(conn: asyncpg.Connection) -> vpb.ClaimReviewResponse:
            row = await self._locked_review(conn, request.review_id)
            try:
                reviews.check_claim(row["status"], row["claimed_by"], request.reviewer_id)
            except reviews.ReviewRefused as refused:
                raise failed_precondition(str(refused), refused.reason) from refused
            row = await store.update_review(
                conn, row["review_id"], status=vpb.REVIEW_STATUS_CLAIMED, claimed_by=request.reviewer_id
            )
            return vpb.ClaimReviewResponse(review=await self._review_pb(conn, row))

        return await idempotency.once(
            self.pool, "ClaimReview", request.request_id, request, vpb.ClaimReviewResponse, work
        )

    async def DecideReview(self, request, context):
        v = Violations()
        self._validate_review_call(request, v)
        v.required(request.reviewer_id, "reviewer_id")
        v.enum(request.decision, "decision", DECISIONS)
        if request.decision == vpb.DECISION_ASK_FOR_MORE:
            v.required(request.more_requested, "more_requested")
        v.raise_if_any()

        async def work(conn: asyncpg.Connection) -> vpb.DecideReviewResponse:
            row = await self._locked_review(conn, request.review_id)
            try:
                reviews.check_decision(
                    row["status"], row["claimed_by"], request.reviewer_id, row["kind"], request.decision
                )
            except reviews.ReviewRefused as refused:
                if refused.reason == "REVIEW_CLAIMED_BY_ANOTHER":
                    raise permission_denied(str(refused), refused.reason) from refused
                raise failed_precondition(str(refused), refused.reason) from refused
            row = await store.update_review(
                conn,
                row["review_id"],
                status=reviews.status_after(request.decision),
                decision=request.decision,
                decision_note=request.note,
                more_requested=request.more_requested,
                decided_at=datetime.now(UTC),
            )
            decided = ReviewDecided(
                review_id=str(row["review_id"]),
                kind=reviews.KIND_NAMES[row["kind"]],
                decision=reviews.DECISION_NAMES[request.decision],
                reviewer_id=request.reviewer_id,
                note=request.note,
                more_requested=request.more_requested,
            )
            await self._signal(row["case_id"], SIGNAL_REVIEW_DECIDED, decided)
            return vpb.DecideReviewResponse(review=await self._review_pb(conn, row))

        return await idempotency.once(
            self.pool, "DecideReview", request.request_id, request, vpb.DecideReviewResponse, work
        )

    async def EscalateReview(self, request, context):
        v = Violations()
        self._validate_review_call(request, v)
        v.raise_if_any()

        async def work(conn: asyncpg.Connection) -> vpb.EscalateReviewResponse:
            row = await self._locked_review(conn, request.review_id)
            if row["status"] in reviews.WAITING:
                row = await store.update_review(conn, row["review_id"], escalated=True)
                log.warning("review %s escalated: its SLA ran out", row["review_id"])
            return vpb.EscalateReviewResponse(review=await self._review_pb(conn, row))

        return await idempotency.once(
            self.pool, "EscalateReview", request.request_id, request, vpb.EscalateReviewResponse, work
        )

    # ---- authorities --------------------------------------------------------------------------------

    async def SubmitAuthorityOrder(self, request, context):
        v = Violations()
        v.request_id(request.request_id)
        v.required(request.case_id, "case_id")
        self._case_of_line(request.case_id, "", v)
        v.enum(request.authority, "authority", set(AUTHORITIES))
        v.enum(request.order, "order", set(ORDERS))
        v.required(request.order_ref, "order_ref")
        v.raise_if_any()
        p = self.policy()

        async def work(conn: asyncpg.Connection) -> vpb.SubmitAuthorityOrderResponse:
            order = AuthorityOrder(AUTHORITIES[request.authority], ORDERS[request.order], request.order_ref)
            await self._signal(request.case_id, SIGNAL_AUTHORITY_ORDER, order)
            if request.order == vpb.ORDER_CONFIRM_FRAUD:
                # Any appeal is moot now; a reviewer decides on termination.
                waiting = await store.waiting_review(conn, request.case_id)
                if waiting is not None:
                    await store.update_review(
                        conn,
                        waiting["review_id"],
                        status=vpb.REVIEW_STATUS_REJECTED,
                        decision_note=f"superseded: fraud confirmed by the {order.authority}",
                    )
                case = await self._case(request.case_id)
                row = await self._open_review(conn, request.case_id, case, vpb.REVIEW_KIND_TERMINATION, p)
                await self._signal(
                    request.case_id,
                    SIGNAL_REVIEW_OPENED,
                    ReviewOpened(str(row["review_id"]), "termination", p.review_sla_s),
                )
            return vpb.SubmitAuthorityOrderResponse(case_id=request.case_id)

        return await idempotency.once(
            self.pool, "SubmitAuthorityOrder", request.request_id, request, vpb.SubmitAuthorityOrderResponse, work
        )

    # ---- status ---------------------------------------------------------------------------------------

    async def GetCaseStatus(self, request, context):
        v = Violations()
        v.check(bool(request.case_id) != bool(request.msisdn), "case_id", "give exactly one of case_id and msisdn")
        if request.msisdn:
            v.msisdn(request.msisdn)
        if request.caller_province:
            v.province(request.caller_province, "caller_province")
        v.raise_if_any()
        if request.msisdn:
            h = self._hash(request.msisdn)
            history = await self._history(h)
            case_id = next((e.case_id for e in reversed(history) if e.case_id), "")
            if not case_id:
                raise not_found("case for this line", "NO_CASE")
        else:
            case_id = request.case_id
            h = case_line_hash(case_id) or ""
            if not h:
                v.add("case_id", "must be a case id as returned by scoring (case-<line hash>-<n>)")
                v.raise_if_any()
            history = await self._history(h)
        case = await self._case(case_id)
        p = self.policy()
        rule = next((r for rules in p.by_level.values() for r in rules if ROUTE_NAMES[r.route] == case.route), None)
        view = status.holder_view(case, rule, p.restore_after_pass_s)
        resp = vpb.GetCaseStatusResponse(
            case_id=case_id,
            masked_msisdn=case.masked_msisdn,
            stage=case.stage,
            line_state=common_pb2.LineState.Value(case.line_state),
            risk_level=policy_mod.LEVELS.get(case.risk_level, 0),
            reasons=[common_pb2.Reason(code=r.code, text_zh=r.text_zh, text_en=r.text_en) for r in case.reasons],
            next_step_zh=view.next_step_zh,
            next_step_en=view.next_step_en,
            where_zh=view.where_zh,
            where_en=view.where_en,
            restore_count=restores(history),
        )
        if view.deadline:
            resp.deadline.FromDatetime(view.deadline)
        if view.estimated_restore_at:
            resp.estimated_restore_at.FromDatetime(view.estimated_restore_at)
        for entry in case.history:
            resp.history.add(stage=entry.stage).at.FromDatetime(datetime.fromisoformat(entry.at))
        latest = await store.latest_case_review(self.pool, case_id)
        if latest is not None and latest["status"] in reviews.WAITING:
            resp.review.CopyFrom(review_pb(latest))  # without the holder's own words: those are for reviewers
        return resp


def restores(history: list[suspension_pb2.HistoryEntry]) -> int:
    """Restores that count, by the suspension service's own rule."""
    return sum(is_restore(e.from_state, e.to_state) for e in history)


def review_pb(row: asyncpg.Record, explanation: str = "") -> vpb.Review:
    r = vpb.Review(
        review_id=str(row["review_id"]),
        kind=row["kind"],
        status=row["status"],
        case_id=row["case_id"],
        masked_msisdn=row["masked_msisdn"],
        home_province=row["home_province"],
        explanation=explanation,
        evidence_count=row["evidence_count"],
        claimed_by=row["claimed_by"],
        escalated=row["escalated"],
        decision=row["decision"],
        decision_note=row["decision_note"],
        more_requested=row["more_requested"],
    )
    r.due_at.FromDatetime(row["due_at"])
    r.created_at.FromDatetime(row["created_at"])
    return r


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
    pool = await db.connect(cfg.database_url, "verification")
    client = await temporal.connect(cfg)
    purge = asyncio.create_task(_purge_evidence(pool))

    async def stop_purge() -> None:
        purge.cancel()

    return await grpc_server.start_servicer(
        "verification",
        port,
        verification_pb2_grpc.add_VerificationServiceServicer_to_server,
        Verification(pool, cfg, client),
        SERVICE,
        [pool.close, stop_purge],
    )


if __name__ == "__main__":
    grpc_server.serve_forever("verification", start, lambda cfg: cfg.verification_addr)

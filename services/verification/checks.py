"""A holder's check, online or at a hall: the policy in force, the lockouts, the evidence, the record, the case.

The case decides how strict the check is (its risk level, and whether the line was restored before), never the
caller. Everything is recorded in the caller's transaction; the case hears of a pass only after the commit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from carrier.common.v1.common_pb2 import RiskLevel
from carrier.verification.v1 import verification_pb2 as vpb
from contracts.case import ReviewKind, ReviewOpened, VerificationPassed
from contracts.pb import RISK_LEVEL_OF, RISK_LEVEL_PB, ROUTE_OF
from pscommon.codec import Sealer
from pscommon.errors import failed_precondition, resource_exhausted
from pscommon.idempotency import Tx
from services.verification import limits, store
from services.verification import metrics as verification_metrics
from services.verification.case_gateway import CaseGateway
from services.verification.outside import Outside
from services.verification.policy import RESTORED_BEFORE, Policy, RouteRule, judge
from services.verification.reviews import Reviews

Gather = Callable[[RouteRule], Awaitable[dict[str, bool]]]


@dataclass(frozen=True)
class Claim:
    """What every check carries, whatever the route."""

    case_id: str
    line_hash: str
    risk_level: RiskLevel.ValueType  # proto value the caller believes the case is at
    # Who asked, for per-caller lockouts: the authenticated principal and the app session or hall agent it acts
    # for ("app/app:session-1", "hall/hall:agent-4471").
    caller: str
    caller_province: str
    route_class: str  # "remote" or "hall": a line's failures on one never lock the other
    hall_id: str = ""
    agent_id: str = ""


class Checks:
    def __init__(
        self, policy: Callable[[], Policy], outside: Outside, case: CaseGateway, reviews: Reviews, sealer: Sealer
    ):
        self.policy = policy
        self.outside = outside
        self.case = case
        self.reviews = reviews
        self.sealer = sealer

    def online(
        self, tx: Tx, claim: Claim, r: vpb.SubmitOnlineVerificationRequest
    ) -> Awaitable[vpb.VerificationOutcome]:
        async def gather(rule: RouteRule) -> dict[str, bool]:
            holder = await self.outside.holder(r.msisdn)
            ident = await self.outside.identity(r.request_id, r.claimed_holder_ref, r.liveness_token)
            return {
                "holder_match": holder.holder_ref == r.claimed_holder_ref and ident.identity_valid,
                "liveness": ident.liveness_passed and ident.match_score >= 0.8,
                "risk_notice": r.risk_notice_acknowledged,
                **await self.outside.knowledge(holder, r.knowledge, rule),
            }

        evidence = [("holder_ref", r.claimed_holder_ref), ("liveness_token", r.liveness_token)]
        return self._judge(tx, claim, vpb.ROUTE_ONLINE, gather, evidence)

    def in_person(
        self, tx: Tx, claim: Claim, r: vpb.SubmitInPersonVerificationRequest
    ) -> Awaitable[vpb.VerificationOutcome]:
        async def gather(rule: RouteRule) -> dict[str, bool]:
            holder = await self.outside.holder(r.msisdn)
            code_ok = await self.outside.province_code(holder.province, r.claimed_holder_ref, r.province_code_token)
            return {
                "holder_match": holder.holder_ref == r.claimed_holder_ref,
                "province_code": code_ok,
                "risk_notice": r.risk_notice_signed,
                "hall": bool(r.hall_id),
                "agent": bool(r.agent_id),
                "extra_evidence": bool(r.extra_evidence),
                **await self.outside.knowledge(holder, r.knowledge, rule),
            }

        evidence = [("holder_ref", r.claimed_holder_ref), ("province_code_token", r.province_code_token)]
        evidence += [("extra_evidence", ref) for ref in r.extra_evidence]
        return self._judge(tx, claim, vpb.ROUTE_IN_PERSON, gather, evidence)

    def _rule(self, p: Policy, level: RiskLevel.ValueType, route: vpb.Route.ValueType, again: bool) -> RouteRule:
        if route == vpb.ROUTE_IN_PERSON:  # a hall check satisfies the reviewed route too, with a reviewer after
            rule = p.rule(level, vpb.ROUTE_IN_PERSON_WITH_REVIEW, again)
            if rule is not None:
                return rule
        rule = p.rule(level, route, again)
        if rule is None:
            accepted = " or ".join(r.description_en for r in p.rules(level, again))
            why = "this line was restored before, so " if again else ""
            raise failed_precondition(
                f"this route is not accepted: {why}the holder must {accepted}", "ROUTE_NOT_ACCEPTED"
            )
        return rule

    async def _judge(
        self, tx: Tx, claim: Claim, route: vpb.Route.ValueType, gather: Gather, evidence: list[tuple[str, str]]
    ) -> vpb.VerificationOutcome:
        p = self.policy()
        case, line = await asyncio.gather(self.case.status(claim.case_id), self.outside.line_record(claim.line_hash))
        again = line.restore_count > 0
        if case.risk_level is None or RISK_LEVEL_PB[case.risk_level] != claim.risk_level:
            # The case decides how strict the check is, not the caller: a stale or forged level is refused.
            raise failed_precondition(
                f"the case is at {case.risk_level or 'no'} risk, not {RISK_LEVEL_OF.get(claim.risk_level)}; ask"
                " GetCaseStatus for what the holder must do",
                "RISK_LEVEL_MISMATCH",
            )
        rule = self._rule(p, claim.risk_level, route, again)
        now = datetime.now(UTC)
        await tx.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 2))", claim.line_hash)
        line_left, caller_left = await self._standing(tx, p, claim, now)
        failures = judge(rule, await gather(rule))
        vid = uuid.uuid4()
        result = vpb.RESULT_FAILED if failures else vpb.RESULT_PASSED
        review_id = None
        if failures:
            await store.record_failure(tx.conn, claim.line_hash, claim.route_class, claim.caller, now)
        else:
            await store.clear_line_failures(tx.conn, claim.line_hash)
            if rule.needs_reviewer:
                result = vpb.RESULT_PENDING_REVIEW
                review = await self.reviews.open(tx, claim.case_id, case, ReviewKind.RESTORE_APPROVAL, p)
                review_id = review["review_id"]
        await store.insert_verification(
            tx.conn,
            verification_id=vid,
            case_id=claim.case_id,
            line_hash=claim.line_hash,
            route=rule.route,
            result=result,
            failures=failures,
            policy_version=p.version,
            caller_province=claim.caller_province,
            hall_id=claim.hall_id,
            agent_id=claim.agent_id,
            decided_at=now,
            caller_id=claim.caller,
            review_id=review_id,
            escalated_because=RESTORED_BEFORE if again else "",
        )
        await store.seal_evidence(tx.conn, self.sealer, vid, evidence, p.evidence_retention_s)
        if result == vpb.RESULT_PASSED:
            passed = VerificationPassed(str(vid), ROUTE_OF[rule.route], p.version)
            await self.case.tell(tx, claim.case_id, passed, case)
        elif review_id is not None:
            opened = ReviewOpened(str(review_id), ReviewKind.RESTORE_APPROVAL, p.review_sla_s)
            await self.case.tell(tx, claim.case_id, opened, case)
        left = min(line_left, caller_left) - (1 if failures else 0)
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

    async def _standing(self, tx: Tx, p: Policy, claim: Claim, now: datetime) -> tuple[int, int]:
        """Failures left before a lockout, for the line and for the caller; a lockout in force refuses the check."""
        since = now - timedelta(seconds=max(p.per_line.window_s, p.per_caller.window_s))
        line_failures, caller_failures = await store.failures(
            tx.conn, claim.line_hash, claim.route_class, claim.caller, since
        )
        line = limits.standing(line_failures, p.per_line, now)
        caller = limits.standing(caller_failures, p.per_caller, now)
        for scope, st in (("line", line), ("caller", caller)):
            if st.locked_until is not None:
                verification_metrics.locked_out(scope)
                raise resource_exhausted(
                    f"too many failed checks for this {scope}; checks are locked until {st.locked_until.isoformat()}",
                    "TOO_MANY_FAILED_ATTEMPTS",
                    (st.locked_until - now).total_seconds(),
                    {"scope": scope, "lifts_at": st.locked_until.isoformat()},
                )
        return line.left, caller.left

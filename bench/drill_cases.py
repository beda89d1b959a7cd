"""The drill's scenario drivers: one task per case, playing the carrier systems and the holder around it.

mediation streams the line's CDRs to scoring (IngestCdrs or ScoreCdrs, a few CDRs per batch as they come);
the holder verifies online through the app or in person at a hall, or appeals through the app and a reviewer
claims and decides the review; an escalation gets a second, stronger burst once warned; a roamer is abroad (HLR)
before the case starts. Every call retries transient errors with the same request (drill_calls).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field

import grpc
from drill_calls import Calls, GaveUp
from drill_lines import HOME, Line
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from carrier.common.v1 import common_pb2
from carrier.hlr.v1 import hlr_pb2, hlr_pb2_grpc
from carrier.registry.v1 import registry_pb2, registry_pb2_grpc
from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from carrier.verification.v1 import verification_pb2 as vpb
from carrier.verification.v1 import verification_pb2_grpc
from pscommon import temporal

STAGE_WAIT_S = 240.0
BATCH = 6  # CDRs per batch, as mediation sends them while calls end
ACTIONS = ["none", "warn", "restrict", "suspend"]


@dataclass
class Trace:
    """What the driver did for one case and what it saw."""

    line: Line
    case_id: str = ""
    decided: list[str] = field(default_factory=list)  # actions of the decisions scoring answered
    risk_level: int = 0  # of the last decision of the first burst: the case's level
    batch_ids: list[str] = field(default_factory=list)
    ingest_spans: list[tuple[float, float]] = field(default_factory=list)  # drill clock: first send, last answer
    stopped: str = ""  # why the driver stopped before playing its part, if it did

    def strongest(self) -> str:
        """The strongest action scoring answered for the line."""
        return max(self.decided, key=ACTIONS.index, default="none")


def rid() -> str:
    return uuid.uuid4().hex


class Drivers:
    def __init__(self, calls: Calls, client: Client, began: float, seed: int, stage_wait_s: float = STAGE_WAIT_S):
        self.calls = calls
        self.stage_wait_s = stage_wait_s
        self.client = client
        self.began = began
        self.rng = random.Random(seed * 31 + 5)
        self.registry = calls.stub("simulators", "ops", registry_pb2_grpc.RegistryServiceStub)
        self.hlr = calls.stub("simulators", "ops", hlr_pb2_grpc.HlrServiceStub)
        self.scoring = calls.stub("scoring", "mediation", scoring_pb2_grpc.ScoringServiceStub)
        self.app = calls.stub("verification", "app", verification_pb2_grpc.VerificationServiceStub)
        self.hall = calls.stub("verification", "hall", verification_pb2_grpc.VerificationServiceStub)
        self.reviewer = calls.stub("verification", "reviewer-1", verification_pb2_grpc.VerificationServiceStub)

    def now(self) -> float:
        return time.monotonic() - self.began

    async def play(self, t: Trace) -> None:
        try:
            await self._play(t)
        except GaveUp as err:
            t.stopped = str(err)
        except grpc.aio.AioRpcError as err:
            t.stopped = f"{err.code().name} from the platform"
        except Exception as err:  # noqa: BLE001 - a driver's own failure is reported with its case, not fatal
            t.stopped = f"driver error {type(err).__name__}: {err}"

    async def _play(self, t: Trace) -> None:
        line, kind = t.line, t.line.kind
        await self.register(line)
        await self.burst(t, 0)
        if not t.case_id:
            t.stopped = "scoring answered no decision"
            return
        if t.strongest() != line.expected[0]:  # the case cannot reach the stage its holder waits for
            t.stopped = f"scoring decided {t.strongest()}, the scorecard says {line.expected[0]}"
            return
        if kind.name in ("online_restore", "roamer"):
            if await self.reach(t, "warning_delivered"):
                await self.verify_online(t)
        elif kind.name == "hall_restore":
            if await self.reach(t, "restricted"):
                await self.verify_in_person(t, extra=False)
        elif kind.name == "hall_review":
            if await self.reach(t, "suspended"):
                review_id = await self.verify_in_person(t, extra=True)
                if review_id and await self.reach(t, "awaiting_reviewer"):
                    await self.review(t, review_id, vpb.DECISION_APPROVE)
        elif kind.name.startswith("appeal_"):
            if await self.reach(t, "restricted"):
                review_id = await self.appeal(t)
                if review_id and await self.reach(t, "in_review"):
                    decision = vpb.DECISION_APPROVE if kind.name == "appeal_approved" else vpb.DECISION_REJECT
                    await self.review(t, review_id, decision)
        elif kind.escalate_to:
            if await self.reach(t, "warning_delivered"):
                await self.burst(t, 1)

    # ---- the carrier's systems -------------------------------------------------------------------------

    async def register(self, line: Line) -> None:
        sub = registry_pb2.Subscriber(
            msisdn=line.msisdn,
            province=HOME,
            holder_ref=line.holder_ref,
            opened_at=line.opened_at,
            language="zh",
            push_token=line.push_token,
        )
        await self.calls.call(
            self.registry.RegisterSubscriber, registry_pb2.RegisterSubscriberRequest(request_id=rid(), subscriber=sub)
        )
        if line.roaming_country:
            where = hlr_pb2.SetLocationRequest(
                province=HOME,
                msisdn=line.msisdn,
                status=hlr_pb2.LOCATION_STATUS_ROAMING_INTERNATIONAL,
                country=line.roaming_country,
            )
            await self.calls.call(self.hlr.SetLocation, where)
        upsert = scoring_pb2.UpsertSubscriberRequest(
            request_id=rid(), msisdn=line.msisdn, home_province=HOME, opened_at=line.opened_at, language="zh"
        )
        await self.calls.call(self.scoring.UpsertSubscriber, upsert)

    async def burst(self, t: Trace, n: int) -> None:
        """The burst's CDRs in batches, a moment apart; through the client stream or the bidirectional one."""
        cdrs = t.line.bursts[n]
        batches = [(rid(), cdrs[i : i + BATCH]) for i in range(0, len(cdrs), BATCH)]
        t.batch_ids += [b for b, _ in batches]
        pause = self.rng.uniform(0.2, 0.8)
        started = self.now()
        if t.line.index % 2:
            decisions = await self._ingest(batches, pause)
        else:
            decisions = await self._score(batches, pause)
        t.ingest_spans.append((started, self.now()))
        for d in decisions:
            t.decided.append(common_pb2.Action.Name(d.action).removeprefix("ACTION_").lower())
            t.case_id = t.case_id or d.case_id
            if n == 0:
                t.risk_level = d.risk_level

    async def _ingest(self, batches: list[tuple[str, list]], pause: float) -> list[scoring_pb2.Decision]:
        """IngestCdrs answers once, at the end of the stream: when the stream breaks, mediation does not know
        which batches were taken and sends them all again (same request ids: those taken answer as repeated)."""
        give_up_at = time.monotonic() + self.calls.patience_s
        first = True
        while True:

            async def stream(spaced: bool = first):
                for i, (request_id, cdrs) in enumerate(batches):
                    if spaced and i:
                        await asyncio.sleep(pause)
                    yield scoring_pb2.IngestCdrsRequest(request_id=request_id, cdrs=cdrs)

            try:
                resp = await self.scoring.IngestCdrs(stream(), timeout=30)
                return list(resp.decisions)
            except grpc.aio.AioRpcError as err:
                self.calls.transient_or_raise("IngestCdrs", err, give_up_at)
            first = False
            await asyncio.sleep(0.5)

    async def _score(self, batches: list[tuple[str, list]], pause: float) -> list[scoring_pb2.Decision]:
        """ScoreCdrs answers each batch: after a break, mediation sends again from the first unanswered one."""
        give_up_at = time.monotonic() + self.calls.patience_s
        decisions: list[scoring_pb2.Decision] = []
        done = 0
        while done < len(batches):
            call = self.scoring.ScoreCdrs(timeout=30)
            try:
                while done < len(batches):
                    request_id, cdrs = batches[done]
                    await call.write(scoring_pb2.ScoreCdrsRequest(request_id=request_id, cdrs=cdrs))
                    resp = await call.read()
                    if resp is grpc.aio.EOF:
                        raise asyncio.InvalidStateError("the stream ended")
                    decisions += resp.decisions
                    done += 1
                    if done < len(batches):
                        await asyncio.sleep(pause)
                await call.done_writing()
                if await call.code() != grpc.StatusCode.OK:
                    raise asyncio.InvalidStateError("the stream ended with an error")
            except asyncio.InvalidStateError:  # the call ended under us (written to or read after its end)
                err = grpc.aio.AioRpcError(
                    await call.code(), grpc.aio.Metadata(), grpc.aio.Metadata(), await call.details()
                )
                self.calls.transient_or_raise("ScoreCdrs", err, give_up_at)
                await asyncio.sleep(0.5)
            except grpc.aio.AioRpcError as err:
                call.cancel()
                self.calls.transient_or_raise("ScoreCdrs", err, give_up_at)
                await asyncio.sleep(0.5)
        return decisions

    # ---- the case, as the holder's app sees it ---------------------------------------------------------

    async def reach(self, t: Trace, stage: str) -> bool:
        """Polls the case's stage (the CaseStage search attribute, as an operator's search would) until it is
        `stage`; False, with the reason kept, when it is not there within the stage wait."""
        handle = self.client.get_workflow_handle(t.case_id)
        give_up_at = time.monotonic() + self.stage_wait_s
        seen = ""
        while time.monotonic() < give_up_at:
            try:
                desc = await self.calls.temporal("describe", handle.describe)
                seen = desc.typed_search_attributes.get(temporal.CASE_STAGE) or ""
            except GaveUp:
                break
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                seen = "not started yet"  # ScoreCdrs answers before the case opener has started the workflow
            if seen == stage:
                return True
            await asyncio.sleep(self.rng.uniform(0.7, 1.3))
        t.stopped = f"waited {self.stage_wait_s:.0f}s for stage {stage}; the case was at {seen or 'no stage'}"
        return False

    # ---- the holder and the reviewers --------------------------------------------------------------------

    async def verify_online(self, t: Trace) -> None:
        line = t.line
        req = vpb.SubmitOnlineVerificationRequest(
            request_id=rid(),
            case_id=t.case_id,
            msisdn=line.msisdn,
            risk_level=t.risk_level,  # type: ignore[arg-type]
            claimed_holder_ref=line.holder_ref,
            liveness_token=f"video-{rid()[:8]}",
            risk_notice_acknowledged=True,
            caller_province=HOME,
            caller_id=f"drill-app-session-{line.index}",
        )
        out = await self.calls.call(self.app.SubmitOnlineVerification, req)
        if out.outcome.result != vpb.RESULT_PASSED:
            t.stopped = f"online check {vpb.Result.Name(out.outcome.result)}: {list(out.outcome.failures)}"

    async def verify_in_person(self, t: Trace, extra: bool) -> str:
        line = t.line
        req = vpb.SubmitInPersonVerificationRequest(
            request_id=rid(),
            case_id=t.case_id,
            msisdn=line.msisdn,
            risk_level=t.risk_level,  # type: ignore[arg-type]
            claimed_holder_ref=line.holder_ref,
            hall_id="GZ-TIANHE-01",
            agent_id=f"agent-drill-{line.index % 7}",
            province_code_token=f"{HOME}-{line.holder_ref}",
            risk_notice_signed=True,
            extra_evidence=["employment-letter"] if extra else [],
        )
        out = await self.calls.call(self.hall.SubmitInPersonVerification, req)
        wanted = vpb.RESULT_PENDING_REVIEW if extra else vpb.RESULT_PASSED
        if out.outcome.result != wanted:
            t.stopped = f"hall check {vpb.Result.Name(out.outcome.result)}: {list(out.outcome.failures)}"
            return ""
        return out.outcome.review_id

    async def appeal(self, t: Trace) -> str:
        req = vpb.SubmitAppealRequest(
            request_id=rid(),
            case_id=t.case_id,
            msisdn=t.line.msisdn,
            explanation="我在做销售回访，这些电话都是客户。 I was calling customers back for my shop.",
            evidence_refs=[f"evidence-drill-{t.line.index}"],
            caller_province=HOME,
        )
        out = await self.calls.call(self.app.SubmitAppeal, req)
        return out.review.review_id

    async def review(self, t: Trace, review_id: str, decision: vpb.Decision.ValueType) -> None:
        await self.calls.call(self.reviewer.ClaimReview, vpb.ClaimReviewRequest(request_id=rid(), review_id=review_id))
        req = vpb.DecideReviewRequest(request_id=rid(), review_id=review_id, decision=decision, note="drill review")
        await self.calls.call(self.reviewer.DecideReview, req)

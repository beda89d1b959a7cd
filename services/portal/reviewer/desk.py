"""Verification's review desk, called as the signed-in reviewer (mutual TLS with that reviewer's certificate).

Refusals come back as `Refused` with the HTTP status the console answers with and the service's own message
(messages of refusals name no personal data); nothing here knows HTML.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from carrier.verification.v1 import verification_pb2 as vpb
from carrier.verification.v1 import verification_pb2_grpc
from pscommon.channels import channel
from pscommon.errors import parse_details
from services.portal.reviewer.directory import Directory

TIMEOUT_S = 5.0
QUEUE_SIZE = 500
NO_REVIEW = "No review has this id."
HTTP_OF = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
}


class Refused(Exception):
    def __init__(self, http_status: int, message: str, reason: str = "", fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.reason = reason
        self.fields = fields


def _refused(err: grpc.aio.AioRpcError) -> Refused:
    info, violations = parse_details(err)
    message = err.details() or "refused"
    if violations:
        message = "; ".join(f"{f}: {why}" for f, why in violations)
    if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        message = "the verification service did not answer in time; try again in a moment"
    return Refused(HTTP_OF.get(err.code(), 502), message, info.reason if info else "", tuple(f for f, _ in violations))


class Desk:
    def __init__(self, verification_addr: str, directory: Directory) -> None:
        self.addr = verification_addr
        self.directory = directory

    def _stub(self, reviewer: str) -> verification_pb2_grpc.VerificationServiceAsyncStub:
        return verification_pb2_grpc.VerificationServiceStub(channel(self.addr, self.directory.tls(reviewer)))

    async def queue(self, reviewer: str) -> list[vpb.Review]:
        """Everything waiting for a decision: escalated first, then by SLA deadline (the service's order)."""
        try:
            got = await self._stub(reviewer).ListReviews(
                vpb.ListReviewsRequest(page_size=QUEUE_SIZE), timeout=TIMEOUT_S
            )
        except grpc.aio.AioRpcError as err:
            raise _refused(err) from err
        return list(got.reviews)

    async def review(self, reviewer: str, review_id: str) -> vpb.Review:
        """The review whatever its status (waiting, claimed, decided), without the holder's explanation."""
        try:
            got = await self._stub(reviewer).GetReview(vpb.GetReviewRequest(review_id=review_id), timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise Refused(404, NO_REVIEW, "REVIEW_NOT_FOUND") from err
            raise _refused(err) from err
        return got.review

    async def evidence(self, reviewer: str, review_id: str) -> vpb.GetReviewEvidenceResponse:
        """Opens the review's sealed evidence (recorded by verification as a view by this reviewer)."""
        try:
            return await self._stub(reviewer).GetReviewEvidence(
                vpb.GetReviewEvidenceRequest(review_id=review_id), timeout=TIMEOUT_S
            )
        except grpc.aio.AioRpcError as err:
            raise _refused(err) from err

    async def case(self, reviewer: str, case_id: str) -> vpb.GetCaseStatusResponse:
        try:
            return await self._stub(reviewer).GetCaseStatus(
                vpb.GetCaseStatusRequest(case_id=case_id, caller_channel="reviewer-console"), timeout=TIMEOUT_S
            )
        except grpc.aio.AioRpcError as err:
            raise _refused(err) from err

    async def claim(self, reviewer: str, review_id: str, request_id: str) -> vpb.Review:
        try:
            got = await self._stub(reviewer).ClaimReview(
                vpb.ClaimReviewRequest(request_id=request_id, review_id=review_id), timeout=TIMEOUT_S
            )
        except grpc.aio.AioRpcError as err:
            raise _refused(err) from err
        return got.review

    async def decide(self, reviewer: str, review_id: str, request_id: str, decision: Decision) -> vpb.Review:
        try:
            got = await self._stub(reviewer).DecideReview(
                vpb.DecideReviewRequest(
                    request_id=request_id,
                    review_id=review_id,
                    decision=decision.decision,
                    note=decision.note,
                    more_requested=decision.more_requested,
                ),
                timeout=TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as err:
            raise _refused(err) from err
        return got.review


@dataclass(frozen=True)
class Decision:
    decision: vpb.Decision.ValueType
    note: str = ""
    more_requested: str = ""

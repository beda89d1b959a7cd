"""Verification's review desk, called as the signed-in reviewer (mutual TLS with that reviewer's certificate).

Refusals come back as `Refused` with the HTTP status the console answers with and the service's own message
(messages of refusals name no personal data); nothing here knows HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
        self._stubs: dict[str, Any] = {}  # reviewer -> stub on that reviewer's own channel, opened once

    async def _call(self, reviewer: str, method: str, request: Any) -> Any:
        stub = self._stubs.get(reviewer)
        if stub is None:
            stub = self._stubs[reviewer] = verification_pb2_grpc.VerificationServiceStub(
                channel(self.addr, self.directory.tls(reviewer))
            )
        try:
            return await getattr(stub, method)(request, timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            if method == "GetReview" and err.code() == grpc.StatusCode.NOT_FOUND:
                raise Refused(404, NO_REVIEW, "REVIEW_NOT_FOUND") from err
            raise _refused(err) from err

    async def queue(self, reviewer: str) -> list[vpb.Review]:
        """Everything waiting for a decision: escalated first, then by SLA deadline (the service's order)."""
        got = await self._call(reviewer, "ListReviews", vpb.ListReviewsRequest(page_size=QUEUE_SIZE))
        return list(got.reviews)

    async def review(self, reviewer: str, review_id: str) -> vpb.Review:
        """The review whatever its status (waiting, claimed, decided), without the holder's explanation."""
        return (await self._call(reviewer, "GetReview", vpb.GetReviewRequest(review_id=review_id))).review

    async def evidence(self, reviewer: str, review_id: str) -> vpb.GetReviewEvidenceResponse:
        """Opens the review's sealed evidence (recorded by verification as a view by this reviewer)."""
        request = vpb.GetReviewEvidenceRequest(review_id=review_id)
        response: vpb.GetReviewEvidenceResponse = await self._call(reviewer, "GetReviewEvidence", request)
        return response

    async def case(self, reviewer: str, case_id: str) -> vpb.GetCaseStatusResponse:
        request = vpb.GetCaseStatusRequest(case_id=case_id, caller_channel="reviewer-console")
        response: vpb.GetCaseStatusResponse = await self._call(reviewer, "GetCaseStatus", request)
        return response

    async def claim(self, reviewer: str, review_id: str, request_id: str) -> vpb.Review:
        request = vpb.ClaimReviewRequest(request_id=request_id, review_id=review_id)
        return (await self._call(reviewer, "ClaimReview", request)).review

    async def decide(self, reviewer: str, review_id: str, request_id: str, decision: Decision) -> vpb.Review:
        request = vpb.DecideReviewRequest(
            request_id=request_id,
            review_id=review_id,
            decision=decision.decision,
            note=decision.note,
            more_requested=decision.more_requested,
        )
        return (await self._call(reviewer, "DecideReview", request)).review


@dataclass(frozen=True)
class Decision:
    decision: vpb.Decision.ValueType
    note: str = ""
    more_requested: str = ""

"""A review's sealed evidence opens only for the reviewer who claimed it, and every opening is recorded."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from carrier.verification.v1 import verification_pb2 as vpb
from carrier.verification.v1 import verification_pb2_grpc
from pscommon.errors import parse_details
from tests.helpers import appeal_in_review, connect, rid


def as_(stack, principal: str) -> verification_pb2_grpc.VerificationServiceStub:
    return verification_pb2_grpc.VerificationServiceStub(connect(stack.cfg, "verification", principal))


async def views(stack, review_id: str) -> list[str]:
    conn = await asyncpg.connect(stack.cfg.database_url)
    try:
        rows = await conn.fetch(
            "SELECT principal FROM verification.evidence_views WHERE review_id = $1 ORDER BY viewed_at", review_id
        )
    finally:
        await conn.close()
    return [r["principal"] for r in rows]


async def refused(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    info, _ = parse_details(caught.value)
    return caught.value.code(), info.reason if info else ""


async def test_evidence_opens_for_the_claiming_reviewer_only_and_each_opening_is_recorded(stack):
    _, review_id = await appeal_in_review(
        stack, "19320000081", "I deliver parcels", ["upload-badge-1", "upload-letter-2"]
    )
    one, two = as_(stack, "reviewer-1"), as_(stack, "reviewer-2")

    listed = await one.ListReviews(vpb.ListReviewsRequest())
    assert not next(r for r in listed.reviews if r.review_id == review_id).explanation
    ask = vpb.GetReviewEvidenceRequest(review_id=review_id)
    assert await refused(one.GetReviewEvidence(ask)) == (grpc.StatusCode.PERMISSION_DENIED, "REVIEW_NOT_CLAIMED_BY_YOU")

    claimed = await one.ClaimReview(vpb.ClaimReviewRequest(request_id=rid(), review_id=review_id))
    assert not claimed.review.explanation  # only GetReviewEvidence opens it, and records that it did
    assert await refused(two.GetReviewEvidence(ask)) == (grpc.StatusCode.PERMISSION_DENIED, "REVIEW_NOT_CLAIMED_BY_YOU")
    assert await views(stack, review_id) == []

    got = await one.GetReviewEvidence(ask)
    assert got.review.explanation == "I deliver parcels"
    assert list(got.evidence_refs) == ["upload-badge-1", "upload-letter-2"]
    await one.GetReviewEvidence(ask)
    assert await views(stack, review_id) == ["reviewer-1", "reviewer-1"]

    code, _ = await refused(one.GetReviewEvidence(vpb.GetReviewEvidenceRequest(review_id="not-a-uuid")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    unknown = vpb.GetReviewEvidenceRequest(review_id="00000000-0000-0000-0000-0000000000ff")
    assert await refused(one.GetReviewEvidence(unknown)) == (grpc.StatusCode.NOT_FOUND, "REVIEW_NOT_FOUND")
    assert await refused(as_(stack, "app").GetReviewEvidence(ask)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "METHOD_NOT_ALLOWED",
    )
    await one.DecideReview(vpb.DecideReviewRequest(request_id=rid(), review_id=review_id, decision=vpb.DECISION_REJECT))
    assert await refused(one.GetReviewEvidence(ask)) == (grpc.StatusCode.PERMISSION_DENIED, "REVIEW_NOT_CLAIMED_BY_YOU")

"""GetReview: one review by id whatever its status, for any reviewer, never with the holder's explanation."""

from __future__ import annotations

import grpc
import pytest

from carrier.verification.v1 import verification_pb2 as vpb
from pscommon.errors import parse_details
from tests.helpers import appeal_in_review, rid
from tests.verification.test_review_evidence import as_, refused, views


async def test_a_review_reads_the_same_waiting_claimed_and_decided_without_the_explanation(stack):
    case_id, review_id = await appeal_in_review(stack, "19320000082", "I sell insurance by phone", ["upload-licence-1"])
    one, two = as_(stack, "reviewer-1"), as_(stack, "reviewer-2")
    ask = vpb.GetReviewRequest(review_id=review_id)

    waiting = (await one.GetReview(ask)).review
    assert (waiting.review_id, waiting.case_id, waiting.status) == (review_id, case_id, vpb.REVIEW_STATUS_OPEN)
    assert waiting.kind == vpb.REVIEW_KIND_APPEAL and waiting.masked_msisdn == "193****0082"
    assert waiting.evidence_count == 1 and not waiting.explanation and not waiting.HasField("decided_at")

    await one.ClaimReview(vpb.ClaimReviewRequest(request_id=rid(), review_id=review_id))
    claimed = (await two.GetReview(ask)).review  # any reviewer reads it, the claim holder or not
    assert (claimed.status, claimed.claimed_by, claimed.explanation) == (vpb.REVIEW_STATUS_CLAIMED, "reviewer-1", "")

    await one.DecideReview(
        vpb.DecideReviewRequest(
            request_id=rid(), review_id=review_id, decision=vpb.DECISION_REJECT, note="licence expired in 2024"
        )
    )
    decided = (await two.GetReview(ask)).review
    assert decided.status == vpb.REVIEW_STATUS_REJECTED and decided.decision == vpb.DECISION_REJECT
    assert decided.claimed_by == "reviewer-1" and decided.decision_note == "licence expired in 2024"
    assert decided.HasField("decided_at") and decided.decided_at.ToDatetime() >= decided.created_at.ToDatetime()
    assert not decided.explanation
    # Reading a review is not opening its evidence: nothing is recorded as a view.
    assert await views(stack, review_id) == []
    # No longer waiting: ListReviews does not show it, GetReview still does.
    listed = await one.ListReviews(vpb.ListReviewsRequest())
    assert review_id not in [r.review_id for r in listed.reviews]


async def test_an_unknown_review_is_not_found(stack):
    unknown = vpb.GetReviewRequest(review_id="00000000-0000-0000-0000-0000000000fe")
    assert await refused(as_(stack, "reviewer-1").GetReview(unknown)) == (
        grpc.StatusCode.NOT_FOUND,
        "REVIEW_NOT_FOUND",
    )


@pytest.mark.parametrize(
    "review_id", ["", "not-a-uuid", "00000000-0000-0000-0000-00000000000g", "0" * 37, "urn:uuid:" + "0" * 36]
)
async def test_a_bad_review_id_is_invalid_argument_naming_it(stack, review_id):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await as_(stack, "reviewer-1").GetReview(vpb.GetReviewRequest(review_id=review_id))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, violations = parse_details(caught.value)
    assert [f for f, _ in violations] == ["review_id"]


@pytest.mark.parametrize("principal", ["app", "ops", "customer-service", "worker"])
async def test_only_reviewers_may_read_a_review(stack, principal):
    ask = vpb.GetReviewRequest(review_id="00000000-0000-0000-0000-0000000000fe")
    assert await refused(as_(stack, principal).GetReview(ask)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "METHOD_NOT_ALLOWED",
    )

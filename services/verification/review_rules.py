"""Manual review rules: who may claim and decide a review, and the status a decision leaves (no I/O here)."""

from __future__ import annotations

from carrier.verification.v1 import verification_pb2 as vpb

WAITING = (
    vpb.REVIEW_STATUS_OPEN,
    vpb.REVIEW_STATUS_CLAIMED,
    vpb.REVIEW_STATUS_MORE_REQUESTED,
    vpb.REVIEW_STATUS_SECOND_APPROVAL,
)
CLAIMABLE = (vpb.REVIEW_STATUS_OPEN, vpb.REVIEW_STATUS_CLAIMED, vpb.REVIEW_STATUS_SECOND_APPROVAL)


class ReviewRefused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_claim(status: vpb.ReviewStatus.ValueType, claimed_by: str, reviewer: str, first_approver: str = "") -> None:
    if status not in CLAIMABLE:
        raise ReviewRefused("REVIEW_NOT_CLAIMABLE", f"the review is {vpb.ReviewStatus.Name(status)}")
    if status == vpb.REVIEW_STATUS_CLAIMED and claimed_by != reviewer:
        raise ReviewRefused("REVIEW_CLAIMED_BY_ANOTHER", "another reviewer has claimed this review")
    if first_approver == reviewer:
        raise ReviewRefused("FOUR_EYES", "a termination needs a second reviewer, not the one who approved it first")


def check_decision(
    status: vpb.ReviewStatus.ValueType,
    claimed_by: str,
    reviewer: str,
    kind: vpb.ReviewKind.ValueType,
    decision: vpb.Decision.ValueType,
) -> None:
    if status != vpb.REVIEW_STATUS_CLAIMED:
        raise ReviewRefused("REVIEW_NOT_CLAIMED", "claim the review before deciding it")
    if claimed_by != reviewer:
        raise ReviewRefused("REVIEW_CLAIMED_BY_ANOTHER", "only the reviewer who claimed the review may decide it")
    if kind == vpb.REVIEW_KIND_TERMINATION and decision == vpb.DECISION_ASK_FOR_MORE:
        raise ReviewRefused("NOTHING_TO_ASK", "a termination review is decided on the case file: approve or reject")


def check_evidence_view(status: vpb.ReviewStatus.ValueType, claimed_by: str, reviewer: str) -> None:
    """Sealed evidence opens only for the reviewer who holds the claim, while the review waits for them."""
    if status != vpb.REVIEW_STATUS_CLAIMED or claimed_by != reviewer:
        raise ReviewRefused("REVIEW_NOT_CLAIMED_BY_YOU", "claim the review to open its evidence")


def status_after(
    decision: vpb.Decision.ValueType, kind: vpb.ReviewKind.ValueType = vpb.REVIEW_KIND_APPEAL, first_approver: str = ""
) -> vpb.ReviewStatus.ValueType:
    """A termination's first approval waits for a second, different reviewer (four eyes); the rest decide."""
    if decision == vpb.DECISION_APPROVE and kind == vpb.REVIEW_KIND_TERMINATION and not first_approver:
        return vpb.REVIEW_STATUS_SECOND_APPROVAL
    return {
        vpb.DECISION_APPROVE: vpb.REVIEW_STATUS_APPROVED,
        vpb.DECISION_REJECT: vpb.REVIEW_STATUS_REJECTED,
        vpb.DECISION_ASK_FOR_MORE: vpb.REVIEW_STATUS_MORE_REQUESTED,
    }[decision]

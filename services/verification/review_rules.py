"""Manual review rules: who may claim and decide a review, and the status a decision leaves (no I/O here)."""

from __future__ import annotations

from carrier.verification.v1 import verification_pb2 as vpb

WAITING = (vpb.REVIEW_STATUS_OPEN, vpb.REVIEW_STATUS_CLAIMED, vpb.REVIEW_STATUS_MORE_REQUESTED)


class ReviewRefused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_claim(status: vpb.ReviewStatus.ValueType, claimed_by: str, reviewer: str) -> None:
    if status not in (vpb.REVIEW_STATUS_OPEN, vpb.REVIEW_STATUS_CLAIMED):
        raise ReviewRefused("REVIEW_NOT_CLAIMABLE", f"the review is {vpb.ReviewStatus.Name(status)}")
    if status == vpb.REVIEW_STATUS_CLAIMED and claimed_by != reviewer:
        raise ReviewRefused("REVIEW_CLAIMED_BY_ANOTHER", "another reviewer has claimed this review")


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


def status_after(decision: vpb.Decision.ValueType) -> vpb.ReviewStatus.ValueType:
    return {
        vpb.DECISION_APPROVE: vpb.REVIEW_STATUS_APPROVED,
        vpb.DECISION_REJECT: vpb.REVIEW_STATUS_REJECTED,
        vpb.DECISION_ASK_FOR_MORE: vpb.REVIEW_STATUS_MORE_REQUESTED,
    }[decision]

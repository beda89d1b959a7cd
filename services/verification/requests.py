"""What the verification service accepts: every field checked before anything happens."""

from __future__ import annotations

from carrier.verification.v1 import verification_pb2 as vpb
from contracts.case import case_line_hash
from contracts.pb import AUTHORITY_OF, DECISION_OF, OPERATOR_CHOICE_OF, ORDER_OF, RISK_LEVEL_OF
from pscommon.validation import Violations

MAX_EXPLANATION = 4000
CASE_ID_FORMAT = "must be a case id as returned by scoring (case-<line hash>-<n>)"


def _case_id(v: Violations, case_id: str) -> None:
    v.required(case_id, "case_id")
    if case_id and case_line_hash(case_id) is None:
        v.add("case_id", CASE_ID_FORMAT)


def check_same_line(case_id: str, line_hash: str) -> None:
    """The case named is one of this number's (needs the line-hash key, so the servicer calls it)."""
    if case_line_hash(case_id) != line_hash:
        v = Violations()
        v.add("case_id", "is not a case of this line")
        v.raise_if_any()


def check_requirements(r: vpb.GetRequirementsRequest) -> None:
    v = Violations()
    v.enum(r.risk_level, "risk_level", set(RISK_LEVEL_OF))
    if r.msisdn:
        v.msisdn(r.msisdn)
    v.raise_if_any()


def check_lookup(r: vpb.LookupHolderRequest) -> None:
    v = Violations()
    v.msisdn(r.msisdn)
    v.province(r.caller_province, "caller_province")
    v.required(r.claimed_holder_ref, "claimed_holder_ref")
    v.raise_if_any()


def _check_common(
    v: Violations, r: vpb.SubmitOnlineVerificationRequest | vpb.SubmitInPersonVerificationRequest
) -> None:
    v.request_id(r.request_id)
    _case_id(v, r.case_id)
    v.msisdn(r.msisdn)
    v.enum(r.risk_level, "risk_level", set(RISK_LEVEL_OF))
    v.required(r.claimed_holder_ref, "claimed_holder_ref")


def check_online(r: vpb.SubmitOnlineVerificationRequest) -> None:
    v = Violations()
    _check_common(v, r)
    v.required(r.liveness_token, "liveness_token")
    v.province(r.caller_province, "caller_province")
    v.required(r.caller_id, "caller_id")
    v.raise_if_any()


def check_in_person(r: vpb.SubmitInPersonVerificationRequest) -> None:
    v = Violations()
    _check_common(v, r)
    v.required(r.hall_id, "hall_id")
    v.required(r.agent_id, "agent_id")
    v.raise_if_any()


def check_appeal(r: vpb.SubmitAppealRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    _case_id(v, r.case_id)
    v.msisdn(r.msisdn)
    v.required(r.explanation, "explanation")
    v.check(len(r.explanation) <= MAX_EXPLANATION, "explanation", f"at most {MAX_EXPLANATION} characters")
    v.province(r.caller_province, "caller_province")
    if r.review_id:
        v.uuid(r.review_id, "review_id")
    v.raise_if_any()


def check_list_reviews(r: vpb.ListReviewsRequest) -> None:
    v = Violations()
    v.check(r.status in (0, *vpb.ReviewStatus.values()), "status", "unknown review status")
    v.check(0 <= r.page_size <= 500, "page_size", "between 1 and 500 (0: 50)")
    v.raise_if_any()


def check_claim(r: vpb.ClaimReviewRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    v.uuid(r.review_id, "review_id")
    v.raise_if_any()


def check_review_id(r: vpb.GetReviewRequest | vpb.GetReviewEvidenceRequest) -> None:
    v = Violations()
    v.uuid(r.review_id, "review_id")
    v.raise_if_any()


def check_reviewer_field(given: str, reviewer: str) -> None:
    """The reviewer is the caller's certificate; a reviewer_id naming anyone else is refused."""
    if given and given != reviewer:
        v = Violations()
        v.add("reviewer_id", "leave it empty or give your own id: the reviewer is the one your certificate names")
        v.raise_if_any()


def check_decide(r: vpb.DecideReviewRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    v.uuid(r.review_id, "review_id")
    v.enum(r.decision, "decision", set(DECISION_OF))
    if r.decision == vpb.DECISION_ASK_FOR_MORE:
        v.required(r.more_requested, "more_requested")
    v.raise_if_any()


def check_escalate(r: vpb.EscalateReviewRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    v.uuid(r.review_id, "review_id")
    v.raise_if_any()


def check_authority_order(r: vpb.SubmitAuthorityOrderRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    _case_id(v, r.case_id)
    v.enum(r.authority, "authority", set(AUTHORITY_OF))
    v.enum(r.order, "order", set(ORDER_OF))
    v.required(r.order_ref, "order_ref")
    v.raise_if_any()


def check_act_on_case(r: vpb.ActOnCaseRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    _case_id(v, r.case_id)
    v.enum(r.choice, "choice", set(OPERATOR_CHOICE_OF))
    v.required(r.note, "note")
    v.raise_if_any()


def check_case_status(r: vpb.GetCaseStatusRequest) -> None:
    v = Violations()
    v.check(bool(r.case_id) != bool(r.msisdn), "case_id", "give exactly one of case_id and msisdn")
    if r.msisdn:
        v.msisdn(r.msisdn)
    if r.case_id and case_line_hash(r.case_id) is None:
        v.add("case_id", CASE_ID_FORMAT)
    if r.caller_province:
        v.province(r.caller_province, "caller_province")
    v.raise_if_any()

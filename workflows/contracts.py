"""What callers exchange with the case workflow: its input, signals and query answers (plain data)."""

from __future__ import annotations

from dataclasses import dataclass, field

WORKFLOW_NAME = "ProtectiveSuspensionCase"
SIGNAL_VERIFIED = "verification_passed"
SIGNAL_ASSESSMENT = "new_assessment"
SIGNAL_REVIEW_OPENED = "review_opened"
SIGNAL_REVIEW_DECIDED = "review_decided"
SIGNAL_AUTHORITY_ORDER = "authority_order"
QUERY_STATUS = "status"
UPDATE_WAIT_STAGE = "wait_for_stage"


@dataclass
class ReasonText:
    code: str
    text_zh: str
    text_en: str
    weight: float = 0.0


@dataclass
class Assessment:
    risk_level: str  # low | medium | high | extreme
    action: str  # none | warn | restrict | suspend
    score: float
    reasons: list[ReasonText]
    decided_at: str  # RFC 3339, event time


@dataclass
class CaseInput:
    msisdn: str  # encrypted in Temporal by the payload codec; never in ids, attributes or memos
    line_hash: str
    masked_msisdn: str
    home_province: str
    language: str
    assessment: Assessment
    trace_id: str = ""


@dataclass
class VerificationPassed:
    verification_id: str
    route: str  # online | in_person | in_person_with_review
    policy_version: str


@dataclass
class ReviewOpened:
    """A person must decide: an appeal, a restore the policy wants approved, or a proposed termination."""

    review_id: str
    kind: str  # appeal | restore_approval | termination
    sla_s: int  # the case escalates when no decision came within this


@dataclass
class ReviewDecided:
    review_id: str
    kind: str
    decision: str  # approve | reject | ask_for_more
    reviewer_id: str
    note: str = ""
    more_requested: str = ""


@dataclass
class AuthorityOrder:
    authority: str  # police | regulator
    order: str  # restore | confirm_fraud
    order_ref: str


@dataclass
class ReviewState:
    review_id: str
    kind: str
    due: str  # RFC 3339, workflow time: when the SLA runs out
    escalated: bool = False
    status: str = "waiting"  # waiting | more_requested | approved | rejected


@dataclass
class StageEntry:
    stage: str
    at: str


@dataclass
class DeliveryAttempt:
    channel: str  # sms | push | email | voice | alternate_contact
    outcome: str  # delivered, submitted, undeliv, skipped, interrupted ...
    error_class: str  # temporary | absent | permanent, or "" when it did not fail
    at: str  # RFC 3339
    detail: str  # contacts appear masked


@dataclass
class Delivery:
    """What became of a notification: by which channel it reached the holder, and every attempt."""

    notification_id: str
    status: str  # delivered | failed (marked for manual outreach) | pending
    channel: str = ""
    at: str = ""
    location: str = ""  # home | roaming_domestic | roaming_international | absent
    country: str = ""
    attempts: list[DeliveryAttempt] = field(default_factory=list)

    @property
    def roaming(self) -> bool:
        return self.location in ("roaming_domestic", "roaming_international")


@dataclass
class CaseStatus:
    stage: str
    next_step: str
    line_state: str
    risk_level: str
    history: list[StageEntry] = field(default_factory=list)
    warning_delivery: Delivery | None = None
    deadline: str = ""  # RFC 3339: when the next thing is due (holder's deadline, or a review's SLA)
    review: ReviewState | None = None
    reasons: list[ReasonText] = field(default_factory=list)
    route: str = ""  # how the holder restores: online | in_person | in_person_with_review
    more_requested: str = ""  # what a reviewer asked the holder for
    masked_msisdn: str = ""
    home_province: str = ""

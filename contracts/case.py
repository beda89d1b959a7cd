"""The case contract: what scoring, verification, psctl and the worker exchange with the case workflow.

Neither the services nor the worker own it. Names of the workflow, its signals, query and updates; the plain
dataclasses that travel as payloads; and the enums for stage, risk level, action and the review vocabulary.
The enums are `StrEnum`s, so a payload carries the same text as before they existed and recorded histories
replay unchanged. Their proto counterparts (`carrier.common.v1`) are mapped in `contracts.pb`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

WORKFLOW_NAME = "ProtectiveSuspensionCase"
SIGNAL_VERIFIED = "verification_passed"
SIGNAL_ASSESSMENT = "new_assessment"
SIGNAL_REVIEW_OPENED = "review_opened"
SIGNAL_REVIEW_DECIDED = "review_decided"
SIGNAL_AUTHORITY_ORDER = "authority_order"
SIGNAL_OPERATOR = "operator_action"
QUERY_STATUS = "status"
UPDATE_WAIT_STAGE = "wait_for_stage"
# wait_for_stage's error type when the case continued as new while it waited: ask the new run (by workflow id).
CASE_RENEWED = "CASE_RENEWED"


class Stage(StrEnum):
    """Every stage a case can enter (the `CaseStage` search attribute, the status query, GetCaseStatus)."""

    OPENED = "opened"
    WARNED = "warned"
    WARNING_DELIVERED = "warning_delivered"
    WARNING_UNDELIVERED = "warning_undelivered"
    RESTRICTED = "restricted"
    SUSPENDED = "suspended"
    IN_REVIEW = "in_review"  # an appeal waits for a reviewer
    AWAITING_REVIEWER = "awaiting_reviewer"  # a passed check the policy wants approved
    TERMINATION_REVIEW = "termination_review"
    REVIEW_ESCALATED = "review_escalated"
    MORE_REQUESTED = "more_requested"
    APPEAL_REJECTED = "appeal_rejected"
    RESTORE_REFUSED = "restore_refused"
    TERMINATION_REFUSED = "termination_refused"
    FRAUD_CONFIRMED = "fraud_confirmed"
    ESCALATED = "escalated"  # a stronger assessment: the holder is warned of the stronger action
    NEEDS_ATTENTION = "needs_attention"  # a step failed for good: an operator retries, skips or resolves it
    VERIFIED = "verified"
    RESTORED = "restored"
    TERMINATED = "terminated"
    CLOSED_UNVERIFIED = "closed_unverified"


# The workflow returns once it has entered one of these.
FINAL_STAGES = frozenset({Stage.RESTORED, Stage.TERMINATED, Stage.CLOSED_UNVERIFIED})


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    EXTREME = "extreme"


class Action(StrEnum):
    """What a decision asks for, mildest first (`stronger` compares them)."""

    NONE = "none"
    WARN = "warn"
    RESTRICT = "restrict"
    SUSPEND = "suspend"

    def stronger(self, other: Action) -> bool:
        order = list(Action)
        return order.index(self) > order.index(other)


class Route(StrEnum):
    """How a holder restores the line."""

    ONLINE = "online"
    IN_PERSON = "in_person"
    IN_PERSON_WITH_REVIEW = "in_person_with_review"


class ReviewKind(StrEnum):
    APPEAL = "appeal"
    RESTORE_APPROVAL = "restore_approval"
    TERMINATION = "termination"


class ReviewDecision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    ASK_FOR_MORE = "ask_for_more"


class ReviewStatus(StrEnum):
    """A review as the case sees it."""

    WAITING = "waiting"
    MORE_REQUESTED = "more_requested"
    APPROVED = "approved"
    REJECTED = "rejected"


class Authority(StrEnum):
    POLICE = "police"
    REGULATOR = "regulator"


class OrderKind(StrEnum):
    RESTORE = "restore"
    CONFIRM_FRAUD = "confirm_fraud"


class OperatorChoice(StrEnum):
    """What an operator does with a case (the `operator_action` signal)."""

    RETRY = "retry"  # run the failed step again
    SKIP = "skip"  # go on as if the failed step had been done (a notification reached the holder another way)
    RESTORE = "restore"  # resolve the case by restoring the line
    CLOSE = "close"  # end the case, the line left as recorded


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # every channel failed: marked for manual outreach
    PENDING = "pending"


_CASE_ID_RE = re.compile(r"case-([0-9a-f]{20})-([0-9]{1,9})")


def case_id(line_hash: str, seq: int) -> str:
    """Workflow ids carry business meaning and no personal data: the line's keyed hash and its case number."""
    return f"case-{line_hash}-{seq}"


def case_line_hash(case_id: str) -> str | None:
    """The line hash inside a case id, or None if it is not a case id."""
    m = _CASE_ID_RE.fullmatch(case_id)
    return m[1] if m else None


def case_seq(case_id: str) -> int | None:
    """The case number inside a case id, or None if it is not a case id."""
    m = _CASE_ID_RE.fullmatch(case_id)
    return int(m[2]) if m else None


@dataclass
class ReasonText:
    code: str
    text_zh: str
    text_en: str
    weight: float = 0.0


@dataclass
class Assessment:
    risk_level: RiskLevel
    action: Action
    score: float
    reasons: list[ReasonText]  # evidence against the line (weight > 0), most important first
    decided_at: str  # RFC 3339, event time
    # Factors in the holder's favour (weight <= 0), strongest first. A default, so that histories recorded
    # before the split (reasons and mitigations in one list) still deserialize.
    mitigations: list[ReasonText] = field(default_factory=list)


@dataclass
class CaseInput:
    msisdn: str  # encrypted in Temporal by the payload codec; never in ids, attributes or memos
    line_hash: str
    masked_msisdn: str
    home_province: str
    language: str
    assessment: Assessment
    trace_id: str = ""
    # Set only by the case itself when it renews its history (continue-as-new): its state, opaque to others.
    resume: dict[str, Any] | None = None


@dataclass
class VerificationPassed:
    verification_id: str
    route: Route
    policy_version: str


@dataclass
class ReviewOpened:
    """A person must decide: an appeal, a restore the policy wants approved, or a proposed termination."""

    review_id: str
    kind: ReviewKind
    sla_s: int  # the case escalates when no decision came within this


@dataclass
class ReviewDecided:
    review_id: str
    kind: ReviewKind
    decision: ReviewDecision
    reviewer_id: str
    note: str = ""
    more_requested: str = ""


@dataclass
class AuthorityOrder:
    authority: Authority
    order: OrderKind
    order_ref: str


@dataclass
class OperatorAction:
    action: OperatorChoice
    note: str  # recorded with the case; never sent to the holder
    by: str  # the operator's principal (role/id)


# What verification tells a case, each by its own signal.
CaseEvent = VerificationPassed | ReviewOpened | ReviewDecided | AuthorityOrder | OperatorAction
_SIGNAL_OF: dict[type, str] = {
    VerificationPassed: SIGNAL_VERIFIED,
    ReviewOpened: SIGNAL_REVIEW_OPENED,
    ReviewDecided: SIGNAL_REVIEW_DECIDED,
    AuthorityOrder: SIGNAL_AUTHORITY_ORDER,
    OperatorAction: SIGNAL_OPERATOR,
}


def signal_for(event: CaseEvent) -> str:
    return _SIGNAL_OF[type(event)]


@dataclass
class ReviewState:
    review_id: str
    kind: ReviewKind
    due: str  # RFC 3339, workflow time: when the SLA runs out
    escalated: bool = False
    status: ReviewStatus = ReviewStatus.WAITING


@dataclass
class StageEntry:
    stage: Stage
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
    status: DeliveryStatus
    channel: str = ""
    at: str = ""
    location: str = ""  # home | roaming_domestic | roaming_international | absent
    country: str = ""
    attempts: list[DeliveryAttempt] = field(default_factory=list)

    @property
    def roaming(self) -> bool:
        return self.location in ("roaming_domestic", "roaming_international")


@dataclass
class Attention:
    """A step that failed for good, and what an operator did about it."""

    step: str  # e.g. "line → suspended", "notify holder: warning"
    error: str  # the error class and message of the last attempt (no personal data)
    since: str  # RFC 3339
    resumes_stage: Stage  # where the case goes on once the step is done or skipped
    choices: list[OperatorChoice] = field(default_factory=list)  # what an operator can do now


@dataclass
class CaseStatus:
    stage: Stage
    next_step: str
    line_state: str  # LINE_STATE_* name
    risk_level: RiskLevel | None
    history: list[StageEntry] = field(default_factory=list)
    warning_delivery: Delivery | None = None
    deadline: str = ""  # RFC 3339: when the next thing is due (holder's deadline, or a review's SLA)
    review: ReviewState | None = None
    reasons: list[ReasonText] = field(default_factory=list)
    route: Route | None = None  # how the holder restores, once known
    more_requested: str = ""  # what a reviewer asked the holder for
    masked_msisdn: str = ""
    home_province: str = ""
    attention: Attention | None = None
    mitigations: list[ReasonText] = field(default_factory=list)  # factors in the holder's favour

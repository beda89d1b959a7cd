"""Fake carrier activities for the case workflow, registered under the real activity names.

The workflow cannot tell them from `workflows.activities.CaseActivities`: same names, same argument and return
dataclasses. A test picks the case policy, the restore route and what becomes of the warning, then asserts on
what the fake was asked to do (line state changes, notifications, outcomes, escalated reviews).

Every name the tests use from the workflow's contract module is imported here, and only here, so that moving the
contract module means changing one import.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.case import (
    CASE_RENEWED,
    QUERY_STATUS,
    SIGNAL_ASSESSMENT,
    SIGNAL_AUTHORITY_ORDER,
    SIGNAL_OPERATOR,
    SIGNAL_REVIEW_DECIDED,
    SIGNAL_REVIEW_OPENED,
    SIGNAL_VERIFIED,
    UPDATE_WAIT_STAGE,
    WORKFLOW_NAME,
    Assessment,
    Attention,
    AuthorityOrder,
    CaseInput,
    CaseStatus,
    Delivery,
    DeliveryAttempt,
    OperatorAction,
    OperatorChoice,
    ReasonText,
    ReviewDecided,
    ReviewOpened,
    ReviewState,
    StageEntry,
    VerificationPassed,
)
from workflows.activities import LineChange, NotifyArgs, OutcomeArgs, RouteText
from workflows.policy import CasePolicy

__all__ = [
    "CASE_RENEWED",
    "QUERY_STATUS",
    "SIGNAL_ASSESSMENT",
    "SIGNAL_OPERATOR",
    "SIGNAL_AUTHORITY_ORDER",
    "SIGNAL_REVIEW_DECIDED",
    "SIGNAL_REVIEW_OPENED",
    "SIGNAL_VERIFIED",
    "UPDATE_WAIT_STAGE",
    "WORKFLOW_NAME",
    "Assessment",
    "Attention",
    "AuthorityOrder",
    "CaseInput",
    "CasePolicy",
    "CaseStatus",
    "Delivery",
    "DeliveryAttempt",
    "FakeCarrier",
    "LineChange",
    "LineMove",
    "OperatorAction",
    "OperatorChoice",
    "NotifyArgs",
    "OutcomeArgs",
    "ReasonText",
    "ReviewDecided",
    "ReviewOpened",
    "ReviewState",
    "RouteText",
    "StageEntry",
    "VerificationPassed",
    "assessment",
    "case_input",
    "delivered",
    "failed",
    "pending",
    "small_policy",
]

HOUR = 3600
DAY = 24 * HOUR

# Obviously fake line data: a number from a range no carrier hands out, a made-up hash and trace.
MSISDN = "19900000001"
MASKED = "199****0001"
LINE_HASH = "fake-line-hash-0001"
PROVINCE = "44"
WARNED_AT = "2026-11-20T09:00:00+00:00"


def small_policy(
    *,
    warn_h: int = 6,
    restrict_h: int = 4,
    suspend_h: int = 2,
    reminder_every_h: int = 24,
    verification_window_d: int = 3,
) -> CasePolicy:
    """A case policy with short, round numbers: grace per action in hours, a daily reminder, a 3-day window."""
    return CasePolicy(
        version="test-policy-1",
        grace_s={"warn": warn_h * HOUR, "restrict": restrict_h * HOUR, "suspend": suspend_h * HOUR},
        reminder_every_s=reminder_every_h * HOUR,
        verification_window_s=verification_window_d * DAY,
    )


def assessment(risk_level: str, action: str, score: float = 0.8) -> Assessment:
    reasons = [
        ReasonText("CALL_BURST_NEW_PEERS", "1小时内向23个陌生号码拨出电话", "23 calls in 1 hour to new numbers", 0.6)
    ]
    return Assessment(risk_level, action, score, reasons, WARNED_AT)


def case_input(risk_level: str, action: str) -> CaseInput:
    return CaseInput(
        msisdn=MSISDN,
        line_hash=LINE_HASH,
        masked_msisdn=MASKED,
        home_province=PROVINCE,
        language="zh",
        assessment=assessment(risk_level, action),
        trace_id="trace-fake-0001",
    )


def _attempt(channel: str, outcome: str, error_class: str = "", detail: str = "") -> DeliveryAttempt:
    return DeliveryAttempt(channel=channel, outcome=outcome, error_class=error_class, at=WARNED_AT, detail=detail)


def delivered(channel: str = "sms", location: str = "home", country: str = "") -> Delivery:
    return Delivery(
        notification_id="",
        status="delivered",
        channel=channel,
        at=WARNED_AT,
        location=location,
        country=country,
        attempts=[_attempt(channel, "delivered")],
    )


def failed(location: str = "absent") -> Delivery:
    """Every channel tried and failed: the case marks the holder for manual outreach."""
    return Delivery(
        notification_id="",
        status="failed",
        location=location,
        attempts=[
            _attempt("sms", "undeliv", "permanent", "199****0001"),
            _attempt("voice", "no_answer", "absent", "199****0001"),
        ],
    )


def pending(location: str = "roaming_international", country: str = "TH") -> Delivery:
    """Still being tried (a roamer whose handset is off): no outcome yet."""
    return Delivery(
        notification_id="",
        status="pending",
        location=location,
        country=country,
        attempts=[_attempt("sms", "submitted", "temporary", "199****0001")],
    )


@dataclass
class LineMove:
    """One line state change as the suspension service would see it."""

    target: str
    reason: str
    actor_kind: str
    actor_id: str


@dataclass
class FakeCarrier:
    """The four services behind the case's activities, in memory. Configure, run a case, assert on the record."""

    policy: CasePolicy = field(default_factory=small_policy)
    route: RouteText = field(
        default_factory=lambda: RouteText(
            "在App内完成实名核验（https://verify.example.invalid）", "verify in the app", "online"
        )
    )
    deliveries: list[Delivery] = field(default_factory=lambda: [delivered()])
    """What get_delivery answers, one per call; the last one repeats."""

    line_changes: list[LineChange] = field(default_factory=list)
    notifications: list[NotifyArgs] = field(default_factory=list)
    outcomes: list[OutcomeArgs] = field(default_factory=list)
    escalations: list[tuple[str, str]] = field(default_factory=list)
    route_requests: list[tuple[str, str]] = field(default_factory=list)
    delivery_checks: list[str] = field(default_factory=list)
    broken: dict[str, int] = field(default_factory=dict)
    """Activity name -> how many more calls fail for good (a non-retryable error, as a permanent gRPC code)."""

    def _maybe_break(self, name: str, detail: str = "") -> None:
        """`broken` names an activity, or an activity and its target ("change_line_state:LINE_STATE_RESTRICTED")."""
        key = next((k for k in (f"{name}:{detail}", name) if self.broken.get(k)), None)
        if key is not None:
            self.broken[key] -= 1
            raise ApplicationError(
                f"FAILED_PRECONDITION: {name} refused (test)", type="FAILED_PRECONDITION", non_retryable=True
            )

    # ---- what a test asserts on ---------------------------------------------------------------

    def moves(self) -> list[LineMove]:
        return [LineMove(c.target_state, c.reason, c.actor_kind, c.actor_id) for c in self.line_changes]

    def templates(self) -> list[str]:
        return [n.template for n in self.notifications]

    def outcome_names(self) -> list[str]:
        return [o.outcome for o in self.outcomes]

    # ---- the activities ----------------------------------------------------------------------

    @activity.defn(name="load_case_policy")
    async def load_case_policy(self) -> CasePolicy:
        self._maybe_break("load_case_policy")
        return self.policy

    @activity.defn(name="restore_route")
    async def restore_route(self, risk_level: str, msisdn: str) -> RouteText:
        self._maybe_break("restore_route")
        self.route_requests.append((risk_level, msisdn))
        return self.route

    @activity.defn(name="escalate_review")
    async def escalate_review(self, request_id: str, review_id: str) -> None:
        self._maybe_break("escalate_review")
        self.escalations.append((request_id, review_id))

    @activity.defn(name="change_line_state")
    async def change_line_state(self, change: LineChange) -> str:
        self._maybe_break("change_line_state", change.target_state)
        self.line_changes.append(change)
        return change.target_state

    @activity.defn(name="send_notification")
    async def send_notification(self, args: NotifyArgs) -> str:
        self._maybe_break("send_notification", args.template)
        self.notifications.append(args)
        return f"ntf-{len(self.notifications)}"

    @activity.defn(name="get_delivery")
    async def get_delivery(self, notification_id: str) -> Delivery:
        self._maybe_break("get_delivery")
        self.delivery_checks.append(notification_id)
        answer = self.deliveries.pop(0) if len(self.deliveries) > 1 else self.deliveries[0]
        return replace(answer, notification_id=notification_id)

    @activity.defn(name="record_outcome")
    async def record_outcome(self, args: OutcomeArgs) -> None:
        self._maybe_break("record_outcome", args.outcome)
        self.outcomes.append(args)

    def all(self) -> list:
        return [
            self.load_case_policy,
            self.restore_route,
            self.escalate_review,
            self.change_line_state,
            self.send_notification,
            self.get_delivery,
            self.record_outcome,
        ]

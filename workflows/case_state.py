"""The case's state and what operators see of it: shared by every version of the saga."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from contracts.case import (
        Action,
        Assessment,
        Attention,
        CaseInput,
        CaseStatus,
        Delivery,
        DeliveryStatus,
        OperatorAction,
        ReviewKind,
        ReviewState,
        ReviewStatus,
        Stage,
        StageEntry,
    )
    from pscommon import temporal
    from workflows.activities import RouteText
    from workflows.details import md_table, notification_row, notifications_table
    from workflows.policy import CasePolicy

ENFORCED_STATE = {Action.RESTRICT: "LINE_STATE_RESTRICTED", Action.SUSPEND: "LINE_STATE_SUSPENDED"}


class Call(TypedDict):
    start_to_close_timeout: timedelta
    retry_policy: RetryPolicy


CALL = Call(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)),
)
DELIVERY_CHECK_MAX = timedelta(minutes=10)
REVIEW_STAGES = {
    ReviewKind.APPEAL: Stage.IN_REVIEW,
    ReviewKind.RESTORE_APPROVAL: Stage.AWAITING_REVIEWER,
    ReviewKind.TERMINATION: Stage.TERMINATION_REVIEW,
}
REJECTED_STAGES = {
    ReviewKind.APPEAL: Stage.APPEAL_REJECTED,
    ReviewKind.RESTORE_APPROVAL: Stage.RESTORE_REFUSED,
    ReviewKind.TERMINATION: Stage.TERMINATION_REFUSED,
}


@dataclass
class Resolution:
    """How the case ends: the line restored or terminated, why, and on whose authority."""

    action: str  # restore | terminate
    reason: str
    actor_kind: str = "workflow"
    actor_id: str = "protective-suspension-case"


class CaseBase:
    """State of a case and its views; the saga's versions (case_v1, case_v2) act on it."""

    def __init__(self) -> None:
        self.case: CaseInput | None = None
        self.assessment: Assessment | None = None
        self.stage = Stage.OPENED
        self.next_step = "assess"
        self.line_state = "LINE_STATE_ACTIVE"
        self.history: list[StageEntry] = []
        # [purpose, notification id, channel, outcome] per notification asked of notify (details.py).
        self.notified: list[list[str]] = []
        self.route = RouteText("", "", None)
        self.warning_delivery: Delivery | None = None
        self.inbox: list[object] = []  # signals not yet acted on, in arrival order (CaseEvent, or an escalation)
        self.resolution: Resolution | None = None
        self.review: ReviewState | None = None
        self.fraud_confirmed = False
        self.deadline: datetime | None = None
        self.more_requested = ""
        self.attention: Attention | None = None
        # Version 2 (case_v2.py) only.
        self.policy: CasePolicy | None = None
        self.window_end: datetime | None = None
        self.next_reminder: datetime | None = None
        self.enforce_at: datetime | None = None
        self.following: tuple[str, datetime, timedelta] | None = None  # warning id, next check, delay
        self.counters: dict[str, int] = {}
        self.pending_choice: OperatorAction | None = None
        self.operator_waiting = False
        self.parked: list[object] = []  # events that arrived while a step waited for an operator
        self.renewing = False  # the run is about to continue as new: waiting updates answer CASE_RENEWED

    def status(self) -> CaseStatus:
        return CaseStatus(
            stage=self.stage,
            next_step=self.next_step,
            line_state=self.line_state,
            risk_level=self.assessment.risk_level if self.assessment else None,
            history=list(self.history),
            warning_delivery=self.warning_delivery,
            deadline=self.deadline.isoformat() if self.deadline else "",
            review=self.review,
            reasons=list(self.assessment.reasons) if self.assessment else [],
            route=self.route.route,
            more_requested=self.more_requested,
            masked_msisdn=self.case.masked_msisdn if self.case else "",
            home_province=self.case.home_province if self.case else "",
            attention=self.attention,
            mitigations=list(self.assessment.mitigations) if self.assessment else [],
        )

    def _enter(self, stage: Stage, next_step: str) -> None:
        self.stage, self.next_step = stage, next_step
        self.history.append(StageEntry(stage, workflow.now().isoformat()))
        workflow.upsert_search_attributes([temporal.CASE_STAGE.value_set(stage)])
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        assert self.case is not None and self.assessment is not None
        a = self.assessment
        stages = md_table(["stage", "at"], [[h.stage, h.at] for h in self.history])
        reasons = "\n".join(f"- {r.text_en} / {r.text_zh}" for r in a.reasons)
        if a.mitigations:
            favour = "\n".join(f"- {r.text_en} / {r.text_zh}" for r in a.mitigations)
            reasons += f"\n\n**In the holder's favour**\n{favour}"
        return (
            f"### {self.case.masked_msisdn} · {a.risk_level} risk → {a.action}\n\n"
            f"**Stage** {self.stage} · **line** {self.line_state.removeprefix('LINE_STATE_').lower()} · "
            f"**next** {self.next_step}\n\n**Reasons**\n{reasons}\n\n"
            f"{stages}\n\n"
            f"{self._delivery_details()}"
            f"{notifications_table(self.notified)}\n\n**Trace** `{self.case.trace_id}`"
        )

    def _delivery_details(self) -> str:
        d = self.warning_delivery
        if d is None:
            return ""
        where = {"roaming_international": f"roaming abroad ({d.country})", "roaming_domestic": "roaming in China"}
        place = where.get(d.location, d.location or "location unknown")
        if d.status == DeliveryStatus.DELIVERED:
            head = f"delivered by **{d.channel}** at {d.at}"
        elif d.status == DeliveryStatus.FAILED:
            head = "**not delivered** by any channel: marked for manual outreach"
        else:
            head = "**no delivery outcome** within the grace window"
        attempts = md_table(
            ["#", "channel", "outcome", "error class", "at", "detail"],
            [[i, x.channel, x.outcome, x.error_class, x.at, x.detail] for i, x in enumerate(d.attempts, 1)],
        )
        return f"**Warning** {head}; handset {place}\n\n{attempts}\n\n"

    def _noted(self, template: str, notification_id: str) -> None:
        """A notification asked of notify ("" when an operator skipped it), for the details' summary."""
        self.notified.append(notification_row(template, notification_id))

    def _learned(self, delivery: Delivery) -> None:
        """What became of the warning being followed."""
        self.warning_delivery = delivery
        for row in self.notified:
            if row[1] == delivery.notification_id:
                row[2], row[3] = delivery.channel or "none", delivery.status.value

    def _rid(self, step: str) -> str:
        return f"{workflow.info().workflow_id}:{step}"

    def _waiting_review(self) -> ReviewState | None:
        return self.review if self.review is not None and self.review.status == ReviewStatus.WAITING else None

    def _warned(self) -> bool:
        return self.warning_delivery is not None and self.warning_delivery.status == DeliveryStatus.DELIVERED

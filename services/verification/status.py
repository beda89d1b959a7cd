"""What a case means for the holder: the next step and where, what is due when, and when the line is expected
back. Built from the case's own record, never from who asks, so every channel gives the same answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from carrier.verification.v1.verification_pb2 import ROUTE_ONLINE
from services.verification.policy import RouteRule
from workflows.contracts import CaseStatus

# Stages in which the holder has something to do, and those in which a person at the carrier decides.
HOLDER_ACTS = {
    "opened",
    "warned",
    "warning_delivered",
    "warning_undelivered",
    "restricted",
    "suspended",
    "appeal_rejected",
    "restore_refused",
    "termination_refused",
    "closed_unverified",
}
REVIEWER_DECIDES = {"in_review", "awaiting_reviewer", "review_escalated", "termination_review"}


@dataclass(frozen=True)
class HolderView:
    next_step_zh: str
    next_step_en: str
    where_zh: str
    where_en: str
    deadline: datetime | None
    estimated_restore_at: datetime | None


def _at(text: str) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def holder_view(case: CaseStatus, rule: RouteRule | None, restore_after_pass_s: int) -> HolderView:
    after_pass = timedelta(seconds=restore_after_pass_s)
    deadline = _at(case.deadline)
    stage = case.stage
    if stage in HOLDER_ACTS and rule is not None:
        online = rule.route == ROUTE_ONLINE
        soon = "（核验通过后约1分钟内恢复）" if online else ""
        back = " (the line is back within about a minute of passing)" if online else ""
        return HolderView(
            rule.description_zh + soon, rule.description_en + back, rule.where_zh, rule.where_en, deadline, None
        )
    if stage == "more_requested":
        return HolderView(
            f"补充审核人员要求的材料：{case.more_requested}",
            f"send the reviewer what they asked for: {case.more_requested}",
            "手机营业厅App或任一自有营业厅",
            "the carrier's app, or any of its business halls",
            deadline,
            None,
        )
    if stage in REVIEWER_DECIDES:
        due = _at(case.review.due) if case.review else deadline
        return HolderView(
            "无需操作：审核人员正在处理，将在截止时间前作出决定",
            "nothing to do: a reviewer is deciding, by the deadline shown",
            "",
            "",
            due,
            due + after_pass if due and case.review and case.review.kind != "termination" else None,
        )
    if stage == "fraud_confirmed":
        return HolderView(
            "公安或监管平台已确认涉诈，号码保持停机；如有异议请联系办案单位",
            "the police or the regulator confirmed fraud; the line stays suspended. To dispute it, contact the authority",
            "",
            "",
            None,
            None,
        )
    if stage == "verified":
        verified_at = next((_at(h.at) for h in reversed(case.history) if h.stage == "verified"), None)
        return HolderView(
            "无需操作：正在恢复",
            "nothing to do: the line is being restored",
            "",
            "",
            None,
            verified_at + after_pass if verified_at else None,
        )
    return HolderView("无需操作", "nothing to do", "", "", None, None)

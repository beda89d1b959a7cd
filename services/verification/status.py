"""What a case means for the holder: the next step and where, what is due when, and when the line is expected
back. Built from the case's own record, never from who asks, so every channel gives the same answer."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, auto

import asyncpg

from carrier.verification.v1.verification_pb2 import ROUTE_ONLINE
from contracts.case import CaseStatus, Stage
from contracts.pb import ROUTE_OF
from pscommon.errors import not_found
from services.verification import review_rules, store
from services.verification.case_gateway import CaseGateway
from services.verification.outside import LineChange, Outside
from services.verification.policy import Policy, RouteRule


class Who(Enum):
    """Who acts next, for each stage."""

    HOLDER = auto()  # the holder restores by the policy's route
    HOLDER_SENDS_MORE = auto()  # a reviewer asked the holder for more
    REVIEWER = auto()  # a person at the carrier decides
    AUTHORITY = auto()  # fraud confirmed: only the authority can change it
    CARRIER_RESTORES = auto()  # verified: the line is being restored
    CARRIER_FIXES = auto()  # a step failed for good; an operator acts, the holder does what the stage before asked
    NOBODY = auto()  # the case is over


# Every stage, so a new stage cannot reach the holder without words: tests check this covers `Stage`.
WHO_ACTS: dict[Stage, Who] = {
    Stage.OPENED: Who.HOLDER,
    Stage.WARNED: Who.HOLDER,
    Stage.WARNING_DELIVERED: Who.HOLDER,
    Stage.WARNING_UNDELIVERED: Who.HOLDER,
    Stage.ESCALATED: Who.HOLDER,
    Stage.RESTRICTED: Who.HOLDER,
    Stage.SUSPENDED: Who.HOLDER,
    Stage.APPEAL_REJECTED: Who.HOLDER,
    Stage.RESTORE_REFUSED: Who.HOLDER,
    Stage.TERMINATION_REFUSED: Who.HOLDER,
    Stage.CLOSED_UNVERIFIED: Who.HOLDER,
    Stage.MORE_REQUESTED: Who.HOLDER_SENDS_MORE,
    Stage.IN_REVIEW: Who.REVIEWER,
    Stage.AWAITING_REVIEWER: Who.REVIEWER,
    Stage.REVIEW_ESCALATED: Who.REVIEWER,
    Stage.TERMINATION_REVIEW: Who.REVIEWER,
    Stage.FRAUD_CONFIRMED: Who.AUTHORITY,
    Stage.VERIFIED: Who.CARRIER_RESTORES,
    Stage.NEEDS_ATTENTION: Who.CARRIER_FIXES,
    Stage.RESTORED: Who.NOBODY,
    Stage.TERMINATED: Who.NOBODY,
}


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
    if case.stage == Stage.NEEDS_ATTENTION and case.attention is not None:
        # What held the case up is the carrier's to fix: the holder sees what the stage before asked of them.
        case = dataclasses.replace(case, stage=case.attention.resumes_stage)
    after_pass = timedelta(seconds=restore_after_pass_s)
    deadline = _at(case.deadline)
    who = WHO_ACTS[case.stage]
    if who == Who.HOLDER and rule is not None:
        online = rule.route == ROUTE_ONLINE
        soon = "（核验通过后约1分钟内恢复）" if online else ""
        back = " (the line is back within about a minute of passing)" if online else ""
        return HolderView(
            rule.description_zh + soon, rule.description_en + back, rule.where_zh, rule.where_en, deadline, None
        )
    if who == Who.HOLDER_SENDS_MORE:
        return HolderView(
            f"补充审核人员要求的材料：{case.more_requested}",
            f"send the reviewer what they asked for: {case.more_requested}",
            "手机营业厅App或任一自有营业厅",
            "the carrier's app, or any of its business halls",
            deadline,
            None,
        )
    if who == Who.REVIEWER:
        due = _at(case.review.due) if case.review else deadline
        return HolderView(
            "无需操作：审核人员正在处理，将在截止时间前作出决定",
            "nothing to do: a reviewer is deciding, by the deadline shown",
            "",
            "",
            due,
            due + after_pass if due and case.review and case.review.kind != "termination" else None,
        )
    if who == Who.AUTHORITY:
        return HolderView(
            "公安或监管平台已确认涉诈，号码保持停机；如有异议请联系办案单位",
            "the police or the regulator confirmed fraud; the line stays suspended. To dispute it, contact the authority",
            "",
            "",
            None,
            None,
        )
    if who == Who.CARRIER_RESTORES:
        verified_at = next((_at(h.at) for h in reversed(case.history) if h.stage == Stage.VERIFIED), None)
        restore_at = verified_at + after_pass if verified_at else None
        return HolderView("无需操作：正在恢复", "nothing to do: the line is being restored", "", "", None, restore_at)
    return HolderView("无需操作", "nothing to do", "", "", None, None)


@dataclass(frozen=True)
class StatusView:
    """GetCaseStatus's answer before it becomes protobuf."""

    case_id: str
    case: CaseStatus
    holder: HolderView
    restore_count: int
    waiting_review: asyncpg.Record | None  # without the holder's own words: those are for reviewers
    line_changes: tuple[LineChange, ...]  # of this case


class StatusReader:
    def __init__(self, policy: Callable[[], Policy], outside: Outside, case: CaseGateway, pool: asyncpg.Pool) -> None:
        self.policy = policy
        self.outside = outside
        self.case = case
        self.pool = pool

    async def read(self, case_id: str, line_hash: str) -> StatusView:
        """The case of `case_id`, or (with an empty case_id) the line's latest case."""
        line = await self.outside.line_record(line_hash)
        case_id = case_id or line.latest_case_id
        if not case_id:
            raise not_found("case for this line", "NO_CASE")
        case = await self.case.status(case_id)
        p = self.policy()
        rule = next((r for rules in p.by_level.values() for r in rules if ROUTE_OF[r.route] == case.route), None)
        latest = await store.latest_case_review(self.pool, case_id)
        waiting = latest if latest is not None and latest["status"] in review_rules.WAITING else None
        view = holder_view(case, rule, p.restore_after_pass_s)
        changes = tuple(c for c in line.changes if c.case_id == case_id)
        return StatusView(case_id, case, view, line.restore_count, waiting, changes)

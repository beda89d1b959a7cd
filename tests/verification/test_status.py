"""GetCaseStatus has words for every stage a case can be in."""

from __future__ import annotations

import pytest

from contracts.case import CaseStatus, ReviewKind, ReviewState, RiskLevel, Route, Stage, StageEntry
from services.verification import policy, status


def test_every_stage_says_who_acts_next() -> None:
    assert set(status.WHO_ACTS) == set(Stage)


@pytest.mark.parametrize("stage", list(Stage))
def test_every_stage_has_a_next_step_for_the_holder(stage: Stage) -> None:
    p = policy.load()
    case = CaseStatus(
        stage=stage,
        next_step="",
        line_state="LINE_STATE_SUSPENDED",
        risk_level=RiskLevel.MEDIUM,
        history=[StageEntry(Stage.WARNED, "2026-11-20T09:00:00+00:00"), StageEntry(stage, "2026-11-20T10:00:00+00:00")],
        deadline="2026-11-21T09:00:00+00:00",
        review=ReviewState("r-1", ReviewKind.APPEAL, "2026-11-22T09:00:00+00:00"),
        route=Route.ONLINE,
        more_requested="a payslip",
    )
    rule = p.rule(policy.LEVELS["medium"], policy.ROUTES["online"])
    view = status.holder_view(case, rule, p.restore_after_pass_s)
    assert view.next_step_zh and view.next_step_en

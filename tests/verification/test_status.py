"""GetCaseStatus has words for every stage a case can be in."""

from __future__ import annotations

import dataclasses

import pytest

from contracts.case import Attention, CaseStatus, ReviewKind, ReviewState, RiskLevel, Route, Stage, StageEntry
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


def test_a_case_waiting_for_an_operator_still_tells_the_holder_their_step() -> None:
    p = policy.load()
    rule = p.rule(policy.LEVELS["medium"], policy.ROUTES["online"])
    case = CaseStatus(
        stage=Stage.NEEDS_ATTENTION,
        next_step="",
        line_state="LINE_STATE_RESTRICTED",
        risk_level=RiskLevel.MEDIUM,
        history=[StageEntry(Stage.RESTRICTED, "2026-11-20T10:00:00+00:00")],
        deadline="2026-11-21T09:00:00+00:00",
        route=Route.ONLINE,
        attention=Attention(
            "notify holder: reminder", "UNAVAILABLE: notify", "2026-11-20T11:00:00+00:00", Stage.RESTRICTED
        ),
    )
    view = status.holder_view(case, rule, p.restore_after_pass_s)
    assert (
        view.next_step_en
        == status.holder_view(
            dataclasses.replace(case, stage=Stage.RESTRICTED, attention=None), rule, p.restore_after_pass_s
        ).next_step_en
    )
    assert "restore" in view.next_step_en or "verif" in view.next_step_en

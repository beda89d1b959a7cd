"""The verification policy table, the judgement against it, lockouts and review rules: plain logic."""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime, timedelta

import pytest

from carrier.common.v1.common_pb2 import RiskLevel
from carrier.verification.v1 import verification_pb2 as vpb
from services.verification import limits, policy, review_rules
from services.verification.policy import Limit, PolicyError

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_default_table_grows_with_the_risk():
    p = policy.load()
    assert [r.route for r in p.rules(RiskLevel.RISK_LEVEL_MEDIUM, False)] == [vpb.ROUTE_ONLINE]
    assert [r.route for r in p.rules(RiskLevel.RISK_LEVEL_HIGH, False)] == [vpb.ROUTE_IN_PERSON]
    extreme = p.rules(RiskLevel.RISK_LEVEL_EXTREME, False)[0]
    assert extreme.needs_reviewer and "extra_evidence" in extreme.evidence
    assert p.rules(RiskLevel.RISK_LEVEL_LOW, True) == (p.restored_before,) and p.restored_before.needs_reviewer


def test_judge_names_every_missing_item_and_only_offered_extras():
    rule = policy.load().rules(RiskLevel.RISK_LEVEL_MEDIUM, False)[0]
    assert policy.judge(rule, {"holder_match": True, "liveness": False}) == ["LIVENESS_FAILED", "RISK_NOTICE_FAILED"]
    ok = {"holder_match": True, "liveness": True, "risk_notice": True}
    assert policy.judge(rule, ok) == []  # extras not offered: not held against the holder
    assert policy.judge(rule, {**ok, "service_password": False}) == ["SERVICE_PASSWORD_FAILED"]


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (("route: online", "route: video_call"), "unknown route"),
        (
            ("evidence: [holder_match, liveness, risk_notice]", "evidence: [holder_match, social_insurance]"),
            "unknown evidence",
        ),
        (("restored_before: in_person_with_review", "restored_before: online_only"), "restored_before"),
    ],
)
def test_a_bad_table_is_refused_at_load(tmp_path: pathlib.Path, change, complaint):
    table = tmp_path / "p.yaml"
    table.write_text(policy.DEFAULT_PATH.read_text().replace(*change, 1))
    with pytest.raises(PolicyError, match=complaint):
        policy.load(table)


def test_lockout_after_the_last_allowed_failure_and_lifts_after_the_lockout():
    limit = Limit(max_failures=3, window_s=3600, lockout_s=7200)
    two = [NOW - timedelta(minutes=10), NOW - timedelta(minutes=5)]
    assert limits.standing(two, limit, NOW) == limits.Standing(1, None)
    three = [*two, NOW - timedelta(minutes=1)]
    assert limits.standing(three, limit, NOW) == limits.Standing(0, NOW + timedelta(minutes=119))
    assert limits.standing(three, limit, NOW + timedelta(hours=2)).locked_until is None
    old = [NOW - timedelta(hours=2)] * 5
    assert limits.standing(old, limit, NOW) == limits.Standing(3, None)  # outside the window


def test_only_the_claiming_reviewer_decides_and_termination_is_not_sent_back():
    review_rules.check_claim(vpb.REVIEW_STATUS_OPEN, "", "r1")
    with pytest.raises(review_rules.ReviewRefused, match="another reviewer"):
        review_rules.check_claim(vpb.REVIEW_STATUS_CLAIMED, "r1", "r2")
    with pytest.raises(review_rules.ReviewRefused, match="claim the review"):
        review_rules.check_decision(vpb.REVIEW_STATUS_OPEN, "", "r1", vpb.REVIEW_KIND_APPEAL, vpb.DECISION_APPROVE)
    with pytest.raises(review_rules.ReviewRefused, match="approve or reject"):
        review_rules.check_decision(
            vpb.REVIEW_STATUS_CLAIMED, "r1", "r1", vpb.REVIEW_KIND_TERMINATION, vpb.DECISION_ASK_FOR_MORE
        )
    assert review_rules.status_after(vpb.DECISION_ASK_FOR_MORE) == vpb.REVIEW_STATUS_MORE_REQUESTED

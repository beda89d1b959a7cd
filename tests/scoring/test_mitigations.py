"""Reasons are only the evidence against a line; what speaks for the holder is kept apart (issue 16, item 3)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, date, datetime

from temporalio.converter import DataConverter

from carrier.scoring.v1 import scoring_pb2
from contracts.case import Action, Assessment, CaseStatus, ReasonText, RiskLevel
from pscli.replay import decision_line
from services.scoring import cases
from services.scoring.engine import Engine
from services.scoring.features import Profile
from services.scoring.replay import Sandbox, mitigations_pb, reasons_pb, stored_reasons_pb
from services.scoring.scorecard import Rule, Scorecard, split_reason_texts

T0 = int(datetime(2026, 9, 28, 9, 0, tzinfo=UTC).timestamp())  # 17:00 in China
LEVELS = (("medium", 30.0), ("high", 50.0), ("extreme", 70.0))
ACTS = {"low": "none", "medium": "warn", "high": "restrict", "extreme": "suspend"}


def card() -> Scorecard:
    rules = [
        Rule(
            "BURST", (("calls_1h", ">=", 8.0),), 40, "近1小时拨出{calls_1h}个电话", "{calls_1h} calls in the last hour"
        ),
        Rule("NEW", (("new_peer_share_1h", ">=", 0.8),), 25, "陌生号码", "to numbers never called before"),
        Rule(
            "TENURE",
            (("account_age_days", ">=", 1825),),
            -10,
            "号码已使用{account_age_years}年",
            "{account_age_years} years",
        ),
        Rule("ENTERPRISE", (("enterprise_bound", ">=", 1),), -25, "绑定企业", "bound to an enterprise"),
    ]
    return Scorecard("test-1", rules, LEVELS, ACTS)


def burst(engine: Engine, msisdn: str, n: int = 10) -> list:
    out = []
    for i in range(n):
        e = engine.observe(msisdn, f"137{i:08d}", "51", True, T0 + 60 * i, 0, "", False, "861234567890123", False)
        if e is not None:
            out.append(e)
    return out


def test_factors_in_the_holders_favour_are_mitigations_not_reasons():
    engine = Engine(card())
    engine.set_profile("13800000001", Profile("44", date(2012, 1, 1), enterprise="PingAn-Insurance"))
    escalations = burst(engine, "13800000001")
    a = escalations[-1].assessment
    assert [r.code for r in a.reasons] == ["BURST", "NEW"]  # heaviest first, only points > 0
    assert [r.code for r in a.mitigations] == ["ENTERPRISE", "TENURE"]  # strongest first, points <= 0
    assert all(r.points > 0 for r in a.reasons) and all(r.points <= 0 for r in a.mitigations)
    assert a.mitigations[1].text_en == "14 years" and a.score == 30
    assert [r.code for r in reasons_pb(a)] == ["BURST", "NEW"]
    assert [(r.code, r.weight) for r in mitigations_pb(a)] == [("ENTERPRISE", -25.0), ("TENURE", -10.0)]


def test_a_line_with_nothing_in_its_favour_has_no_mitigations():
    engine = Engine(card())
    engine.set_profile("19300000001", Profile("44", date(2026, 9, 10)))
    a = burst(engine, "19300000001")[-1].assessment
    assert a.action == Action.RESTRICT and a.mitigations == ()


def test_replay_verdicts_and_decision_lines_carry_mitigations_apart():
    sandbox = Sandbox(card())
    sandbox.apply(
        scoring_pb2.ReplayScenarioRequest(
            subscriber=scoring_pb2.ReplaySubscriber(
                msisdn="13800000001", home_province="44", opened_at="2012-01-01", enterprise="X", language="zh"
            )
        )
    )
    burst(sandbox.engine, "13800000001")
    (v,) = sandbox.verdicts().verdicts
    d = decision_line(v)
    assert d["reasons"] == ["BURST", "NEW"] and d["mitigations"] == ["ENTERPRISE", "TENURE"]
    assert d["mitigations_en"][0] == "bound to an enterprise" and len(d["mitigations_zh"]) == 2


def test_stored_decisions_written_before_the_split_are_split_by_the_sign_of_their_points():
    mixed = [["TENURE", "z", "e", -10.0], ["NEW", "z", "e", 20.0], ["BURST", "z", "e", 40.0], ["CB", "z", "e", -20]]
    against, favour = split_reason_texts(mixed)
    assert [r[0] for r in against] == ["BURST", "NEW"] and [r[0] for r in favour] == ["CB", "TENURE"]
    pb_against, pb_favour = stored_reasons_pb(mixed)
    assert [r.code for r in pb_against] == ["BURST", "NEW"] and [r.weight for r in pb_favour] == [-20.0, -10.0]


def test_case_input_and_details_list_the_holders_favour_under_its_own_heading():
    row = {
        "msisdn": "13800000001",
        "line_hash": "abc",
        "home_province": "44",
        "language": "zh",
        "risk_level": "high",
        "action": "restrict",
        "score": 55.0,
        "reason_texts": json.dumps(
            [["TENURE", "号码已使用14年", "in use for 14 years", -10], ["NEW", "新", "new", 25]]
        ),
        "event_time": datetime(2026, 9, 28, 9, 0, tzinfo=UTC),
    }
    case = cases.case_input(row)  # type: ignore[arg-type]
    assert [r.code for r in case.assessment.reasons] == ["NEW"]
    assert [r.code for r in case.assessment.mitigations] == ["TENURE"]
    text = cases.details(case)
    reasons, favour = text.split("**In the holder's favour**")
    assert "- new / 新" in reasons and "14 years" not in reasons and "- in use for 14 years" in favour


def test_an_assessment_recorded_before_mitigations_existed_still_deserializes():
    conv = DataConverter.default.payload_converter
    old = asdict(Assessment(RiskLevel.HIGH, Action.RESTRICT, 55.0, [ReasonText("NEW", "z", "e", 25.0)], "2026-09-28"))
    del old["mitigations"]
    (payload,) = conv.to_payloads([old])
    (back,) = conv.from_payloads([payload], [Assessment])
    assert back.mitigations == [] and back.reasons[0].code == "NEW"
    status = {"stage": "warned", "next_step": "verify", "line_state": "LINE_STATE_ACTIVE", "risk_level": "high"}
    (payload,) = conv.to_payloads([status])
    (st,) = conv.from_payloads([payload], [CaseStatus])
    assert st.mitigations == [] and st.reasons == []


def test_get_case_status_lists_mitigations_apart_from_reasons():
    from services.verification.server import case_status_pb
    from services.verification.status import HolderView, StatusView

    case = CaseStatus(
        stage="warned",
        next_step="verify",
        line_state="LINE_STATE_ACTIVE",
        risk_level=RiskLevel.MEDIUM,
        reasons=[ReasonText("NEW", "新号码", "new numbers", 25.0)],
        mitigations=[ReasonText("TENURE", "号码已使用14年", "in use for 14 years", -10.0)],
    )
    view = StatusView("case-x-1", case, HolderView("无需操作", "nothing to do", "", "", None, None), 0, None, ())
    resp = case_status_pb(view)
    assert [r.code for r in resp.reasons] == ["NEW"] and [r.code for r in resp.mitigations] == ["TENURE"]
    assert resp.mitigations[0].weight == -10.0 and resp.mitigations[0].text_en == "in use for 14 years"

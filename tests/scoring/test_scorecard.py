"""The scorecard tells a delivery burst from a scam burst, and weak evidence alone stays a warning at most."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.scoring.engine import CallRecord, Engine
from services.scoring.features import Profile
from services.scoring.scorecard import load

T0 = datetime(2026, 9, 28, 9, 0, tzinfo=UTC)


def call(msisdn: str, peer: str, province: str, minute: float, duration: int, out: bool = True, cell: str = ""):
    return CallRecord(msisdn, peer, province, out, T0 + timedelta(minutes=minute), duration, cell)


def run(engine: Engine, cdrs) -> list:
    return [e for c in cdrs if (e := engine.observe(c)) is not None]


def test_courier_burst_before_a_holiday_gets_no_action():
    engine = Engine(load())
    engine.set_profile("13500000001", Profile("51", date(2019, 3, 1), enterprise="SF-Express"))
    cdrs = []
    for i in range(22):  # 22 short local calls in 90 minutes, half the recipients call back
        cdrs.append(call("13500000001", f"158{i:08d}", "51", 4 * i, 25))
        if i % 2 == 0:
            cdrs.append(call("13500000001", f"158{i:08d}", "51", 4 * i + 1, 15, out=False))
    assert run(engine, cdrs) == []


def test_scam_burst_is_suspended_within_ten_calls_with_reasons_that_name_the_numbers():
    engine = Engine(load())
    engine.set_profile("19300000001", Profile("44", date(2026, 9, 10)))
    cdrs = [call("19300000001", f"137{i:08d}", "51", 2 * i, 0 if i % 2 else 18) for i in range(20)]
    escalations = run(engine, cdrs)
    assert escalations[-1].assessment.action == "suspend"
    first = cdrs.index(next(c for c in cdrs if c.start == escalations[0].at)) + 1
    assert first <= 10
    texts = [r.text_en for r in escalations[-1].assessment.reasons]
    assert any("never called before" in t and t[0].isdigit() for t in texts)
    assert all(r.text_zh for r in escalations[-1].assessment.reasons)


def test_passing_a_high_risk_cell_alone_is_at_most_a_warning():
    engine = Engine(load())
    engine.high_risk_cells.add("460-00-1-1")
    engine.set_profile("19300000002", Profile("52", date(2026, 11, 1)))
    cdrs = [call("19300000002", f"139{i:08d}", "52", 20 * i, 120, cell="460-00-1-1") for i in range(6)]
    assert all(e.assessment.action in ("none", "warn") for e in run(engine, cdrs))

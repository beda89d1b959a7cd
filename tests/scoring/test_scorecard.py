"""The engine tells a delivery burst from a scam burst, explains itself, and keeps its promises about evidence."""

from __future__ import annotations

import json
import pathlib
import re
from datetime import UTC, date, datetime

import pytest

from pscli.personas import generate
from services.scoring import store
from services.scoring.engine import Engine
from services.scoring.features import CELL_HIGH, SNAPSHOT_FIELDS, Profile, as_version_2
from services.scoring.scorecard import load

T0 = int(datetime(2026, 9, 28, 9, 0, tzinfo=UTC).timestamp())  # 17:00 in China


def call(engine, msisdn, peer, province, minute, duration, out=True, cell="", imei="861234567890123", abroad=False):
    t = T0 + int(minute * 60)
    return engine.observe(msisdn, peer, province, out, t, duration, cell, abroad, imei, False)


def run(engine: Engine, calls) -> list:
    return [e for c in calls if (e := call(engine, *c)) is not None]


def test_courier_burst_before_a_holiday_gets_no_action():
    engine = Engine(load())
    engine.set_profile("13500000001", Profile("51", date(2019, 3, 1), enterprise="SF-Express"))
    calls = []
    for i in range(22):  # 22 short local calls in 90 minutes, half the recipients call back
        calls.append(("13500000001", f"158{i:08d}", "51", 4 * i, 25))
        if i % 2 == 0:
            calls.append(("13500000001", f"158{i:08d}", "51", 4 * i + 1, 15, False))
    assert run(engine, calls) == []


def test_scam_burst_is_suspended_within_ten_calls_with_reasons_that_name_the_numbers():
    engine = Engine(load())
    engine.set_profile("19300000001", Profile("44", date(2026, 9, 10)))
    calls = [("19300000001", f"137{i:08d}", "51", 2 * i, 0 if i % 2 else 18) for i in range(20)]
    escalations = run(engine, calls)
    assert escalations[-1].assessment.action == "suspend"
    assert (escalations[0].at - T0) // 120 + 1 <= 10
    texts = [r.text_en for r in escalations[-1].assessment.reasons]
    assert texts and all(t[0].isdigit() for t in texts[:2])  # the heaviest reasons name the figures
    assert all(r.text_zh for r in escalations[-1].assessment.reasons)


def test_passing_a_high_risk_cell_alone_is_at_most_a_warning():
    engine = Engine(load())
    engine.cells["460-00-1-1"] = CELL_HIGH
    engine.set_profile("19300000002", Profile("52", date(2026, 11, 1)))
    calls = [("19300000002", f"139{i:08d}", "52", 20 * i, 120, True, "460-00-1-1") for i in range(6)]
    assert all(e.assessment.action in ("none", "warn") for e in run(engine, calls))


def test_weak_evidence_is_capped_at_a_warning_whatever_its_points(tmp_path: pathlib.Path):
    card_file = tmp_path / "card.yaml"
    text = (pathlib.Path(__file__).parents[2] / "services/scoring/scorecard.yaml").read_text()
    card_file.write_text(re.sub(r"points: \d+\n    weak: true", "points: 200\n    weak: true", text))
    engine = Engine(load(card_file))
    engine.cells["460-00-1-1"] = CELL_HIGH
    engine.set_profile("13800000007", Profile("52", date(2016, 1, 1)))
    passing = run(engine, [("13800000007", "13900000001", "52", 0, 60, True, "460-00-1-1")])
    assert [(e.assessment.level, e.assessment.action) for e in passing] == [("extreme", "warn")]
    police = engine.report("13800000007", T0 + 120, 2)  # strong evidence lifts the cap
    assert police is not None and police.assessment.action == "suspend"


def test_sim_box_lines_sharing_one_handset_are_flagged():
    engine = Engine(load())
    imei = "355000000000001"
    for n in range(4):
        engine.set_profile(f"1710000000{n}", Profile("44", date(2026, 1, 5)))
    out = []
    for i in range(40):
        n = i % 4
        out += run(engine, [(f"1710000000{n}", f"139{i:08d}", "44", i, 30, True, "", imei)])
    assert out and "SHARED_HANDSET" in {r.code for r in out[-1].assessment.reasons}


def test_a_police_report_alone_restricts_and_says_so():
    engine = Engine(load())
    engine.set_profile("13800000009", Profile("44", date(2015, 1, 1)))
    e = engine.report("13800000009", T0, 2)
    assert e is not None and e.assessment.action in ("restrict", "suspend")
    assert e.assessment.reasons[0].code == "AUTHORITY_REPORT"


def test_a_verified_holder_is_not_reflagged_for_the_same_pattern_but_is_for_new_evidence():
    engine = Engine(load())
    engine.set_profile("13900000001", Profile("44", date(2026, 9, 20)))
    first = run(engine, [("13900000001", f"137{i:08d}", "51", i, 0) for i in range(12)])
    assert first
    # The holder is verified against the pattern as it stood at its end (the burst went on after the last
    # escalation, and the day window saw more of it than the last decision did).
    now = engine.current("13900000001")
    assert now is not None
    codes = frozenset(r.code for r in now[0].reasons) | {r.code for r in now[0].mitigations}
    cleared = engine.label("13900000001", True, codes)
    assert cleared == {r.code for r in now[0].reasons} and all(r.points > 0 for r in now[0].reasons)
    assert not cleared & {r.code for r in now[0].mitigations}
    # Eight days on (neither the day nor the week windows overlap: the same burst two days on would repeat the
    # pattern within a week, which is week-scale evidence of its own), the same pattern again: no action.
    assert run(engine, [("13900000001", f"136{i:08d}", "51", 11520 + i, 0) for i in range(12)]) == []
    # A police report is new evidence.
    assert engine.report("13900000001", T0 + 11580 * 60, 2) is not None


def test_incremental_windows_match_a_recount_and_survive_a_snapshot_round_trip():
    engine = Engine(load())
    engine.set_profile("13700000001", Profile("44", date(2020, 1, 1)))
    calls = []
    for i in range(300):  # five hours, a call a minute, some peers calling back
        calls.append(("13700000001", f"150{i % 37:08d}", "44" if i % 3 else "51", i, i % 7 * 10))
        if i % 5 == 0:
            calls.append(("13700000001", f"150{(i + 2) % 37:08d}", "44", i + 0.5, 30, False))
    run(engine, calls)
    s = engine.lines["13700000001"]
    last = max(t for t, *_ in s.out)
    hour = [item for item in s.out if item[0] > last - 3600]
    assert s.out[s.h1.head :] == hour and s.h1.n == len(hour) and s.d1.n == len(s.out)
    assert set(s.h1.peers) == {peer for _, peer, _, _ in hour}
    assert s.h1.callbacks == sum(1 for peer in s.h1.peers if peer in s.callers)
    packed, _ = store.packed_window(engine.snapshot("13700000001"))
    lists = as_version_2(s.snapshot())  # version 2's lists: the JSON column held them before migration 003
    legacy = json.dumps({"v": 1, **dict(zip(SNAPSHOT_FIELDS, lists, strict=True)), "acted": 0, "cleared": []})
    for stored in (store.unpacked_window(packed, None), store.unpacked_window(None, legacy)):
        other = Engine(load())
        other.set_profile("13700000001", s.profile)
        other.restore("13700000001", stored)
        restored = other.lines["13700000001"]
        assert [list(i) for i in restored.out] == [list(i) for i in s.out] and len(
            restored.out[restored.h1.head :]
        ) == len(hour)
        for w, r in ((s.h1, restored.h1), (s.d1, restored.d1)):
            assert (w.n, w.new, w.remote, w.unanswered, w.callbacks, w.duration, w.peers) == (
                r.n,
                r.new,
                r.remote,
                r.unanswered,
                r.callbacks,
                r.duration,
                r.peers,
            )


def test_the_day_window_forgets_what_is_older_than_a_day():
    engine = Engine(load())
    engine.set_profile("13700000002", Profile("44", date(2020, 1, 1)))
    run(engine, [("13700000002", f"150{i % 53:08d}", "44", i * 20, 30) for i in range(150)])  # 50 hours
    s = engine.lines["13700000002"]
    last = max(t for t, *_ in s.out)
    assert all(t > last - 86400 for t, *_ in s.out) and s.d1.head == 0  # older calls are gone from memory
    day = s.out
    assert s.d1.n == len(day) and set(s.d1.peers) == {peer for _, peer, _, _ in day}
    assert s.h1.n == sum(1 for t, *_ in day if t > last - 3600) == len(s.out[s.h1.head :])


def test_a_scorecard_naming_an_unknown_feature_is_refused(tmp_path: pathlib.Path):
    bad = tmp_path / "card.yaml"
    text = (pathlib.Path(__file__).parents[2] / "services/scoring/scorecard.yaml").read_text()
    bad.write_text(re.sub(r"when: \{\w+:", "when: {calls_per_hour:", text, count=1))
    with pytest.raises(ValueError, match="calls_per_hour"):
        load(bad)


def test_the_live_engine_lets_a_line_go_exactly_when_its_evidence_cannot_reach_a_warning(tmp_path: pathlib.Path):
    """fired_acting stops early once the rules left cannot lift the line to a warning: it must still return what
    `fired` does whenever the points against the line reach the warning, and nothing otherwise."""
    card = load()
    acting, seen = card.fired_acting, []

    def checked(s, p, now, eng):
        got = acting(s, p, now, eng)
        full = card.fired(s, p, now, eng)
        against = sum(card.rules[i].points for i in full if card.rules[i].points > 0)
        assert got == (full if against >= card.lowest[1] else ())
        seen.append(bool(got))
        return got

    card.fired_acting = checked  # type: ignore[method-assign]
    engine = Engine(card)
    corpus = tmp_path / "corpus.jsonl"
    generate(str(corpus), seed=4, lines=300, days=3)
    for raw in corpus.read_text().splitlines():
        o = json.loads(raw)
        if o["kind"] == "subscriber":
            engine.set_profile(o["msisdn"], Profile(o["home_province"], date.fromisoformat(o["opened_at"])))
        elif o["kind"] == "cell" and o["risk"] != "normal":
            engine.cells[o["cell_id"]] = CELL_HIGH if o["risk"] == "high" else 2
        elif o["kind"] == "cdr":
            t = int(datetime.fromisoformat(o["start"]).timestamp())
            engine.observe(
                o["msisdn"],
                o["peer"],
                o["peer_province"],
                o["direction"] == "out",
                t,
                o["duration_s"],
                o["cell_id"] or "",
                o["roaming"] == "international",
                o["imei"],
                o["service"] == "sms",
            )
    assert len(seen) > 10_000 and 0 < sum(seen) < len(seen)

"""The persona generator writes valid, deterministic scenario files; the evaluator counts exactly."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path

import pytest

from pscli.evaluate import evaluate, format_report, passes
from pscli.personas import PERSONAS, SHIFTS, VARIANTS, generate, persona_counts

MSISDN = re.compile(r"^1\d{10}$")
PROVINCE = re.compile(r"^\d{2}$")
DIGITS15 = re.compile(r"^\d{15}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")

REQUIRED = {
    "subscriber": {"msisdn", "home_province", "opened_at", "holder_ref", "enterprise", "language"},
    "cell": {"cell_id", "province", "risk"},
    "cdr": {"msisdn", "peer", "peer_province", "direction", "service", "start", "duration_s", "cell_id"}
    | {"roaming", "country", "imei"},
    "report": {"msisdn", "at", "source"},
}


def _time(value: str) -> datetime:
    assert isinstance(value, str) and "T" in value
    t = datetime.fromisoformat(value)
    assert t.utcoffset() is not None, value
    return t


def check_subscriber(o: dict) -> None:
    assert MSISDN.match(o["msisdn"])
    assert PROVINCE.match(o["home_province"])
    date.fromisoformat(o["opened_at"])
    assert isinstance(o["holder_ref"], str) and re.match(r"^h-[0-9a-f]+$", o["holder_ref"])
    assert o["enterprise"] is None or isinstance(o["enterprise"], str)
    assert o["language"] in ("zh", "en")
    assert o["persona"] in PERSONAS and o["fraud"] is PERSONAS[o["persona"]].fraud


def check_cell(o: dict) -> None:
    assert isinstance(o["cell_id"], str) and o["cell_id"]
    assert PROVINCE.match(o["province"])
    assert o["risk"] in ("normal", "elevated", "high")


def check_cdr(o: dict) -> None:
    assert MSISDN.match(o["msisdn"])
    assert isinstance(o["peer"], str) and o["peer"].isdigit()
    assert PROVINCE.match(o["peer_province"])
    assert (o["peer_province"] == "00") == o["peer"].startswith("00")
    assert o["direction"] in ("out", "in")
    assert o["service"] in ("voice", "sms")
    _time(o["start"])
    assert type(o["duration_s"]) is int and o["duration_s"] >= 0
    if o["service"] == "sms":
        assert o["duration_s"] == 0
    assert o["roaming"] in ("none", "domestic", "international")
    if o["roaming"] == "international":
        assert o["cell_id"] is None and COUNTRY.match(o["country"])
    else:
        assert isinstance(o["cell_id"], str) and o["country"] is None
    assert DIGITS15.match(o["imei"])


def check_report(o: dict) -> None:
    assert MSISDN.match(o["msisdn"])
    _time(o["at"])
    assert o["source"] in ("user_report", "national_platform", "police")


CHECKS = {"subscriber": check_subscriber, "cell": check_cell, "cdr": check_cdr, "report": check_report}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("personas") / "small.jsonl"
    return path, generate(path, seed=7, lines=200, days=2)


def test_same_seed_same_bytes_other_seed_other_bytes(small, tmp_path):
    path, _ = small
    again, other = tmp_path / "again.jsonl", tmp_path / "other.jsonl"
    generate(again, seed=7, lines=200, days=2)
    generate(other, seed=8, lines=200, days=2)
    assert again.read_bytes() == path.read_bytes()
    assert other.read_bytes() != path.read_bytes()


def test_every_line_follows_the_spec(small):
    path, summary = small
    subscribers: dict[str, dict] = {}
    cdr_numbers: set[str] = set()
    last: datetime | None = None
    kinds: dict[str, int] = {}
    cells: set[str] = set()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        o = json.loads(raw)
        kind = o["kind"]
        assert kind in REQUIRED, f"line {number}"
        assert REQUIRED[kind] <= o.keys(), f"line {number}: missing {REQUIRED[kind] - o.keys()}"
        CHECKS[kind](o)
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "subscriber":
            assert o["msisdn"] not in subscribers, "msisdn is unique"
            subscribers[o["msisdn"]] = o
        elif kind == "cell":
            assert o["cell_id"] not in cells
            cells.add(o["cell_id"])
        else:
            t = _time(o["start"] if kind == "cdr" else o["at"])
            assert last is None or t >= last, f"line {number}: cdr and report lines are in time order"
            last = t
            if kind == "cdr":
                cdr_numbers.add(o["msisdn"])
    assert cdr_numbers <= subscribers.keys()
    assert kinds["cdr"] == summary["cdr"] and kinds.get("report", 0) == summary["report"]
    assert len(subscribers) == 200 and summary["personas"] == persona_counts(200)


def test_every_persona_is_present_and_the_mix_is_right(small):
    _, summary = small
    assert set(summary["personas"]) == set(PERSONAS)
    fraud = sum(n for name, n in summary["personas"].items() if PERSONAS[name].fraud)
    assert 0.12 <= fraud / 200 <= 0.20
    assert set(persona_counts(30)) == set(PERSONAS) and min(persona_counts(30).values()) >= 1
    assert sum(persona_counts(10000).values()) == 10000 and persona_counts(10000)["ordinary"] == 4900


def test_the_hard_cases_look_the_way_they_should(small):
    path, _ = small
    subs, cdrs, cell_risk = {}, [], {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        o = json.loads(raw)
        if o["kind"] == "subscriber":
            subs[o["msisdn"]] = o
        elif o["kind"] == "cdr":
            cdrs.append(o)
        elif o["kind"] == "cell":
            cell_risk[o["cell_id"]] = o["risk"]
    by_persona: dict[str, list[dict]] = {}
    for c in cdrs:
        by_persona.setdefault(subs[c["msisdn"]]["persona"], []).append(c)
    drivers = [s for s in subs.values() if s["persona"] == "truck_driver"]
    assert all(s["msisdn"].startswith("193") and s["opened_at"] >= "2026-01-01" for s in drivers)
    assert any(c["roaming"] == "domestic" for c in by_persona["truck_driver"])
    assert any(cell_risk.get(c["cell_id"]) in ("elevated", "high") for c in by_persona["road_tripper"])
    abroad = [c for c in by_persona["traveller"] if c["roaming"] == "international"]
    assert abroad and any(c["peer_province"] == "00" for c in abroad)
    assert not any(c["direction"] == "in" for c in by_persona["simbox"])
    simbox_imeis = {c["imei"] for c in by_persona["simbox"]}
    simbox_lines = {c["msisdn"] for c in by_persona["simbox"]}
    assert len(simbox_imeis) < len(simbox_lines), "SIM-box lines share a handset"
    assert all(c["duration_s"] == 0 for c in by_persona["wangiri"] if c["direction"] == "out")
    assert all(s["opened_at"] <= "2026-03-02" for s in subs.values()), "no line opens after the scenario starts"


def test_shifted_variant_moves_the_parameters(small, tmp_path):
    path, base = small
    shifted_path = tmp_path / "shifted.jsonl"
    shifted = generate(shifted_path, seed=7, lines=200, days=2, variant="shifted")
    assert shifted_path.read_bytes() != path.read_bytes()
    assert shifted["personas"] == base["personas"]
    assert set(VARIANTS) == set(SHIFTS) and SHIFTS["shifted"]
    with pytest.raises(ValueError):
        generate(tmp_path / "x.jsonl", seed=1, lines=10, days=1, variant="nope")


SCENARIO = [
    {"kind": "cell", "cell_id": "460-00-1-1", "province": "44", "risk": "high"},
    *(
        {"kind": "subscriber", "msisdn": m, "home_province": "44", "opened_at": "2020-01-01", "holder_ref": "h-1"}
        | {"enterprise": None, "language": "zh", "persona": p, "fraud": f}
        for m, p, f in [
            ("13800000001", "courier", False),
            ("13800000002", "courier", False),
            ("13800000003", "ordinary", False),
            ("13800000004", "scam_callcentre", True),
            ("13800000005", "scam_callcentre", True),
            ("13800000006", "scam_callcentre", True),
            ("13800000007", "wangiri", True),
        ]
    ),
]


def _cdr(msisdn: str, minute: int, direction: str = "out") -> dict:
    return {
        "kind": "cdr",
        "msisdn": msisdn,
        "peer": "13900000000",
        "peer_province": "51",
        "direction": direction,
        "service": "voice",
        "start": f"2026-03-02T10:{minute:02d}:00+08:00",
        "duration_s": 0,
        "cell_id": "460-00-1-1",
        "roaming": "none",
        "country": None,
        "imei": "860000000000001",
    }


def _decision(msisdn: str, action: str, acted_at: str | None, reasons=()) -> dict:
    return {"msisdn": msisdn, "risk_level": "high", "score": 0.5, "action": action, "reasons": list(reasons)} | {
        "acted_at": acted_at
    }


def test_evaluate_counts_exactly(tmp_path):
    cdrs = (
        [_cdr("13800000004", m) for m in range(10)]  # acted at 10:04 -> 5 calls (10:00..10:04 inclusive)
        + [_cdr("13800000004", m, "in") for m in range(10)]  # incoming calls never count
        + [_cdr("13800000005", m) for m in range(20)]  # acted at 10:08:00 UTC+8 given in UTC -> 9 calls
        + [_cdr("13800000006", m) for m in range(3)]  # never acted on
        + [_cdr("13800000007", m) for m in range(30)]  # acted at 10:20 -> 21 calls
        + [_cdr("13800000001", m) for m in range(25)]  # courier suspended at 10:01 -> 2 calls
    )
    cdrs.sort(key=lambda c: c["start"])
    scenario, decisions = tmp_path / "s.jsonl", tmp_path / "d.jsonl"
    scenario.write_text("".join(json.dumps(o) + "\n" for o in SCENARIO + cdrs), encoding="utf-8")
    rows = [
        _decision("13800000001", "suspend", "2026-03-02T10:01:00+08:00", ["burst", "new_peers"]),
        _decision("13800000002", "warn", "2026-03-02T11:00:00+08:00", ["burst"]),
        _decision("13800000003", "none", None),
        _decision("13800000004", "restrict", "2026-03-02T10:04:00+08:00", ["burst"]),
        _decision("13800000005", "suspend", "2026-03-02T02:08:00+00:00", ["burst"]),
        _decision("13800000007", "warn", "2026-03-02T10:20:00+08:00", ["intl"]),
        # 13800000006 has no decision: counts as "none"
    ]
    decisions.write_text("".join(json.dumps(d) + "\n" for d in rows), encoding="utf-8")

    r = evaluate(scenario, decisions)

    assert r.personas["courier"].lines == 2
    assert dict(r.personas["courier"].actions) == {"suspend": 1, "warn": 1}
    assert r.personas["courier"].calls_before_action == [2, 0]
    assert dict(r.personas["scam_callcentre"].actions) == {"restrict": 1, "suspend": 1, "none": 1}
    assert sorted(r.personas["scam_callcentre"].calls_before_action) == [5, 9]
    assert r.personas["scam_callcentre"].median_calls == 7
    assert (r.legit_lines, r.legit_suspended, r.legit_acted) == (3, 1, 2)
    assert (r.heavy_lines, r.heavy_suspended) == (2, 1)
    assert (r.fraud_lines, r.fraud_acted) == (4, 3)
    assert r.fraud_recall == 0.75 and r.legit_suspend_rate == pytest.approx(1 / 3)
    assert sorted(r.fraud_calls_before_action) == [5, 9, 21] and r.median_calls_before_action == 9
    assert r.legit_reasons == [("burst", 2), ("new_peers", 1)]
    assert r.missing_decisions == 1 and r.unknown_decisions == 0
    failed = passes(r)
    assert len(failed) == 3 and not any("median" in f for f in failed)
    text = format_report(r)
    assert "courier" in text and "MISSED" in text and "75.00%" in text

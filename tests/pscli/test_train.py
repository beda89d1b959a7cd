"""psctl train fits an explainable scorecard from a labelled corpus; the leave-one-persona-out table is honest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pscli import train
from pscli.evaluation_cli import holdout_command
from pscli.main import main
from pscli.personas import generate
from services.scoring.features import FEATURE_NAMES
from services.scoring.scorecard import load


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("train") / "corpus.jsonl"
    generate(str(path), seed=5, lines=700, days=2)
    return path


@pytest.fixture(scope="module")
def events(corpus: Path) -> train.Events:
    return train.collect([corpus])


def test_collect_keeps_every_scored_event_with_the_lines_labels(corpus: Path, events: train.Events):
    assert events.names == FEATURE_NAMES and events.x.shape == (events.line.size, len(FEATURE_NAMES))
    assert events.fraud.any() and not events.fraud.all()
    assert len(set(events.personas)) > 5 and events.report.any()
    assert events.sources == [(corpus.name, hashlib.sha256(corpus.read_bytes()).hexdigest())]
    # out_before counts the line's outgoing calls: it never goes down along a line
    for i in np.unique(events.line)[:50]:
        assert np.all(np.diff(events.out_before[events.line == i]) >= 0)


def test_train_writes_a_versioned_card_with_its_data_digest_metrics_and_hand_set_rules(corpus: Path, tmp_path: Path):
    out = tmp_path / "card.yaml"
    trained = train.train([corpus], out, version="test-card-1", today="2026-12-01")
    raw = yaml.safe_load(out.read_text())
    card = load(out)
    assert card.version == raw["version"] == "test-card-1"
    t = raw["trained"]
    assert t["date"] == "2026-12-01" and t["library"].startswith("scikit-learn ")
    assert t["data"][0]["sha256"] == hashlib.sha256(corpus.read_bytes()).hexdigest() == trained["data"][0]["sha256"]
    assert set(t["metrics_on_training_data"]) >= {"legit_suspended", "legit_any_action", "fraud_acted"}
    assert len(card.rules) <= train.MAX_LEARNED + len(train.HAND_SET_FEATURES)
    hand = [r for r in raw["rules"] if r.get("hand_set")]
    assert {r["code"] for r in hand} >= {"AUTHORITY_REPORT", "SHARED_HANDSET", "HIGH_RISK_CELL"}
    flagged = [ln for ln in out.read_text().splitlines() if ln.strip().startswith("hand_set: true")]
    assert len(flagged) == len(hand) and all("  # " in ln for ln in flagged)  # each says why
    assert any(r.weak for r in card.rules if r.code == "HIGH_RISK_CELL")
    learned = [r for r in raw["rules"] if not r.get("hand_set")]
    assert learned and all(r["zh"] and r["en"] for r in raw["rules"])
    assert any(r["points"] > 0 for r in learned) and any(r["points"] < 0 for r in learned)
    assert card.lowest[1] < card.lowest[2] < card.lowest[3]
    # The learned rules only name bins the format can say: >= and < on a feature, behind a volume gate.
    for r in card.rules:
        assert all(op in (">=", "<") for _, op, _ in r.conditions)


def test_the_offline_scorer_matches_the_engine(corpus: Path, events: train.Events, tmp_path: Path):
    rules, levels, _ = train.build(events, np.arange(len(events.msisdns)), load())
    card = train.to_scorecard("offline-check", rules, levels)
    d = tmp_path / "d.jsonl"
    train.sandbox_decisions(corpus, card, d)
    engine = {o["msisdn"]: o for o in map(json.loads, d.read_text().splitlines())}
    o = train.outcome(events, rules, levels)
    actions = ("none", "warn", "restrict", "suspend")
    for i, m in enumerate(events.msisdns):
        assert engine[m]["action"] == actions[o.action[i]], m
        if o.action[i]:
            assert engine[m]["outgoing_before_action"] == o.first_calls[i], m


def test_new_features_are_picked_up_by_name_with_a_generic_sentence(events: train.Events):
    names = (*events.names, "hops_9d", "hop_share_9d", "calls_9d")
    rng = np.random.default_rng(1)
    extra = rng.integers(0, 40, size=(events.x.shape[0], 3)).astype(float)
    extra[:, 1] = rng.random(events.x.shape[0])
    e = train.Events(
        names,
        np.hstack([events.x, extra]),
        events.line,
        events.out_before,
        events.report,
        events.msisdns,
        events.personas,
        events.fraud,
    )
    bins = train.make_bins(e, np.ones(e.x.shape[0], bool))
    assert any(b.feature == "hops_9d" for b in bins)
    assert all(b.gate and b.gate[0] == "calls_9d" for b in bins if b.feature == "hop_share_9d")
    learned = train.Learned([b for b in bins if b.feature == "hops_9d"][:1], [12], 1.0)
    (rule,) = train.name_rules(learned)
    assert rule.code == "HOPS_9D" and "{hops_9d}" in rule.en and "{hops_9d}" in rule.zh


def test_the_week_features_are_learnable_with_their_own_sentences(events: train.Events):
    bins = train.make_bins(events, np.ones(events.x.shape[0], bool))
    assert all(b.gate and b.gate[0] == "outgoing_7d" for b in bins if b.feature == "stranger_share_7d")
    silent = train.Bin("silent_days", 3.0, None)
    (rule,) = train.name_rules(train.Learned([silent], [9], 1.0))
    assert rule.code == "SILENT_DAYS" and rule.conditions == (("silent_days", ">=", 3.0),)
    assert rule.en.format(silent_days=4) == "calls out and not one call or message in, 4 day(s) in a row (at least 3)"
    assert rule.zh.format(silent_days=4) == "连续4天只有呼出、没有任何来电或短信（不少于3）"


def test_a_reason_reads_right_for_its_whole_bin():
    few = train.Bin("incoming_24h", 1.0, 3.0)
    (rule,) = train.name_rules(train.Learned([few], [4], 1.0))
    assert rule.en.format(incoming_24h=2) == "2 calls and messages received in 24 hours (1 to 2)"
    assert train.bin_range(train.Bin("incoming_24h", None, 1.0)) == ("", "")  # "0 ... received" says it all
    share = train.Bin("other_province_share_7d", 0.6, None, ("outgoing_7d", 20.0))
    assert train.bin_range(share) == (" (at least 60%)", "（不少于60%）")
    assert train.bin_range(train.Bin("stranger_share_7d", 1.0, None)) == (" (all of them)", "（全部）")
    assert train.bin_range(train.Bin("unanswered_1h", 3.0, 5.0)) == (" (3 to 4)", "（3至4）")


def test_bins_of_a_feature_with_a_known_direction_are_made_monotone_and_merged():
    b = [train.Bin("unanswered_1h", lo, hi) for lo, hi in ((2.0, 3.0), (3.0, 5.0), (5.0, 7.0), (7.0, None))]
    ref = train.Bin("unanswered_1h", None, 2.0)
    bins, points = train.monotone(b, [3.0, 7.0, 6.0, 14.0], [10, 10, 10, 5], [ref], {ref: 100})
    assert [(x.lo, x.hi) for x in bins] == [(2.0, 3.0), (3.0, 7.0), (7.0, None)]
    assert points == [3.0, 6.5, 14.0]
    # A falling feature (more callbacks, less risk) is pooled the other way; the reference bin takes part.
    c = [train.Bin("incoming_24h", lo, hi) for lo, hi in ((None, 1.0), (1.0, 3.0), (12.0, None))]
    ref = train.Bin("incoming_24h", 3.0, 12.0)
    bins, points = train.monotone(c, [20.0, 4.0, 8.0], [5, 5, 5], [ref], {ref: 15})
    assert [(x.lo, x.hi, round(p, 2)) for x, p in zip(bins, points, strict=True)] == [
        (None, 1.0, 20.0),
        (1.0, 3.0, 4.0),
        (3.0, None, 2.0),
    ]
    # Unknown direction: left as fitted.
    d = [train.Bin("mean_duration_s_1h", None, 30.0), train.Bin("mean_duration_s_1h", 30.0, None)]
    assert train.monotone(d, [5.0, -3.0], [1, 1], [], {})[1] == [5.0, -3.0]


def test_the_guard_refuses_thresholds_too_close_and_keeps_tenured_busy_lines_at_a_warning(events: train.Events):
    with pytest.raises(ValueError, match="closer than"):
        train.check_thresholds([41, 45, 54])
    train.check_thresholds([41, 41 + train.MIN_GAP, 41 + 2 * train.MIN_GAP])
    lines = np.arange(len(events.msisdns))
    rules, levels, _ = train.build(events, lines, load())
    assert levels[1] - levels[0] >= train.MIN_GAP and levels[2] - levels[1] >= train.MIN_GAP
    tenured = train.tenured_busy(events, lines)
    o = train.outcome(events, rules, levels)
    assert np.all(o.action[tenured] <= 1)


def test_families_and_a_holdout_row(events: train.Events, capsys):
    names = set(events.personas)
    assert train.family("courier", names) == {"courier", "rider"}
    assert train.family("scam_callcentre", names) == {"scam_callcentre"}
    row = train.holdout(events, "wangiri", load())
    assert row.fraud and row.lines == events.personas.count("wangiri") and row.left_out == ["wangiri"]
    assert 0 <= row.acted <= row.lines
    legit = train.holdout(events, "courier", load())
    assert not legit.fraud and legit.left_out == ["courier", "rider"]
    with pytest.raises(ValueError, match="no persona"):
        train.holdout(events, "astronaut", load())
    assert "wangiri" in train.format_holdouts([row])


def test_psctl_evaluate_holdout_persona_prints_the_row(corpus: Path, capsys, monkeypatch, tmp_path: Path):
    # psctl sets its principal and reads a settings file into the environment: keep both to this test.
    monkeypatch.setenv("PSP_PRINCIPAL", "ops")
    monkeypatch.setenv("PSP_ENV_FILE", str(tmp_path / "none.env"))
    code = main(["evaluate", str(corpus), "--holdout-persona", "simbox"])
    out = capsys.readouterr().out
    assert "simbox" in out and "recall" in out and code in (0, 1)
    assert holdout_command(str(corpus), "nobody") == 2

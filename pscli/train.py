"""psctl train: fits the scorecard's points from labelled persona scenarios (issue 16, item 1).

The classic credit scorecard, kept in the format the scoring service already reads (scorecard.yaml):

1. Every scenario is replayed in-process through the scoring engine (the sandbox of `psctl replay`, no stack),
   and the line's features are taken at every event the engine scores (each outgoing call or SMS, each
   report), labelled with the line's `fraud` tag.
2. Each feature in FEATURE_EXPR (a new one is picked up by name, with a generic sentence) is cut into bins
   the scorecard can express: `feature >= lo` and `feature < hi`; a share or an average is only read once
   its window holds enough calls (`calls_1h >= 8` for `*_1h`), as the hand-written rules did.
3. An L1-penalised logistic regression (scikit-learn) over the bins' 0/1 indicators picks few bins; each
   coefficient becomes integer points (SCALE points per unit of log-odds). Bins with points > 0 are evidence
   against the line (reasons), the others speak for the holder (mitigations).
4. The level thresholds are set on the training lines so that legitimate lines stay under the targets with a
   margin (design §6), and the new card is replayed through the real engine to record its metrics.

Evidence with no data behind it in a persona corpus (authority reports, complaints, shared handsets, the
platform's hot numbers and high-risk cells) keeps its hand-set rules (`hand_set: true`), their points mapped
onto the new thresholds so that each still reaches the same level alone.

    psctl train corpus.jsonl [more.jsonl ...] --out services/scoring/scorecard.yaml
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy import sparse

from carrier.scoring.v1 import scoring_pb2
from pscli import evaluate as ev
from pscli.replay import decision_line
from pscli.scenario import read
from pscommon.validation import Violations
from services.scoring import requests
from services.scoring.features import FEATURE_NAMES, features
from services.scoring.replay import Sandbox
from services.scoring.scorecard import DEFAULT_PATH, Rule, Scorecard, load

OUT, SMS, ABROAD = scoring_pb2.DIRECTION_OUT, scoring_pb2.SERVICE_KIND_SMS, scoring_pb2.ROAMING_INTERNATIONAL
ACTION_OF_LEVEL = {"low": "none", "medium": "warn", "high": "restrict", "extreme": "suspend"}

# Why these features keep hand-set rules (written into the yaml beside each rule).
HAND_SET_FEATURES = {
    "lines_per_handset": "shared handsets: one SIM-box pattern in the persona corpus, too little to learn a weight",
    "high_risk_peers_24h": "the national platform's high-risk numbers: no such feed in the persona corpus",
    "high_risk_cell_visits_24h": "high-risk cells are the platform's list; passing one is weak evidence by design",
    "elevated_cell_visits_24h": "high-risk cells are the platform's list; passing one is weak evidence by design",
    "reports_30d": "complaints: the generator files them only against fraud lines, so a learned weight is circular",
    "authority_reports_30d": "an authority's finding (police, national platform), not a pattern to learn",
    "handsets_7d": "no legitimate line in the corpus changes handsets but a shared family phone: a learned weight"
    " would punish everyone who buys a new phone",
}
# Not learned at all: account_age_years repeats account_age_days; only legitimate personas roam abroad in the corpus,
# so a learned weight for `abroad` would be an artefact of the corpus (the case workflow handles roamers instead).
SKIP_FEATURES = {"account_age_years", "abroad"}
# The volume a window must hold before its shares and averages say anything.
GATES = {"1h": 8.0, "24h": 20.0, "7d": 20.0}
SCALE = 10.0  # points per unit of log-odds
MIN_POINTS = 2  # smaller learned points are dropped
MAX_LEARNED = 30  # learned rules at most (the engine evaluates them on every call)
FIRST_EVENTS, LATER_EVENTS = 20, 20  # events per line in the fit: its first ones and a sample of the rest
# Margins under the targets of design §6 (legitimate suspended <= 0.5 %, any action <= 2 %), on training data.
LEGIT_ACTION_MAX, LEGIT_RESTRICT_MAX, LEGIT_SUSPEND_MAX = 0.012, 0.005, 0.001
# The guard on thresholds: at least one unit of log-odds between warn, restrict and suspend, and restrict above
# every legitimate line in the training data held 10 years or more with a busy hour (8+ calls).
MIN_GAP = SCALE
TENURED_YEARS, BUSY_CALLS_1H = 10, 8.0
C_GRID = (0.05, 0.02, 0.01, 0.005, 0.003, 0.002, 0.001)

# Sentences per feature (the engine formats them with the line's figures). Unknown features get a generic one.
TEMPLATES: dict[str, tuple[str, str]] = {
    "calls_1h": ("{calls_1h} outgoing calls in the last hour", "近1小时拨出{calls_1h}个电话"),
    "calls_24h": ("{calls_24h} outgoing calls in 24 hours", "24小时内拨出{calls_24h}个电话"),
    "sms_1h": ("{sms_1h} text messages sent in the last hour", "近1小时发送{sms_1h}条短信"),
    "sms_24h": ("{sms_24h} text messages sent in 24 hours", "24小时内发送{sms_24h}条短信"),
    "distinct_peers_1h": (
        "{distinct_peers_1h} different numbers called in the last hour",
        "近1小时联系{distinct_peers_1h}个不同号码",
    ),
    "distinct_peers_24h": (
        "{distinct_peers_24h} different numbers called in 24 hours",
        "24小时内联系{distinct_peers_24h}个不同号码",
    ),
    "new_peers_1h": (
        "{new_peers_1h} calls in the last hour to numbers never called before",
        "近1小时{new_peers_1h}个电话打给从未联系过的号码",
    ),
    "new_peer_share_1h": (
        "{new_peers_1h} of {calls_1h} calls in the last hour to numbers never called before",
        "近1小时{calls_1h}个电话中{new_peers_1h}个打给从未联系过的号码",
    ),
    "new_peers_24h": (
        "{new_peers_24h} calls in 24 hours to numbers never called before",
        "24小时内{new_peers_24h}个电话打给从未联系过的号码",
    ),
    "new_peer_share_24h": (
        "{new_peers_24h} of {calls_24h} calls in 24 hours to numbers never called before",
        "24小时内{calls_24h}个电话中{new_peers_24h}个打给从未联系过的号码",
    ),
    "other_province_1h": (
        "{other_province_1h} calls in the last hour to other provinces",
        "近1小时{other_province_1h}个电话打给外省号码",
    ),
    "other_province_share_1h": (
        "{other_province_1h} of {calls_1h} calls in the last hour to numbers in other provinces",
        "近1小时{calls_1h}个电话中{other_province_1h}个打给外省号码",
    ),
    "other_province_24h": (
        "{other_province_24h} calls in 24 hours to other provinces",
        "24小时内{other_province_24h}个电话打给外省号码",
    ),
    "other_province_share_24h": (
        "{other_province_24h} of {calls_24h} calls in 24 hours to numbers in other provinces",
        "24小时内{calls_24h}个电话中{other_province_24h}个打给外省号码",
    ),
    "unanswered_1h": ("{unanswered_1h} calls in the last hour not answered", "近1小时{unanswered_1h}个电话未接通"),
    "unanswered_share_1h": (
        "{unanswered_1h} of {calls_1h} calls in the last hour not answered",
        "近1小时{calls_1h}个电话中{unanswered_1h}个未接通",
    ),
    "unanswered_24h": ("{unanswered_24h} calls in 24 hours not answered", "24小时内{unanswered_24h}个电话未接通"),
    "unanswered_share_24h": (
        "{unanswered_24h} of {calls_24h} calls in 24 hours not answered",
        "24小时内{calls_24h}个电话中{unanswered_24h}个未接通",
    ),
    "mean_duration_s_1h": (
        "calls in the last hour lasted {mean_duration_s_1h} seconds on average",
        "近1小时通话平均{mean_duration_s_1h}秒",
    ),
    "mean_duration_s_24h": (
        "calls in 24 hours lasted {mean_duration_s_24h} seconds on average",
        "24小时内通话平均{mean_duration_s_24h}秒",
    ),
    "callback_share_1h": (
        "{callback_share_1h:.0%} of the numbers called in the last hour have called back",
        "近1小时的被叫号码中{callback_share_1h:.0%}曾回拨",
    ),
    "callback_share_24h": (
        "{callback_share_24h:.0%} of the numbers called in 24 hours have called back",
        "24小时内的被叫号码中{callback_share_24h:.0%}曾回拨",
    ),
    "night_24h": (
        "{night_24h} calls in 24 hours between midnight and 6 a.m.",
        "24小时内{night_24h}个呼叫发生在凌晨0点至6点",
    ),
    "night_share_24h": (
        "{night_24h} of the calls in 24 hours between midnight and 6 a.m.",
        "24小时内{night_24h}个呼叫发生在凌晨0点至6点",
    ),
    "international_24h": (
        "{international_24h} international calls in 24 hours",
        "24小时内{international_24h}个国际呼叫",
    ),
    "international_share_24h": (
        "{international_24h} of the calls in 24 hours international",
        "24小时内{international_24h}个呼叫为国际呼叫",
    ),
    "outgoing_7d": ("{outgoing_7d} calls and messages sent in 7 days", "7天内拨出电话和发送短信{outgoing_7d}次"),
    "strangers_7d": (
        "{strangers_7d} numbers never in touch before called in 7 days",
        "7天内联系了{strangers_7d}个从未联系过的号码",
    ),
    "stranger_share_7d": (
        "{strangers_7d} of {outgoing_7d} calls and messages in 7 days went to numbers never in touch before",
        "7天内{outgoing_7d}次呼出中{strangers_7d}次打给从未联系过的号码",
    ),
    "other_province_share_7d": (
        "{other_province_share_7d:.0%} of {outgoing_7d} calls and messages in 7 days went to other provinces",
        "7天内{outgoing_7d}次呼出中{other_province_share_7d:.0%}打给外省号码",
    ),
    "stranger_callback_share_7d": (
        "{stranger_callback_share_7d:.0%} of the {strangers_7d} new numbers called in 7 days have called back",
        "7天内新联系的{strangers_7d}个号码中{stranger_callback_share_7d:.0%}曾回电",
    ),
    "silent_days": (
        "calls out and not one call or message in, {silent_days} day(s) in a row",
        "连续{silent_days}天只有呼出、没有任何来电或短信",
    ),
    "abroad": ("the handset is abroad", "终端正在境外漫游"),
    "incoming_24h": (
        "{incoming_24h} calls and messages received in 24 hours",
        "24小时内收到{incoming_24h}个来电或短信",
    ),
    "handsets_7d": ("{handsets_7d} handsets used in 7 days", "7天内使用了{handsets_7d}部终端"),
    "account_age_days": ("the account was opened {account_age_days} days ago", "号码开户{account_age_days}天"),
    "enterprise_bound": ("the line is bound to an enterprise account", "号码绑定企业账户"),
}
# Reason codes per feature: (evidence against the line, in the holder's favour); the sign of a bin's points
# picks one. Several bins of one code are numbered from the lowest values up. Unknown features: their name.
CODES: dict[str, tuple[str, str]] = {
    "calls_1h": ("CALL_BURST", "FEW_CALLS"),
    "calls_24h": ("DAY_VOLUME", "FEW_CALLS_24H"),
    "sms_1h": ("SMS_BURST", "FEW_SMS"),
    "sms_24h": ("SMS_VOLUME", "FEW_SMS_24H"),
    "distinct_peers_1h": ("MANY_PEERS", "FEW_PEERS"),
    "distinct_peers_24h": ("MANY_PEERS_24H", "FEW_PEERS_24H"),
    "new_peers_1h": ("NEW_PEER_CALLS", "FEW_NEW_PEER_CALLS"),
    "new_peers_24h": ("NEW_PEER_CALLS_24H", "FEW_NEW_PEER_CALLS_24H"),
    "new_peer_share_1h": ("NEW_PEERS", "KNOWN_PEERS"),
    "new_peer_share_24h": ("NEW_PEERS_24H", "KNOWN_PEERS_24H"),
    "other_province_1h": ("REMOTE_CALLS", "FEW_REMOTE_CALLS"),
    "other_province_24h": ("REMOTE_CALLS_24H", "FEW_REMOTE_CALLS_24H"),
    "other_province_share_1h": ("REMOTE_PEERS", "LOCAL_PEERS"),
    "other_province_share_24h": ("REMOTE_PEERS_24H", "LOCAL_PEERS_24H"),
    "unanswered_1h": ("UNANSWERED_CALLS", "FEW_UNANSWERED"),
    "unanswered_24h": ("UNANSWERED_CALLS_24H", "FEW_UNANSWERED_24H"),
    "unanswered_share_1h": ("UNANSWERED", "ANSWERED"),
    "unanswered_share_24h": ("UNANSWERED_24H", "ANSWERED_24H"),
    "mean_duration_s_1h": ("CALL_LENGTH", "CALL_LENGTH_USUAL"),
    "mean_duration_s_24h": ("CALL_LENGTH_24H", "CALL_LENGTH_USUAL_24H"),
    "callback_share_1h": ("NO_CALLBACKS", "CALLBACKS"),
    "callback_share_24h": ("NO_CALLBACKS_24H", "CALLBACKS_24H"),
    "night_24h": ("NIGHT_CALLS", "DAYTIME_CALLS"),
    "night_share_24h": ("NIGHT_ACTIVITY", "DAYTIME_ACTIVITY"),
    "international_24h": ("INTERNATIONAL", "FEW_INTERNATIONAL"),
    "international_share_24h": ("INTERNATIONAL_SHARE", "LOW_INTERNATIONAL_SHARE"),
    "outgoing_7d": ("WEEK_VOLUME", "FEW_CALLS_7D"),
    "strangers_7d": ("MANY_STRANGERS_7D", "FEW_STRANGERS_7D"),
    "stranger_share_7d": ("STRANGERS_7D", "KNOWN_PEERS_7D"),
    "other_province_share_7d": ("REMOTE_PEERS_7D", "LOCAL_PEERS_7D"),
    "stranger_callback_share_7d": ("NO_CALLBACKS_7D", "CALLBACKS_7D"),
    "silent_days": ("SILENT_DAYS", "INCOMING_DAILY"),
    "abroad": ("ABROAD", "ROAMING_ABROAD"),
    "incoming_24h": ("LITTLE_INCOMING", "TWO_WAY_TRAFFIC"),
    "handsets_7d": ("HANDSET_CHANGES", "ONE_HANDSET"),
    "account_age_days": ("NEW_ACCOUNT", "LONG_TENURE"),
    "enterprise_bound": ("NOT_ENTERPRISE", "ENTERPRISE_BOUND"),
}


# Features whose risk is known to rise (+1) or fall (-1) with their value: the points of their bins are made
# monotone in that direction (adjacent bins that disagree are pooled, weighted by their events, and merged).
RISING = (
    "calls_",
    "sms_",
    "distinct_peers_",
    "new_peer",
    "other_province",
    "unanswered",
    "night_",
    "international_",
    "strangers_",
    "stranger_share",
    "outgoing_",
    "silent_days",
)
FALLING = ("callback_share", "stranger_callback_share", "incoming_", "account_age", "enterprise_bound")


def direction(feature: str) -> int:
    if feature.startswith(FALLING) or "callback_share" in feature:
        return -1
    return 1 if feature.startswith(RISING) else 0


# --- events -------------------------------------------------------------------------------------------------


@dataclass
class Events:
    """Feature vectors at every scored event of every line, in time order, with the lines' labels."""

    names: tuple[str, ...]
    x: np.ndarray  # (events, features) float64: exactly what the engine compares
    line: np.ndarray  # (events,) line index
    out_before: np.ndarray  # (events,) the line's outgoing calls up to and including the event
    report: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (events,) a report, not a call
    msisdns: list[str] = field(default_factory=list)
    personas: list[str] = field(default_factory=list)
    fraud: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    sources: list[tuple[str, str]] = field(default_factory=list)  # (file name, sha256)

    def col(self, name: str) -> np.ndarray:
        return self.x[:, self.names.index(name)]

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for _, digest in self.sources:
            h.update(digest.encode())
        return h.hexdigest()


def _empty_card() -> Scorecard:
    return Scorecard("collect", [], [("medium", 1.0), ("high", 2.0), ("extreme", 3.0)], ACTION_OF_LEVEL)


def _tags(path: str | Path) -> tuple[dict[str, tuple[str, bool]], str]:
    """Persona and fraud tag of every subscriber, and the file's sha256."""
    tags: dict[str, tuple[str, bool]] = {}
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for raw in f:
            h.update(raw)
            if b'"subscriber"' in raw:
                o = json.loads(raw)
                if o.get("kind") == "subscriber":
                    tags[o["msisdn"]] = (str(o.get("persona", "unknown")), bool(o.get("fraud", False)))
    return tags, h.hexdigest()


class _Acc:
    """What collect() gathers, file after file."""

    def __init__(self) -> None:
        self.xs: list[float] = []
        self.lines: list[int] = []
        self.outs: list[int] = []
        self.reports: list[bool] = []
        self.msisdns: list[str] = []
        self.personas: list[str] = []
        self.fraud: list[bool] = []
        self.sources: list[tuple[str, str]] = []

    def scenario(self, path: str | Path) -> None:
        tags, digest = _tags(path)
        self.sources.append((Path(path).name, digest))
        sc = read(str(path))
        box = Sandbox(_empty_card())
        engine = box.engine
        index: dict[str, int] = {}
        for sub in sc.subscribers:
            index[sub.msisdn] = len(self.msisdns)
            self.msisdns.append(sub.msisdn)
            persona, is_fraud = tags.get(sub.msisdn, ("unknown", False))
            self.personas.append(persona)
            self.fraud.append(is_fraud)
        xs, lines, outs, reports = self.xs, self.lines, self.outs, self.reports

        def keep(msisdn: str, report: bool = False) -> None:
            s = engine.lines[msisdn]
            xs.extend(features(s, s.profile, s.last_t, engine).values())
            lines.append(index[msisdn])
            outs.append(s.out_total)
            reports.append(report)

        observe = engine.observe
        for item in sc.requests():
            kind = item.WhichOneof("item")
            if kind != "cdrs":
                box.apply(item)
                if kind == "report" and item.report.msisdn in engine.lines:
                    keep(item.report.msisdn, report=True)
                continue
            v = Violations()
            rows = requests.cdr_rows(v, item.cdrs.cdrs, "cdrs", requests.REPLAY_LATEST_S)
            v.raise_if_any()
            for msisdn, peer, province, direction, start, duration, cell, roaming, imei, service in rows:
                out = direction == OUT
                observe(msisdn, peer, province, out, start, duration, cell, roaming == ABROAD, imei, service == SMS)
                if out and msisdn in index:
                    keep(msisdn)


def collect(paths: Sequence[str | Path]) -> Events:
    """Replays each scenario through the engine and keeps the features at each event it scores."""
    acc = _Acc()
    for path in paths:
        acc.scenario(path)
    return Events(
        FEATURE_NAMES,
        np.asarray(acc.xs, dtype=np.float64).reshape(-1, len(FEATURE_NAMES)),
        np.asarray(acc.lines, np.int64),
        np.asarray(acc.outs, np.int64),
        np.asarray(acc.reports, bool),
        acc.msisdns,
        acc.personas,
        np.asarray(acc.fraud, bool),
        acc.sources,
    )


# --- bins -----------------------------------------------------------------------------------------------------

Cond = tuple[str, str, float]


@dataclass(frozen=True)
class Bin:
    feature: str
    lo: float | None  # feature >= lo
    hi: float | None  # feature < hi
    gate: tuple[str, float] | None = None  # (volume feature, at least)

    def conditions(self) -> tuple[Cond, ...]:
        out: list[Cond] = []
        if self.gate is not None:
            out.append((self.gate[0], ">=", self.gate[1]))
        if self.lo is not None:
            out.append((self.feature, ">=", self.lo))
        if self.hi is not None:
            out.append((self.feature, "<", self.hi))
        return tuple(out)


def window(name: str) -> str | None:
    m = re.search(r"_(\d+[hd])$", name)
    return m[1] if m else None


def gate_of(name: str, names: Sequence[str]) -> str | None:
    """The volume feature a share or an average is read against (`calls_<window>`, or `outgoing_<window>`), if
    any."""
    w = window(name)
    if w is None or not ("share" in name or name.startswith("mean_")):
        return None
    for volume in (f"calls_{w}", f"outgoing_{w}"):
        if volume in names and volume != name:
            return volume
    return None


def _nice(v: float, integer: bool, unit: bool) -> float:
    if integer:
        return float(max(1, round(v)))
    if unit:
        return round(round(v * 20) / 20, 2)
    if v <= 0:
        return 0.0
    digits = 1 - int(math.floor(math.log10(abs(v))))
    return float(round(v, digits))


def cuts_of(values: np.ndarray, fraud: np.ndarray, most: int = 5) -> list[float]:
    """Cut points between bins: quantiles of the legitimate and of the fraud values, rounded."""
    if values.size == 0:
        return []
    uniq = np.unique(values)
    if uniq.size <= 1:
        return []
    if uniq.size == 2:
        return [float(uniq[1])]
    integer = bool(np.all(values == np.round(values)))
    unit = bool(values.min() >= 0 and values.max() <= 1)
    qs = []
    for part, at in ((values[~fraud], (0.5, 0.9, 0.98)), (values[fraud], (0.1, 0.3, 0.6))):
        if part.size:
            qs += [float(np.quantile(part, q)) for q in at]
    lo, hi = float(values.min()), float(values.max())
    cuts = sorted({_nice(q, integer, unit) for q in qs})
    cuts = [c for c in cuts if lo < c <= hi]
    while len(cuts) > most:  # drop the cut closest to its neighbour
        gaps = [cuts[i + 1] - cuts[i] for i in range(len(cuts) - 1)]
        del cuts[gaps.index(min(gaps)) + 1]
    return cuts


def learnable(names: Sequence[str]) -> list[str]:
    return [n for n in names if n not in HAND_SET_FEATURES and n not in SKIP_FEATURES]


def make_bins(e: Events, rows: np.ndarray) -> list[Bin]:
    """Bins of every learnable feature, over the events `rows` (a boolean mask)."""
    return make_bins_and_references(e, rows)[0]


def make_bins_and_references(e: Events, rows: np.ndarray) -> tuple[list[Bin], list[Bin]]:
    """Bins of every learnable feature over the events `rows` (a boolean mask), and the reference bins (0 points,
    left out of the fit: for each ungated feature, the bin most legitimate events fall in)."""
    refs: list[Bin] = []
    fraud = e.fraud[e.line[rows]]
    bins: list[Bin] = []
    for name in learnable(e.names):
        volume = gate_of(name, e.names)
        values = e.col(name)[rows]
        gate: tuple[str, float] | None = None
        if volume is not None:
            w = window(name) or ""
            vol = e.col(volume)[rows]
            at = GATES.get(w)
            if at is None:  # a new window: a quarter of the fraud events reach it
                fv = vol[fraud]
                at = float(max(5, round(float(np.quantile(fv, 0.25))) if fv.size else 5))
            gate = (volume, at)
            keep = vol >= at
            values, fraud_here = values[keep], fraud[keep]
        else:
            fraud_here = fraud
        cuts = cuts_of(values, fraud_here)
        if not cuts:
            continue
        edges: list[float | None] = [None, *cuts, None]
        spans = [Bin(name, edges[i], edges[i + 1], gate) for i in range(len(edges) - 1)]
        if gate is None:  # the bin most legitimate events fall in is the reference: 0 points
            legit = values[~fraud_here]
            mass = [int(np.sum(_mask1(legit, b))) for b in spans]
            refs.append(spans.pop(mass.index(max(mass))))
        bins += spans
    return bins, refs


def _pava(values: list[float], weights: list[float]) -> list[float]:
    """The non-decreasing sequence closest to `values` (weighted least squares: pool adjacent violators)."""
    blocks: list[list[float]] = []  # [value, weight, count]
    for v, w in zip(values, weights, strict=True):
        blocks.append([v, max(w, 1e-9), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks[-1]
            blocks[-1] = [(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2]
    return [b[0] for b in blocks for _ in range(int(b[2]))]


def monotone(
    bins: Sequence[Bin], points: Sequence[float], weights: Sequence[float], refs: Sequence[Bin], ref_weights: dict
) -> tuple[list[Bin], list[float]]:
    """Points made monotone where the direction of a feature is known (`direction`): a bin that says less than
    its lower neighbour for a rising feature (more remote calls, fewer points) is pooled with it, weighted by
    events, and adjacent bins with the same points are merged into one. Other features are left as fitted."""
    groups: dict[tuple[str, tuple[str, float] | None], list[tuple[Bin, float, float]]] = {}
    for b, p, w in zip(bins, points, weights, strict=True):
        groups.setdefault((b.feature, b.gate), []).append((b, p, w))
    for r in refs:
        if (r.feature, r.gate) in groups:
            groups[(r.feature, r.gate)].append((r, 0.0, ref_weights.get(r, 0.0)))
    out_bins: list[Bin] = []
    out_points: list[float] = []
    for (feature, gate), items in groups.items():
        sign = direction(feature)
        items.sort(key=lambda item: -math.inf if item[0].lo is None else item[0].lo)
        if sign:
            pooled = [sign * v for v in _pava([sign * p for _, p, _ in items], [w for _, _, w in items])]
        else:
            pooled = [p for _, p, _ in items]
        i = 0
        while i < len(items):
            j = i
            while j + 1 < len(items) and abs(pooled[j + 1] - pooled[i]) < 1e-9:
                j += 1
            if round(pooled[i]):
                out_bins.append(Bin(feature, items[i][0].lo, items[j][0].hi, gate))
                out_points.append(pooled[i])
            i = j + 1
    return out_bins, out_points


def _mask1(values: np.ndarray, b: Bin) -> np.ndarray:
    m = np.ones(values.shape, bool)
    if b.lo is not None:
        m &= values >= b.lo
    if b.hi is not None:
        m &= values < b.hi
    return m


_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    ">=": np.greater_equal,
    ">": np.greater,
    "<=": np.less_equal,
    "<": np.less,
    "==": np.equal,
}


def holds(e: Events, conditions: Iterable[Cond], rows: np.ndarray | None = None) -> np.ndarray:
    """Where all conditions hold, exactly as the compiled scorecard compares (float64)."""
    m: np.ndarray | None = None
    for name, op, value in conditions:
        col = e.col(name) if rows is None else e.col(name)[rows]
        c = _OPS[op](col, value)
        m = c if m is None else m & c
    if m is None:
        return np.ones(e.x.shape[0] if rows is None else int(np.count_nonzero(rows)), bool)
    return m


# --- fit ------------------------------------------------------------------------------------------------------


def sample(e: Events, lines: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Event rows for the fit (each line's first events and a sample of the rest) and their weights: every
    line weighs the same, and both classes weigh the same in total."""
    rng = np.random.default_rng(seed)
    calls = np.nonzero(~e.report)[0]  # the calls: a report's weight is set by hand, not learned
    order = calls[np.argsort(e.line[calls], kind="stable")]  # calls by line, each line's in time order
    bounds = np.searchsorted(e.line[order], np.arange(len(e.msisdns) + 1))
    picked: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    n_class = [int(np.sum(~e.fraud[lines])), int(np.sum(e.fraud[lines]))]
    for i in lines:
        ev_rows = order[bounds[i] : bounds[i + 1]]
        if ev_rows.size == 0:
            continue
        first, rest = ev_rows[:FIRST_EVENTS], ev_rows[FIRST_EVENTS:]
        if rest.size > LATER_EVENTS:
            rest = rng.choice(rest, LATER_EVENTS, replace=False)
        rows = np.concatenate([first, rest])
        picked.append(rows)
        weights.append(np.full(rows.size, 1.0 / rows.size / max(1, n_class[int(e.fraud[i])])))
    rows = np.concatenate(picked)
    w = np.concatenate(weights)
    return rows, w * (rows.size / w.sum())


@dataclass
class Learned:
    bins: list[Bin]
    points: list[int]
    c: float
    truncated: bool = False  # the strongest penalty tried still kept too many: the heaviest were kept


def fit(e: Events, lines: np.ndarray, seed: int = 0) -> Learned:
    from sklearn.linear_model import LogisticRegression

    rows, w = sample(e, lines, seed)
    all_rows = np.zeros(e.x.shape[0], bool)
    all_rows[rows] = True
    bins, refs = make_bins_and_references(e, all_rows)
    sub = Events(e.names, e.x[rows], e.line[rows], e.out_before[rows], e.report[rows], e.msisdns, e.personas, e.fraud)
    z = sparse.hstack([sparse.csc_matrix(holds(sub, b.conditions()).astype(np.float32)[:, None]) for b in bins]).tocsr()
    y = e.fraud[e.line[rows]].astype(int)
    counts = np.asarray(z.sum(axis=0)).ravel().tolist()
    ref_counts = {r: float(np.sum(holds(sub, r.conditions()))) for r in refs}
    best: Learned | None = None
    for c in C_GRID:
        model = LogisticRegression(C=c, l1_ratio=1.0, solver="liblinear", max_iter=500, random_state=seed)
        model.fit(z, y, sample_weight=w)
        mono_bins, mono = monotone(bins, [float(v) * SCALE for v in model.coef_[0]], counts, refs, ref_counts)
        pts = [int(round(v)) for v in mono]
        kept = [(b, p) for b, p in zip(mono_bins, pts, strict=True) if abs(p) >= MIN_POINTS]
        if len(kept) <= MAX_LEARNED:
            best = Learned([b for b, _ in kept], [p for _, p in kept], c)
            break
    if best is None:  # even the strongest penalty keeps too many: the heaviest ones
        kept.sort(key=lambda bp: -abs(bp[1]))
        kept = kept[:MAX_LEARNED]
        best = Learned([b for b, _ in kept], [p for _, p in kept], C_GRID[-1], truncated=True)
    return best


# --- scoring offline, thresholds ------------------------------------------------------------------------------


@dataclass
class CardRule:
    code: str
    conditions: tuple[Cond, ...]
    points: int
    weak: bool = False
    hand_set: str = ""  # why, when set by hand
    en: str = ""
    zh: str = ""


@dataclass
class Outcome:
    """Per line, under one card: the strongest action (0 none .. 3 suspend) and the calls before the first."""

    action: np.ndarray
    first_calls: np.ndarray  # -1 when never acted on


def score_events(e: Events, rules: Sequence[CardRule]) -> tuple[np.ndarray, np.ndarray]:
    """At every event, as Scorecard.score: the score (0 unless a rule against the line holds) and the score that
    counts beyond a warning (weak evidence adds at most a warning: without the weak rules, when one holds)."""
    n = e.x.shape[0]
    total = np.zeros(n)
    strong_total = np.zeros(n)
    pos = np.zeros(n, bool)
    weak = np.zeros(n, bool)
    for r in rules:
        m = holds(e, r.conditions)
        total += m * r.points
        if r.weak:
            weak |= m
        else:
            strong_total += m * r.points
        if r.points > 0:
            pos |= m
    score = np.where(pos, np.maximum(total, 0.0), 0.0)
    return score, np.where(weak, np.minimum(score, np.maximum(strong_total, 0.0)), score)


def _levels(score: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    level = np.zeros(score.shape, np.int64)
    for i, t in enumerate(levels, start=1):
        level[score >= t] = i
    return level


def outcome(e: Events, rules: Sequence[CardRule], levels: Sequence[float]) -> Outcome:
    score, beyond_warn = score_events(e, rules)
    # level -> action: none, warn, restrict, suspend; beyond a warning only what the strong evidence reaches
    action = np.minimum(_levels(score, levels), np.maximum(1, _levels(beyond_warn, levels)))
    action[score < levels[0]] = 0
    n = len(e.msisdns)
    peak = np.zeros(n, np.int64)
    np.maximum.at(peak, e.line, action)
    first = np.full(n, -1, np.int64)
    acted = np.nonzero(action > 0)[0]
    lines, idx = np.unique(e.line[acted], return_index=True)
    first[lines] = e.out_before[acted[idx]]
    return Outcome(peak, first)


def line_peaks(e: Events, rules: Sequence[CardRule]) -> tuple[np.ndarray, np.ndarray]:
    """Per line: the highest score, and the highest score that counts beyond a warning."""
    score, beyond_warn = score_events(e, rules)
    n = len(e.msisdns)
    peak = np.zeros(n)
    np.maximum.at(peak, e.line, score)
    strong_peak = np.zeros(n)
    np.maximum.at(strong_peak, e.line, beyond_warn)
    return peak, strong_peak


def _above(values: np.ndarray, share: float) -> float:
    """The lowest whole score that at most `share` of `values` reach."""
    if values.size == 0:
        return 1.0
    allowed = int(math.floor(share * values.size))
    ordered = np.sort(values)[::-1]
    t = float(ordered[allowed]) + 1 if allowed < ordered.size else 1.0
    return max(1.0, math.floor(t))


def tenured_busy(e: Events, lines: np.ndarray) -> np.ndarray:
    """The legitimate lines among `lines` held TENURED_YEARS or more that had a busy hour (BUSY_CALLS_1H)."""
    n = len(e.msisdns)
    busy = np.zeros(n)
    np.maximum.at(busy, e.line, e.col("calls_1h"))
    age = np.zeros(n)
    np.maximum.at(age, e.line, e.col("account_age_days"))
    mine = np.zeros(n, bool)
    mine[lines] = True
    return np.nonzero(mine & ~e.fraud & (busy >= BUSY_CALLS_1H) & (age >= 365 * TENURED_YEARS))[0]


def thresholds(e: Events, rules: Sequence[CardRule], lines: np.ndarray) -> list[float]:
    """Warn, restrict and suspend thresholds, by rule (the guard): each under its target share of legitimate
    training lines; restrict at least MIN_GAP above warn and above every busy long-tenure legitimate line's peak
    (such a customer is warned first, never restricted at once); suspend at least MIN_GAP above restrict."""
    peak, strong_peak = line_peaks(e, rules)
    legit = lines[~e.fraud[lines]]
    medium = _above(peak[legit], LEGIT_ACTION_MAX)
    tenured = tenured_busy(e, lines)
    tenured_peak = float(strong_peak[tenured].max()) + 1 if tenured.size else 0.0
    high = max(medium + MIN_GAP, _above(strong_peak[legit], LEGIT_RESTRICT_MAX), math.floor(tenured_peak))
    extreme = max(high + MIN_GAP, _above(strong_peak[legit], LEGIT_SUSPEND_MAX))
    return [medium, high, extreme]


def check_thresholds(levels: Sequence[float]) -> None:
    """Refuses a card whose warn, restrict and suspend thresholds are closer than MIN_GAP."""
    medium, high, extreme = levels
    if high - medium < MIN_GAP or extreme - high < MIN_GAP:
        raise ValueError(f"thresholds {medium:g} / {high:g} / {extreme:g} are closer than {MIN_GAP:g} points apart")


def map_points(old: float, old_levels: Sequence[float], new_levels: Sequence[float]) -> int:
    """A hand-set rule's points on the new scale: the same level reached alone (piecewise linear)."""
    xs, ys = [0.0, *old_levels], [0.0, *new_levels]
    if old <= 0:
        return int(round(old * ys[1] / xs[1]))
    for i in range(1, len(xs)):
        if old <= xs[i]:
            return int(round(ys[i - 1] + (old - xs[i - 1]) * (ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1])))
    return int(round(ys[-1] + (old - xs[-1]) * (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])))


def hand_set_rules(base: Scorecard) -> list[tuple[Rule, str]]:
    out = []
    for r in base.rules:
        why = [HAND_SET_FEATURES[n] for n, _, _ in r.conditions if n in HAND_SET_FEATURES]
        if why:
            out.append((r, why[0]))
    return out


# --- the card -------------------------------------------------------------------------------------------------


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


BINARY = {"enterprise_bound", "abroad"}


def bin_range(b: Bin) -> tuple[str, str]:
    """The bin in words (en, zh), so a reason reads right for the whole bin: "2 calls ... (1 to 2)", not a
    figure that looks like a rule of its own."""
    if b.feature in BINARY:
        return "", ""
    share = "share" in b.feature
    integer = not share and not b.feature.startswith("mean_")

    def v(x: float) -> str:
        return f"{x:.0%}" if share else _fmt(x)

    lo, hi = b.lo, b.hi
    if lo is not None and hi is not None:
        if integer and hi - lo == 1:
            return "", ""  # one value: the figure says it
        top = _fmt(hi - 1) if integer else v(hi)
        return (
            (f" ({v(lo)} to {top})", f"（{v(lo)}至{top}）")
            if integer
            else (f" ({v(lo)} to under {top})", f"（{v(lo)}至{top}以下）")
        )
    if lo is not None:
        if share and lo >= 1:
            return " (all of them)", "（全部）"
        return f" (at least {v(lo)})", f"（不少于{v(lo)}）"
    if hi is not None:
        if integer and hi <= 1:
            return "", ""  # none: the figure says it
        return f" (under {v(hi)})", f"（少于{v(hi)}）"
    return "", ""


def name_rules(learned: Learned) -> list[CardRule]:
    """Codes and sentences. A code names a feature and a sign, whatever the bin: the bins of one feature never
    hold together, and a holder verified against a pattern (cleared of its codes) stays cleared when the same
    pattern comes back a little stronger."""
    rules = []
    for b, p in zip(learned.bins, learned.points, strict=True):
        against, favour = CODES.get(b.feature, (b.feature.upper(), b.feature.upper() + "_FAVOUR"))
        en, zh = TEMPLATES.get(
            b.feature, (f"{b.feature.replace('_', ' ')}: {{{b.feature}}}", f"指标 {b.feature}：{{{b.feature}}}")
        )
        en_range, zh_range = bin_range(b)
        rules.append(CardRule(against if p > 0 else favour, b.conditions(), p, en=en + en_range, zh=zh + zh_range))
    return rules


def build(e: Events, lines: np.ndarray, base: Scorecard, seed: int = 0) -> tuple[list[CardRule], list[float], Learned]:
    learned = fit(e, lines, seed)
    rules = name_rules(learned)
    old_levels = [base.lowest[1], base.lowest[2], base.lowest[3]]
    hand = hand_set_rules(base)
    levels = thresholds(e, rules, lines)
    for _ in range(3):  # hand-set points follow the thresholds, which they move a little
        mapped = [
            CardRule(r.code, r.conditions, map_points(r.points, old_levels, levels), r.weak, why, r.en, r.zh)
            for r, why in hand
        ]
        levels = thresholds(e, rules + mapped, lines)
    return rules + mapped, levels, learned


def to_scorecard(version: str, rules: Sequence[CardRule], levels: Sequence[float]) -> Scorecard:
    return Scorecard(
        version,
        [Rule(r.code, r.conditions, float(r.points), r.zh, r.en, r.weak) for r in rules],
        list(zip(("medium", "high", "extreme"), levels, strict=True)),
        ACTION_OF_LEVEL,
    )


def write_yaml(
    path: str | Path, version: str, rules: Sequence[CardRule], levels: Sequence[float], trained: dict
) -> None:
    q = lambda s: json.dumps(s, ensure_ascii=False)  # noqa: E731  (a YAML double-quoted string)
    out = [
        "# Scorecard: points per rule, level thresholds and the level -> action table. Versioned configuration,",
        "# written by `psctl train` (pscli/train.py): learned rules come from an L1 logistic regression over binned",
        "# features of labelled scenarios; `hand_set: true` rules have no data behind them and keep hand-set points",
        "# (mapped so that each alone still reaches the same level). Retrain rather than edit the learned points.",
        "#",
        "# A rule fires when all its conditions hold; conditions name features (services/scoring/features.py,",
        "# FEATURE_NAMES) and compare with >=, <=, >, < or ==, or give a list of comparisons on one feature (a bin:",
        '# `calls_1h: [">=8", "<15"]`). Sentences may name any feature in {braces}. Points > 0 are reasons against',
        "# the line; points <= 0 are mitigations (factors in the holder's favour). One code may name several bins of",
        "# one feature (they never hold together). `weak: true` marks weak evidence: it adds at most a warning (beyond",
        "# a warning the action is what the other evidence reaches without it).",
        f"version: {q(version)}",
        "trained:",
        *[f"  {line}" for line in _yaml_block(trained)],
        "levels:            # lowest score of each level",
        *[f"  {n}: {_fmt(v)}" for n, v in zip(("medium", "high", "extreme"), levels, strict=True)],
        "actions:",
        *[f"  {k}: {v}" for k, v in ACTION_OF_LEVEL.items()],
        "rules:",
    ]
    against = sorted((r for r in rules if r.points > 0), key=lambda r: (bool(r.hand_set), -r.points))
    favour = sorted((r for r in rules if r.points <= 0), key=lambda r: (bool(r.hand_set), r.points))
    for title, group in (("Evidence against the line", against), ("In the holder's favour: lowers the score", favour)):
        out.append(f"  # --- {title} " + "-" * max(3, 100 - len(title)))
        for r in group:
            when: dict[str, list[str]] = {}
            for name, op, value in r.conditions:
                when.setdefault(name, []).append(f"{op}{_fmt(value)}")
            parts = [f"{n}: {q(v[0]) if len(v) == 1 else '[' + ', '.join(map(q, v)) + ']'}" for n, v in when.items()]
            out.append(f"  - code: {r.code}")
            if r.hand_set:
                out.append(f"    hand_set: true  # {r.hand_set}")
            out.append(f"    when: {{{', '.join(parts)}}}")
            out.append(f"    points: {r.points}")
            if r.weak:
                out.append("    weak: true")
            out.append(f"    zh: {q(r.zh)}")
            out.append(f"    en: {q(r.en)}")
    Path(path).write_text("\n".join(out) + "\n", encoding="utf-8")


def _yaml_block(d: dict) -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(f"{k}:")
            out += [f"  {line}" for line in _yaml_block(v)]
        elif isinstance(v, list):
            out.append(f"{k}:")
            for item in v:
                if isinstance(item, dict):
                    first, *rest = _yaml_block(item)
                    out += [f"  - {first}", *[f"    {line}" for line in rest]]
                else:
                    out.append(f"  - {json.dumps(item, ensure_ascii=False)}")
        else:
            out.append(f"{k}: {json.dumps(v, ensure_ascii=False)}")
    return out


# --- replay through the real engine ---------------------------------------------------------------------------


def sandbox_decisions(scenario: str | Path, card: Scorecard, out: str | Path) -> None:
    """The decision file `psctl replay` writes, from the engine in-process (no stack)."""
    box = Sandbox(card)
    for item in read(str(scenario)).requests():
        box.apply(item)
    with open(out, "w", encoding="utf-8") as f:
        for v in box.verdicts().verdicts:
            f.write(json.dumps(decision_line(v), ensure_ascii=False) + "\n")


def replay_metrics(scenarios: Sequence[str | Path], card: Scorecard) -> tuple[dict, list[ev.Report]]:
    reports = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, s in enumerate(scenarios):
            d = Path(tmp) / f"d{i}.jsonl"
            sandbox_decisions(s, card, d)
            reports.append(ev.evaluate(s, d))
    return summary(reports), reports


def summary(reports: Sequence[ev.Report]) -> dict:
    legit = sum(r.legit_lines for r in reports)
    fraud = sum(r.fraud_lines for r in reports)
    calls = [c for r in reports for c in r.fraud_calls_before_action]
    return {
        "legit_lines": legit,
        "legit_suspended": round(sum(r.legit_suspended for r in reports) / max(1, legit), 4),
        "legit_any_action": round(sum(r.legit_acted for r in reports) / max(1, legit), 4),
        "fraud_lines": fraud,
        "fraud_acted": round(sum(r.fraud_acted for r in reports) / max(1, fraud), 4),
        "median_calls_before_action": statistics.median(calls) if calls else None,
    }


MET = {
    "legit_suspended": (0.005, "<="),
    "legit_any_action": (0.02, "<="),
    "fraud_acted": (0.97, ">="),
    "median_calls_before_action": (8, "<="),
}


def format_summary(m: dict) -> str:
    rows = []
    for k, v in m.items():
        target = MET.get(k)
        mark = ""
        if target is not None and v is not None:
            ok = v <= target[0] if target[1] == "<=" else v >= target[0]
            mark = f"  (target {target[1]} {target[0]:g}: {'met' if ok else 'MISSED'})"
        shown = f"{v:.2%}" if isinstance(v, float) and k != "median_calls_before_action" else str(v)
        rows.append(f"  {k:<28} {shown}{mark}")
    return "\n".join(rows)


def train(
    scenarios: Sequence[str | Path],
    out: str | Path,
    version: str | None = None,
    base_path: str | Path = DEFAULT_PATH,
    seed: int = 0,
    today: str | None = None,
    note: str = "",
) -> dict:
    """Fits, writes the new scorecard to `out` and returns its `trained` metadata."""
    from sklearn import __version__ as sklearn_version

    base = load(Path(base_path))
    e = collect(scenarios)
    lines = np.arange(len(e.msisdns))
    rules, levels, learned = build(e, lines, base, seed)
    today = today or datetime.now(UTC).date().isoformat()
    version = version or f"scorecard-trained-{today}-{e.digest[:8]}"
    metrics, _ = replay_metrics(scenarios, to_scorecard(version, rules, levels))
    trained = {
        "by": "psctl train (pscli/train.py)",
        "date": today,
        "library": f"scikit-learn {sklearn_version}",
        "model": f"L1 logistic regression over binned features, C={learned.c:g}, {SCALE:g} points per unit log-odds"
        + (f", the {MAX_LEARNED} heaviest bins kept" if learned.truncated else ""),
        "data": [{"file": name, "sha256": digest} for name, digest in e.sources],
        "data_sha256": e.digest,
        **({"data_note": note} if note else {}),
        "events": int(e.x.shape[0]),
        "thresholds_rule": f"warn: at most {LEGIT_ACTION_MAX:.1%} of legitimate training lines; restrict: at most"
        f" {LEGIT_RESTRICT_MAX:.1%}, {MIN_GAP:g}+ points above warn, and above every legitimate line held"
        f" {TENURED_YEARS}+ years with a busy hour ({BUSY_CALLS_1H:g}+ calls); suspend: at most"
        f" {LEGIT_SUSPEND_MAX:.1%}, {MIN_GAP:g}+ points above restrict",
        "learned_rules": len(learned.bins),
        "hand_set_rules": sum(1 for r in rules if r.hand_set),
        "metrics_on_training_data": metrics,
    }
    check_thresholds(levels)
    write_yaml(out, version, rules, levels, trained)
    load(Path(out))  # what was written loads
    return trained


# --- leave one persona out ------------------------------------------------------------------------------------

FAMILIES: dict[str, tuple[str, ...]] = {
    # Personas that are variations of one pattern go out together.
    "courier": ("courier", "rider"),
    "rider": ("courier", "rider"),
    "traveller": ("traveller", "returning_roamer"),
    "returning_roamer": ("traveller", "returning_roamer"),
}


def family(persona: str, personas: Iterable[str]) -> set[str]:
    """The persona and its family: those sharing its first word (scam_*, mule_*) and FAMILIES."""
    prefix = persona.split("_")[0]
    return {p for p in personas if p.split("_")[0] == prefix} | set(FAMILIES.get(persona, ())) | {persona}


@dataclass
class Holdout:
    persona: str
    left_out: list[str]
    fraud: bool
    lines: int
    acted: int
    suspended: int
    median_calls: float | None
    legit_other_action: float  # on the training lines: legitimate with any action
    fraud_other_acted: float

    def row(self) -> str:
        rate = self.acted / max(1, self.lines)
        susp = self.suspended / max(1, self.lines)
        med = "-" if self.median_calls is None else f"{self.median_calls:g}"
        what = f"recall {rate:7.2%}" if self.fraud else f"suspended {susp:6.2%}  any action {rate:6.2%}"
        return f"{self.persona:<20} {'fraud' if self.fraud else 'legit':<5} {self.lines:>6}  {what:<40} median calls {med:>4}   (left out: {', '.join(sorted(self.left_out))})"


def holdout(e: Events, persona: str, base: Scorecard, seed: int = 0) -> Holdout:
    names = set(e.personas)
    if persona not in names:
        raise ValueError(f"no persona {persona!r} in the corpus: {', '.join(sorted(names))}")
    out = family(persona, names)
    left = np.array([p in out for p in e.personas])
    train_lines = np.nonzero(~left)[0]
    rules, levels, _ = build(e, train_lines, base, seed)
    o = outcome(e, rules, levels)
    mine = np.array([p == persona for p in e.personas])
    acted = o.action[mine] > 0
    calls = o.first_calls[mine][acted]
    tr_legit = train_lines[~e.fraud[train_lines]]
    tr_fraud = train_lines[e.fraud[train_lines]]
    return Holdout(
        persona,
        sorted(out),
        bool(e.fraud[mine][0]),
        int(mine.sum()),
        int(acted.sum()),
        int((o.action[mine] == 3).sum()),
        float(statistics.median(calls.tolist())) if calls.size else None,
        float(np.mean(o.action[tr_legit] > 0)) if tr_legit.size else 0.0,
        float(np.mean(o.action[tr_fraud] > 0)) if tr_fraud.size else 0.0,
    )


def holdout_table(e: Events, personas: Sequence[str], base: Scorecard, seed: int = 0) -> list[Holdout]:
    return [holdout(e, p, base, seed) for p in personas]


def format_holdouts(rows: Sequence[Holdout]) -> str:
    out = ["leave-one-persona-out: trained without the persona and its family, thresholds set without them", ""]
    out += [r.row() for r in rows]
    weak = [r.persona for r in rows if r.fraud and r.acted / max(1, r.lines) < 0.8]
    out.append("")
    out.append("fraud personas under 80 % recall when left out: " + (", ".join(weak) if weak else "none"))
    return "\n".join(out)

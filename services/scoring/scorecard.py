"""An explainable scorecard: rules with points, levels and actions from versioned configuration.

The rules are compiled once into one Python function (conditions are checked against known feature names
and a closed set of operators), because the engine scores every outgoing call of every line.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import yaml

from contracts.case import Action, RiskLevel
from services.scoring.features import FEATURE_EXPR, FEATURE_NAMES, WEEK_TOTALS, compile_function

LEVELS = tuple(RiskLevel)
ACTIONS = tuple(Action)
_COND_RE = re.compile(r"^(>=|<=|>|<|==)\s*(-?[\d.]+)$")
DEFAULT_PATH = pathlib.Path(__file__).with_name("scorecard.yaml")


@dataclass(frozen=True)
class Rule:
    code: str
    conditions: tuple[tuple[str, str, float], ...]
    points: float
    zh: str
    en: str
    # Weak evidence (a high-risk cell passed, a new number range): alone it never goes beyond a warning.
    weak: bool = False


@dataclass(frozen=True)
class Reason:
    code: str
    text_zh: str
    text_en: str
    points: float


@dataclass(frozen=True, slots=True)
class Score:
    """What the hot path needs: no sentences formatted yet."""

    score: float
    level: int  # index in LEVELS
    action: int  # index in ACTIONS
    fired: tuple[int, ...]  # indices of the rules that fired


@dataclass(frozen=True)
class Assessment:
    score: float
    level: RiskLevel
    action: Action
    reasons: tuple[Reason, ...]  # evidence against the line (points > 0), most important first
    mitigations: tuple[Reason, ...] = ()  # factors in the holder's favour (points <= 0), strongest first


class Scorecard:
    def __init__(
        self, version: str, rules: Sequence[Rule], thresholds: Sequence[tuple[str, float]], actions: dict[str, str]
    ) -> None:
        self.version = version
        self.rules = tuple(rules)
        self.lowest = [0.0] + [dict(thresholds)[lvl] for lvl in LEVELS[1:]]
        self.level_action = [ACTIONS.index(Action(actions[lvl])) for lvl in LEVELS]
        self.warn = ACTIONS.index(Action.WARN)
        # fired(s, p, now, eng): the rules that hold, or () when none counts against the line (the hot path).
        self.fired = _compile(self.rules, gated=True)
        # fired_acting(...): the same, or () also when the evidence against the line cannot reach a warning even
        # before anything in its favour is taken off (the live engine: the action is none either way; replays
        # use `fired`, as they report every line's peak score).
        low_acts = ACTIONS[self.level_action[0]] != Action.NONE
        self.fired_acting = _compile(self.rules, gated=True, below=None if low_acts else self.lowest[1])
        # fired_all(...): every rule that holds, including those in the line's favour.
        self.fired_all = _compile(self.rules, gated=False)

    def _level(self, points: float) -> int:
        for i in (3, 2, 1):
            if points >= self.lowest[i]:
                return i
        return 0

    def score(self, fired: tuple[int, ...]) -> Score:
        rules = self.rules
        points = max(0.0, sum(rules[i].points for i in fired))
        level = self._level(points)
        action = self.level_action[level]
        if action > self.warn and any(rules[i].weak for i in fired):
            # Weak evidence (a high-risk cell passed) adds at most a warning: beyond that, the action is what the
            # rest of the evidence reaches without it.
            strong = self.level_action[self._level(sum(rules[i].points for i in fired if not rules[i].weak))]
            action = min(action, max(self.warn, strong))
        return Score(points, level, action, fired)

    def positive_codes(self, s: Score) -> frozenset[str]:
        return frozenset(self.rules[i].code for i in s.fired if self.rules[i].points > 0)

    def explain(self, s: Score, f: dict[str, float], action: int | None = None) -> Assessment:
        fmt = {k: (int(v) if float(v).is_integer() else round(v, 2)) for k, v in f.items()}
        # Reasons are only the evidence against the line, heaviest first; what speaks for the holder is kept
        # apart (mitigations, strongest first), so nobody reads "in use for 14 years" out as a reason.
        fired = [self.rules[i] for i in s.fired]
        against = sorted((r for r in fired if r.points > 0), key=lambda r: -r.points)
        favour = sorted((r for r in fired if r.points <= 0), key=lambda r: r.points)

        def texts(rules: list[Rule]) -> tuple[Reason, ...]:
            return tuple(Reason(r.code, r.zh.format(**fmt), r.en.format(**fmt), r.points) for r in rules)

        level, act = LEVELS[s.level], ACTIONS[s.action if action is None else action]
        return Assessment(s.score, level, act, texts(against), texts(favour))


def split_reason_texts(texts: Sequence[Sequence]) -> tuple[list, list]:
    """Stored [code, zh, en, points] rows split into (against the line, in the holder's favour) by the sign of
    the points, each most important first. Rows stored before the split hold both in one list."""
    against = sorted((r for r in texts if r[3] > 0), key=lambda r: -r[3])
    favour = sorted((r for r in texts if r[3] <= 0), key=lambda r: r[3])
    return against, favour


def _compile(rules: Sequence[Rule], gated: bool, below: float | None = None) -> Callable[..., tuple[int, ...]]:
    """fired(s, p, now, eng) -> indices of the rules whose conditions all hold, computing only what it reaches.

    Rules against the line are tried first. `gated`: when none holds (most calls) the line has nothing to
    answer for and the rules in its favour are not worth computing, so it returns (). `below`: also when the
    points against the line add up to less than this; then the heaviest rules are tried first, and it returns as
    soon as the points of the rules still to try could no longer lift the line to `below`.
    """
    body = ["    out = []", "    against = 0.0"]
    against = [i for i, r in enumerate(rules) if r.points > 0]
    # Whole points add up exactly in any order (the order is free: the indices are sorted at the end).
    early = below is not None and all(float(rules[i].points).is_integer() for i in against)
    if early:
        against.sort(key=lambda i: -rules[i].points)
    order = against + [i for i, r in enumerate(rules) if r.points <= 0]
    left = sum(rules[i].points for i in against)  # the points of the rules against the line not yet tried
    week = False  # whether `w` (the week's totals) is set yet: only once a rule reads it
    for n, i in enumerate(order):
        r = rules[i]
        if gated and n and rules[order[n - 1]].points > 0 >= r.points:
            body.append("    if not out: return ()" if below is None else f"    if against < {below!r}: return ()")
        if early and below is not None and r.points > 0 and left < below:
            body.append(f"    if against < {below - left!r}: return ()")
        left -= max(r.points, 0.0)
        exprs = [FEATURE_EXPR[name] for name, _, _ in r.conditions]
        if not week and any("w[" in e for e in exprs):
            body.append(WEEK_TOTALS)
            week = True
        cond = " and ".join(f"{e} {op} {value!r}" for e, (_, op, value) in zip(exprs, r.conditions, strict=True))
        add = f"; against += {r.points!r}" if below is not None and r.points > 0 else ""
        body.append(f"    if {cond or 'True'}: out.append({i}){add}")
    body.append("    out.sort()")
    body.append("    return tuple(out)")
    return compile_function("fired", body, week=False)


def load(path: pathlib.Path = DEFAULT_PATH) -> Scorecard:
    raw = yaml.safe_load(path.read_text())
    rules = []
    known = set(FEATURE_NAMES)
    for r in raw["rules"]:
        conds = []
        for name, exprs in r["when"].items():
            # One comparison, or a list of them on the same feature (a bin: [">=8", "<15"]).
            for expr in exprs if isinstance(exprs, list) else [exprs]:
                m = _COND_RE.match(str(expr))
                if m is None or name not in known:
                    raise ValueError(f"rule {r['code']}: bad condition {name}: {expr!r}")
                conds.append((name, m[1], float(m[2])))
        rule = Rule(r["code"], tuple(conds), float(r["points"]), r["zh"], r["en"], bool(r.get("weak", False)))
        for text in (rule.zh, rule.en):
            text.format(**dict.fromkeys(FEATURE_NAMES, 0))  # a misspelt placeholder fails at load, not mid-stream
        rules.append(rule)
    levels = {k: float(v) for k, v in raw["levels"].items()}
    actions = dict(raw["actions"])
    if (
        set(levels) != set(LEVELS[1:])
        or not levels[RiskLevel.MEDIUM] <= levels[RiskLevel.HIGH] <= levels[RiskLevel.EXTREME]
    ):
        raise ValueError("levels must give increasing lowest scores for medium, high and extreme")
    if set(actions) != set(LEVELS) or not set(actions.values()) <= set(ACTIONS):
        raise ValueError("actions must map every level to none, warn, restrict or suspend")
    return Scorecard(str(raw["version"]), rules, tuple(levels.items()), actions)

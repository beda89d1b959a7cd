"""An explainable scorecard: rules with points, levels and actions from versioned configuration."""

from __future__ import annotations

import operator
import pathlib
import re
from dataclasses import dataclass

import yaml

LEVELS = ("low", "medium", "high", "extreme")
ACTIONS = ("none", "warn", "restrict", "suspend")
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_COND_RE = re.compile(r"^(>=|<=|>|<|==)\s*(-?[\d.]+)$")
DEFAULT_PATH = pathlib.Path(__file__).with_name("scorecard.yaml")


@dataclass(frozen=True)
class Rule:
    code: str
    conditions: tuple[tuple[str, str, float], ...]
    points: float
    zh: str
    en: str

    def fires(self, f: dict[str, float]) -> bool:
        return all(_OPS[op](f[name], value) for name, op, value in self.conditions)


@dataclass(frozen=True)
class Reason:
    code: str
    text_zh: str
    text_en: str
    points: float


@dataclass(frozen=True)
class Assessment:
    score: float
    level: str
    action: str
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class Scorecard:
    version: str
    rules: tuple[Rule, ...]
    thresholds: tuple[tuple[str, float], ...]  # (level, lowest score), highest first
    actions: dict[str, str]

    def assess(self, f: dict[str, float]) -> Assessment:
        fired = [r for r in self.rules if r.fires(f)]
        score = max(0.0, sum(r.points for r in fired))
        level = next((lvl for lvl, lowest in self.thresholds if score >= lowest), "low")
        values = {**f, "account_age_years": int(f["account_age_days"] // 365)}
        fmt = {k: (int(v) if float(v).is_integer() else round(v, 2)) for k, v in values.items()}
        # Most important first: the evidence against the line, by weight, then what speaks for it.
        ordered = sorted(fired, key=lambda r: -r.points)
        reasons = tuple(Reason(r.code, r.zh.format(**fmt), r.en.format(**fmt), r.points) for r in ordered)
        return Assessment(score, level, self.actions[level], reasons)


def load(path: pathlib.Path = DEFAULT_PATH) -> Scorecard:
    raw = yaml.safe_load(path.read_text())
    rules = []
    for r in raw["rules"]:
        conds = []
        for name, expr in r["when"].items():
            m = _COND_RE.match(str(expr))
            if m is None:
                raise ValueError(f"rule {r['code']}: bad condition {name}: {expr!r}")
            conds.append((name, m[1], float(m[2])))
        rules.append(Rule(r["code"], tuple(conds), float(r["points"]), r["zh"], r["en"]))
    thresholds = tuple(sorted(((k, float(v)) for k, v in raw["levels"].items()), key=lambda t: -t[1]))
    actions = dict(raw["actions"])
    if set(actions) != set(LEVELS) or not set(actions.values()) <= set(ACTIONS):
        raise ValueError("actions must map every level to none, warn, restrict or suspend")
    return Scorecard(str(raw["version"]), tuple(rules), thresholds, actions)

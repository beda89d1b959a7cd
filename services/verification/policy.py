"""The verification policy table and the judgement of a check against it (no I/O here)."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import yaml

from carrier.common.v1.common_pb2 import RiskLevel
from carrier.verification.v1.verification_pb2 import (
    ROUTE_IN_PERSON,
    ROUTE_IN_PERSON_WITH_REVIEW,
    ROUTE_ONLINE,
)

ROUTES = {"online": ROUTE_ONLINE, "in_person": ROUTE_IN_PERSON, "in_person_with_review": ROUTE_IN_PERSON_WITH_REVIEW}
LEVELS = {
    "low": RiskLevel.RISK_LEVEL_LOW,
    "medium": RiskLevel.RISK_LEVEL_MEDIUM,
    "high": RiskLevel.RISK_LEVEL_HIGH,
    "extreme": RiskLevel.RISK_LEVEL_EXTREME,
}
DEFAULT_PATH = pathlib.Path(__file__).with_name("policy.yaml")


@dataclass(frozen=True)
class RouteRule:
    route: int
    evidence: tuple[str, ...]
    description_zh: str
    description_en: str


@dataclass(frozen=True)
class Policy:
    version: str
    by_level: dict[int, tuple[RouteRule, ...]]

    def rule(self, level: int, route: int) -> RouteRule | None:
        return next((r for r in self.by_level.get(level, ()) if r.route == route), None)


def load(path: pathlib.Path = DEFAULT_PATH) -> Policy:
    raw = yaml.safe_load(path.read_text())
    by_level: dict[int, tuple[RouteRule, ...]] = {}
    for level_name, rules in raw["levels"].items():
        by_level[LEVELS[level_name]] = tuple(
            RouteRule(
                ROUTES[r["route"]],
                tuple(r["evidence"]),
                raw["descriptions"][r["route"]]["zh"],
                raw["descriptions"][r["route"]]["en"],
            )
            for r in rules
        )
    return Policy(str(raw["version"]), by_level)


def judge(rule: RouteRule, checks: dict[str, bool]) -> list[str]:
    """Failure codes: every evidence item the rule demands that did not check out."""
    return [f"{item.upper()}_FAILED" for item in rule.evidence if not checks.get(item, False)]

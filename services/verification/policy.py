"""The verification policy table and the judgement of a check against it (no I/O beyond reading the file)."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import yaml

from carrier.common.v1.common_pb2 import RiskLevel
from carrier.verification.v1.verification_pb2 import (
    ROUTE_IN_PERSON,
    ROUTE_IN_PERSON_WITH_REVIEW,
    ROUTE_ONLINE,
    Route,
)
from pscommon.durations import seconds

ROUTES = {"online": ROUTE_ONLINE, "in_person": ROUTE_IN_PERSON, "in_person_with_review": ROUTE_IN_PERSON_WITH_REVIEW}
LEVELS = {
    "low": RiskLevel.RISK_LEVEL_LOW,
    "medium": RiskLevel.RISK_LEVEL_MEDIUM,
    "high": RiskLevel.RISK_LEVEL_HIGH,
    "extreme": RiskLevel.RISK_LEVEL_EXTREME,
}
EVIDENCE = {"holder_match", "liveness", "risk_notice", "province_code", "hall", "agent", "extra_evidence"}
KNOWLEDGE = {"service_password", "recent_contacts"}
DEFAULT_PATH = pathlib.Path(__file__).with_name("policy.yaml")
RESTORED_BEFORE = "RESTORED_BEFORE"


@dataclass(frozen=True)
class RouteRule:
    route: Route.ValueType
    evidence: tuple[str, ...]
    optional: tuple[str, ...]
    description_zh: str
    description_en: str
    where_zh: str
    where_en: str

    @property
    def needs_reviewer(self) -> bool:
        return self.route == ROUTE_IN_PERSON_WITH_REVIEW


@dataclass(frozen=True)
class Limit:
    max_failures: int
    window_s: int
    lockout_s: int


@dataclass(frozen=True)
class Rate:
    max: int
    window_s: int


@dataclass(frozen=True)
class Document:
    zh: str
    en: str


@dataclass(frozen=True)
class Policy:
    version: str
    by_level: dict[RiskLevel.ValueType, tuple[RouteRule, ...]]
    restored_before: RouteRule
    per_line: Limit
    per_caller: Limit
    evidence_retention_s: int
    review_sla_s: int
    restore_after_pass_s: int
    lookups_per_line: Rate
    lookups_per_principal: Rate
    documents: dict[str, Document]

    def rules(self, level: RiskLevel.ValueType, restored_before: bool) -> tuple[RouteRule, ...]:
        """The routes accepted: by risk level, unless the line was restored before ("one restore chance")."""
        return (self.restored_before,) if restored_before else self.by_level[level]

    def rule(
        self, level: RiskLevel.ValueType, route: Route.ValueType, restored_before: bool = False
    ) -> RouteRule | None:
        return next((r for r in self.rules(level, restored_before) if r.route == route), None)


class PolicyError(ValueError):
    pass


def _rule(raw: dict, item: dict) -> RouteRule:
    name = item["route"]
    if name not in ROUTES:
        raise PolicyError(f"unknown route {name!r}; routes: {sorted(ROUTES)}")
    unknown = (set(item["evidence"]) - EVIDENCE) | (set(item.get("optional", ())) - KNOWLEDGE)
    if unknown:
        raise PolicyError(f"route {name!r}: unknown evidence {sorted(unknown)}")
    d = raw["descriptions"][name]
    return RouteRule(
        ROUTES[name],
        tuple(item["evidence"]),
        tuple(item.get("optional", ())),
        d["zh"],
        d["en"],
        d["where_zh"],
        d["where_en"],
    )


def _limit(raw: dict) -> Limit:
    return Limit(int(raw["max_failures"]), seconds(raw["window"]), seconds(raw["lockout"]))


def _rate(raw: dict) -> Rate:
    return Rate(int(raw["max"]), seconds(raw["window"]))


def load(path: pathlib.Path | str = DEFAULT_PATH) -> Policy:
    raw = yaml.safe_load(pathlib.Path(path).read_text())
    try:
        by_level = {LEVELS[name]: tuple(_rule(raw, r) for r in rules) for name, rules in raw["levels"].items()}
        if set(by_level) != set(LEVELS.values()) or not all(by_level.values()):
            raise PolicyError(f"every risk level needs at least one route: {sorted(LEVELS)}")
        restored = ROUTES.get(raw["restored_before"])
        restored_rule = next((r for rules in by_level.values() for r in rules if r.route == restored), None)
        if restored_rule is None:
            raise PolicyError("restored_before must name a route that some risk level uses")
        return Policy(
            version=str(raw["version"]),
            by_level=by_level,
            restored_before=restored_rule,
            per_line=_limit(raw["attempts"]["per_line"]),
            per_caller=_limit(raw["attempts"]["per_caller"]),
            evidence_retention_s=seconds(raw["evidence_retention"]),
            review_sla_s=seconds(raw["review_sla"]),
            restore_after_pass_s=seconds(raw["restore_after_pass"]),
            lookups_per_line=_rate(raw["lookups"]["per_line"]),
            lookups_per_principal=_rate(raw["lookups"]["per_principal"]),
            documents={str(code): Document(str(d["zh"]), str(d["en"])) for code, d in raw["documents"].items()},
        )
    except (KeyError, TypeError) as err:
        raise PolicyError(f"{path}: missing or malformed {err}") from err


def documents_asked(p: Policy, codes: str) -> tuple[str, str] | None:
    """The wording (zh, en) of a reviewer's request for documents ("payslip,rental_contract"); None when a code
    is not on the policy's list."""
    asked = [c.strip() for c in codes.split(",") if c.strip()]
    if not asked or any(c not in p.documents for c in asked):
        return None
    return "、".join(p.documents[c].zh for c in asked), "; ".join(p.documents[c].en for c in asked)


def judge(rule: RouteRule, checks: dict[str, bool]) -> list[str]:
    """Failure codes: every evidence item the rule demands, and every optional one offered, that did not check out.
    An optional item absent from `checks` was not offered."""
    failed = [item for item in rule.evidence if not checks.get(item, False)]
    failed += [item for item in rule.optional if checks.get(item) is False]
    return [f"{item.upper()}_FAILED" for item in failed]

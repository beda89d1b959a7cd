"""Score a decision file against the personas of its scenario (formats: specs/scenario-jsonl.md).

The scenario's `subscriber` lines carry `persona` and `fraud` (see pscli.personas); the decision file has one
object per subscriber. A line without a decision counts as action "none".

    python -m pscli.evaluate SCENARIO.jsonl DECISIONS.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from contracts.case import Action

ACTIONS = tuple(Action)
# Design §6: legitimate heavy users fully suspended at most 1 %.
HEAVY_USERS = ("courier", "rider", "truck_driver", "traveller", "returning_roamer")
TARGETS = {"legit_suspended_max": 0.01, "heavy_suspended_max": 0.01, "fraud_acted_min": 0.95, "median_calls_max": 10}


@dataclass
class PersonaStats:
    fraud: bool
    lines: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    calls_before_action: list[int] = field(default_factory=list)  # acted lines with an acted_at

    @property
    def acted(self) -> int:
        return self.lines - self.actions[Action.NONE]

    @property
    def median_calls(self) -> float | None:
        return statistics.median(self.calls_before_action) if self.calls_before_action else None


@dataclass
class Report:
    personas: dict[str, PersonaStats]
    legit_lines: int
    legit_suspended: int
    legit_acted: int
    heavy_lines: int
    heavy_suspended: int
    fraud_lines: int
    fraud_acted: int
    fraud_calls_before_action: list[int]
    legit_reasons: list[tuple[str, int]]  # reason codes behind actions on legitimate lines, most common first
    missing_decisions: int  # subscribers without a decision (counted as "none")
    unknown_decisions: int  # decisions for numbers that are not subscribers of the scenario

    @property
    def legit_suspend_rate(self) -> float:
        return _rate(self.legit_suspended, self.legit_lines)

    @property
    def legit_action_rate(self) -> float:
        return _rate(self.legit_acted, self.legit_lines)

    @property
    def heavy_suspend_rate(self) -> float:
        return _rate(self.heavy_suspended, self.heavy_lines)

    @property
    def fraud_recall(self) -> float:
        return _rate(self.fraud_acted, self.fraud_lines)

    @property
    def median_calls_before_action(self) -> float | None:
        calls = self.fraud_calls_before_action
        return statistics.median(calls) if calls else None


def _rate(n: int, d: int) -> float:
    return n / d if d else 0.0


def _read_decisions(path: str | Path) -> dict[str, dict]:
    decisions: dict[str, dict] = {}
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            d = json.loads(raw)
            action = d.get("action", Action.NONE)
            if action not in ACTIONS:
                raise ValueError(f"{path}:{number}: action: {action!r} is not one of {', '.join(ACTIONS)}")
            acted_at = d.get("acted_at")
            d["_acted_at"] = datetime.fromisoformat(acted_at) if acted_at and action != Action.NONE else None
            decisions[d["msisdn"]] = d
    return decisions


def evaluate(scenario_path: str | Path, decisions_path: str | Path) -> Report:
    decisions = _read_decisions(decisions_path)
    acted_at = {m: d["_acted_at"] for m, d in decisions.items() if d["_acted_at"] is not None}
    out_before: Counter[str] = Counter()  # outgoing cdrs up to and including acted_at
    subscribers: dict[str, tuple[str, bool]] = {}
    with open(scenario_path, encoding="utf-8") as f:
        for raw in f:
            o = json.loads(raw)
            kind = o["kind"]
            if kind == "cdr":
                if o["direction"] == "out" and (t := acted_at.get(o["msisdn"])) is not None:
                    if datetime.fromisoformat(o["start"]) <= t:
                        out_before[o["msisdn"]] += 1
            elif kind == "subscriber":
                subscribers[o["msisdn"]] = (o.get("persona", "unknown"), bool(o.get("fraud", False)))

    personas: dict[str, PersonaStats] = {}
    legit_reasons: Counter[str] = Counter()
    fraud_calls: list[int] = []
    for msisdn, (persona, fraud) in subscribers.items():
        stats = personas.setdefault(persona, PersonaStats(fraud))
        d = decisions.get(msisdn)
        action = d.get("action", Action.NONE) if d else Action.NONE
        stats.lines += 1
        stats.actions[action] += 1
        if action == Action.NONE:
            continue
        if msisdn in acted_at:
            stats.calls_before_action.append(out_before[msisdn])
            if fraud:
                fraud_calls.append(out_before[msisdn])
        if not fraud and d is not None:
            legit_reasons.update(d.get("reasons") or [])

    legit = [s for s in personas.values() if not s.fraud]
    heavy = [s for name, s in personas.items() if not s.fraud and name in HEAVY_USERS]
    scams = [s for s in personas.values() if s.fraud]
    return Report(
        personas=dict(sorted(personas.items(), key=lambda kv: (kv[1].fraud, -kv[1].lines, kv[0]))),
        legit_lines=sum(s.lines for s in legit),
        legit_suspended=sum(s.actions[Action.SUSPEND] for s in legit),
        legit_acted=sum(s.acted for s in legit),
        heavy_lines=sum(s.lines for s in heavy),
        heavy_suspended=sum(s.actions[Action.SUSPEND] for s in heavy),
        fraud_lines=sum(s.lines for s in scams),
        fraud_acted=sum(s.acted for s in scams),
        fraud_calls_before_action=fraud_calls,
        legit_reasons=legit_reasons.most_common(10),
        missing_decisions=sum(1 for m in subscribers if m not in decisions),
        unknown_decisions=sum(1 for m in decisions if m not in subscribers),
    )


def passes(report: Report) -> list[str]:
    """The targets the report misses (empty when all are met)."""
    failed = []
    if report.legit_suspend_rate > TARGETS["legit_suspended_max"]:
        failed.append(f"legitimate lines suspended {report.legit_suspend_rate:.2%} > 1%")
    if report.heavy_suspend_rate > TARGETS["heavy_suspended_max"]:
        failed.append(f"legitimate heavy users suspended {report.heavy_suspend_rate:.2%} > 1%")
    if report.fraud_recall < TARGETS["fraud_acted_min"]:
        failed.append(f"fraud lines acted on {report.fraud_recall:.2%} < 95%")
    median = report.median_calls_before_action
    if median is None:
        failed.append("no fraud line acted on: no median of outgoing calls before action")
    elif median > TARGETS["median_calls_max"]:
        failed.append(f"median outgoing calls before action on fraud {median:g} > 10")
    return failed


def format_report(report: Report) -> str:
    def med(v: float | None) -> str:
        return "-" if v is None else f"{v:g}"

    rows = [f"{'persona':<20} {'fraud':<5} {'lines':>6} " + " ".join(f"{a:>8}" for a in ACTIONS) + "  median calls"]
    for name, s in report.personas.items():
        counts = " ".join(f"{s.actions[a]:>8}" for a in ACTIONS)
        rows.append(f"{name:<20} {'yes' if s.fraud else 'no':<5} {s.lines:>6} {counts}  {med(s.median_calls):>12}")
    rows += [
        "",
        f"legitimate suspended   {report.legit_suspended}/{report.legit_lines} = {report.legit_suspend_rate:.2%}",
        f"heavy users suspended  {report.heavy_suspended}/{report.heavy_lines} = {report.heavy_suspend_rate:.2%}",
        f"legitimate any action  {report.legit_acted}/{report.legit_lines} = {report.legit_action_rate:.2%}",
        f"fraud acted on         {report.fraud_acted}/{report.fraud_lines} = {report.fraud_recall:.2%}",
        f"median outgoing calls before first action (fraud): {med(report.median_calls_before_action)}",
    ]
    if report.legit_reasons:
        rows.append("reasons on legitimate lines: " + ", ".join(f"{r} {n}" for r, n in report.legit_reasons))
    if report.missing_decisions or report.unknown_decisions:
        rows.append(f"subscribers without a decision: {report.missing_decisions}; unknown: {report.unknown_decisions}")
    failed = passes(report)
    rows.append("targets: " + ("all met" if not failed else "MISSED: " + "; ".join(failed)))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pscli.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("scenario")
    ap.add_argument("decisions")
    a = ap.parse_args(argv)
    report = evaluate(a.scenario, a.decisions)
    print(format_report(report))
    return 1 if passes(report) else 0


if __name__ == "__main__":
    sys.exit(main())

"""The generalisation tables of docs/detection.md: each scenario replayed through the scoring engine in-process
(the sandbox `psctl train` records its metrics with, no stack) under one scorecard, scored against its labels.

    python -m pscli.tables [--card services/scoring/scorecard.yaml] SCENARIO.jsonl [...]

Prints one Markdown row per scenario, then per persona over all of them (how many lines were acted on, suspended),
and whether every target is met; exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from pscli import train
from services.scoring.scorecard import DEFAULT_PATH, load

HEADER = (
    "| scenario | legit lines | legit suspended | legit any action | fraud lines | fraud acted | median calls |\n"
    "|---|---|---|---|---|---|---|"
)


def row(name: str, m: dict) -> str:
    med = m["median_calls_before_action"]
    return (
        f"| {name} | {m['legit_lines']} | {m['legit_suspended']:.2%} | {m['legit_any_action']:.2%} |"
        f" {m['fraud_lines']} | {m['fraud_acted']:.2%} | {'-' if med is None else f'{med:g}'} |"
    )


def missed(m: dict) -> list[str]:
    out = []
    for k, (target, op) in train.MET.items():
        v = m[k]
        if v is None or (v > target if op == "<=" else v < target):
            out.append(f"{k} {v} (target {op} {target:g})")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pscli.tables")
    ap.add_argument("scenarios", nargs="+")
    ap.add_argument("--card", default=str(DEFAULT_PATH))
    a = ap.parse_args(argv)
    card = load(Path(a.card))
    print(f"scorecard {card.version}\n")
    print(HEADER)
    failed = []
    lines: Counter[str] = Counter()
    acted: Counter[str] = Counter()
    suspended: Counter[str] = Counter()
    fraud: dict[str, bool] = {}
    for s in a.scenarios:
        m, reports = train.replay_metrics([s], card)
        print(row(Path(s).name, m), flush=True)
        failed += [f"{Path(s).name}: {x}" for x in missed(m)]
        for name, p in reports[0].personas.items():
            lines[name] += p.lines
            acted[name] += p.acted
            suspended[name] += p.actions["suspend"]
            fraud[name] = p.fraud
    print("\n| persona | kind | lines | acted on | suspended |\n|---|---|---|---|---|")
    for name in sorted(lines, key=lambda n: (fraud[n], n)):
        n = lines[name]
        kind = "fraud" if fraud[name] else "legit"
        print(f"| {name} | {kind} | {n} | {acted[name] / n:.2%} | {suspended[name] / n:.2%} |")
    print()
    print("all targets met" if not failed else "MISSED:\n  " + "\n  ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

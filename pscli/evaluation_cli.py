"""psctl evaluate: replays a persona scenario (unless decisions are given) and prints the report."""

from __future__ import annotations

import sys
import tempfile

from pscli.evaluate import evaluate, format_report, passes
from pscli.replay import replay


def evaluate_command(scenario: str, decisions: str | None) -> int:
    if decisions is None:
        decisions = tempfile.NamedTemporaryFile(prefix="decisions-", suffix=".jsonl", delete=False).name
        code = replay(scenario, decisions)
        if code:
            return code
    report = evaluate(scenario, decisions)
    print(format_report(report))
    failed = passes(report)
    for target in failed:
        print(f"MISSED: {target}", file=sys.stderr)
    return 1 if failed else 0

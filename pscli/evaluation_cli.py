"""psctl evaluate: replays a persona scenario (unless decisions are given) and prints the report; psctl train and
the leave-one-persona-out tables (pscli.train)."""

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


def train_command(
    scenarios: list[str], out: str, version: str | None, base: str | None, seed: int, note: str = ""
) -> int:
    from pscli import train

    trained = train.train(scenarios, out, version, base or train.DEFAULT_PATH, seed, note=note)
    print(f"wrote {out}: {trained['learned_rules']} learned rules, {trained['hand_set_rules']} hand-set")
    print(f"data sha256 {trained['data_sha256']} ({trained['events']} events); {trained['model']}")
    print("metrics on the training data (replayed through the engine):")
    print(train.format_summary(trained["metrics_on_training_data"]))
    return 0


def holdout_command(scenario: str, persona: str | None, seed: int = 0) -> int:
    """Leave-one-persona-out: train without P (and its family), report how P is treated; all personas when
    `persona` is None."""
    from pscli import train

    base = train.load(train.DEFAULT_PATH)
    events = train.collect([scenario])
    fraud = dict(zip(events.personas, events.fraud.tolist(), strict=True))
    personas = [persona] if persona else sorted(fraud, key=lambda p: (fraud[p], p))
    try:
        rows = train.holdout_table(events, personas, base, seed)
    except ValueError as err:
        print(f"psctl evaluate: {err}", file=sys.stderr)
        return 2
    print(train.format_holdouts(rows))
    return 1 if any(r.fraud and r.acted < 0.8 * r.lines for r in rows) else 0

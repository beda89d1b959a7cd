"""The case policy: how long each step waits. Loaded by an activity so replays stay deterministic."""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass

import yaml

from pscommon.durations import seconds

POLICY_DIR = pathlib.Path(__file__).with_name("policies")


@dataclass
class CasePolicy:
    version: str
    grace_s: dict[str, int]
    reminder_every_s: int
    verification_window_s: int
    # Version 2 of the saga (defaults for policies loaded before it): after the window a barred line's case
    # stays open, reminding the holder at this pace; its history is renewed (continue-as-new) past this many
    # events; a step's transient failures are retried this many times before an operator is asked.
    dormant_reminder_every_s: int = 30 * 86400
    continue_after_events: int = 2000
    step_attempts: int = 10


def load(name: str) -> CasePolicy:
    if not re.fullmatch(r"[a-z0-9_-]+", name):
        raise ValueError(f"bad case policy name {name!r}")
    raw = yaml.safe_load((POLICY_DIR / f"{name}.yaml").read_text())
    return CasePolicy(
        version=str(raw["version"]),
        grace_s={k: seconds(v) for k, v in raw["grace"].items()},
        reminder_every_s=seconds(raw["reminder_every"]),
        verification_window_s=seconds(raw["verification_window"]),
        dormant_reminder_every_s=seconds(raw.get("dormant_reminder_every", "30d")),
        continue_after_events=int(raw.get("continue_after_events", 2000)),
        step_attempts=int(raw.get("step_attempts", 10)),
    )

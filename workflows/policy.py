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


def load(name: str) -> CasePolicy:
    if not re.fullmatch(r"[a-z0-9_-]+", name):
        raise ValueError(f"bad case policy name {name!r}")
    raw = yaml.safe_load((POLICY_DIR / f"{name}.yaml").read_text())
    return CasePolicy(
        version=str(raw["version"]),
        grace_s={k: seconds(v) for k, v in raw["grace"].items()},
        reminder_every_s=seconds(raw["reminder_every"]),
        verification_window_s=seconds(raw["verification_window"]),
    )

"""The case policy: how long each step waits. Loaded by an activity so replays stay deterministic."""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass

import yaml

_DURATION_RE = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
POLICY_DIR = pathlib.Path(__file__).with_name("policies")


@dataclass
class CasePolicy:
    version: str
    grace_s: dict[str, int]
    reminder_every_s: int
    verification_window_s: int


def seconds(text: str) -> int:
    m = _DURATION_RE.match(str(text).strip())
    if m is None:
        raise ValueError(f"bad duration {text!r}: use e.g. 30s, 15m, 24h, 7d")
    return int(m[1]) * _UNIT_S[m[2]]


def load(name: str) -> CasePolicy:
    if not re.match(r"^[a-z0-9_-]+$", name):
        raise ValueError(f"bad case policy name {name!r}")
    raw = yaml.safe_load((POLICY_DIR / f"{name}.yaml").read_text())
    return CasePolicy(
        version=str(raw["version"]),
        grace_s={k: seconds(v) for k, v in raw["grace"].items()},
        reminder_every_s=seconds(raw["reminder_every"]),
        verification_window_s=seconds(raw["verification_window"]),
    )

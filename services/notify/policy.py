"""The delivery policy: the channel ladder and the retry schedule by error class (versioned configuration)."""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass

import yaml

from pscommon.durations import seconds

CHANNELS = ("sms", "push", "email", "voice", "alternate_contact")
ERROR_CLASSES = ("temporary", "absent", "permanent")
LOCATIONS = ("home", "roaming_domestic", "roaming_international", "absent")
POLICY_DIR = pathlib.Path(__file__).parent


@dataclass(frozen=True)
class DeliveryPolicy:
    version: str
    ladder: tuple[str, ...]
    skip: dict[str, frozenset[str]]  # location -> channels not worth trying there
    retry_s: dict[str, tuple[int, ...]]  # error class -> waits before each retry of the same channel
    receipt_timeout_s: int
    give_up_after_s: int

    def ladder_at(self, location: str) -> tuple[str, ...]:
        skipped = self.skip.get(location, frozenset())
        return tuple(c for c in self.ladder if c not in skipped)


def parse(raw: dict) -> DeliveryPolicy:
    ladder = tuple(raw["ladder"])
    if not ladder or len(set(ladder)) != len(ladder) or not set(ladder) <= set(CHANNELS):
        raise ValueError(f"ladder: distinct channels among {', '.join(CHANNELS)}")
    skip = {loc: frozenset(chs) for loc, chs in (raw.get("skip") or {}).items()}
    if not set(skip) <= set(LOCATIONS) or not all(chs <= set(CHANNELS) for chs in skip.values()):
        raise ValueError(f"skip: locations among {', '.join(LOCATIONS)} mapped to channels")
    retry = {cls: tuple(seconds(w) for w in raw["retry"].get(cls) or ()) for cls in ERROR_CLASSES}
    if set(raw["retry"]) - set(ERROR_CLASSES):
        raise ValueError(f"retry: error classes are {', '.join(ERROR_CLASSES)}")
    return DeliveryPolicy(
        version=str(raw["version"]),
        ladder=ladder,
        skip=skip,
        retry_s=retry,
        receipt_timeout_s=seconds(raw["receipt_timeout"]),
        give_up_after_s=seconds(raw["give_up_after"]),
    )


def load(name: str) -> DeliveryPolicy:
    if not re.fullmatch(r"[a-z0-9_-]+", name):
        raise ValueError(f"bad delivery policy name {name!r}")
    return parse(yaml.safe_load((POLICY_DIR / f"{name}.yaml").read_text()))

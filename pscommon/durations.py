"""Durations as written in policy files: 30s, 15m, 24h, 7d."""

from __future__ import annotations

import re

_DURATION_RE = re.compile(r"([0-9]+)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str) -> int:
    m = _DURATION_RE.fullmatch(str(text).strip())
    if m is None:
        raise ValueError(f"bad duration {text!r}: use e.g. 30s, 15m, 24h, 7d")
    return int(m[1]) * _UNIT_S[m[2]]

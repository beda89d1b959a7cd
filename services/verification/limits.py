"""Failed-attempt limits: how many failures a line or a caller has left, and when a lockout lifts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.verification.policy import Limit


@dataclass(frozen=True)
class Standing:
    left: int  # failures still allowed before a lockout
    locked_until: datetime | None  # set while locked out


def standing(failures: Sequence[datetime], limit: Limit, now: datetime) -> Standing:
    """Failures inside the window count; reaching the maximum locks out until the latest one plus the lockout."""
    recent = sorted(f for f in failures if f > now - timedelta(seconds=limit.window_s))
    if len(recent) >= limit.max_failures:
        lifts = recent[-1] + timedelta(seconds=limit.lockout_s)
        if lifts > now:
            return Standing(0, lifts)
        return Standing(limit.max_failures, None)  # served its lockout: a fresh start
    return Standing(limit.max_failures - len(recent), None)

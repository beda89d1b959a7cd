"""Per-line behaviour over sliding windows in event time (no I/O, no gRPC)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)


@dataclass
class Profile:
    home_province: str
    opened_at: date
    enterprise: str = ""
    language: str = "zh"


@dataclass(slots=True)
class OutCall:
    at: datetime
    peer: str
    peer_province: str
    duration_s: int
    new_peer: bool


@dataclass
class LineWindow:
    """Outgoing calls of the last hour, and who called the line (for callbacks) over a week."""

    out_hour: deque[OutCall] = field(default_factory=deque)
    known_peers: set[str] = field(default_factory=set)
    callers: dict[str, datetime] = field(default_factory=dict)
    high_risk_cells_hour: deque[datetime] = field(default_factory=deque)

    def add_out(self, at: datetime, peer: str, peer_province: str, duration_s: int) -> None:
        self.out_hour.append(OutCall(at, peer, peer_province, duration_s, peer not in self.known_peers))
        self.known_peers.add(peer)
        self._expire(at)

    def add_in(self, at: datetime, peer: str) -> None:
        self.callers[peer] = at
        self.known_peers.add(peer)
        self._expire(at)

    def _expire(self, now: datetime) -> None:
        while self.out_hour and now - self.out_hour[0].at > HOUR:
            self.out_hour.popleft()
        while self.high_risk_cells_hour and now - self.high_risk_cells_hour[0] > HOUR:
            self.high_risk_cells_hour.popleft()
        if len(self.callers) > 512:
            for peer in [p for p, t in self.callers.items() if now - t > WEEK]:
                del self.callers[peer]


def features(w: LineWindow, p: Profile, now: datetime) -> dict[str, float]:
    calls = list(w.out_hour)
    n = len(calls)
    peers = {c.peer for c in calls}
    callbacks = sum(1 for peer in peers if peer in w.callers and now - w.callers[peer] <= WEEK)

    def share(count: int, of: int) -> float:
        return count / of if of else 0.0

    new = sum(c.new_peer for c in calls)
    remote = sum(c.peer_province != p.home_province for c in calls)
    unanswered = sum(c.duration_s == 0 for c in calls)
    return {
        "calls_1h": n,
        "distinct_peers_1h": len(peers),
        "new_peers_1h": new,
        "new_peer_share_1h": share(new, n),
        "other_province_1h": remote,
        "other_province_share_1h": share(remote, n),
        "unanswered_1h": unanswered,
        "unanswered_share_1h": share(unanswered, n),
        "mean_duration_s_1h": share(sum(c.duration_s for c in calls), n),
        "callback_share_1h": share(callbacks, len(peers)),
        "account_age_days": (now.date() - p.opened_at).days,
        "enterprise_bound": 1.0 if p.enterprise else 0.0,
        "high_risk_cell_visits_1h": len(w.high_risk_cells_hour),
    }

"""Per-line behaviour over sliding windows in event time (no I/O, no gRPC).

Counters are kept incrementally: adding a call and expiring one cost O(1), so scoring a CDR costs the same for
a line with 3 calls in its window as for one with 300. Times are integer epoch seconds of event time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

HOUR = 3600
DAY = 86400
WEEK = 7 * DAY
MONTH = 30 * DAY
# China Standard Time has no daylight saving: night activity is judged in the holder's local time.
LOCAL_OFFSET = 8 * HOUR
NIGHT_END = 6 * HOUR
# Contacts remembered per line, to tell a number never called before (oldest forgotten first).
CONTACT_CAP = 512

NEW, REMOTE, UNANSWERED, NIGHT, INTL, HOT, SMS = 1, 2, 4, 8, 16, 32, 64
CELL_ELEVATED, CELL_HIGH = 2, 3
REPORT_SOURCES = ("user_report", "national_platform", "police")


@dataclass
class Profile:
    home_province: str
    opened_at: date
    enterprise: str = ""
    language: str = "zh"

    def __post_init__(self) -> None:
        self.opened_epoch = int(datetime.combine(self.opened_at, time(), UTC).timestamp()) - LOCAL_OFFSET


class Window:
    """Outgoing contacts (calls and SMS) of the last `span` seconds, with running counts."""

    __slots__ = (
        "span",
        "items",
        "peers",
        "sms",
        "new",
        "remote",
        "unanswered",
        "night",
        "intl",
        "hot",
        "duration",
        "callbacks",
    )

    def __init__(self, span: int) -> None:
        self.span = span
        self.items: deque[tuple[int, str, int, int]] = deque()
        self.peers: dict[str, int] = {}
        self.sms = self.new = self.remote = self.unanswered = self.night = self.intl = self.hot = 0
        self.duration = 0
        self.callbacks = 0  # distinct peers in the window who have called the line

    def add(self, t: int, peer: str, flags: int, duration: int, callers: dict[str, int]) -> None:
        self.items.append((t, peer, flags, duration))
        self._count(flags, duration, 1)
        seen = self.peers.get(peer, 0)
        self.peers[peer] = seen + 1
        if not seen and peer in callers:
            self.callbacks += 1

    def expire(self, now: int, callers: dict[str, int]) -> None:
        limit = now - self.span
        items = self.items
        while items and items[0][0] <= limit:
            _, peer, flags, duration = items.popleft()
            self._count(flags, duration, -1)
            left = self.peers[peer] - 1
            if left:
                self.peers[peer] = left
            else:
                del self.peers[peer]
                if peer in callers and self.callbacks:
                    self.callbacks -= 1

    def _count(self, flags: int, duration: int, d: int) -> None:
        if flags & SMS:
            self.sms += d
        else:
            self.duration += d * duration
            if flags & UNANSWERED:
                self.unanswered += d
        if flags & NEW:
            self.new += d
        if flags & REMOTE:
            self.remote += d
        if flags & NIGHT:
            self.night += d
        if flags & INTL:
            self.intl += d
        if flags & HOT:
            self.hot += d


class LineState:
    """Everything the engine remembers about one line."""

    __slots__ = (
        "last_t",
        "h1",
        "d1",
        "contacts",
        "callers",
        "incoming",
        "cells",
        "imeis",
        "imei",
        "reports",
        "abroad",
        "out_total",
    )

    def __init__(self) -> None:
        self.last_t = 0
        self.h1 = Window(HOUR)
        self.d1 = Window(DAY)
        self.contacts: dict[str, int] = {}  # peer -> last contact, any direction, oldest first
        self.callers: dict[str, int] = {}  # peer -> last call in
        self.incoming: deque[int] = deque()  # calls and SMS in, last 24 h
        self.cells: deque[tuple[int, int]] = deque()  # (time, risk) of events in listed cells, last 24 h
        self.imeis: dict[str, int] = {}  # handset -> last seen, last 7 days
        self.imei = ""
        self.reports: deque[tuple[int, int]] = deque()  # (time, source index), last 30 days
        self.abroad = False
        self.out_total = 0

    def touch(self, t: int, peer: str) -> bool:
        """Remembers a contact; True when the peer had never been in touch with the line."""
        contacts = self.contacts
        new = contacts.pop(peer, None) is None
        contacts[peer] = t
        if len(contacts) > CONTACT_CAP:
            del contacts[next(iter(contacts))]
        return new

    def add_out(self, t: int, peer: str, flags: int, duration: int) -> None:
        self.out_total += 1
        self.h1.add(t, peer, flags, duration, self.callers)
        self.d1.add(t, peer, flags, duration, self.callers)

    def add_in(self, t: int, peer: str) -> None:
        self.incoming.append(t)
        callers = self.callers
        if peer not in callers:
            # A peer the line already called in this window now counts as calling back.
            if peer in self.h1.peers:
                self.h1.callbacks += 1
            if peer in self.d1.peers:
                self.d1.callbacks += 1
        else:
            del callers[peer]
        callers[peer] = t
        if len(callers) > CONTACT_CAP:
            del callers[next(iter(callers))]

    def see_handset(self, t: int, imei: str) -> bool:
        """Records the handset; True when it differs from the last one."""
        changed = bool(self.imei) and imei != self.imei
        self.imei = imei
        self.imeis.pop(imei, None)
        self.imeis[imei] = t
        return changed

    def expire(self, now: int) -> None:
        self.h1.expire(now, self.callers)
        self.d1.expire(now, self.callers)
        day_ago = now - DAY
        while self.incoming and self.incoming[0] <= day_ago:
            self.incoming.popleft()
        while self.cells and self.cells[0][0] <= day_ago:
            self.cells.popleft()
        while self.reports and self.reports[0][0] <= now - MONTH:
            self.reports.popleft()
        if len(self.imeis) > 1:
            week_ago = now - WEEK
            for imei in [i for i, seen in self.imeis.items() if seen <= week_ago and i != self.imei]:
                del self.imeis[imei]

    def snapshot(self) -> dict:
        return {
            "v": 1,
            "last_t": self.last_t,
            "out": [list(i) for i in self.d1.items],
            "contacts": self.contacts,
            "callers": self.callers,
            "incoming": list(self.incoming),
            "cells": [list(c) for c in self.cells],
            "imeis": self.imeis,
            "imei": self.imei,
            "reports": [list(r) for r in self.reports],
            "abroad": self.abroad,
            "out_total": self.out_total,
        }

    @classmethod
    def restore(cls, snap: dict) -> LineState:
        s = cls()
        s.last_t = snap["last_t"]
        s.callers = dict(snap["callers"])
        for t, peer, flags, duration in snap["out"]:
            s.d1.add(t, peer, flags, duration, s.callers)
            if t > s.last_t - HOUR:
                s.h1.add(t, peer, flags, duration, s.callers)
        s.contacts = dict(snap["contacts"])
        s.incoming = deque(snap["incoming"])
        s.cells = deque((t, r) for t, r in snap["cells"])
        s.imeis = dict(snap["imeis"])
        s.imei = snap["imei"]
        s.reports = deque((t, r) for t, r in snap["reports"])
        s.abroad = snap["abroad"]
        s.out_total = snap["out_total"]
        return s


def _share(count: int, of: int) -> float:
    return count / of if of else 0.0


FEATURE_NAMES = (
    "calls_1h", "calls_24h", "sms_1h", "sms_24h", "distinct_peers_1h", "distinct_peers_24h",
    "new_peers_1h", "new_peer_share_1h", "new_peers_24h", "new_peer_share_24h",
    "other_province_1h", "other_province_share_1h", "other_province_24h", "other_province_share_24h",
    "unanswered_1h", "unanswered_share_1h", "unanswered_24h", "unanswered_share_24h",
    "mean_duration_s_1h", "mean_duration_s_24h", "callback_share_1h", "callback_share_24h",
    "night_24h", "night_share_24h", "international_24h", "international_share_24h", "abroad",
    "incoming_24h", "high_risk_peers_24h", "high_risk_cell_visits_24h", "elevated_cell_visits_24h",
    "handsets_7d", "lines_per_handset", "account_age_days", "account_age_years", "enterprise_bound",
    "reports_30d", "authority_reports_30d",
)  # fmt: skip


def features(s: LineState, p: Profile, now: int, lines_on_handset: int) -> dict[str, float]:
    h, d = s.h1, s.d1
    calls_h, calls_d = len(h.items) - h.sms, len(d.items) - d.sms
    n_h, n_d = len(h.items), len(d.items)
    age = (now - p.opened_epoch) // DAY
    high = sum(1 for _, r in s.cells if r == CELL_HIGH)
    authority = sum(1 for _, src in s.reports if src)
    return {
        "calls_1h": calls_h,
        "calls_24h": calls_d,
        "sms_1h": h.sms,
        "sms_24h": d.sms,
        "distinct_peers_1h": len(h.peers),
        "distinct_peers_24h": len(d.peers),
        "new_peers_1h": h.new,
        "new_peer_share_1h": _share(h.new, n_h),
        "new_peers_24h": d.new,
        "new_peer_share_24h": _share(d.new, n_d),
        "other_province_1h": h.remote,
        "other_province_share_1h": _share(h.remote, n_h),
        "other_province_24h": d.remote,
        "other_province_share_24h": _share(d.remote, n_d),
        "unanswered_1h": h.unanswered,
        "unanswered_share_1h": _share(h.unanswered, calls_h),
        "unanswered_24h": d.unanswered,
        "unanswered_share_24h": _share(d.unanswered, calls_d),
        "mean_duration_s_1h": _share(h.duration, calls_h),
        "mean_duration_s_24h": _share(d.duration, calls_d),
        "callback_share_1h": _share(h.callbacks, len(h.peers)),
        "callback_share_24h": _share(d.callbacks, len(d.peers)),
        "night_24h": d.night,
        "night_share_24h": _share(d.night, n_d),
        "international_24h": d.intl,
        "international_share_24h": _share(d.intl, n_d),
        "abroad": 1.0 if s.abroad else 0.0,
        "incoming_24h": len(s.incoming),
        "high_risk_peers_24h": d.hot,
        "high_risk_cell_visits_24h": high,
        "elevated_cell_visits_24h": len(s.cells) - high,
        "handsets_7d": len(s.imeis),
        "lines_per_handset": lines_on_handset,
        "account_age_days": age,
        "account_age_years": age // 365,
        "enterprise_bound": 1.0 if p.enterprise else 0.0,
        "reports_30d": len(s.reports),
        "authority_reports_30d": authority,
    }


def is_night(t: int) -> bool:
    return (t + LOCAL_OFFSET) % DAY < NIGHT_END

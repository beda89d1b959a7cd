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
NEVER = 1 << 62
# China Standard Time has no daylight saving: night activity is judged in the holder's local time.
LOCAL_OFFSET = 8 * HOUR
NIGHT_END = 6 * HOUR
# Contacts remembered per line, to tell a number never called before (oldest forgotten first).
CONTACT_CAP = 512

NEW, REMOTE, UNANSWERED, NIGHT, INTL, HOT, SMS = 1, 2, 4, 8, 16, 32, 64
CELL_ELEVATED, CELL_HIGH = 2, 3


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
        if flags:
            self._count(flags, duration, 1)
        else:  # the common case: a known local peer, answered, by day
            self.duration += duration
        seen = self.peers.get(peer, 0)
        self.peers[peer] = seen + 1
        if not seen and peer in callers:
            self.callbacks += 1

    def expire(self, now: int, callers: dict[str, int]) -> None:
        limit = now - self.span
        items = self.items
        while items and items[0][0] <= limit:
            _, peer, flags, duration = items.popleft()
            if flags:
                self._count(flags, duration, -1)
            else:
                self.duration -= duration
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
        "high_cells",
        "authority",
        "expire_at",
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
        self.high_cells = 0  # events in high-risk cells among `cells`
        self.authority = 0  # police or national-platform reports among `reports`
        self.expire_at = NEVER  # earliest event time at which something leaves a window

    def touch(self, t: int, peer: str) -> bool:
        """Remembers a contact; True when the peer had never been in touch with the line."""
        contacts = self.contacts
        new = contacts.pop(peer, None) is None
        contacts[peer] = t
        if len(contacts) > CONTACT_CAP:
            del contacts[next(iter(contacts))]
        return new

    def add_out(self, t: int, peer: str, flags: int, duration: int) -> None:
        if t + HOUR < self.expire_at:
            self.expire_at = t + HOUR
        self.out_total += 1
        self.h1.add(t, peer, flags, duration, self.callers)
        self.d1.add(t, peer, flags, duration, self.callers)

    def add_in(self, t: int, peer: str) -> None:
        if t + DAY < self.expire_at:
            self.expire_at = t + DAY
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
        if len(self.imeis) > 1:
            self.expire_at = min(self.expire_at, next(iter(self.imeis.values())) + WEEK)
        return changed

    def add_cell(self, t: int, risk: int) -> None:
        self.cells.append((t, risk))
        self.high_cells += risk == CELL_HIGH
        self.expire_at = min(self.expire_at, t + DAY)

    def add_report(self, t: int, source: int) -> None:
        self.reports.append((t, source))
        self.authority += source > 0
        self.expire_at = min(self.expire_at, t + MONTH)

    def expire(self, now: int) -> None:
        items = self.h1.items
        if items and items[0][0] <= now - HOUR:
            self.h1.expire(now, self.callers)
        day_ago = now - DAY
        items = self.d1.items
        if items and items[0][0] <= day_ago:
            self.d1.expire(now, self.callers)
        incoming = self.incoming
        while incoming and incoming[0] <= day_ago:
            incoming.popleft()
        cells = self.cells
        while cells and cells[0][0] <= day_ago:
            self.high_cells -= cells.popleft()[1] == CELL_HIGH
        reports = self.reports
        while reports and reports[0][0] <= now - MONTH:
            self.authority -= reports.popleft()[1] > 0
        if len(self.imeis) > 1:
            week_ago = now - WEEK
            for imei in [i for i, seen in self.imeis.items() if seen <= week_ago and i != self.imei]:
                del self.imeis[imei]
        self.expire_at = self._next_expiry()

    def _next_expiry(self) -> int:
        heads = [NEVER]
        if self.h1.items:
            heads.append(self.h1.items[0][0] + HOUR)
        if self.d1.items:
            heads.append(self.d1.items[0][0] + DAY)
        if self.incoming:
            heads.append(self.incoming[0] + DAY)
        if self.cells:
            heads.append(self.cells[0][0] + DAY)
        if self.reports:
            heads.append(self.reports[0][0] + MONTH)
        if len(self.imeis) > 1:
            heads.append(min(seen for i, seen in self.imeis.items() if i != self.imei) + WEEK)
        return min(heads)

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
        for t, r in snap["cells"]:
            s.add_cell(t, r)
        s.imeis = dict(snap["imeis"])
        s.imei = snap["imei"]
        for t, r in snap["reports"]:
            s.add_report(t, r)
        s.abroad = snap["abroad"]
        s.out_total = snap["out_total"]
        s.expire_at = s._next_expiry()
        return s


def _share(count: int, of: int) -> float:
    return count / of if of else 0.0


# Every feature as an expression over the line state `s` (with `h`, `d` its hour and day windows), the profile
# `p`, the event time `now` and the engine `eng`. The scorecard compiles its conditions from these, so a call
# only computes the features the rules actually reach (most lines stop at the first comparison).
FEATURE_EXPR = {
    "calls_1h": "(len(h.items) - h.sms)",
    "calls_24h": "(len(d.items) - d.sms)",
    "sms_1h": "h.sms",
    "sms_24h": "d.sms",
    "distinct_peers_1h": "len(h.peers)",
    "distinct_peers_24h": "len(d.peers)",
    "new_peers_1h": "h.new",
    "new_peer_share_1h": "_share(h.new, len(h.items))",
    "new_peers_24h": "d.new",
    "new_peer_share_24h": "_share(d.new, len(d.items))",
    "other_province_1h": "h.remote",
    "other_province_share_1h": "_share(h.remote, len(h.items))",
    "other_province_24h": "d.remote",
    "other_province_share_24h": "_share(d.remote, len(d.items))",
    "unanswered_1h": "h.unanswered",
    "unanswered_share_1h": "_share(h.unanswered, len(h.items) - h.sms)",
    "unanswered_24h": "d.unanswered",
    "unanswered_share_24h": "_share(d.unanswered, len(d.items) - d.sms)",
    "mean_duration_s_1h": "_share(h.duration, len(h.items) - h.sms)",
    "mean_duration_s_24h": "_share(d.duration, len(d.items) - d.sms)",
    "callback_share_1h": "_share(h.callbacks, len(h.peers))",
    "callback_share_24h": "_share(d.callbacks, len(d.peers))",
    "night_24h": "d.night",
    "night_share_24h": "_share(d.night, len(d.items))",
    "international_24h": "d.intl",
    "international_share_24h": "_share(d.intl, len(d.items))",
    "abroad": "(1.0 if s.abroad else 0.0)",
    "incoming_24h": "len(s.incoming)",
    "high_risk_peers_24h": "d.hot",
    "high_risk_cell_visits_24h": "s.high_cells",
    "elevated_cell_visits_24h": "(len(s.cells) - s.high_cells)",
    "handsets_7d": "len(s.imeis)",
    "lines_per_handset": "(eng.lines_on_handset(s) if s.imei in eng.shared else 1)",
    "account_age_days": "((now - p.opened_epoch) // 86400)",
    "account_age_years": "((now - p.opened_epoch) // 86400 // 365)",
    "enterprise_bound": "(1.0 if p.enterprise else 0.0)",
    "reports_30d": "len(s.reports)",
    "authority_reports_30d": "s.authority",
}
FEATURE_NAMES = tuple(FEATURE_EXPR)
HELPERS = {"_share": _share}


def compile_function(name: str, body: list[str]):
    """Compiles `def name(s, p, now, eng)` over the feature expressions (built from checked parts only)."""
    src = [f"def {name}(s, p, now, eng):", "    h = s.h1", "    d = s.d1", *body]
    namespace = dict(HELPERS)
    exec(compile("\n".join(src), f"<{name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


# All features by name: what a decision is explained with, and what GetAssessment shows.
features = compile_function(
    "features", ["    return {", *[f"        {k!r}: {v}," for k, v in FEATURE_EXPR.items()], "    }"]
)

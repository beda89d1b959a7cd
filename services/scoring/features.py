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
    """Running counts over the line's outgoing contacts (calls and SMS) of the last `span` seconds.

    The contacts themselves live once, in `LineState.out`; this window covers `out[head:]`, so the hour and
    the day share one list and expiring a call only moves an index.
    """

    __slots__ = (
        "span",
        "head",
        "n",
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
        self.head = 0
        self.n = 0
        self.peers: dict[str, int] = {}
        self.sms = self.new = self.remote = self.unanswered = self.night = self.intl = self.hot = 0
        self.duration = 0
        self.callbacks = 0  # distinct peers in the window who have called the line

    def expire(self, out: list[tuple[int, str, int, int]], now: int, callers: dict[str, int]) -> None:
        limit = now - self.span
        i = start = self.head
        end = len(out)
        peers = self.peers
        while i < end:
            t, peer, flags, duration = out[i]
            if t > limit:
                break
            i += 1
            if flags:
                self._count(flags, duration, -1)
            else:
                self.duration -= duration
            left = peers[peer] - 1
            if left:
                peers[peer] = left
            else:
                del peers[peer]
                if peer in callers and self.callbacks:
                    self.callbacks -= 1
        self.n -= i - start
        self.head = i

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
    """Everything the engine remembers about one line.

    Rarely used histories (incoming calls, listed cells, reports) stay None until the line has one: most lines
    never visit a listed cell or get reported, and an empty deque costs more than half a kilobyte.
    """

    __slots__ = (
        "profile",
        "last_t",
        "out",
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

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.last_t = 0
        self.out: list[tuple[int, str, int, int]] = []  # (time, peer, flags, duration), last 24 h
        self.h1 = Window(HOUR)
        self.d1 = Window(DAY)
        self.contacts: dict[str, int] = {}  # peer -> last contact, any direction, oldest first
        self.callers: dict[str, int] = {}  # peer -> last call in
        self.incoming: deque[int] | None = None  # calls and SMS in, last 24 h
        self.cells: deque[tuple[int, int]] | None = None  # (time, risk) of events in listed cells, last 24 h
        self.imeis: dict[str, int] = {}  # handset -> last seen, last 7 days
        self.imei = ""
        self.reports: deque[tuple[int, int]] | None = None  # (time, source index), last 30 days
        self.abroad = False
        self.out_total = 0
        self.high_cells = 0  # events in high-risk cells among `cells`
        self.authority = 0  # police or national-platform reports among `reports`
        self.expire_at = NEVER  # earliest event time at which something leaves a window

    def add_out(self, t: int, peer: str, flags: int, duration: int) -> None:
        if t + HOUR < self.expire_at:
            self.expire_at = t + HOUR
        self.out_total += 1
        self.out.append((t, peer, flags, duration))
        callers = self.callers
        for w in (self.h1, self.d1):
            w.n += 1
            if flags:
                w._count(flags, duration, 1)
            else:  # the common case: a known local peer, answered, by day
                w.duration += duration
            peers = w.peers
            seen = peers.get(peer, 0)
            peers[peer] = seen + 1
            if not seen and peer in callers:
                w.callbacks += 1

    def add_in(self, t: int, peer: str) -> None:
        if t + DAY < self.expire_at:
            self.expire_at = t + DAY
        if self.incoming is None:
            self.incoming = deque()
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
        if self.cells is None:
            self.cells = deque()
        self.cells.append((t, risk))
        self.high_cells += risk == CELL_HIGH
        self.expire_at = min(self.expire_at, t + DAY)

    def add_report(self, t: int, source: int) -> None:
        if self.reports is None:
            self.reports = deque()
        self.reports.append((t, source))
        self.authority += source > 0
        self.expire_at = min(self.expire_at, t + MONTH)

    def expire(self, now: int) -> None:
        out, h, d = self.out, self.h1, self.d1
        if h.head < len(out) and out[h.head][0] <= now - HOUR:
            h.expire(out, now, self.callers)
        day_ago = now - DAY
        if d.head < len(out) and out[d.head][0] <= day_ago:
            d.expire(out, now, self.callers)
            gone = d.head  # nothing before the day's head is in the hour either
            del out[:gone]
            d.head = 0
            h.head -= gone
        incoming = self.incoming
        if incoming is not None:
            while incoming and incoming[0] <= day_ago:
                incoming.popleft()
        cells = self.cells
        if cells is not None:
            while cells and cells[0][0] <= day_ago:
                self.high_cells -= cells.popleft()[1] == CELL_HIGH
        reports = self.reports
        if reports is not None:
            while reports and reports[0][0] <= now - MONTH:
                self.authority -= reports.popleft()[1] > 0
        if len(self.imeis) > 1:
            week_ago = now - WEEK
            for imei in [i for i, seen in self.imeis.items() if seen <= week_ago and i != self.imei]:
                del self.imeis[imei]
        self.expire_at = self._next_expiry()

    def _next_expiry(self) -> int:
        at = NEVER
        out = self.out
        if out:
            head = self.h1.head
            at = out[0][0] + DAY
            if head < len(out) and out[head][0] + HOUR < at:
                at = out[head][0] + HOUR
        if self.incoming and self.incoming[0] + DAY < at:
            at = self.incoming[0] + DAY
        if self.cells and self.cells[0][0] + DAY < at:
            at = self.cells[0][0] + DAY
        if self.reports and self.reports[0][0] + MONTH < at:
            at = self.reports[0][0] + MONTH
        if len(self.imeis) > 1:
            at = min(at, min(seen for i, seen in self.imeis.items() if i != self.imei) + WEEK)
        return at

    # The stored form: plain lists, dicts, numbers and strings, in this order (SNAPSHOT_FIELDS).
    def snapshot(self) -> list:
        """The line as plain data, sharing the live lists and dicts: encode it before the state changes."""
        return [
            self.last_t,
            self.out,
            self.contacts,
            self.callers,
            list(self.incoming or ()),
            list(self.cells or ()),
            self.imeis,
            self.imei,
            list(self.reports or ()),
            self.abroad,
            self.out_total,
        ]

    @classmethod
    def restore(cls, profile: Profile, snap: list) -> LineState:
        last_t, out, contacts, callers, incoming, cells, imeis, imei, reports, abroad, out_total = snap
        s = cls(profile)
        s.last_t = last_t
        s.callers = dict(callers)
        for t, peer, flags, duration in out:
            s.add_out(t, peer, flags, duration)
        s.h1.expire(s.out, s.last_t, s.callers)
        s.contacts = dict(contacts)
        if incoming:
            s.incoming = deque(incoming)
        for t, r in cells:
            s.add_cell(t, r)
        s.imeis = dict(imeis)
        s.imei = imei
        for t, r in reports:
            s.add_report(t, r)
        s.abroad = abroad
        s.out_total = out_total
        s.expire_at = s._next_expiry()
        return s


SNAPSHOT_FIELDS = (
    "last_t",
    "out",
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


def _share(count: int, of: int) -> float:
    return count / of if of else 0.0


# Every feature as an expression over the line state `s` (with `h`, `d` its hour and day windows), the profile
# `p`, the event time `now` and the engine `eng`. The scorecard compiles its conditions from these, so a call
# only computes the features the rules actually reach (most lines stop at the first comparison).
FEATURE_EXPR = {
    "calls_1h": "(h.n - h.sms)",
    "calls_24h": "(d.n - d.sms)",
    "sms_1h": "h.sms",
    "sms_24h": "d.sms",
    "distinct_peers_1h": "len(h.peers)",
    "distinct_peers_24h": "len(d.peers)",
    "new_peers_1h": "h.new",
    "new_peer_share_1h": "_share(h.new, h.n)",
    "new_peers_24h": "d.new",
    "new_peer_share_24h": "_share(d.new, d.n)",
    "other_province_1h": "h.remote",
    "other_province_share_1h": "_share(h.remote, h.n)",
    "other_province_24h": "d.remote",
    "other_province_share_24h": "_share(d.remote, d.n)",
    "unanswered_1h": "h.unanswered",
    "unanswered_share_1h": "_share(h.unanswered, h.n - h.sms)",
    "unanswered_24h": "d.unanswered",
    "unanswered_share_24h": "_share(d.unanswered, d.n - d.sms)",
    "mean_duration_s_1h": "_share(h.duration, h.n - h.sms)",
    "mean_duration_s_24h": "_share(d.duration, d.n - d.sms)",
    "callback_share_1h": "_share(h.callbacks, len(h.peers))",
    "callback_share_24h": "_share(d.callbacks, len(d.peers))",
    "night_24h": "d.night",
    "night_share_24h": "_share(d.night, d.n)",
    "international_24h": "d.intl",
    "international_share_24h": "_share(d.intl, d.n)",
    "abroad": "(1.0 if s.abroad else 0.0)",
    "incoming_24h": "len(s.incoming or ())",
    "high_risk_peers_24h": "d.hot",
    "high_risk_cell_visits_24h": "s.high_cells",
    "elevated_cell_visits_24h": "(len(s.cells or ()) - s.high_cells)",
    "handsets_7d": "len(s.imeis)",
    "lines_per_handset": "(eng.lines_on_handset(s) if s.imei in eng.shared else 1)",
    "account_age_days": "((now - p.opened_epoch) // 86400)",
    "account_age_years": "((now - p.opened_epoch) // 86400 // 365)",
    "enterprise_bound": "(1.0 if p.enterprise else 0.0)",
    "reports_30d": "len(s.reports or ())",
    "authority_reports_30d": "s.authority",
}
FEATURE_NAMES = tuple(FEATURE_EXPR)
HELPERS = {"_share": _share}


def compile_function(name: str, body: list[str]):
    """Compiles `def name(s, p, now, eng)` over the feature expressions (built from checked parts only)."""
    src = [f"def {name}(s, p, now, eng):", "    h = s.h1", "    d = s.d1", *body]
    namespace = dict(HELPERS)
    exec(compile("\n".join(src), f"<{name}>", "exec"), namespace)
    return namespace[name]


# All features by name: what a decision is explained with, and what GetAssessment shows.
features = compile_function(
    "features", ["    return {", *[f"        {k!r}: {v}," for k, v in FEATURE_EXPR.items()], "    }"]
)

"""Per-line behaviour over sliding windows in event time (no I/O, no gRPC).

Counters are kept incrementally: adding a call and expiring one cost O(1), so scoring a CDR costs the same for
a line with 3 calls in its window as for one with 300. Times are integer epoch seconds of event time.

Events may arrive out of order: each history is kept sorted by event time and a late event is inserted where it
belongs, so the same events in any order give the same windows (docs/event-time.md). The engine decides which
late events are accepted at all (its lateness bound).

Memory is what bounds how many lines one process holds, so a line is stored compactly in int arrays: peers are
64-bit keys (peer_key), outgoing contacts are two parallel arrays, and what the line knows about each peer (first
and last contact, whether it called in, how often it is in each window) is one row of the line's Book.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Sequence
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
# Peers remembered per line beyond those in its day window, to tell a number never in touch before: between
# CONTACT_CAP and twice as many (the least recently in touch forgotten first, CONTACT_CAP at a time).
CONTACT_CAP = 512
# Per-line bounds, so that one line cannot grow without limit (docs/event-time.md, "Caps"): past a cap the oldest
# entry leaves its windows early, as if it had expired.
OUT_CAP = 20_000  # outgoing calls and SMS in the day window
IN_CAP = 20_000  # incoming calls and SMS in the day window
CELL_CAP = 2_000  # events in listed cells in the day window
REPORT_CAP = 1_000  # reports in the 30-day window
HANDSET_CAP = 16  # handsets remembered over 7 days

NEW, REMOTE, UNANSWERED, NIGHT, INTL, HOT, SMS = 1, 2, 4, 8, 16, 32, 64
CELL_ELEVATED, CELL_HIGH = 2, 3

# An outgoing contact in `LineState.ev`: time << 24 | duration << 7 | flags (sorted by time, then the rest).
FLAG_BITS = 7
FLAG_MASK = (1 << FLAG_BITS) - 1
MAX_DURATION = (1 << 17) - 1  # 36 hours: longer calls are counted as 36 hours
EV_SHIFT = 24
# A peer's row in the Book: its first and last contact (epoch seconds in 32 bits: until 2106, later times count
# as then) and `meta` = called in << 31 | day count << 15 | hour count.
LOW32 = 0xFFFF_FFFF
COUNT_MASK = 0x7FFF  # at most OUT_CAP calls are in a window
CALLER = 1 << 31
# Bit 30 of `meta`: set unless the peer's first contact (of those the book knows) is an outgoing call or SMS, i.e.
# unless it is a stranger the line reached out to, counted in the week's day of that contact (`week`). Set for "not
# a stranger" so that the strangers a burst dials keep their meta below 2**30, where CPython's ints take their fast
# paths: a peer that is not a stranger has almost always called in (bit 31) anyway.
NOT_STRANGER = 1 << 30
IN_WINDOWS = NOT_STRANGER - 1
# Arrays of unsigned 64-bit ints ('L' on 64-bit Linux): storing into them is several times cheaper than into
# 'q' arrays, which parse each value like a function argument.
U64 = "L" if array("L").itemsize == 8 else "Q"
# The stored form's version (LineState.snapshot); version 1 had no marker and kept peers as strings.
SNAPSHOT_VERSION = 3
BIG_ENDIAN = sys.byteorder == "big"
# Day-scale counts over the last WEEK_DAYS local days (the line's current day and the six before), one row of
# W_FIELDS 16-bit counts per day with traffic, sorted by day: the day number, then incoming, outgoing (calls and
# SMS), outgoing to other provinces, strangers first contacted that day (NOT_STRANGER), and those of them who have
# called the line since. Counts saturate at W_MAX (a line past 65,535 a day is far beyond every threshold). A
# first row holds the week's first day and the totals from it on, so reading a week's count costs one lookup.
WEEK_DAYS = 7
W_DAY, W_IN, W_OUT, W_REMOTE, W_NEW, W_BACK = range(6)
W_FIELDS = 6
W_MAX = 0xFFFF


NO_WEEK = (0,) * W_FIELDS
# The week's fields an outgoing contact counts in, by index: 1 to another province, + 2 a stranger, + 4 a stranger
# who had called the line before.
OUT_FIELDS = tuple((W_OUT,) + (W_REMOTE,) * (n & 1) + (W_NEW,) * (n >> 1 & 1) + (W_BACK,) * (n >> 2) for n in range(8))


def local_day(t: int) -> int:
    """The holder's calendar day (China Standard Time) of epoch second t, as days since 1970 (16 bits)."""
    return min(max((t + LOCAL_OFFSET) // DAY, 0), W_MAX)


def peer_key(peer: str) -> int:
    """A peer number as an unsigned 64-bit int: exact (and reversible) for up to 18 digits, a hash otherwise.

    Digit strings map below 2**63 (a leading 1 keeps leading zeros apart), anything else to a 63-bit hash at
    2**63 and above, so the two kinds never collide.
    """
    if len(peer) <= 18 and peer.isascii() and peer.isdigit():
        return int("1" + peer)
    return 1 << 63 | int.from_bytes(hashlib.blake2b(peer.encode(), digest_size=8).digest(), "big") >> 1


def _book_time(t: int) -> int:
    return min(max(t, 0), LOW32)


@dataclass
class Profile:
    home_province: str
    opened_at: date
    enterprise: str = ""
    language: str = "zh"

    def __post_init__(self) -> None:
        self.opened_epoch = int(datetime.combine(self.opened_at, time(), UTC).timestamp()) - LOCAL_OFFSET


class Book:
    """What a line knows about each peer it was in touch with: one row per peer, in three arrays sorted by key.

    Arrays rather than a dict of ints: 20 bytes a peer instead of about 110.
    """

    __slots__ = ("keys", "first", "last", "meta")

    def __init__(self) -> None:
        self.keys = array(U64)
        self.first = array("I")
        self.last = array("I")
        self.meta = array("I")

    def __len__(self) -> int:
        return len(self.keys)

    def row(self, k: int) -> int:
        """The row of a peer known to be in the book."""
        return bisect_left(self.keys, k)

    def keep(self, rows: list[int]) -> None:
        """Keeps only these rows (in order)."""
        for a in (self.keys, self.first, self.last, self.meta):
            a[:] = array(a.typecode, [a[i] for i in rows])


class Window:
    """Running counts over the line's outgoing contacts (calls and SMS) of the last `span` seconds.

    The contacts themselves live once, in `LineState.ev`/`pk`; this window covers index `head` onwards, so the
    hour and the day share the arrays and expiring a call only moves an index. How often each peer is in the
    window is kept in the line's book (at bit `shift` of its meta).
    """

    span = 0
    shift = 0
    unit = 1
    __slots__ = (
        "head",
        "n",
        "distinct",
        "sms",
        "new",
        "remote",
        "unanswered",
        "night",
        "intl",
        "hot",
        "duration",
        "callbacks",
        "book",
    )

    def __init__(self, book: Book) -> None:
        self.book = book
        self.head = 0
        self.n = 0
        self.distinct = 0  # distinct peers in the window
        self.sms = self.new = self.remote = self.unanswered = self.night = self.intl = self.hot = 0
        self.duration = 0
        self.callbacks = 0  # distinct peers in the window who have called the line

    @property
    def peers(self) -> dict[int, int]:
        """Peer key -> contacts in the window (for inspection; the hot path reads `distinct`)."""
        shift, book = self.shift, self.book
        return {k: c for k, m in zip(book.keys, book.meta, strict=True) if (c := m >> shift & COUNT_MASK)}

    def count(self, flags: int, duration: int, d: int) -> None:
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

    def uncount(self, ev: array, pk: array, start: int, end: int) -> None:
        """Takes the contacts at indices start..end-1 out of the window (one call for a run: the hot path)."""
        keys, meta = self.book.keys, self.book.meta
        shift, unit = self.shift, self.unit
        for j in range(start, end):
            e = ev[j]
            flags = e & FLAG_MASK
            duration = e >> FLAG_BITS & MAX_DURATION
            if not flags:  # the common case: a known local peer, answered, by day
                self.duration -= duration
            else:  # count(flags, duration, -1) inlined: this loop is the hot path of expiry
                if flags & SMS:
                    self.sms -= 1
                else:
                    self.duration -= duration
                    if flags & UNANSWERED:
                        self.unanswered -= 1
                if flags & NEW:
                    self.new -= 1
                if flags & REMOTE:
                    self.remote -= 1
                if flags & NIGHT:
                    self.night -= 1
                if flags & INTL:
                    self.intl -= 1
                if flags & HOT:
                    self.hot -= 1
            i = bisect_left(keys, pk[j])
            m = meta[i] - unit
            meta[i] = m
            if not m >> shift & COUNT_MASK:
                self.distinct -= 1
                if m & CALLER:
                    self.callbacks -= 1
        self.n -= end - start


class HourWindow(Window):
    __slots__ = ()
    span = HOUR


class DayWindow(Window):
    __slots__ = ()
    span = DAY
    shift = 15
    unit = 1 << 15


class LineState:
    """Everything the engine remembers about one line.

    Rarely used histories (incoming calls, listed cells, reports, a second handset) stay None until the line has
    one. All histories are sorted by event time.
    """

    __slots__ = (
        "profile",
        "last_t",
        "ev",
        "pk",
        "book",
        "h1",
        "d1",
        "incoming",
        "cells",
        "imeis",
        "imei",
        "imei_t",
        "reports",
        "abroad",
        "out_total",
        "high_cells",
        "authority",
        "expire_at",
        "week",
    )

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.last_t = 0  # the line's latest event time
        self.ev = array(U64)  # outgoing contacts of the last 24 h, packed (EV_SHIFT), sorted
        self.pk = array(U64)  # their peers' keys, index by index
        self.book = Book()
        self.h1 = HourWindow(self.book)
        self.d1 = DayWindow(self.book)
        self.incoming: array | None = None  # times of calls and SMS in, last 24 h
        self.cells: array | None = None  # time << 2 | risk of events in listed cells, last 24 h
        self.imeis: dict[str, int] | None = None  # handset -> last seen, last 7 days, once there are two
        self.imei = ""  # the handset of the latest event
        self.imei_t = 0  # when it was last seen
        self.reports: array | None = None  # time << 2 | source, last 30 days
        self.abroad = False
        self.out_total = 0
        self.high_cells = 0  # events in high-risk cells among `cells`
        self.authority = 0  # police or national-platform reports among `reports`
        self.expire_at = NEVER  # earliest event time at which something leaves a window
        self.week: array | None = None  # day-scale counts of the last WEEK_DAYS days (W_FIELDS per day)

    @property
    def out(self) -> list[tuple[int, int, int, int]]:
        """The outgoing contacts as (time, peer key, flags, duration), oldest first (for inspection)."""
        return [
            (e >> EV_SHIFT, k, e & FLAG_MASK, e >> FLAG_BITS & MAX_DURATION)
            for e, k in zip(self.ev, self.pk, strict=True)
        ]

    @property
    def contacts(self) -> dict[int, int]:
        """Peer key -> first contact, any direction (for inspection)."""
        book = self.book
        return dict(zip(book.keys, book.first, strict=True))

    @property
    def callers(self) -> set[int]:
        """The peers who have called or messaged the line (for inspection)."""
        book = self.book
        return {k for k, m in zip(book.keys, book.meta, strict=True) if m & CALLER}

    def contact(self, k: int, t: int) -> tuple[int, bool]:
        """Records a contact with peer `k` (any direction): its book row, and whether none was earlier (NEW).

        An earlier contact arriving late takes NEW away from the calls at the previously first contact.
        """
        book = self.book
        keys = book.keys
        i = bisect_left(keys, k)
        if i == len(keys) or keys[i] != k:
            r = t if 0 <= t <= LOW32 else _book_time(t)
            keys.insert(i, k)
            book.first.insert(i, r)
            book.last.insert(i, r)
            book.meta.insert(i, NOT_STRANGER)
            if len(keys) - self.d1.distinct > 2 * CONTACT_CAP:
                self._forget()
                i = bisect_left(keys, k)
            return i, True
        r = t if 0 <= t <= LOW32 else _book_time(t)
        if r > book.last[i]:  # the common case: a later contact with a known peer
            book.last[i] = r
            return i, False
        first = book.first[i]
        if r < first:
            book.first[i] = r
            m = book.meta[i]
            if not m & NOT_STRANGER:  # the stranger was first in touch earlier (either way): not that day's stranger
                book.meta[i] = m | NOT_STRANGER
                self._week_add(first, W_NEW, -1)
                if m & CALLER:
                    self._week_add(first, W_BACK, -1)
            self._not_new(k, first)
            return i, True
        return i, r == first

    def _not_new(self, k: int, first: int) -> None:
        # Clearing the flag lowers the packed value, so calls of the same second may end up out of order among
        # themselves: nothing depends on that order (windows are cut at whole seconds).
        ev, pk, h, d = self.ev, self.pk, self.h1, self.d1
        for j in range(bisect_left(ev, first << EV_SHIFT), bisect_left(ev, first + 1 << EV_SHIFT)):
            if pk[j] == k and ev[j] & NEW:
                ev[j] &= ~NEW
                d.new -= 1
                if j >= h.head:
                    h.new -= 1

    def _forget(self) -> None:
        """Keeps the peers in the day window and the CONTACT_CAP others most recently in touch.

        Called once the others reach twice the cap, so the book is rebuilt once per CONTACT_CAP new peers.
        """
        book = self.book
        meta, last = book.meta, book.last
        others = sorted((last[i], i) for i in range(len(meta)) if not meta[i] & IN_WINDOWS)
        gone = {i for _, i in others[: len(others) - CONTACT_CAP]}
        book.keep([i for i in range(len(meta)) if i not in gone])

    def add_out(self, t: int, k: int, flags: int, duration: int, row: int = -1) -> None:
        """An outgoing contact within the day of the line's latest time; in the hour window if within the hour.

        The peer is in the book already (at `row`, when known).
        """
        self.out_total += 1
        if duration > MAX_DURATION:
            duration = MAX_DURATION
        if t < 0:
            t = 0  # the arrays are unsigned; no CDR is dated before 1970
        e = t << EV_SHIFT | duration << FLAG_BITS | flags
        ev, pk = self.ev, self.pk
        if not ev or e >= ev[-1]:  # in order: the common case
            ev.append(e)
            pk.append(k)
        else:
            i = bisect_right(ev, e)
            ev.insert(i, e)
            pk.insert(i, k)
        if t > self.last_t - HOUR:
            windows: tuple[Window, ...] = (self.d1, self.h1)
            at = t + HOUR
        else:
            windows = (self.d1,)
            self.h1.head += 1  # it lands before the hour's first call
            at = t + DAY
        meta = self.book.meta
        if row < 0:
            row = self.book.row(k)
        for w in windows:
            w.n += 1
            if flags:
                w.count(flags, duration, 1)
            else:  # the common case: a known local peer, answered, by day
                w.duration += duration
            m = meta[row]
            meta[row] = m + w.unit
            if not m >> w.shift & COUNT_MASK:
                w.distinct += 1
                if m & CALLER:
                    w.callbacks += 1
        if at < self.expire_at:
            self.expire_at = at
        if len(ev) > OUT_CAP:
            self._drop_oldest_out()

    def _drop_oldest_out(self) -> None:
        ev, pk, h = self.ev, self.pk, self.h1
        self.d1.uncount(ev, pk, 0, 1)
        if h.head:
            h.head -= 1
        else:
            h.uncount(ev, pk, 0, 1)
        del ev[0]
        del pk[0]

    def add_in(self, t: int, k: int, row: int = -1) -> None:
        """An incoming contact (the peer is in the book already, at `row` when known): it counts as calling back."""
        book = self.book
        if row < 0:
            row = book.row(k)
        m = book.meta[row]
        if not m & CALLER:
            book.meta[row] = m | CALLER
            if m >> DayWindow.shift & COUNT_MASK:
                self.d1.callbacks += 1
            if m & COUNT_MASK:
                self.h1.callbacks += 1
            if not m & NOT_STRANGER:
                self._week_add(book.first[row], W_BACK, 1)
        w = self.week
        if w and w[-W_FIELDS] == (t + LOCAL_OFFSET) // DAY:  # today, already there: _week_add inlined
            v = w[-W_FIELDS + W_IN]
            if v < W_MAX:
                w[-W_FIELDS + W_IN] = v + 1
            v = w[W_IN]
            if v < W_MAX:
                w[W_IN] = v + 1
        else:
            self._week_add(t, W_IN, 1, create=True)
        if t <= self.last_t - DAY:
            return
        if self.incoming is None:
            self.incoming = array("q")
        insort(self.incoming, t)
        if len(self.incoming) > IN_CAP:
            self.incoming.pop(0)
        if t + DAY < self.expire_at:
            self.expire_at = t + DAY

    def add_week_out(self, t: int, row: int, new: bool, remote: bool) -> None:
        """Counts an outgoing contact (any age) in its day of the week; a first contact makes the peer a stranger
        of that day. The peer is in the book at `row`."""
        w = self.week
        if w and w[-W_FIELDS] == (t + LOCAL_OFFSET) // DAY:  # the common case: today, already there
            i = len(w) - W_FIELDS
        else:
            i = self._week_row(t, create=True)
            if i < 0:
                if new:  # before the week: a stranger of a day no longer counted
                    self.book.meta[row] &= ~NOT_STRANGER
                return
            w = self.week
            assert w is not None
        meta = self.book.meta
        m = meta[row]
        n = 1 if remote else 0
        if new and m & NOT_STRANGER:
            meta[row] = m ^ NOT_STRANGER
            n += 6 if m & CALLER else 2
        for f in OUT_FIELDS[n]:  # _bump(w, i, f, 1), inlined: every outgoing CDR comes here
            v = w[i + f]
            if v < W_MAX:
                w[i + f] = v + 1
            v = w[f]
            if v < W_MAX:
                w[f] = v + 1

    @staticmethod
    def _bump(w: array, i: int, field: int, d: int) -> None:
        """Adds d to a day's count and to the week's total (a total at W_MAX is read by summing the days)."""
        v = w[i + field] + d
        if 0 <= v <= W_MAX:
            w[i + field] = v
        v = w[field]
        if v < W_MAX:
            w[field] = v + d

    def _week_add(self, t: int, field: int, d: int, create: bool = False) -> None:
        i = self._week_row(t, create)
        if i >= 0:
            assert self.week is not None
            self._bump(self.week, i, field, d)

    def _week_row(self, t: int, create: bool) -> int:
        """Where t's day starts in `week` (made when `create`), or -1: before the week, or not there.

        `week` starts with a row of totals over the days from its first field (the week's first day) on."""
        day = local_day(t)
        w = self.week
        if w and w[-W_FIELDS] == day and len(w) > W_FIELDS:  # the common case: today
            return len(w) - W_FIELDS
        start = local_day(self.last_t) - WEEK_DAYS + 1
        if day < start:
            return -1
        if w is None:
            if not create:
                return -1
            self.week = array("H", (max(start, 0), 0, 0, 0, 0, 0, day, 0, 0, 0, 0, 0))  # made at its size
            return W_FIELDS
        i = len(w) - W_FIELDS
        while i >= W_FIELDS and w[i] > day:
            i -= W_FIELDS
        if i >= W_FIELDS and w[i] == day:
            found = i
        elif not create:
            return -1
        else:
            found = i + W_FIELDS
            w = self.week = w[:found] + array("H", (day, 0, 0, 0, 0, 0)) + w[found:]  # at its size
        if w[0] != max(start, 0):  # the week moved on: days before it leave, the totals are counted again
            n = W_FIELDS
            while n < len(w) and w[n] < start:
                n += W_FIELDS
            del w[W_FIELDS:n]
            found -= n - W_FIELDS
            self._recount()
        return found

    def _recount(self) -> None:
        w = self.week
        assert w is not None
        start = local_day(self.last_t) - WEEK_DAYS + 1
        w[0] = max(start, 0)
        for f in range(1, W_FIELDS):
            w[f] = min(W_MAX, sum(w[i + f] for i in range(W_FIELDS, len(w), W_FIELDS)))

    def week_totals(self, now: int) -> Sequence[int]:
        """The counts over the week that ends at event time `now` (the line's latest), by field (W_IN...)."""
        w = self.week
        if not w:
            return NO_WEEK
        # The hot path: the first row is this week's totals (none saturated: remote, strangers and callbacks never
        # exceed outgoing).
        if w[0] + WEEK_DAYS - 1 == (now + LOCAL_OFFSET) // DAY and w[W_IN] < W_MAX and w[W_OUT] < W_MAX:
            return w
        start = local_day(now) - WEEK_DAYS + 1
        return [0] + [
            sum(w[i + f] for i in range(W_FIELDS, len(w), W_FIELDS) if w[i] >= start) for f in range(1, W_FIELDS)
        ]

    def silent_days(self, now: int) -> int:
        """Days in a row, up to the current one, on which the line called out and received nothing (a day with
        incoming traffic or with no traffic at all ends the run)."""
        w = self.week
        if not w:
            return 0
        day, run = local_day(now), 0
        for i in range(len(w) - W_FIELDS, 0, -W_FIELDS):
            if w[i] != day - run or w[i + W_IN] or not w[i + W_OUT]:
                break
            run += 1
        return run

    def see_handset(self, t: int, imei: str) -> None:
        """Records the handset; the line's handset is the one of its latest event."""
        imeis = self.imeis
        if imeis is None:
            if not self.imei or imei == self.imei:
                self.imei = imei
                self.imei_t = max(self.imei_t, t)
                return
            imeis = self.imeis = {self.imei: self.imei_t}
        seen = max(imeis.get(imei, t), t)
        imeis[imei] = seen
        if imei == self.imei or (seen, imei) > (self.imei_t, self.imei):  # ties: the same either way round
            self.imei, self.imei_t = imei, seen
        if len(imeis) > HANDSET_CAP:
            del imeis[min((i for i in imeis if i != self.imei), key=imeis.__getitem__)]
        oldest = min(seen for i, seen in imeis.items() if i != self.imei)
        self.expire_at = min(self.expire_at, oldest + WEEK)

    def handsets(self) -> dict[str, int]:
        """Handset -> last seen, over the last 7 days (and the current one however old)."""
        if self.imeis is not None:
            return self.imeis
        return {self.imei: self.imei_t} if self.imei else {}

    def add_cell(self, t: int, risk: int) -> None:
        if t <= self.last_t - DAY:
            return
        if self.cells is None:
            self.cells = array("q")
        insort(self.cells, t << 2 | risk)
        self.high_cells += risk == CELL_HIGH
        if len(self.cells) > CELL_CAP:
            self.high_cells -= self.cells.pop(0) & 3 == CELL_HIGH
        self.expire_at = min(self.expire_at, t + DAY)

    def add_report(self, t: int, source: int) -> None:
        if t <= self.last_t - MONTH:
            return
        if self.reports is None:
            self.reports = array("q")
        insort(self.reports, t << 2 | source)
        self.authority += source > 0
        if len(self.reports) > REPORT_CAP:
            self.authority -= self.reports.pop(0) & 3 > 0
        self.expire_at = min(self.expire_at, t + MONTH)

    def expire(self, now: int) -> None:
        ev, pk, h = self.ev, self.pk, self.h1
        # Entries at or before `now - span` leave: the first to stay is the first at `now - span + 1` or later.
        head = h.head
        if head < len(ev) and ev[head] >> EV_SHIFT <= now - HOUR:
            end = bisect_left(ev, now - HOUR + 1 << EV_SHIFT, head)
            h.uncount(ev, pk, head, end)
            h.head = end
        day_ago = now - DAY
        if ev and ev[0] >> EV_SHIFT <= day_ago:  # nothing before the day's start is in the hour either
            gone = bisect_left(ev, day_ago + 1 << EV_SHIFT)
            self.d1.uncount(ev, pk, 0, gone)
            del ev[:gone]
            del pk[:gone]
            h.head -= gone
        incoming = self.incoming
        if incoming and incoming[0] <= day_ago:
            del incoming[: bisect_left(incoming, day_ago + 1)]
        cells = self.cells
        if cells and cells[0] >> 2 <= day_ago:
            gone = bisect_left(cells, day_ago + 1 << 2)
            self.high_cells -= sum(1 for c in cells[:gone] if c & 3 == CELL_HIGH)
            del cells[:gone]
        reports = self.reports
        if reports and reports[0] >> 2 <= now - MONTH:
            gone = bisect_left(reports, now - MONTH + 1 << 2)
            self.authority -= sum(1 for r in reports[:gone] if r & 3)
            del reports[:gone]
        imeis = self.imeis
        if imeis is not None:
            week_ago = now - WEEK
            for imei in [i for i, seen in imeis.items() if seen <= week_ago and i != self.imei]:
                del imeis[imei]
            if len(imeis) == 1:
                self.imeis = None
        self.expire_at = self._next_expiry()

    def _next_expiry(self) -> int:
        at = NEVER
        ev = self.ev
        if ev:
            head = self.h1.head
            at = (ev[0] >> EV_SHIFT) + DAY
            if head < len(ev) and (ev[head] >> EV_SHIFT) + HOUR < at:
                at = (ev[head] >> EV_SHIFT) + HOUR
        if self.incoming and self.incoming[0] + DAY < at:
            at = self.incoming[0] + DAY
        if self.cells and (self.cells[0] >> 2) + DAY < at:
            at = (self.cells[0] >> 2) + DAY
        if self.reports and (self.reports[0] >> 2) + MONTH < at:
            at = (self.reports[0] >> 2) + MONTH
        if self.imeis is not None:
            at = min(at, min(seen for i, seen in self.imeis.items() if i != self.imei) + WEEK)
        return at

    # The stored form, in the order of SNAPSHOT_FIELDS. Version 1 had dicts of peers as strings; version 2 lists:
    # `contacts` [2, peer key, first contact, last contact, ...], `callers` peer keys, `out` [t, peer, flags,
    # duration] rows and `week` [day rows, strangers]. Version 3 keeps the arrays as they are, little-endian bytes
    # (a checkpoint of a busy line costs a few copies instead of a Python object per number): `out` [ev, pk],
    # `contacts` [3, keys, first, last, meta]; `callers` and the week's strangers are left empty, being the
    # book's CALLER and NOT_STRANGER bits. `restore` reads all three.
    def snapshot(self) -> list:
        """The line as plain data (built afresh: it does not share the live state)."""
        book = self.book
        return [
            self.last_t,
            [_raw(self.ev), _raw(self.pk)],
            [SNAPSHOT_VERSION, _raw(book.keys), _raw(book.first), _raw(book.last), _raw(book.meta)],
            [],
            list(self.incoming or ()),
            [[c >> 2, c & 3] for c in self.cells or ()],
            dict(self.handsets()),
            self.imei,
            [[r >> 2, r & 3] for r in self.reports or ()],
            self.abroad,
            self.out_total,
            [self._week_rows(), []],
        ]

    def _week_rows(self) -> list[int]:
        """The day rows of the week (W_FIELDS numbers each)."""
        start = local_day(self.last_t) - WEEK_DAYS + 1
        w = self.week or ()
        return [v for i in range(W_FIELDS, len(w), W_FIELDS) if w[i] >= start for v in w[i : i + W_FIELDS]]

    @classmethod
    def restore(cls, profile: Profile, snap: list) -> LineState:
        """Reads versions 3, 2 and 1 (peers as strings, contacts and callers as dicts by last contact).

        A snapshot written before the week's counts (eleven fields) starts its week from the day it kept.
        """
        if isinstance(snap[2], list) and snap[2] and snap[2][0] == 3:
            snap = as_version_2(snap)
        last_t, out, contacts, callers, incoming, cells, imeis, imei, reports, abroad, out_total = snap[:11]
        week = snap[11] if len(snap) > 11 else None
        s = cls(profile)
        s.last_t = last_t
        if isinstance(contacts, dict):
            known = {peer_key(peer): (seen, seen) for peer, seen in contacts.items()}
            for peer, seen in callers.items():
                known.setdefault(peer_key(peer), (seen, seen))
            callers = [peer_key(peer) for peer in callers]
        else:
            if contacts[0] != 2:
                raise ValueError(f"line snapshot version {contacts[0]} is not known")
            known = {int(contacts[i]): (contacts[i + 1], contacts[i + 2]) for i in range(1, len(contacts), 3)}
        out = sorted(
            (
                (t, peer_key(peer) if isinstance(peer, str) else peer, flags, duration)
                for t, peer, flags, duration in out
            ),
            key=lambda item: item[0],
        )
        for t, k, _, _ in out:  # version 1 kept the last contact, not the first
            first, last = known.get(k, (t, t))
            known[k] = (min(first, t), max(last, t))
        book = s.book
        for k in sorted(known):
            first, last = known[k]
            book.keys.append(k)
            book.first.append(_book_time(first))
            book.last.append(_book_time(last))
            book.meta.append(NOT_STRANGER)
        for k in callers:
            book.meta[book.row(int(k))] |= CALLER
        day_ago = last_t - DAY
        for t, k, flags, duration in out:
            if t > day_ago:
                s.add_out(t, k, flags, duration)
        s.out_total = out_total
        for t in incoming:
            if t > day_ago:
                if s.incoming is None:
                    s.incoming = array("q")
                insort(s.incoming, t)
        for t, risk in cells:
            s.add_cell(t, risk)
        for t, source in reports:
            s.add_report(t, source)
        s.imei = imei
        s.imei_t = imeis.get(imei, last_t)
        if len(imeis) > 1:
            s.imeis = dict(imeis)
        s.abroad = abroad
        if week is not None:
            rows, strangers = week
            if rows:
                s.week = array("H", (0,) * W_FIELDS + tuple(rows))
                s._recount()
            for k in strangers:
                book.meta[book.row(int(k))] &= ~NOT_STRANGER
        else:
            s._rebuild_week(out, incoming)
        s.expire(last_t)
        return s

    def _rebuild_week(self, out: list, incoming: list) -> None:
        """The week's counts from what an older snapshot kept: the outgoing and incoming of its last day."""
        book = self.book
        for t, k, flags, _ in out:
            row = book.row(k)
            new = bool(flags & NEW) and book.first[row] == _book_time(t)
            self.add_week_out(t, row, new, bool(flags & REMOTE))
        for t in incoming:  # (the callers are known already: a stranger who called back counts as it is added)
            self._week_add(t, W_IN, 1, create=True)


def _raw(a: array) -> bytes:
    """An array's numbers as little-endian bytes."""
    if BIG_ENDIAN:
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def _unraw(typecode: str, raw: bytes) -> array:
    a = array(typecode)
    a.frombytes(raw)
    if BIG_ENDIAN:
        a.byteswap()
    return a


def as_version_2(snap: list) -> list:
    """A version 3 snapshot in the lists of version 2, which `restore` rebuilds the line from."""
    last_t, (ev_raw, pk_raw), (_, keys_raw, first_raw, last_raw, meta_raw) = snap[:3]
    keys, first, last = _unraw(U64, keys_raw), _unraw("I", first_raw), _unraw("I", last_raw)
    meta = _unraw("I", meta_raw)
    ev, pk = _unraw(U64, ev_raw), _unraw(U64, pk_raw)
    contacts: list[int] = [2]
    for row in zip(keys, first, last, strict=True):
        contacts += row
    out = [[e >> EV_SHIFT, k, e & FLAG_MASK, e >> FLAG_BITS & MAX_DURATION] for e, k in zip(ev, pk, strict=True)]
    callers = [k for k, m in zip(keys, meta, strict=True) if m & CALLER]
    start = local_day(last_t) - WEEK_DAYS + 1
    strangers = [k for k, f, m in zip(keys, first, meta, strict=True) if not m & NOT_STRANGER and local_day(f) >= start]
    rows = snap[11][0]
    return [last_t, out, contacts, callers, *snap[4:11], [rows, strangers], *snap[12:]]


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
    "week",
)


def _share(count: int, of: int) -> float:
    return count / of if of else 0.0


# Every feature as an expression over the line state `s` (with `h`, `d` its hour and day windows, `w` its week's
# totals by field: W_IN, W_OUT, W_REMOTE, W_NEW, W_BACK), the profile
# `p`, the event time `now` and the engine `eng`. The scorecard compiles its conditions from these, so a call
# only computes the features the rules actually reach (most lines stop at the first comparison).
FEATURE_EXPR = {
    "calls_1h": "(h.n - h.sms)",
    "calls_24h": "(d.n - d.sms)",
    "sms_1h": "h.sms",
    "sms_24h": "d.sms",
    "distinct_peers_1h": "h.distinct",
    "distinct_peers_24h": "d.distinct",
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
    "callback_share_1h": "_share(h.callbacks, h.distinct)",
    "callback_share_24h": "_share(d.callbacks, d.distinct)",
    "night_24h": "d.night",
    "night_share_24h": "_share(d.night, d.n)",
    "international_24h": "d.intl",
    "international_share_24h": "_share(d.intl, d.n)",
    "outgoing_7d": "w[2]",
    "strangers_7d": "w[4]",
    "stranger_share_7d": "_share(w[4], w[2])",
    "other_province_share_7d": "_share(w[3], w[2])",
    "stranger_callback_share_7d": "_share(w[5], w[4])",
    "silent_days": "s.silent_days(now)",
    "abroad": "(1.0 if s.abroad else 0.0)",
    "incoming_24h": "len(s.incoming or ())",
    "high_risk_peers_24h": "d.hot",
    "high_risk_cell_visits_24h": "s.high_cells",
    "elevated_cell_visits_24h": "(len(s.cells or ()) - s.high_cells)",
    "handsets_7d": "(len(s.imeis) if s.imeis else 1 if s.imei else 0)",
    "lines_per_handset": "(eng.lines_on_handset(s) if s.imei in eng.shared else 1)",
    "account_age_days": "((now - p.opened_epoch) // 86400)",
    "account_age_years": "((now - p.opened_epoch) // 86400 // 365)",
    "enterprise_bound": "(1.0 if p.enterprise else 0.0)",
    "reports_30d": "len(s.reports or ())",
    "authority_reports_30d": "s.authority",
}
FEATURE_NAMES = tuple(FEATURE_EXPR)
HELPERS = {"_share": _share}


WEEK_TOTALS = "    w = s.week_totals(now)"


def compile_function(name: str, body: list[str], week: bool = True):
    """Compiles `def name(s, p, now, eng)` over the feature expressions (built from checked parts only).

    `week`: whether `w` is set first; without it, `body` sets it (WEEK_TOTALS) before it reads it.
    """
    src = [f"def {name}(s, p, now, eng):", "    h = s.h1", "    d = s.d1", *([WEEK_TOTALS] if week else []), *body]
    namespace = dict(HELPERS)
    exec(compile("\n".join(src), f"<{name}>", "exec"), namespace)
    return namespace[name]


# All features by name: what a decision is explained with, and what GetAssessment shows.
features = compile_function(
    "features", ["    return {", *[f"        {k!r}: {v}," for k, v in FEATURE_EXPR.items()], "    }"]
)

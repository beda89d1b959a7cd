"""The streaming engine: feeds events into line state and reports when a line's action escalates.

Events are placed by event time. A CDR up to `lateness_s` late (behind the line's latest event) lands where it
belongs in every window; a later one is counted only in the day-scale windows, never in the hour. With a wall
clock, a CDR dated beyond it (plus `future_skew_s`) is refused. See docs/event-time.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from services.scoring.features import (
    CALLER,
    DAY,
    HOT,
    HOUR,
    INTL,
    LOCAL_OFFSET,
    NEW,
    NIGHT,
    NIGHT_END,
    NOT_STRANGER,
    OUT_FIELDS,
    REMOTE,
    SMS,
    SNAPSHOT_VERSION,
    UNANSWERED,
    W_FIELDS,
    W_MAX,
    WEEK,
    LineState,
    Profile,
    as_version_2,
    features,
    peer_key,
)
from services.scoring.scorecard import Assessment, Score, Scorecard


@dataclass(frozen=True)
class Escalation:
    msisdn: str
    assessment: Assessment
    at: int  # event time, epoch seconds


@dataclass(slots=True)
class Peak:
    """For replays: the highest level reached and the strongest action the platform would take."""

    level: int = 0
    score: float = 0.0
    action: int = 0
    assessment: Assessment | None = None
    acted_at: int | None = None
    outgoing_before_action: int = 0


# Lines remembered per handset in `Engine.handsets` (the least recently seen forgotten first).
LINES_PER_HANDSET_CAP = 64


class Engine:
    def __init__(
        self,
        scorecard: Scorecard,
        track_peaks: bool = False,
        *,
        lateness_s: int = 2 * HOUR,
        wall_clock: Callable[[], float] | None = None,
        future_skew_s: int = 300,
    ) -> None:
        self.scorecard = scorecard
        self.lateness_s = lateness_s
        self.wall_clock = wall_clock  # None for replays of historical corpora: any event time is accepted
        self.future_skew_s = future_skew_s
        self.refused: Counter[str] = Counter()  # events not taken, by reason: "future", "late"
        self.late: Counter[str] = Counter()  # events taken late: "within" the lateness, "beyond" it (day-scale)
        self.profiles: dict[str, Profile] = {}
        self.lines: dict[str, LineState] = {}
        self.cells: dict[str, int] = {}  # listed cell -> risk (2 elevated, 3 high)
        self.hot_numbers: set[str] = set()  # the national platform's high-risk numbers
        # imei -> its line, or line -> last seen once it has been in more than one (LINES_PER_HANDSET_CAP).
        self.handsets: dict[str, str | dict[str, int]] = {}
        self.shared: set[str] = set()  # handsets seen with more than one line
        self.acted: dict[str, int] = {}  # strongest action taken in the line's open case
        self.cleared: dict[str, frozenset[str]] = {}  # reason codes a verified holder was cleared of
        self.peaks: dict[str, Peak] | None = {} if track_peaks else None
        self.dirty: set[str] = set()  # lines changed since the last snapshot
        self.clock = 0  # latest event time seen

    def set_profile(self, msisdn: str, profile: Profile) -> None:
        self.profiles[msisdn] = profile
        s = self.lines.get(msisdn)
        if s is not None:
            s.profile = profile

    def set_feeds(self, cells: dict[str, int] | None = None, hot_numbers: set[str] | None = None) -> None:
        """The national platform's lists as committed: high-risk cells, high-risk numbers."""
        if cells is not None:
            self.cells = cells
        if hot_numbers is not None:
            self.hot_numbers = hot_numbers

    def set_enterprise(self, msisdn: str, enterprise: str) -> None:
        profile = self.profiles.get(msisdn)
        if profile is not None:
            profile.enterprise = enterprise

    def state(self, msisdn: str, profile: Profile) -> LineState:
        s = self.lines.get(msisdn)
        if s is None:
            s = self.lines[msisdn] = LineState(profile)
        return s

    def observe(
        self,
        msisdn: str,
        peer: str,
        peer_province: str,
        outgoing: bool,
        t: int,
        duration: int,
        cell_id: str,
        abroad: bool,
        imei: str,
        sms: bool,
    ) -> Escalation | None:
        if self.wall_clock is not None and t > self.wall_clock() + self.future_skew_s:
            self.refused["future"] += 1
            return None
        s = self.lines.get(msisdn)
        if s is None:
            profile = self.profiles.get(msisdn)
            if profile is None:
                return None  # not one of our subscribers: nothing to assess
            s = self.lines[msisdn] = LineState(profile)
        last = s.last_t
        if t > last:
            s.last_t = t
            if t > self.clock:
                self.clock = t
            s.abroad = abroad
        elif t == last:
            s.abroad |= abroad  # the same second either way round
        elif not self._late(last - t):
            return None
        if s.last_t >= s.expire_at:
            s.expire(s.last_t)
        if imei:
            # The engine-wide map is refreshed at most hourly per line; the line's own last seen always.
            fresh = imei != s.imei or t - s.imei_t > HOUR
            if imei == s.imei and s.imeis is None:
                if t > s.imei_t:
                    s.imei_t = t
            else:
                s.see_handset(t, imei)
            if fresh:
                self._use_handset(imei, msisdn, t)
        if cell_id:
            risk = self.cells.get(cell_id)
            if risk:
                s.add_cell(t, risk)
        # peer_key, inlined for the common case (an ordinary number).
        k = int("1" + peer) if len(peer) <= 18 and peer.isascii() and peer.isdigit() else peer_key(peer)
        row, new = s.contact(k, t)
        self.dirty.add(msisdn)
        if not outgoing:
            s.add_in(t, k, row)
            return None
        remote = peer_province != s.profile.home_province and peer_province != "00"
        w = s.week
        if w and w[-W_FIELDS] == (t + LOCAL_OFFSET) // DAY:
            # LineState.add_week_out inlined for the common case: today's row is there already.
            n = 1 if remote else 0
            if new and (m := s.book.meta[row]) & NOT_STRANGER:
                s.book.meta[row] = m ^ NOT_STRANGER
                n += 6 if m & CALLER else 2
            for f in OUT_FIELDS[n]:
                v = w[f - W_FIELDS]
                if v < W_MAX:
                    w[f - W_FIELDS] = v + 1
                v = w[f]
                if v < W_MAX:
                    w[f] = v + 1
        else:
            s.add_week_out(t, row, new, remote)
        if t <= s.last_t - DAY:
            s.out_total += 1  # too old for the hour and the day: it counts in the week and the line's contacts
            return None
        flags = NEW if new else 0
        if peer_province == "00":
            flags |= INTL
        elif remote:
            flags |= REMOTE
        if sms:
            flags |= SMS
        elif duration == 0:
            flags |= UNANSWERED
        if (t + LOCAL_OFFSET) % DAY < NIGHT_END:
            flags |= NIGHT
        if peer in self.hot_numbers:
            flags |= HOT
        s.add_out(t, k, flags, duration, row)
        return self._assess(msisdn, s, s.last_t)

    def _late(self, behind: int) -> bool:
        """Whether an event `behind` seconds behind its line's latest is taken (counted in `late` or `refused`).

        Beyond the lateness it is counted only where it cannot make a burst: in the day-scale windows. So it is
        refused when the lateness is under an hour and the event would land inside the hour window.
        """
        if behind <= self.lateness_s:
            self.late["within"] += 1
            return True
        if behind < HOUR:
            self.refused["late"] += 1
            return False
        self.late["beyond"] += 1
        return True

    def report(self, msisdn: str, t: int, source: int) -> Escalation | None:
        """A complaint (0 user report) or an authority's feed (1 national platform, 2 police) about a line."""
        if self.wall_clock is not None and t > self.wall_clock() + self.future_skew_s:
            self.refused["future"] += 1
            return None
        profile = self.profiles.get(msisdn)
        if profile is None:
            return None
        s = self.state(msisdn, profile)
        if t > s.last_t:
            s.last_t = t
            self.clock = max(self.clock, t)
        s.expire(s.last_t)
        s.add_report(t, source)
        self.dirty.add(msisdn)
        return self._assess(msisdn, s, s.last_t)

    def _use_handset(self, imei: str, msisdn: str, t: int) -> None:
        users = self.handsets.get(imei)
        if users is None or users == msisdn:
            self.handsets[imei] = msisdn  # one line on the handset (most): its last seen is in its state
            return
        if isinstance(users, str):
            first = users
            users = self.handsets[imei] = {}
            seen = self._seen_on(first, imei)
            if seen is not None:
                users[first] = seen
        users[msisdn] = max(users.get(msisdn, t), t)
        if len(users) > LINES_PER_HANDSET_CAP:
            del users[min(users, key=users.__getitem__)]
        if len(users) > 1:
            self.shared.add(imei)

    def _seen_on(self, msisdn: str, imei: str) -> int | None:
        s = self.lines.get(msisdn)
        return None if s is None else s.handsets().get(imei)

    def lines_on_handset(self, s: LineState) -> int:
        users = self.handsets.get(s.imei)
        if not users:
            return 0
        if isinstance(users, str):
            return 1
        week_ago = s.last_t - WEEK
        return sum(1 for seen in users.values() if seen > week_ago)

    def _features(self, s: LineState) -> dict[str, float]:
        return features(s, s.profile, s.last_t, self)

    def _assess(self, msisdn: str, s: LineState, t: int) -> Escalation | None:
        card = self.scorecard
        # Live, a line whose evidence cannot reach a warning is let go at once; replays keep every peak score.
        fired = (card.fired if self.peaks is not None else card.fired_acting)(s, s.profile, s.last_t, self)
        if not fired:
            return None  # nothing against the line (most calls): low, no action, nothing to remember
        sc = card.score(fired)
        action = sc.action
        cleared = self.cleared.get(msisdn)
        if action and cleared and self.scorecard.positive_codes(sc) <= cleared:
            action = 0  # the holder was verified against exactly this pattern: no new evidence
        if self.peaks is not None:
            self._track(msisdn, s, sc, action, t)
        if action == 0 or action <= self.acted.get(msisdn, 0):
            return None
        self.acted[msisdn] = action
        return Escalation(msisdn, card.explain(sc, self._features(s), action), t)

    def _track(self, msisdn: str, s: LineState, sc: Score, action: int, t: int) -> None:
        pk = self.peaks.get(msisdn)  # type: ignore[union-attr]
        if pk is None:
            pk = self.peaks[msisdn] = Peak()  # type: ignore[index]
        if sc.level > pk.level or sc.level == pk.level and sc.score > pk.score:
            pk.level, pk.score = sc.level, sc.score
        if action > pk.action:
            pk.action = action
            pk.assessment = self.scorecard.explain(sc, self._features(s), action)
            if pk.acted_at is None:
                pk.acted_at = t
                pk.outgoing_before_action = s.out_total

    def current(self, msisdn: str) -> tuple[Assessment, dict[str, float], int] | None:
        """The line's assessment now (at its latest event time), with the features behind it."""
        profile = self.profiles.get(msisdn)
        if profile is None:
            return None
        s = self.lines.get(msisdn) or LineState(profile)
        f = self._features(s)
        card = self.scorecard
        return card.explain(card.score(card.fired_all(s, profile, s.last_t, self)), f), f, s.last_t

    def label(self, msisdn: str, false_positive: bool, codes: frozenset[str]) -> frozenset[str]:
        """A case closed with an outcome; a verified holder is not re-flagged for the same pattern."""
        self.acted.pop(msisdn, None)
        self.dirty.add(msisdn)
        if not false_positive:
            return frozenset()
        positive = {r.code for r in self.scorecard.rules if r.points > 0}
        cleared = self.cleared.get(msisdn, frozenset()) | (codes & positive)
        self.cleared[msisdn] = cleared
        return cleared

    def snapshot(self, msisdn: str, version: int = SNAPSHOT_VERSION) -> list:
        """The line's windows and case memory as plain data: [*LineState.snapshot(), acted, cleared codes];
        `version` 2 for a release that cannot read version 3."""
        line = self.lines[msisdn].snapshot()
        if version == 2:
            line = as_version_2(line)
        return [*line, self.acted.get(msisdn, 0), sorted(self.cleared.get(msisdn, ()))]

    def restore(self, msisdn: str, snap: list) -> None:
        profile = self.profiles.get(msisdn)
        if profile is None:
            return  # windows of a line no longer on file
        *line, acted, cleared = snap
        s = self.lines[msisdn] = LineState.restore(profile, line)
        if self.wall_clock is None or s.last_t <= self.wall_clock() + self.future_skew_s:
            self.clock = max(self.clock, s.last_t)
        for imei, seen in s.handsets().items():
            self._use_handset(imei, msisdn, seen)
        if acted:
            self.acted[msisdn] = acted
        if cleared:
            self.cleared[msisdn] = frozenset(cleared)

    def sweep(self) -> list[str]:
        """Forgets lines idle for a week of event time (their snapshot stays); returns them."""
        week_ago = self.clock - WEEK
        idle = self.forget_idle_lines(list(self.lines), week_ago)
        self.forget_idle_handsets(list(self.handsets), week_ago)
        return idle

    def forget_idle_lines(self, msisdns: list[str], week_ago: int) -> list[str]:
        """`sweep` over some of the lines (the service sweeps a chunk at a time between batches)."""
        lines, acted = self.lines, self.acted
        idle = [m for m in msisdns if (s := lines.get(m)) is not None and s.last_t <= week_ago and m not in acted]
        for m in idle:
            del lines[m]
        return idle

    def forget_idle_handsets(self, imeis: list[str], week_ago: int) -> None:
        for imei in imeis:
            users = self.handsets.get(imei)
            if users is not None and self._last_seen(imei, users) <= week_ago:
                del self.handsets[imei]
                self.shared.discard(imei)

    def _last_seen(self, imei: str, users: str | dict[str, int]) -> int:
        if isinstance(users, str):
            seen = self._seen_on(users, imei)
            return -1 if seen is None else seen
        return max(users.values())

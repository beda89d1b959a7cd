"""Seeded persona scenarios for the scoring engine, in the scenario file format (specs/scenario-jsonl.md).

Each line of the carrier gets a persona: legitimate people who look busy (courier, delivery rider, truck
driver with a new 193 number, road trip through high-risk cells, traveller abroad, 14-year customer calling
remote provinces, ...) and fraud (call centre, SIM box, two-card mule, wangiri, account takeover). Every
`subscriber` line carries two extra keys, `persona` and `fraud`, for the evaluator; the scorer must not use
them. The same seed always gives the same bytes: one `random.Random(seed)`, no wall clock.

    python -m pscli.personas OUT.jsonl --seed 1 --lines 10000 --days 7 [--variant shifted]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from operator import itemgetter
from pathlib import Path

DAY = 86_400
HOUR = 3_600
MINUTE = 60


@dataclass(frozen=True)
class Persona:
    description: str
    fraud: bool
    share: float  # share of all lines


PERSONAS: dict[str, Persona] = {
    "ordinary": Persona("2-15 calls a day, mostly known contacts in the home province, lots of incoming", False, 0.54),
    "heavy_sales": Persona(
        "40-80 calls a weekday in business hours, many new numbers, moderate callbacks", False, 0.05
    ),
    "small_business": Persona("shop owner: suppliers and local customers, many incoming orders", False, 0.04),
    "courier": Persona("bursts of 20-30 short calls to local parcel recipients, many call back", False, 0.05),
    "rider": Persona(
        "delivery rider, 7 months in: small bursts around meal times, often not enterprise-bound", False, 0.03
    ),
    "truck_driver": Persona("brand-new 193 number, <10 calls a day home, drives through other provinces", False, 0.03),
    "road_tripper": Persona("ordinary caller on a road trip through high-risk cells in Guizhou/Guangxi", False, 0.03),
    "traveller": Persona("abroad (Nepal, Thailand, Japan) for some days: calls home and local numbers", False, 0.03),
    "returning_roamer": Persona("abroad, then back home calling many people at once", False, 0.02),
    "long_tenure_remote": Persona("14-year customer calling many remote-province numbers at a human rate", False, 0.02),
    "scam_callcentre": Persona("new account, bursts of 10-80 calls an hour to strangers everywhere", True, 0.06),
    "simbox": Persona("SIM box: many lines on one IMEI, huge uniform outgoing volume, nothing incoming", True, 0.025),
    "mule_two_card": Persona(
        "fresh two-card mule: bursts of 10-25 calls an hour to remote strangers, IMEI hopping", True, 0.03
    ),
    "wangiri": Persona("one-ring calls at night, many international, almost all unanswered", True, 0.02),
    "takeover": Persona("old line taken over: new handset, then scam bursts to remote strangers", True, 0.025),
    # Added for issue 16: patterns the first corpus lacked.
    "business_callcentre": Persona(
        "a real business's call-centre line, enterprise-bound: 60-120 calls a weekday nationwide, many customers"
        " new, lots of customers calling in",
        False,
        0.015,
    ),
    "family_abroad": Persona(
        "household line shared by a family abroad all week: two handsets, calls home and local numbers", False, 0.015
    ),
    "slow_scam": Persona(
        "new account under every hourly threshold: 10-22 calls a day to strangers in other provinces, long calls"
        " when answered, nothing incoming for days",
        True,
        0.02,
    ),
}
VARIANTS = ("base", "shifted", "shifted2")

# Knobs the behaviours read; a variant only moves knobs, the scorer sees no difference in code paths.
BASE_KNOBS: dict[str, float] = {
    "courier_burst": 1.0,  # calls per delivery burst (courier, rider), multiplier
    "courier_callback": 1.0,  # share of recipients who call back (courier, rider), multiplier
    "scam_rate": 1.0,  # call rate of every fraud persona, multiplier
    "legit_new_account": 0.04,  # share of ordinary / sales / shop / road-trip lines opened in the last 60 days
    "sales_volume": 1.0,  # weekday calls of heavy sales lines, multiplier
}
SHIFTS: dict[str, dict[str, float]] = {
    "base": {},
    "shifted": {"courier_burst": 1.5, "courier_callback": 0.6, "scam_rate": 0.6, "legit_new_account": 0.25},
    # A second shift, another way: busier sales staff, couriers a little busier with fewer callbacks, scammers
    # a quarter slower, more young legitimate accounts than the base but fewer than `shifted`.
    "shifted2": {
        "sales_volume": 1.4,
        "courier_burst": 1.2,
        "courier_callback": 0.8,
        "scam_rate": 0.75,
        "legit_new_account": 0.15,
    },
}

PROVINCES = tuple(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65".split()
)
# Provinces with a cell list, how many cells each, how likely a line lives there, and (elevated, high) shares.
CELL_PROVINCES: dict[str, tuple[int, int, tuple[float, float]]] = {
    "44": (400, 30, (0.03, 0.01)),
    "51": (300, 15, (0.03, 0.01)),
    "65": (200, 8, (0.03, 0.01)),
    "11": (250, 10, (0.02, 0.005)),
    "31": (250, 10, (0.02, 0.005)),
    "33": (250, 10, (0.03, 0.01)),
    "43": (200, 7, (0.03, 0.01)),
    "50": (200, 6, (0.03, 0.01)),
    "52": (250, 2, (0.10, 0.08)),
    "45": (250, 2, (0.10, 0.07)),
}
HOME_PROVINCES = tuple(CELL_PROVINCES)
HOME_WEIGHTS = tuple(w for _, w, _ in CELL_PROVINCES.values())
MOBILE_PREFIXES = tuple(
    "130 131 132 135 136 137 138 139 150 151 152 157 158 159 176 177 180 181 186 187 188 189 198".split()
)
COUNTRY_CODES = {"NP": "977", "TH": "66", "JP": "81", "MY": "60", "KH": "855", "MM": "95", "PH": "63", "US": "1"}
COURIERS = ("SF-Express", "JD-Logistics", "ZTO-Express", "YTO-Express", "China-Post-EMS")
RIDER_PLATFORMS = ("Meituan-Delivery", "Eleme-Delivery")
SALES_FIRMS = ("PingAn-Insurance", "Lianjia-Realty", "China-Life", "Ke-Holdings")
BUSINESSES = ("China-Unicom-Dealer-Svc", "Haier-Customer-Care", "Ctrip-Service-Centre", "JD-Customer-Service")
SHOPS = ("Chengdu-Tea-Trading", "Yiwu-Small-Goods", "Shunde-Kitchenware")
# Weights of the hour a person calls in, 07:00-22:59.
WAKING_HOURS = tuple(range(7, 23))
WAKING_WEIGHTS = (1, 3, 4, 4, 4, 3, 3, 3, 3, 3, 4, 5, 5, 4, 3, 2)

Peer = tuple[str, str]  # (number, province or "00")


@dataclass(slots=True)
class Line:
    msisdn: str
    persona: str
    home: str
    opened_at: date
    holder: str
    enterprise: str | None
    language: str
    imei: str
    cells: list[str]
    contacts: list[Peer] = field(default_factory=list)
    segs: list[tuple[int, int, tuple[str, ...] | None, str, str | None]] = field(default_factory=list)
    seg_starts: list[int] = field(default_factory=list)
    plan: dict = field(default_factory=dict)


class Gen:
    """Random source, geography and the event buffer shared by all behaviours."""

    def __init__(self, seed: int, days: int, start: datetime, variant: str):
        self.rng = random.Random(seed)
        self.knobs = BASE_KNOBS | SHIFTS[variant]
        self.days, self.period = days, days * DAY
        self.start_date = start.date()
        self.buf: list[tuple] = []
        self.msisdns: set[str] = set()
        self.cells: dict[str, dict[str, list[str]]] = {}
        self.cell_lines: list[dict] = []
        self.box: dict | None = None  # the SIM box being filled with lines
        self._make_cells()

    def _make_cells(self) -> None:
        rng, seen = self.rng, set()
        for prov, (n, _, (elevated, high)) in CELL_PROVINCES.items():
            by_risk: dict[str, list[str]] = {"normal": [], "elevated": [], "high": []}
            while sum(map(len, by_risk.values())) < n:
                cid = f"460-00-{int(prov) * 400 + rng.randrange(400)}-{rng.randrange(1, 65536)}"
                if cid in seen:
                    continue
                seen.add(cid)
                u = rng.random()
                risk = "high" if u < high else "elevated" if u < high + elevated else "normal"
                by_risk[risk].append(cid)
                self.cell_lines.append({"kind": "cell", "cell_id": cid, "province": prov, "risk": risk})
            self.cells[prov] = by_risk

    # --- numbers, places, times -------------------------------------------------------------------------

    def mobile(self, prefix: str | None = None) -> str:
        prefix = prefix or self.rng.choice(MOBILE_PREFIXES)
        return prefix + f"{self.rng.randrange(10 ** (11 - len(prefix))):0{11 - len(prefix)}d}"

    def own_msisdn(self, prefix: str | None = None) -> str:
        while (m := self.mobile(prefix)) in self.msisdns:
            pass
        self.msisdns.add(m)
        return m

    def imei(self) -> str:
        return f"86{self.rng.randrange(10**13):013d}"

    def holder(self) -> str:
        return f"h-{self.rng.getrandbits(64):016x}"

    def home_province(self) -> str:
        return self.rng.choices(HOME_PROVINCES, HOME_WEIGHTS)[0]

    def home_cells(self, prov: str, k: int) -> list[str]:
        pool = self.cells[prov]
        every = pool["normal"] + pool["elevated"] + pool["high"]
        return [self.rng.choice(every) for _ in range(k)]

    def peer(self, prov: str | None = None) -> Peer:
        return self.mobile(), prov or self.rng.choice(PROVINCES)

    def remote_peer(self, home: str) -> Peer:
        while (prov := self.rng.choice(PROVINCES)) == home:
            pass
        return self.peer(prov)

    def intl_peer(self, country: str | None = None) -> Peer:
        cc = COUNTRY_CODES[country or self.rng.choice(tuple(COUNTRY_CODES))]
        return f"00{cc}{self.rng.randrange(10**8, 10**9)}", "00"

    def opened(self, min_days: int, max_days: int) -> date:
        return self.start_date - timedelta(days=self.rng.randint(min_days, max_days))

    def weekend(self, day: int) -> bool:
        return (self.start_date + timedelta(days=day)).weekday() >= 5

    def at(self, day: int, h0: float, h1: float) -> int:
        return day * DAY + int(self.rng.uniform(h0, h1) * HOUR)

    def spread(self, day: int, n: int, h0: float, h1: float) -> list[int]:
        return sorted(self.at(day, h0, h1) for _ in range(n))

    def waking(self, day: int, n: int) -> list[int]:
        hours = self.rng.choices(WAKING_HOURS, WAKING_WEIGHTS, k=n)
        return sorted(day * DAY + h * HOUR + self.rng.randrange(HOUR) for h in hours)

    def burst(self, t0: int, n: int, span_s: int) -> list[int]:
        return sorted(t0 + self.rng.randrange(span_s) for _ in range(n))

    def talk(self, mean: float, floor: int = 1) -> int:
        return max(floor, int(self.rng.expovariate(1 / mean)))

    # --- where the handset is ---------------------------------------------------------------------------

    def add_seg(self, line: Line, t0: int, t1: int, cells: Sequence[str] | None, prov: str | None, country=None):
        roaming = "international" if country else "none" if prov == line.home else "domestic"
        line.segs.append((t0, t1, tuple(cells) if cells else None, roaming, country))
        line.seg_starts.append(t0)

    def where(self, line: Line, t: int) -> tuple[str | None, str, str | None]:
        if line.seg_starts:
            i = bisect_right(line.seg_starts, t) - 1
            if i >= 0 and t < line.segs[i][1]:
                _, _, seg_cells, roaming, country = line.segs[i]
                return (self.rng.choice(seg_cells) if seg_cells else None), roaming, country
        cells = line.cells
        return (cells[0] if len(cells) == 1 or self.rng.random() < 0.6 else self.rng.choice(cells)), "none", None

    # --- events -----------------------------------------------------------------------------------------

    def call(self, line: Line, t: int, peer: Peer, direction="out", dur=0, service="voice", imei=None) -> None:
        if 0 <= t < self.period:
            cell, roaming, country = self.where(line, t)
            self.buf.append(
                (t, line.msisdn, peer[0], peer[1], direction, service, dur, cell, roaming, country, imei or line.imei)
            )

    def report(self, line: Line, t: int, source: str) -> None:
        if 0 <= t < self.period:
            self.buf.append((t, line.msisdn, source))


# --- shared pieces of behaviour ---------------------------------------------------------------------------


def _chat(g: Gen, line: Line, t: int, peer: Peer, direction="out", answer=0.85, mean=120.0, sms=0.1) -> None:
    """One human call or SMS."""
    if g.rng.random() < sms:
        g.call(line, t, peer, direction, 0, "sms")
    else:
        g.call(line, t, peer, direction, g.talk(mean) if g.rng.random() < answer else 0)


def _callback(g: Gen, line: Line, t: int, peer: Peer, p: float, delay=(60, 1800), mean=40.0) -> None:
    if g.rng.random() < p:
        g.call(line, t + g.rng.randint(*delay), peer, "in", g.talk(mean))


def _contact(g: Gen, line: Line) -> Peer:
    return g.rng.choice(line.contacts)


def _known_or_new(g: Gen, line: Line, known: float) -> Peer:
    if g.rng.random() < known:
        return _contact(g, line)
    return g.peer(line.home if g.rng.random() < 0.7 else None)


def _make_contacts(g: Gen, line: Line, n: int, local: float, remote_only=False) -> None:
    for _ in range(n):
        if remote_only:
            line.contacts.append(g.remote_peer(line.home))
        else:
            line.contacts.append(g.peer(line.home if g.rng.random() < local else None))


def _everyday(g: Gen, line: Line, day: int, lo=2, hi=15, keep: Callable[[int], bool] | None = None) -> None:
    """An ordinary day: `lo`-`hi` calls and SMS, a good part of them incoming, mostly known people."""
    total = g.rng.randint(lo, hi)
    n_in = round(total * g.rng.uniform(0.3, 0.5))
    n = total - n_in
    for t in g.waking(day, n):
        if keep is None or keep(t):
            _chat(g, line, t, _known_or_new(g, line, 0.85))
    for t in g.waking(day, n_in):
        if keep is None or keep(t):
            _chat(g, line, t, _contact(g, line), "in")


def _delivery_burst(g: Gen, line: Line, t0: int, n: int, span_s: int, callback: float, answer=0.85) -> None:
    """Short calls to local parcel recipients; many of them call back a little later."""
    for t in g.burst(t0, n, span_s):
        peer = g.peer(line.home)
        g.call(line, t, peer, "out", g.rng.randint(8, 45) if g.rng.random() < answer else 0)
        _callback(g, line, t, peer, callback, delay=(60, 3600), mean=25)


def _scam_burst(g: Gen, line: Line, t0: int, rate: float, span_s: int, imei=None, remote=True, answer=0.3) -> None:
    """Calls to strangers at `rate` an hour: mostly unanswered or cut short, hardly anyone calls back."""
    n = max(1, round(rate * span_s / HOUR))
    rng = g.rng
    for t in g.burst(t0, n, span_s):
        peer = g.remote_peer(line.home) if remote and rng.random() < 0.8 else g.peer()
        if rng.random() < 0.03:
            g.call(line, t, peer, "out", 0, "sms", imei)
            continue
        dur = 0
        if rng.random() < answer:
            dur = rng.randint(3, 20) if rng.random() < 0.6 else rng.randint(30, 400)
        g.call(line, t, peer, "out", dur, "voice", imei)
        if dur and rng.random() < 0.05:
            g.call(line, t + dur + 5, peer, "out", 0, "sms", imei)  # "call me back at ..." follow-up
        _callback(g, line, t, peer, 0.02, delay=(300, 7200), mean=20)


def _complaints(g: Gen, line: Line, t: int, p_user=0.35, p_platform=0.2, p_police=0.15) -> None:
    """After fraud starts, some victims complain; the national platform and the police follow later."""
    rng = g.rng
    if rng.random() < p_user:
        g.report(line, t + rng.randint(1 * HOUR, 8 * HOUR), "user_report")
    if rng.random() < p_platform:
        g.report(line, t + rng.randint(2 * HOUR, 24 * HOUR), "national_platform")
    if rng.random() < p_police:
        g.report(line, t + rng.randint(6 * HOUR, 30 * HOUR), "police")


def _active_days(g: Gen, lo: int, hi: int) -> set[int]:
    first = g.rng.randrange(g.days)
    return set(range(first, min(g.days, first + g.rng.randint(lo, hi))))


def _travel_day(g: Gen, line: Line, day: int, prov: str, n_transit: int) -> None:
    """Spend `day` in `prov`, driving past `n_transit` elevated/high-risk cells on the way (10-40 minutes each)."""
    rng = g.rng
    cells = [rng.choice(g.cells[prov]["normal"]) for _ in range(4)]
    risky = g.cells[prov]["high"] + g.cells[prov]["elevated"]
    t, end = day * DAY, (day + 1) * DAY
    windows = line.plan.setdefault("transits", {}).setdefault(day, [])
    for w in g.spread(day, n_transit if risky else 0, 7, 20):
        w = max(w, t + 1)
        w_end = min(w + rng.randint(10, 40) * MINUTE, end)
        g.add_seg(line, t, w, cells, prov)
        g.add_seg(line, w, w_end, [rng.choice(risky)], prov)
        windows.append((w, w_end))
        t = w_end
    g.add_seg(line, t, end, cells, prov)


def _transit_calls(g: Gen, line: Line, day: int) -> None:
    for w0, w1 in line.plan.get("transits", {}).get(day, ()):
        if w1 - w0 > 60:
            _chat(g, line, g.rng.randrange(w0, w1 - 30), _contact(g, line), "out", mean=90)


# --- legitimate personas ----------------------------------------------------------------------------------


def _maybe_new(g: Gen, lo_days: int, hi_days: int) -> date:
    if g.rng.random() < g.knobs["legit_new_account"]:
        return g.opened(1, 60)
    return g.opened(lo_days, hi_days)


def setup_ordinary(g: Gen, line: Line) -> None:
    line.opened_at = _maybe_new(g, 365, 15 * 365)
    _make_contacts(g, line, g.rng.randint(15, 60), 0.75)
    line.plan["rate"] = (g.rng.randint(2, 3), g.rng.randint(5, 12))


def day_ordinary(g: Gen, line: Line, day: int) -> None:
    _everyday(g, line, day, *line.plan["rate"])


def setup_heavy_sales(g: Gen, line: Line) -> None:
    line.opened_at = _maybe_new(g, 2 * 365, 12 * 365)
    line.enterprise = g.rng.choice(SALES_FIRMS) if g.rng.random() < 0.5 else None
    _make_contacts(g, line, g.rng.randint(20, 50), 0.7)
    line.plan["clients"] = list(line.contacts)
    if g.rng.random() < 0.05:  # someone annoyed by a sales call complains: weak evidence on its own
        line.plan["complaint_day"] = g.rng.randrange(g.days)


def day_heavy_sales(g: Gen, line: Line, day: int) -> None:
    rng, clients = g.rng, line.plan["clients"]
    n = rng.randint(0, 10) if g.weekend(day) else round(rng.randint(40, 80) * g.knobs["sales_volume"])
    for t in g.spread(day, n, 9, 18):
        if rng.random() < 0.45:
            peer = rng.choice(clients)
        else:
            peer = g.peer(line.home if rng.random() < 0.6 else None)
            if rng.random() < 0.3:
                clients.append(peer)  # a lead worth calling again another day
        _chat(g, line, t, peer, answer=0.65, mean=90, sms=0.05)
        _callback(g, line, t, peer, 0.2, delay=(5 * MINUTE, 4 * HOUR), mean=120)
    for t in g.spread(day, rng.randint(2, 8), 9, 20):
        _chat(g, line, t, rng.choice(clients), "in", mean=150)
    if line.plan.get("complaint_day") == day:
        g.report(line, g.at(day, 12, 20), "user_report")


def setup_small_business(g: Gen, line: Line) -> None:
    line.opened_at = _maybe_new(g, 365, 10 * 365)
    line.enterprise = g.rng.choice(SHOPS) if g.rng.random() < 0.3 else None
    _make_contacts(g, line, g.rng.randint(30, 80), 0.8)


def day_small_business(g: Gen, line: Line, day: int) -> None:
    rng = g.rng
    for t in g.spread(day, rng.randint(8, 18), 8, 20):
        _chat(g, line, t, _known_or_new(g, line, 0.6), mean=100, sms=0.1)
    for t in g.spread(day, rng.randint(4, 12), 8, 21):  # customers ordering, often new numbers
        peer = _contact(g, line) if rng.random() < 0.5 else g.peer(line.home)
        _chat(g, line, t, peer, "in", mean=80, sms=0.15)


def setup_courier(g: Gen, line: Line) -> None:
    line.opened_at = g.opened(3 * 365, 12 * 365)
    line.enterprise = g.rng.choice(COURIERS) if g.rng.random() < 0.75 else None
    _make_contacts(g, line, g.rng.randint(15, 40), 0.85)
    line.cells = g.home_cells(line.home, 6)  # the delivery area spans several cells
    line.plan["callback"] = g.rng.uniform(0.35, 0.6) * g.knobs["courier_callback"]


def day_courier(g: Gen, line: Line, day: int) -> None:
    rng = g.rng
    slots = [(8.5, 10.5), (13.5, 16.5), (17, 18.5)]
    for h0, h1 in rng.sample(slots, rng.randint(0, 1) if g.weekend(day) else rng.randint(1, 2)):
        n = round(rng.randint(20, 30) * g.knobs["courier_burst"])
        _delivery_burst(g, line, g.at(day, h0, h1), n, rng.randint(60, 90) * MINUTE, line.plan["callback"])
    _everyday(g, line, day, 2, 6)


def setup_rider(g: Gen, line: Line) -> None:
    line.opened_at = g.opened(195, 230)  # seven months in
    line.enterprise = g.rng.choice(RIDER_PLATFORMS) if g.rng.random() < 0.3 else None
    _make_contacts(g, line, g.rng.randint(10, 30), 0.85)
    line.cells = g.home_cells(line.home, 6)
    line.plan["callback"] = g.rng.uniform(0.3, 0.5) * g.knobs["courier_callback"]


def day_rider(g: Gen, line: Line, day: int) -> None:
    rng = g.rng
    for _ in range(rng.randint(2, 4)):
        h0, h1 = rng.choice([(10.5, 13), (16.5, 19.5), (20, 21.5)])
        n = round(rng.randint(5, 12) * g.knobs["courier_burst"])
        _delivery_burst(g, line, g.at(day, h0, h1), n, rng.randint(20, 45) * MINUTE, line.plan["callback"], 0.8)
    _everyday(g, line, day, 2, 6)


def _renumber(g: Gen, line: Line, prefix: str) -> str:
    g.msisdns.discard(line.msisdn)
    return g.own_msisdn(prefix)


def setup_truck_driver(g: Gen, line: Line) -> None:
    rng = g.rng
    line.msisdn = _renumber(g, line, "193")
    line.opened_at = g.opened(3, 40)
    line.home = rng.choice(("51", "50", "43", "44"))
    line.cells = g.home_cells(line.home, 2)
    _make_contacts(g, line, rng.randint(8, 20), 1.0)  # customers in his home province
    away = [p for p in CELL_PROVINCES if p != line.home]
    route = [line.home] + rng.sample(away, rng.randint(2, 3))
    route += [p for p in ("52", "45") if p not in route and rng.random() < 0.5]
    for day in range(g.days):
        _travel_day(g, line, day, route[(day + rng.randint(0, 1)) % len(route)], rng.randint(0, 2))


def day_truck_driver(g: Gen, line: Line, day: int) -> None:
    rng = g.rng
    for t in g.spread(day, rng.randint(3, 9), 7, 21):
        _chat(g, line, t, _contact(g, line), mean=100, sms=0.1)
    for t in g.spread(day, rng.randint(2, 6), 7, 21):
        _chat(g, line, t, _contact(g, line), "in", mean=100)
    _transit_calls(g, line, day)


def setup_road_tripper(g: Gen, line: Line) -> None:
    rng = g.rng
    line.opened_at = _maybe_new(g, 365, 15 * 365)
    line.home = rng.choice(("44", "51", "50", "43", "31"))
    line.cells = g.home_cells(line.home, 3)
    _make_contacts(g, line, rng.randint(15, 50), 0.75)
    first = rng.randrange(max(1, g.days - 1))
    for day in range(first, min(g.days, first + rng.randint(2, 3))):
        _travel_day(g, line, day, ("52", "45")[(day - first + rng.randint(0, 1)) % 2], rng.randint(1, 3))


def day_road_tripper(g: Gen, line: Line, day: int) -> None:
    _everyday(g, line, day, 2, 12)
    _transit_calls(g, line, day)


def _abroad(g: Gen, line: Line, t0: int, t1: int) -> None:
    g.add_seg(line, t0, t1, None, None, line.plan["country"])


def _abroad_calls(g: Gen, line: Line, day: int, keep: Callable[[int], bool]) -> None:
    """Abroad: a few calls home (expensive, short), some local numbers, family calling in."""
    rng, country = g.rng, line.plan["country"]
    for t in g.waking(day, rng.randint(1, 5)):
        if keep(t):
            _chat(g, line, t, _contact(g, line), answer=0.8, mean=60, sms=0.3)
    for t in g.waking(day, rng.randint(0, 3)):
        if keep(t):
            _chat(g, line, t, g.intl_peer(country), answer=0.7, mean=45, sms=0.1)
    for t in g.waking(day, rng.randint(1, 4)):
        if keep(t):
            _chat(g, line, t, _contact(g, line), "in", mean=90, sms=0.3)


def setup_traveller(g: Gen, line: Line) -> None:
    rng = g.rng
    line.opened_at = g.opened(2 * 365, 15 * 365)
    line.home = "65" if rng.random() < 0.4 else g.home_province()
    line.cells = g.home_cells(line.home, 3)
    line.language = "en" if rng.random() < 0.15 else "zh"
    _make_contacts(g, line, rng.randint(15, 40), 0.85)
    line.plan["country"] = rng.choice(("NP", "NP", "TH", "JP", "MY"))
    first = 0 if rng.random() < 0.4 else rng.randrange(g.days)
    t0 = first * DAY + (rng.randint(8, 20) * HOUR if first else 0)
    t1 = min(g.period, (first + rng.randint(2, max(2, g.days))) * DAY + rng.randint(8, 20) * HOUR)
    line.plan["away"] = (t0, t1)
    _abroad(g, line, t0, t1)


def day_traveller(g: Gen, line: Line, day: int) -> None:
    t0, t1 = line.plan["away"]
    _abroad_calls(g, line, day, lambda t: t0 <= t < t1)
    _everyday(g, line, day, 1, 8, keep=lambda t: not t0 <= t < t1)


def setup_returning_roamer(g: Gen, line: Line) -> None:
    rng = g.rng
    line.opened_at = g.opened(365, 10 * 365)
    line.home = "65" if rng.random() < 0.3 else g.home_province()
    line.cells = g.home_cells(line.home, 3)
    _make_contacts(g, line, rng.randint(25, 70), 0.8)
    line.plan["country"] = rng.choice(tuple(COUNTRY_CODES)[:7])
    line.plan["back"] = back = int(rng.uniform(0.25, 0.6) * g.period)
    _abroad(g, line, 0, back)


def day_returning_roamer(g: Gen, line: Line, day: int) -> None:
    rng, back = g.rng, line.plan["back"]
    _abroad_calls(g, line, day, lambda t: t < back)
    _everyday(g, line, day, 3, 15, keep=lambda t: t >= back)
    if day * DAY <= back < (day + 1) * DAY:  # home again: everyone gets a call
        start = back + rng.randint(20, 90) * MINUTE
        for t in g.burst(start, rng.randint(15, 35), rng.randint(3, 6) * HOUR):
            peer = _contact(g, line) if rng.random() < 0.6 else g.peer()
            _chat(g, line, t, peer, answer=0.85, mean=150, sms=0.1)
            _callback(g, line, t, peer, 0.3, delay=(5 * MINUTE, 3 * HOUR), mean=180)


def setup_long_tenure_remote(g: Gen, line: Line) -> None:
    rng = g.rng
    line.opened_at = g.opened(14 * 365 - 120, 14 * 365 + 120)
    line.home = "44" if rng.random() < 0.6 else g.home_province()
    line.cells = g.home_cells(line.home, 2)
    _make_contacts(g, line, rng.randint(30, 80), 0.0, remote_only=True)


def day_long_tenure_remote(g: Gen, line: Line, day: int) -> None:
    rng = g.rng
    for t in g.spread(day, rng.randint(20, 45) // (2 if g.weekend(day) else 1), 9, 21):
        peer = _contact(g, line) if rng.random() < 0.6 else g.remote_peer(line.home)
        _chat(g, line, t, peer, answer=0.75, mean=150, sms=0.05)
        _callback(g, line, t, peer, 0.3, delay=(5 * MINUTE, 3 * HOUR), mean=150)
    for t in g.spread(day, rng.randint(8, 20), 8, 22):
        _chat(g, line, t, _contact(g, line), "in", mean=150)


# --- fraud personas ---------------------------------------------------------------------------------------


def _fraud_rate(g: Gen, lo: float, hi: float, slow_share=0.0) -> float:
    rate = g.rng.uniform(10, 15) if g.rng.random() < slow_share else g.rng.uniform(lo, hi)
    return rate * g.knobs["scam_rate"]


def setup_scam_callcentre(g: Gen, line: Line) -> None:
    rng = g.rng
    line.opened_at = g.opened(2, 14) if rng.random() < 0.4 else g.opened(15, 120)
    line.plan.update(active=_active_days(g, 1, 3), rate=_fraud_rate(g, 30, 80, slow_share=0.2))
    line.plan["night"] = rng.random() < 0.4


def day_scam_callcentre(g: Gen, line: Line, day: int) -> None:
    rng, plan = g.rng, line.plan
    if day not in plan["active"]:
        return
    for _ in range(rng.randint(1, 3)):
        h0, h1 = (21, 26) if plan["night"] and rng.random() < 0.4 else (9, 20)
        t0 = g.at(day, h0, h1)
        _scam_burst(g, line, t0, plan["rate"] * rng.uniform(0.8, 1.2), rng.randint(40, 70) * MINUTE)
        if "complained" not in plan:
            plan["complained"] = True
            _complaints(g, line, t0)


def setup_simbox(g: Gen, line: Line) -> None:
    rng = g.rng
    if g.box is None or g.box["free"] == 0:
        g.box = {
            "free": rng.randint(4, 16),
            "home": line.home,
            "imei": g.imei(),
            "cell": rng.choice(g.cells[line.home]["normal"]),
            "holder": g.holder(),
            "active": _active_days(g, 1, 2),
            "hours": (0, 24) if rng.random() < 0.3 else (8, 23),
        }
    box = g.box
    box["free"] -= 1
    line.home, line.imei, line.cells, line.holder = box["home"], box["imei"], [box["cell"]], box["holder"]
    line.opened_at = g.opened(1, 30)
    line.plan.update(box=box, per_day=int(rng.uniform(100, 220) * g.knobs["scam_rate"]))


def day_simbox(g: Gen, line: Line, day: int) -> None:
    rng, box = g.rng, line.plan["box"]
    if day not in box["active"]:
        return
    for t in g.spread(day, line.plan["per_day"], *box["hours"]):
        g.call(line, t, g.peer(), "out", rng.randint(15, 25) if rng.random() < 0.35 else 0)


def setup_mule_two_card(g: Gen, line: Line) -> None:
    line.opened_at = g.opened(0, 6)
    line.plan.update(
        active=_active_days(g, 1, 3), rate=_fraud_rate(g, 10, 25), imeis=[g.imei() for _ in range(g.rng.randint(3, 6))]
    )


def day_mule_two_card(g: Gen, line: Line, day: int) -> None:
    rng, plan = g.rng, line.plan
    if day not in plan["active"]:
        return
    for _ in range(rng.randint(1, 3)):
        t0 = g.at(day, 9, 22)
        _scam_burst(g, line, t0, plan["rate"], rng.randint(30, 90) * MINUTE, imei=rng.choice(plan["imeis"]))
    for t in g.spread(day, rng.randint(0, 2), 9, 22):
        _chat(g, line, t, g.peer(), "in", mean=30)


def setup_wangiri(g: Gen, line: Line) -> None:
    line.opened_at = g.opened(3, 90)
    line.plan.update(active=_active_days(g, 1, 3), rate=_fraud_rate(g, 60, 150))


def day_wangiri(g: Gen, line: Line, day: int) -> None:
    rng, plan = g.rng, line.plan
    if day not in plan["active"]:
        return
    for _ in range(rng.randint(1, 2)):
        for t in g.burst(g.at(day, 0, 5), round(plan["rate"]), HOUR):
            peer = g.intl_peer() if rng.random() < 0.3 else g.peer()
            g.call(line, t, peer, "out", 0)
            _callback(g, line, t, peer, 0.05, delay=(10 * MINUTE, 6 * HOUR), mean=15)


def setup_takeover(g: Gen, line: Line) -> None:
    rng = g.rng
    line.opened_at = g.opened(3 * 365, 15 * 365)
    _make_contacts(g, line, rng.randint(15, 50), 0.75)
    line.plan.update(
        switch=int(rng.uniform(0.4, 0.8) * g.period), imei=g.imei(), rate=_fraud_rate(g, 20, 60, slow_share=0.15)
    )


def day_takeover(g: Gen, line: Line, day: int) -> None:
    rng, plan = g.rng, line.plan
    switch = plan["switch"]
    _everyday(g, line, day, 2, 10, keep=lambda t: t < switch)
    if (day + 1) * DAY <= switch:
        return
    for _ in range(rng.randint(1, 3)):
        t0 = max(switch, g.at(day, 9, 22))
        _scam_burst(g, line, t0, plan["rate"], rng.randint(30, 70) * MINUTE, imei=plan["imei"])
        if "complained" not in plan:
            plan["complained"] = True
            _complaints(g, line, t0, p_user=0.3, p_platform=0.1, p_police=0.1)


Behaviour = tuple[Callable[[Gen, Line], None], Callable[[Gen, Line, int], None]]


def setup_business_callcentre(g: Gen, line: Line) -> None:
    rng = g.rng
    line.opened_at = g.opened(365, 10 * 365)
    line.enterprise = rng.choice(BUSINESSES)
    _make_contacts(g, line, rng.randint(80, 200), 0.35)  # customers all over the country
    line.plan["customers"] = list(line.contacts)


def day_business_callcentre(g: Gen, line: Line, day: int) -> None:
    """Agents call customers back and follow up leads in office hours; customers call the line all day."""
    rng, customers = g.rng, line.plan["customers"]
    weekend = g.weekend(day)
    n = rng.randint(5, 20) if weekend else rng.randint(60, 120)
    for t in g.spread(day, n, 9, 18):
        if rng.random() < 0.45:
            peer = rng.choice(customers)
        else:
            peer = g.peer(line.home if rng.random() < 0.35 else None)
            customers.append(peer)
        _chat(g, line, t, peer, answer=0.7, mean=150, sms=0.05)
        _callback(g, line, t, peer, 0.15, delay=(10 * MINUTE, 6 * HOUR), mean=180)
    for t in g.spread(day, rng.randint(3, 10) if weekend else rng.randint(20, 60), 8, 21):
        peer = rng.choice(customers) if rng.random() < 0.5 else g.peer()
        _chat(g, line, t, peer, "in", mean=200, sms=0.02)


def setup_family_abroad(g: Gen, line: Line) -> None:
    rng = g.rng
    line.opened_at = g.opened(3 * 365, 15 * 365)
    _make_contacts(g, line, rng.randint(15, 40), 0.9)
    line.plan["country"] = rng.choice(("JP", "MY", "TH", "US"))
    line.plan["imeis"] = [line.imei, g.imei()]  # the card moves between two family members' phones
    line.plan["locals"] = [g.intl_peer(line.plan["country"]) for _ in range(rng.randint(3, 10))]
    _abroad(g, line, 0, g.period)


def day_family_abroad(g: Gen, line: Line, day: int) -> None:
    """Several people on one card abroad: calls home and to local numbers, family and friends calling in."""
    rng, plan = g.rng, line.plan
    for t in g.waking(day, rng.randint(2, 10)):
        imei = rng.choice(plan["imeis"])
        if rng.random() < 0.6:
            g.call(line, t, _contact(g, line), "out", g.talk(240) if rng.random() < 0.8 else 0, imei=imei)
        else:
            g.call(line, t, rng.choice(plan["locals"]), "out", g.talk(90) if rng.random() < 0.75 else 0, imei=imei)
    for t in g.waking(day, rng.randint(1, 8)):
        _chat(g, line, t, _contact(g, line) if rng.random() < 0.8 else rng.choice(plan["locals"]), "in", mean=300)


def setup_slow_scam(g: Gen, line: Line) -> None:
    line.opened_at = g.opened(3, 30)
    line.plan["per_day"] = (10, 22)


def day_slow_scam(g: Gen, line: Line, day: int) -> None:
    """Every call to a stranger in another province, spread over the day (never more than a few an hour),
    long when answered; nobody calls the line."""
    rng = g.rng
    n = round(rng.randint(*line.plan["per_day"]) * g.knobs["scam_rate"] ** 0.5)
    for t in g.spread(day, max(1, n), 9, 21):
        dur = rng.randint(60, 900) if rng.random() < 0.35 else 0
        g.call(line, t, g.remote_peer(line.home), "out", dur)
    if day == 2 and "complained" not in line.plan:
        line.plan["complained"] = True
        _complaints(g, line, g.at(day, 12, 20), p_user=0.1, p_platform=0.05, p_police=0.03)


BEHAVIOURS: dict[str, Behaviour] = {  # persona -> (set the line up once, play one day)
    "ordinary": (setup_ordinary, day_ordinary),
    "heavy_sales": (setup_heavy_sales, day_heavy_sales),
    "small_business": (setup_small_business, day_small_business),
    "courier": (setup_courier, day_courier),
    "rider": (setup_rider, day_rider),
    "truck_driver": (setup_truck_driver, day_truck_driver),
    "road_tripper": (setup_road_tripper, day_road_tripper),
    "traveller": (setup_traveller, day_traveller),
    "returning_roamer": (setup_returning_roamer, day_returning_roamer),
    "long_tenure_remote": (setup_long_tenure_remote, day_long_tenure_remote),
    "scam_callcentre": (setup_scam_callcentre, day_scam_callcentre),
    "simbox": (setup_simbox, day_simbox),
    "mule_two_card": (setup_mule_two_card, day_mule_two_card),
    "wangiri": (setup_wangiri, day_wangiri),
    "takeover": (setup_takeover, day_takeover),
    "business_callcentre": (setup_business_callcentre, day_business_callcentre),
    "family_abroad": (setup_family_abroad, day_family_abroad),
    "slow_scam": (setup_slow_scam, day_slow_scam),
}
assert BEHAVIOURS.keys() == PERSONAS.keys()


# --- the file ---------------------------------------------------------------------------------------------


def persona_counts(lines: int) -> dict[str, int]:
    """Lines per persona: shares of `lines`, at least one of each from 30 lines, the rest ordinary."""
    counts = {name: int(lines * p.share) for name, p in PERSONAS.items() if name != "ordinary"}
    if lines >= 30:
        counts = {name: max(1, n) for name, n in counts.items()}
    return {"ordinary": lines - sum(counts.values()), **counts}


def _new_line(g: Gen, persona: str) -> Line:
    home = g.home_province()
    line = Line(
        msisdn=g.own_msisdn(),
        persona=persona,
        home=home,
        opened_at=g.start_date,
        holder=g.holder(),
        enterprise=None,
        language="en" if g.rng.random() < 0.05 else "zh",
        imei=g.imei(),
        cells=g.home_cells(home, g.rng.randint(1, 3)),
    )
    BEHAVIOURS[persona][0](g, line)
    return line


def _subscriber(line: Line) -> dict:
    return {
        "kind": "subscriber",
        "msisdn": line.msisdn,
        "home_province": line.home,
        "opened_at": line.opened_at.isoformat(),
        "holder_ref": line.holder,
        "enterprise": line.enterprise,
        "language": line.language,
        "persona": line.persona,
        "fraud": PERSONAS[line.persona].fraud,
    }


class _Clock:
    """Seconds since the start -> RFC 3339, cached per minute."""

    def __init__(self, start: datetime):
        self.start = start
        self.cache: dict[int, tuple[str, str]] = {}

    def __call__(self, t: int) -> str:
        m, s = divmod(t, 60)
        head = self.cache.get(m)
        if head is None:
            iso = (self.start + timedelta(minutes=m)).isoformat(timespec="seconds")
            head = self.cache[m] = (iso[:17], iso[19:])
        return f"{head[0]}{s:02d}{head[1]}"


# Every value in an event is ASCII digits, letters, "-", ":" or "+", so the JSON needs no escaping.
CDR_JSON = (
    '{"kind":"cdr","msisdn":"%s","peer":"%s","peer_province":"%s","direction":"%s","service":"%s","start":"%s",'
    '"duration_s":%d,"cell_id":%s,"roaming":"%s","country":%s,"imei":"%s"}\n'
)
REPORT_JSON = '{"kind":"report","msisdn":"%s","at":"%s","source":"%s"}\n'


def _event_json(e: tuple, clock: _Clock) -> str:
    if len(e) == 3:
        return REPORT_JSON % (e[1], clock(e[0]), e[2])
    t, msisdn, peer, prov, direction, service, dur, cell, roaming, country, imei = e
    cell_json = f'"{cell}"' if cell else "null"
    country_json = f'"{country}"' if country else "null"
    return CDR_JSON % (msisdn, peer, prov, direction, service, clock(t), dur, cell_json, roaming, country_json, imei)


def generate(
    path: str | Path,
    *,
    seed: int,
    lines: int = 10000,
    days: int = 7,
    start: str = "2026-03-02T00:00:00+08:00",
    variant: str = "base",
) -> dict:
    """Write a scenario of `lines` subscribers over `days` days from local midnight `start`; return a summary."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: one of {VARIANTS}")
    t0 = datetime.fromisoformat(start)
    if t0.tzinfo is None or (t0.hour, t0.minute, t0.second, t0.microsecond) != (0, 0, 0, 0):
        raise ValueError("start: a local midnight with an offset, e.g. 2026-03-02T00:00:00+08:00")
    if lines < 1 or days < 1:
        raise ValueError("lines and days must be at least 1")
    g = Gen(seed, days, t0, variant)
    personas = [name for name, n in persona_counts(lines).items() for _ in range(n)]
    g.rng.shuffle(personas)
    population = [_new_line(g, p) for p in personas]
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    clock = _Clock(t0)
    kinds: Counter[str] = Counter()
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write("".join(dumps(c) + "\n" for c in g.cell_lines))
        out.write("".join(dumps(_subscriber(line)) + "\n" for line in population))
        carry: list[tuple] = []
        for day in range(days):
            g.buf = carry
            for line in population:
                BEHAVIOURS[line.persona][1](g, line, day)
            g.buf.sort(key=itemgetter(0))
            cut = bisect_right(g.buf, (day + 1) * DAY - 1, key=itemgetter(0))
            today, carry = g.buf[:cut], g.buf[cut:]
            kinds["report"] += sum(1 for e in today if len(e) == 3)
            kinds["cdr"] += len(today)
            out.write("".join([_event_json(e, clock) for e in today]))
    kinds["cdr"] -= kinds["report"]
    return {
        "seed": seed,
        "variant": variant,
        "days": days,
        "lines": lines,
        "personas": dict(Counter(line.persona for line in population)),
        "cells": len(g.cell_lines),
        "cdr": kinds["cdr"],
        "report": kinds["report"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pscli.personas", description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lines", type=int, default=10000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--start", default="2026-03-02T00:00:00+08:00")
    ap.add_argument("--variant", choices=VARIANTS, default="base")
    a = ap.parse_args(argv)
    summary = generate(a.out, seed=a.seed, lines=a.lines, days=a.days, start=a.start, variant=a.variant)
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

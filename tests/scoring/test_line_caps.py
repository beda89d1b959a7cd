"""One line cannot grow without limit: every history is capped, and a flooding line is still flagged."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.scoring.engine import LINES_PER_HANDSET_CAP, Engine
from services.scoring.features import (
    CELL_CAP,
    CONTACT_CAP,
    HANDSET_CAP,
    IN_CAP,
    OUT_CAP,
    REPORT_CAP,
    Profile,
)
from services.scoring.scorecard import load

T0 = int(datetime(2026, 9, 28, 9, 0, tzinfo=UTC).timestamp())
LINE = "13700000001"


def engine() -> Engine:
    e = Engine(load())
    e.set_profile(LINE, Profile("44", date(2020, 1, 1)))
    e.set_feeds(cells={f"cell-{i}": 3 for i in range(10)})
    return e


def features(e: Engine, msisdn: str) -> dict[str, float]:
    """The line's features now (at its latest event time)."""
    now = e.current(msisdn)
    assert now is not None
    return now[1]


def test_a_line_calling_fifty_thousand_strangers_in_a_day_stays_bounded_and_is_suspended():
    e = engine()
    calls = 50_000
    for i in range(calls):  # one every 1.7 s, each to a new number, from ever new handsets and listed cells
        t = T0 + i * 86_000 // calls
        e.observe(LINE, f"170{i:08d}", "51", True, t, 0, f"cell-{i % 10}", False, f"86{i // 100:013d}", False)
        if i % 2 == 0:
            e.observe(LINE, f"180{i:08d}", "51", False, t, 20, "", False, "", False)
    s = e.lines[LINE]
    assert len(s.ev) == len(s.pk) == OUT_CAP and s.d1.n == OUT_CAP
    assert len(s.book) <= OUT_CAP + 2 * CONTACT_CAP
    assert len(s.incoming or ()) == IN_CAP and len(s.cells or ()) == CELL_CAP == s.high_cells
    assert len(s.imeis or ()) == HANDSET_CAP
    f = features(e, LINE)
    assert f["calls_24h"] == OUT_CAP and f["distinct_peers_24h"] == OUT_CAP and f["new_peers_24h"] == OUT_CAP
    assert f["calls_1h"] > 2000  # the hour is far below the cap: exact
    assert e.acted[LINE] == 3  # suspended


def test_reports_and_a_handset_shared_by_many_lines_are_capped():
    e = engine()
    for n in range(100):
        m = f"1380000{n:04d}"
        e.set_profile(m, Profile("44", date(2020, 1, 1)))
        e.observe(m, "15000000001", "44", True, T0 + n, 30, "", False, "861234567890123", False)
    assert len(e.handsets["861234567890123"]) == LINES_PER_HANDSET_CAP
    assert features(e, m)["lines_per_handset"] == LINES_PER_HANDSET_CAP
    for i in range(REPORT_CAP + 500):
        e.report(LINE, T0 + i, i % 3)
    s = e.lines[LINE]
    assert len(s.reports or ()) == REPORT_CAP and s.authority == sum(1 for r in s.reports or () if r & 3)

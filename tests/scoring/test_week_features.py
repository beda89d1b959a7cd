"""Day- and week-scale features: exact in any order of arrival, kept across snapshots, older snapshots still load."""

from __future__ import annotations

from datetime import UTC, date, datetime

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scoring.engine import Engine
from services.scoring.features import DAY, HOUR, W_FIELDS, WEEK_DAYS, Profile, as_version_2, local_day
from services.scoring.scorecard import load

T0 = int(datetime(2026, 9, 28, 1, 0, tzinfo=UTC).timestamp())  # 09:00 in China
LINE = "13700000001"
PEERS = tuple(f"150{i:08d}" for i in range(8))
CARD = load()
WEEK_FEATURES = (
    "outgoing_7d",
    "strangers_7d",
    "stranger_share_7d",
    "other_province_share_7d",
    "stranger_callback_share_7d",
    "silent_days",
)


def engine() -> Engine:
    e = Engine(CARD)
    e.set_profile(LINE, Profile("44", date(2026, 9, 20)))
    return e


def week(e: Engine) -> dict[str, float]:
    now = e.current(LINE)
    assert now is not None
    return {k: now[1][k] for k in WEEK_FEATURES}


def cdr(peer: str, t: int, outgoing: bool = True, province: str = "44") -> tuple:
    return (LINE, peer, province, outgoing, t, 30, "", False, "861", False)


# Nine days (the week and two days that leave it), clustered at day boundaries in China, with ties.
times = st.builds(
    lambda d, off: T0 + d * DAY + off,
    st.integers(0, 8),
    st.sampled_from([0, 1, 15 * HOUR - 1, 15 * HOUR, 15 * HOUR + 1, 20 * HOUR]),
)
cdrs = st.builds(
    cdr,
    peer=st.sampled_from(PEERS),
    t=times,
    outgoing=st.booleans(),
    province=st.sampled_from(["44", "51", "00"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(cdrs, st.integers()), min_size=1, max_size=50))
def test_the_week_counts_are_the_same_whatever_order_the_cdrs_arrive_in(items):
    in_order, shuffled = engine(), engine()
    for c, _ in sorted(items, key=lambda item: item[0][4]):
        in_order.observe(*c)
    for c, _ in sorted(items, key=lambda item: item[1]):
        shuffled.observe(*c)
    assert week(shuffled) == week(in_order)
    for e in (in_order, shuffled):
        totals_are_the_sums_of_the_days(e)
    restored = engine()
    restored.restore(LINE, msgpack.unpackb(msgpack.packb(shuffled.snapshot(LINE))))
    assert week(restored) == week(in_order)


def totals_are_the_sums_of_the_days(e: Engine) -> None:
    s = e.lines[LINE]
    w = s.week
    if w:
        assert w[0] == local_day(s.last_t) - WEEK_DAYS + 1
        for f in range(1, W_FIELDS):
            assert w[f] == sum(w[i + f] for i in range(W_FIELDS, len(w), W_FIELDS) if w[i] >= w[0])


def test_a_slow_scam_line_shows_at_week_scale_and_a_two_way_line_does_not():
    scam, courier = engine(), engine()
    n = 0
    for day in range(3):
        for i in range(12):  # twelve calls a day, never two in the same hour's burst
            t = T0 + day * DAY + i * 40 * 60
            scam.observe(*cdr(f"139{n:08d}", t, province="51"))
            courier.observe(*cdr(f"139{n:08d}", t))
            if i % 3 == 0:
                courier.observe(*cdr(f"139{n:08d}", t + 600, outgoing=False))  # the customer calls back
            n += 1
    assert week(scam) == {
        "outgoing_7d": 36,
        "strangers_7d": 36,
        "stranger_share_7d": 1.0,
        "other_province_share_7d": 1.0,
        "stranger_callback_share_7d": 0.0,
        "silent_days": 3,
    }
    f = week(courier)
    assert f["silent_days"] == 0 and f["other_province_share_7d"] == 0.0
    assert f["stranger_callback_share_7d"] == 12 / 36


def test_a_day_leaves_the_week_after_seven_days_and_a_day_with_incoming_ends_the_silent_run():
    e = engine()
    e.observe(*cdr(PEERS[0], T0))
    e.observe(*cdr(PEERS[1], T0 + DAY))
    e.observe(*cdr(PEERS[2], T0 + DAY, outgoing=False))
    e.observe(*cdr(PEERS[3], T0 + 2 * DAY))
    assert week(e)["outgoing_7d"] == 3 and week(e)["silent_days"] == 1
    e.observe(*cdr(PEERS[4], T0 + 7 * DAY))  # the first day leaves
    f = week(e)
    assert f["outgoing_7d"] == 3 and f["strangers_7d"] == 3 and f["silent_days"] == 1


def test_a_late_earlier_call_from_the_peer_makes_it_no_stranger():
    e = engine()
    e.observe(*cdr(PEERS[1], T0 + 3 * DAY))
    assert week(e)["strangers_7d"] == 1
    e.observe(*cdr(PEERS[1], T0, outgoing=False))  # it had called three days before
    f = week(e)
    assert f["strangers_7d"] == 0 and f["outgoing_7d"] == 1


def test_a_snapshot_written_before_the_week_counts_still_loads():
    e = engine()
    for i in range(5):
        e.observe(*cdr(PEERS[i], T0 + i * 600, province="51"))
    e.observe(*cdr(PEERS[0], T0 + 4000, outgoing=False))
    snap = e.snapshot(LINE)
    lists = as_version_2(snap[:12])
    older = [*lists[:11], *snap[12:]]  # eleven line fields, then acted and cleared: the form before the week
    restored = engine()
    restored.restore(LINE, msgpack.unpackb(msgpack.packb(older)))
    assert restored.current(LINE) == e.current(LINE)  # the week is rebuilt from the day it kept
    assert week(restored)["stranger_callback_share_7d"] == 0.2


def test_version_2_snapshots_saved_before_still_load_the_same_line():
    e = engine()
    for i in range(6):
        e.observe(*cdr(PEERS[i % 4], T0 + i * 900, province="51" if i % 2 else "44"))
    e.observe(*cdr(PEERS[1], T0 + 7000, outgoing=False))
    snap = e.snapshot(LINE)
    assert snap[2][0] == 3 and isinstance(snap[2][1], bytes)
    lists = [*as_version_2(snap[:12]), *snap[12:]]  # as a checkpoint written before version 3 holds it
    for stored in (snap, lists):
        restored = engine()
        restored.restore(LINE, msgpack.unpackb(msgpack.packb(stored)))
        assert msgpack.packb(restored.snapshot(LINE)) == msgpack.packb(snap)
        assert restored.current(LINE) == e.current(LINE)

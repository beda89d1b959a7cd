"""Event time: late CDRs land where they belong, a bounded lateness cannot fake a burst, the future is refused."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from pscli.personas import generate
from services.scoring.engine import Engine
from services.scoring.features import SNAPSHOT_VERSION, Profile
from services.scoring.scorecard import load

T0 = int(datetime(2026, 9, 28, 9, 0, tzinfo=UTC).timestamp())  # 17:00 in China
LINES = ("13700000001", "13700000002")
PEERS = tuple(f"150{i:08d}" for i in range(6))
CARD = load()


def engine(**kw) -> Engine:
    e = Engine(CARD, **kw)
    e.set_profile(LINES[0], Profile("44", date(2015, 1, 1)))
    e.set_profile(LINES[1], Profile("44", date(2026, 9, 20)))
    e.set_feeds(cells={"cell-high": 3, "cell-elevated": 2}, hot_numbers={PEERS[5]})
    return e


def cdr(line=LINES[0], peer=PEERS[0], t=T0, outgoing=True, duration=30, province="44", cell="", imei="861", sms=False):
    return (line, peer, province, outgoing, t, duration, cell, False, imei, sms)


def features(e: Engine, msisdn: str) -> dict[str, float]:
    """The line's features now (at its latest event time)."""
    now = e.current(msisdn)
    assert now is not None
    return now[1]


def final(e: Engine) -> list:
    return [e.current(m) for m in LINES]


# Clusters around the hour and day boundaries, with ties.
times = st.builds(
    lambda base, off: T0 + base + off,
    st.sampled_from([0, 1800, 3500, 3600, 5400, 7200, 40000, 86000, 86400, 88000]),
    st.integers(0, 120),
)
cdrs = st.builds(
    cdr,
    line=st.sampled_from(LINES),
    peer=st.sampled_from(PEERS),
    t=times,
    outgoing=st.booleans(),
    duration=st.sampled_from([0, 30, 200]),
    province=st.sampled_from(["44", "51", "00"]),
    cell=st.sampled_from(["", "", "cell-high", "cell-elevated"]),
    imei=st.sampled_from(["861", "862"]),
    sms=st.booleans(),
)
reports = st.tuples(st.sampled_from(LINES), times, st.integers(0, 2))
# An event, when it happened, and its delay: delivered up to the lateness after its event time, no event arrives
# more than the lateness after one with a later event time.
events = st.one_of(
    cdrs.map(lambda c: (c[4], "cdr", c)),
    reports.map(lambda r: (r[1], "report", r)),
)


def feed(e: Engine, delivered: list) -> None:
    for _, kind, args in delivered:
        if kind == "cdr":
            e.observe(*args)
        else:
            e.report(*args)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(events, st.integers(0, 7200), st.integers()), min_size=1, max_size=60))
def test_cdrs_in_any_order_within_the_lateness_give_the_same_features_and_assessment(items):
    in_order, shuffled = engine(), engine()
    feed(in_order, [ev for ev, _, _ in sorted(items, key=lambda item: item[0][0])])
    feed(shuffled, [ev for ev, _, _ in sorted(items, key=lambda item: (item[0][0] + item[1], item[2]))])
    assert shuffled.refused == {}
    assert final(shuffled) == final(in_order)
    restored = engine()
    for m in shuffled.lines:
        restored.restore(m, msgpack.unpackb(msgpack.packb(shuffled.snapshot(m))))
    assert final(restored) == final(in_order)


def test_a_persona_corpus_delivered_up_to_two_hours_late_ends_in_the_same_state(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    generate(str(corpus), seed=5, lines=300, days=2)
    subscribers, cells, events = [], {}, []
    for raw in corpus.read_text().splitlines():
        o = json.loads(raw)
        if o["kind"] == "subscriber":
            subscribers.append(o)
        elif o["kind"] == "cell" and o["risk"] != "normal":
            cells[o["cell_id"]] = 3 if o["risk"] == "high" else 2
        elif o["kind"] == "cdr":
            t = int(datetime.fromisoformat(o["start"]).timestamp())
            abroad = o["roaming"] == "international"
            out, sms = o["direction"] == "out", o["service"] == "sms"
            c = (
                o["msisdn"],
                o["peer"],
                o["peer_province"],
                out,
                t,
                o["duration_s"],
                o["cell_id"] or "",
                abroad,
                o["imei"],
                sms,
            )
            events.append(c)

    def replay(cdrs: list, track_peaks: bool = False) -> Engine:
        e = Engine(CARD, track_peaks)
        for o in subscribers:
            e.set_profile(
                o["msisdn"], Profile(o["home_province"], date.fromisoformat(o["opened_at"]), o["enterprise"] or "")
            )
        e.set_feeds(cells=cells)
        for c in cdrs:
            e.observe(*c)
        return e

    rng = random.Random(5)
    in_order = replay(events)
    # The live engine lets a line go as soon as its evidence cannot reach a warning; a replay (peaks tracked)
    # weighs everything: the same lines are acted on, the same way.
    peaks = replay(events, track_peaks=True)
    assert in_order.acted == peaks.acted and in_order.acted
    late = replay(sorted(events, key=lambda c: c[4] + rng.randrange(7201)))
    assert late.late["within"] > len(events) // 3 and late.refused == {}
    for o in subscribers:
        assert late.current(o["msisdn"]) == in_order.current(o["msisdn"]), o["msisdn"]


def test_calls_from_twenty_hours_earlier_do_not_make_a_burst_in_the_hour():
    e = engine()
    now = T0 + 20 * 3600
    e.observe(*cdr(t=now))
    for i in range(150):
        e.observe(*cdr(peer=f"139{i:08d}", t=T0 + i * 60))
    f = features(e, LINES[0])
    assert f["calls_1h"] == 1 and f["new_peers_1h"] == 1
    assert f["calls_24h"] == 151 and f["new_peers_24h"] == 151  # still evidence at day scale
    assert e.late["beyond"] == 150 and LINES[0] not in e.acted


def test_a_late_earlier_contact_takes_new_away_from_the_later_call():
    e = engine()
    e.observe(*cdr(peer=PEERS[1], t=T0 + 600))
    assert features(e, LINES[0])["new_peers_1h"] == 1
    e.observe(*cdr(peer=PEERS[1], t=T0, outgoing=False))  # the peer had called ten minutes before
    f = features(e, LINES[0])
    assert f["new_peers_1h"] == 0 and f["callback_share_1h"] == 1.0


def test_a_cdr_dated_in_2100_is_refused_and_cannot_move_the_clock_or_evict_lines():
    wall = T0 + 60
    e = engine(wall_clock=lambda: wall)
    e.observe(*cdr(t=T0))
    e.observe(*cdr(line=LINES[1], t=T0 - 6 * 86400))  # idle for six days: kept for one more
    future = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp())
    assert e.observe(*cdr(t=future)) is None
    assert e.observe(*cdr(line=LINES[1], t=future, outgoing=False)) is None
    assert e.report(LINES[0], future, 2) is None
    assert e.refused["future"] == 3 and e.clock == T0
    assert e.lines[LINES[0]].last_t == T0 and features(e, LINES[0])["calls_1h"] == 1
    assert e.sweep() == [] and set(e.lines) == set(LINES)
    e.observe(*cdr(t=wall + 300))  # within the skew: taken
    assert e.clock == wall + 300 and e.refused["future"] == 3


def test_without_a_wall_clock_a_replay_takes_any_event_time():
    e = engine()
    future = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp())
    e.observe(*cdr(t=future))
    assert e.clock == future and e.refused == {}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(PEERS), st.integers(0, 3600), st.booleans()), min_size=1, max_size=30),
    st.lists(st.tuples(st.sampled_from(PEERS), st.integers(1, 86400), st.booleans()), min_size=1, max_size=30),
    st.sampled_from([600, 3600, 7200]),
)
def test_a_cdr_later_than_the_lateness_never_changes_the_hour_window(current, late, lateness):
    e = engine(lateness_s=lateness)
    now = T0 + 86400
    for peer, back, sms in sorted(current, key=lambda c: -c[1]):
        e.observe(*cdr(peer=peer, t=now - back, sms=sms))
    last = e.lines[LINES[0]].last_t
    before = features(e, LINES[0])
    for peer, back, sms in late:
        if back > lateness:
            e.observe(*cdr(peer=peer, t=last - back, sms=sms))
    after = features(e, LINES[0])
    for name in ("calls_1h", "sms_1h", "distinct_peers_1h", "other_province_1h", "unanswered_1h"):
        assert after[name] == before[name], name
    assert after["new_peers_1h"] <= before["new_peers_1h"]  # an earlier contact can only take NEW away


def test_under_an_hour_of_lateness_a_later_cdr_inside_the_hour_is_refused_and_an_older_one_counts_by_day():
    e = engine(lateness_s=600)
    e.observe(*cdr(t=T0 + 7200))
    e.observe(*cdr(peer=PEERS[1], t=T0 + 7200 - 1800))  # 30 minutes late: would land in the hour
    e.observe(*cdr(peer=PEERS[2], t=T0 + 7200 - 5400))  # 90 minutes late: before the hour
    f = features(e, LINES[0])
    assert e.refused == {"late": 1} and e.late == {"beyond": 1}
    assert f["calls_1h"] == 1 and f["calls_24h"] == 2


def test_peers_that_are_not_plain_numbers_are_told_apart_and_survive_a_snapshot():
    e = engine()
    for i, peer in enumerate(["+8613800000000", "8613800000000", "013800000000", "13800000000", "95588-BANK"]):
        e.observe(*cdr(peer=peer, t=T0 + i))
    assert features(e, LINES[0])["new_peers_1h"] == 5
    again = engine()
    again.restore(LINES[0], msgpack.unpackb(msgpack.packb(e.snapshot(LINES[0]))))
    again.observe(*cdr(peer="+8613800000000", t=T0 + 10))
    again.observe(*cdr(peer="95588-BANK", t=T0 + 11))
    f = features(again, LINES[0])
    assert f["calls_1h"] == 7 and f["new_peers_1h"] == 5 and f["distinct_peers_1h"] == 5


# A line's snapshot as stored by the engine before event time (version 1: peers as strings, no marker), with
# the features that engine computed for it.
V1: list = [
    1790589000,
    [
        [1790586000, "15100000000", 65, 0],
        [1790586120, "15100000001", 2, 45],
        [1790586240, "15100000002", 3, 45],
        [1790586360, "15100000003", 7, 0],
        [1790586480, "15100000004", 1, 45],
        [1790586600, "15100000005", 3, 45],
        [1790586720, "15100000006", 7, 0],
        [1790586840, "15100000007", 66, 45],
        [1790586960, "15100000008", 1, 45],
        [1790587080, "15100000009", 7, 0],
        [1790587200, "15100000010", 3, 45],
        [1790587320, "15100000011", 3, 45],
        [1790587440, "15100000012", 5, 0],
        [1790587560, "15100000013", 2, 45],
        [1790587680, "15100000014", 67, 45],
        [1790587800, "15100000015", 7, 0],
    ],
    {
        "15100000000": 1790586000,
        "15100000001": 1790586120,
        "15100000002": 1790586240,
        "15100000003": 1790586360,
        "15100000004": 1790586480,
        "15100000005": 1790586600,
        "15100000006": 1790586720,
        "15100000007": 1790586840,
        "15100000008": 1790586960,
        "15100000009": 1790587080,
        "15100000010": 1790587200,
        "15100000011": 1790587320,
        "15100000012": 1790587440,
        "15100000013": 1790587560,
        "15100000014": 1790587680,
        "15100000015": 1790587800,
    },
    {"15100000001": 1790586030, "15100000007": 1790586750, "15100000013": 1790587470},
    [1790586030, 1790586750, 1790587470],
    [[1790586600, 3], [1790587080, 2]],
    {"861111": 1790587470, "862222": 1790587560},
    "862222",
    [[1790589000, 2]],
    False,
    16,
    3,
    [],
]
V1_FEATURES: dict[str, float] = {
    "calls_1h": 13,
    "calls_24h": 13,
    "sms_1h": 3,
    "sms_24h": 3,
    "distinct_peers_1h": 16,
    "distinct_peers_24h": 16,
    "new_peers_1h": 13,
    "new_peer_share_1h": 0.8125,
    "new_peers_24h": 13,
    "new_peer_share_24h": 0.8125,
    "other_province_1h": 12,
    "other_province_share_1h": 0.75,
    "other_province_24h": 12,
    "other_province_share_24h": 0.75,
    "unanswered_1h": 5,
    "unanswered_share_1h": 0.38461538461538464,
    "unanswered_24h": 5,
    "unanswered_share_24h": 0.38461538461538464,
    "mean_duration_s_1h": 27.692307692307693,
    "mean_duration_s_24h": 27.692307692307693,
    "callback_share_1h": 0.1875,
    "callback_share_24h": 0.1875,
    "night_24h": 0,
    "night_share_24h": 0.0,
    "international_24h": 0,
    "international_share_24h": 0.0,
    "abroad": 0.0,
    "incoming_24h": 3,
    "high_risk_peers_24h": 0,
    "high_risk_cell_visits_24h": 1,
    "elevated_cell_visits_24h": 1,
    "handsets_7d": 2,
    "lines_per_handset": 1,
    "account_age_days": 27,
    "account_age_years": 0,
    "enterprise_bound": 0.0,
    "reports_30d": 1,
    "authority_reports_30d": 1,
}


def older(f: dict[str, float]) -> dict[str, float]:
    """The features an older snapshot knew of."""
    return {k: f[k] for k in V1_FEATURES}


def test_a_version_1_snapshot_still_restores_to_the_same_features():
    e = engine()
    e.set_profile("13700000009", Profile("44", date(2026, 9, 1)))
    e.set_feeds(cells={"cell-h": 3, "cell-e": 2})
    e.restore("13700000009", msgpack.unpackb(msgpack.packb(V1)))
    assert older(features(e, "13700000009")) == V1_FEATURES
    assert e.acted["13700000009"] == 3
    again = engine()
    again.set_profile("13700000009", Profile("44", date(2026, 9, 1)))
    snap = e.snapshot("13700000009")
    assert snap[2][0] == SNAPSHOT_VERSION
    again.restore("13700000009", msgpack.unpackb(msgpack.packb(snap)))
    assert features(again, "13700000009") == features(e, "13700000009")
    assert older(features(again, "13700000009")) == V1_FEATURES
    # The restored contacts still tell a known number from a new one.
    again.observe("13700000009", "15100000003", "44", True, V1[0] + 60, 30, "", False, "862222", False)
    again.observe("13700000009", "15199999999", "44", True, V1[0] + 120, 30, "", False, "862222", False)
    after = features(again, "13700000009")
    assert after["calls_1h"] == V1_FEATURES["calls_1h"] + 2
    assert after["new_peers_1h"] == V1_FEATURES["new_peers_1h"] + 1

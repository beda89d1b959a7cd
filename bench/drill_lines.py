"""The drill's lines: what kind of case each plays, its CDRs, and what should become of it (no I/O).

Numbers are 1977xxxxxxx (no other test uses them); each line has its own handset (IMEI) and its own peers, so
lines never influence each other's score. Event times lie in a morning (10:00 China time) at least four hours
back, so no rule about night calls fires whatever the wall clock says. What scoring decides for each line is
worked out here with the live scorecard in a private engine: the drill expects exactly that action.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from carrier.scoring.v1 import scoring_pb2
from pscommon.validation import Violations
from services.scoring import requests as scoring_requests
from services.scoring.engine import Engine
from services.scoring.features import Profile
from services.scoring.replay import score_cdrs
from services.scoring.scorecard import Scorecard

HOME = "44"
REMOTE = "51"


@dataclass(frozen=True)
class Kind:
    """A kind of case: how its holder behaves and where the case should come to rest."""

    name: str
    weight: int
    action: str  # what scoring should decide first: warn | restrict | suspend
    final_state: str  # LINE_STATE_* name the line should end in
    final_stage: str  # the stage the case should rest in (or end in)
    completes: bool  # the workflow ends (restored) rather than waiting on
    escalate_to: str = ""  # a second, stronger burst: the action it should bring


KINDS = {
    k.name: k
    for k in (
        Kind("scam_suspend", 3, "suspend", "LINE_STATE_SUSPENDED", "suspended", False),
        Kind("scam_restrict", 2, "restrict", "LINE_STATE_RESTRICTED", "restricted", False),
        Kind("online_restore", 3, "warn", "LINE_STATE_RESTORED", "restored", True),
        Kind("hall_restore", 2, "restrict", "LINE_STATE_RESTORED", "restored", True),
        Kind("hall_review", 2, "suspend", "LINE_STATE_RESTORED", "restored", True),
        Kind("appeal_approved", 2, "restrict", "LINE_STATE_RESTORED", "restored", True),
        Kind("appeal_rejected", 1, "restrict", "LINE_STATE_RESTRICTED", "appeal_rejected", False),
        Kind("escalation", 2, "warn", "LINE_STATE_SUSPENDED", "suspended", False, escalate_to="suspend"),
        Kind("roamer", 2, "warn", "LINE_STATE_RESTORED", "restored", True),
    )
}


@dataclass
class Line:
    index: int
    kind: Kind
    msisdn: str
    opened_at: str
    holder_ref: str
    push_token: str = ""
    roaming_country: str = ""  # set in the HLR before the case: international roaming
    bursts: list[list[scoring_pb2.Cdr]] = field(default_factory=list)  # the second one only for escalations
    expected: list[str] = field(default_factory=list)  # strongest action after each burst, from the scorecard


def base_time(now: datetime) -> datetime:
    """02:00 UTC (10:00 in China) of the latest day on which that is at least four hours ago."""
    day = now.astimezone(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    while day > now - timedelta(hours=4):
        day -= timedelta(days=1)
    return day


def _cdr(line: Line, peer: str, province: str, out: bool, at: datetime, duration: int, roaming: int) -> scoring_pb2.Cdr:
    c = scoring_pb2.Cdr(
        msisdn=line.msisdn,
        peer=peer,
        peer_province=province,
        direction=scoring_pb2.DIRECTION_OUT if out else scoring_pb2.DIRECTION_IN,
        service=scoring_pb2.SERVICE_KIND_VOICE,
        duration_s=duration,
        roaming=roaming,
        country=line.roaming_country,
        imei=f"86{line.msisdn}01",
        cell_id="460-00-22817-10391",
    )
    c.start.FromDatetime(at)
    return c


def _peer(rng: random.Random, prefix: str = "137") -> str:
    return prefix + "".join(rng.choice("0123456789") for _ in range(8))


def scam_burst(line: Line, rng: random.Random, t0: datetime, calls: int = 20) -> list[scoring_pb2.Cdr]:
    """A call every two minutes to strangers in another province, half unanswered (a new account: extreme)."""
    return [
        _cdr(line, _peer(rng), REMOTE, True, t0 + timedelta(minutes=2 * i), 0 if i % 2 else 18, 1) for i in range(calls)
    ]


def customer_burst(
    line: Line, rng: random.Random, t0: datetime, roaming: int = 1, calls: int = 16
) -> list[scoring_pb2.Cdr]:
    """The demo's busy customer: friends called in two days before, then an hour of calls to other provinces,
    mostly to numbers new to the line. Medium risk after 14 years on the network, high after 3."""
    friends = [_peer(rng, "138") for _ in range(6)]
    cdrs = [_cdr(line, f, "11", False, t0 - timedelta(days=2, minutes=i), 120, roaming) for i, f in enumerate(friends)]
    for i in range(calls):
        peer = friends[i] if i < 2 else _peer(rng, "136")
        cdrs.append(_cdr(line, peer, "11", True, t0 + timedelta(minutes=3 * i), 95, roaming))
    return cdrs


def stronger_burst(line: Line, rng: random.Random, t0: datetime) -> list[scoring_pb2.Cdr]:
    """An hour and a half later: twenty calls to strangers in another province, nearly all unanswered."""
    return [
        _cdr(line, _peer(rng), REMOTE, True, t0 + timedelta(minutes=90 + 2 * i), 0 if i % 4 else 12, 1)
        for i in range(24)
    ]


def make_line(index: int, kind: Kind, msisdn: str, rng: random.Random, t0: datetime) -> Line:
    day = t0.date()
    opened = {
        "scam_suspend": day - timedelta(days=20),
        "hall_review": day - timedelta(days=20),
        "scam_restrict": day - timedelta(days=3 * 365),
        "hall_restore": day - timedelta(days=3 * 365),
        "appeal_approved": day - timedelta(days=3 * 365),
        "appeal_rejected": day - timedelta(days=3 * 365),
    }.get(kind.name, date(2012, 5, 1))
    line = Line(index, kind, msisdn, opened.isoformat(), f"holder-drill-{index:05d}")
    start = t0 + timedelta(seconds=rng.randrange(0, 600))
    if kind.name == "roamer":
        line.roaming_country, line.push_token = "NP", f"push-drill-{index:05d}"
        line.bursts = [customer_burst(line, rng, start, roaming=3)]
    elif kind.action == "suspend":
        line.bursts = [scam_burst(line, rng, start)]
    else:
        line.bursts = [customer_burst(line, rng, start)]
    if kind.escalate_to:
        line.bursts.append(stronger_burst(line, rng, start))
    return line


def lines_for(seed: int, cases: int, now: datetime) -> list[Line]:
    """`cases` lines, kinds in proportion to their weights (each kind at least once when there is room), shuffled
    by the seed."""
    rng = random.Random(seed)
    names = [k.name for k in KINDS.values() for _ in range(k.weight)]
    chosen = [names[i % len(names)] for i in range(cases)]
    rng.shuffle(chosen)
    t0 = base_time(now)
    first = 1977_000_0000 + rng.randrange(0, 900) * 10_000  # 1977xxxxxxx
    return [make_line(i, KINDS[name], str(first + i), rng, t0) for i, name in enumerate(chosen)]


ACTION_NAMES = ("none", "warn", "restrict", "suspend")


def expected_actions(card: Scorecard, line: Line) -> list[str]:
    """The strongest action scoring takes after each burst of the line, worked out in an engine of its own."""
    engine = Engine(card)
    engine.set_profile(line.msisdn, Profile(HOME, date.fromisoformat(line.opened_at)))
    strongest, out = "none", []
    for burst in line.bursts:
        rows = scoring_requests.cdr_rows(Violations(), burst)
        for e in score_cdrs(engine, rows):
            strongest = max(strongest, e.assessment.action, key=ACTION_NAMES.index)
        out.append(strongest)
    return out


# Sizes of a customer's burst to try, when the default does not give its kind's action under the live scorecard.
BURST_SIZES = (16, 14, 12, 10, 9, 8, 18, 20, 24, 28)
SCAM_SIZES = (6, 8, 10, 12, 14, 16, 20)  # then a stranger-calling burst, for the kinds a customer never reaches


def fit_to_scorecard(card: Scorecard, line: Line, seed: int) -> None:
    """Gives the line a customer burst whose size makes the live scorecard take exactly its kind's actions (the
    drill tests the platform's handling of a case, not the scorecard's thresholds, which training moves).
    Sets line.expected; raises when no size does."""
    want = [line.kind.action] + ([line.kind.escalate_to] if line.kind.escalate_to else [])
    line.expected = expected_actions(card, line)
    if line.expected == want or line.kind.action == "suspend":
        return
    first = line.bursts[0]
    t0 = min(c.start.ToDatetime(tzinfo=UTC) for c in first if c.direction == scoring_pb2.DIRECTION_OUT)
    roaming = first[0].roaming
    shapes = [(customer_burst, calls) for calls in BURST_SIZES] + [(scam_burst, calls) for calls in SCAM_SIZES]
    for shape, calls in shapes:
        rng = random.Random(seed * 100_003 + line.index)
        if shape is scam_burst:
            line.bursts[0] = scam_burst(line, rng, t0, calls)
        else:
            line.bursts[0] = customer_burst(line, rng, t0, roaming, calls)
        line.expected = expected_actions(card, line)
        if line.expected == want:
            return
    raise RuntimeError(f"line {line.index} ({line.kind.name}): no burst size gives {want} under this scorecard")

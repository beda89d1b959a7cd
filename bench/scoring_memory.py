"""Memory of the scoring engine per million active lines.

    .venv/bin/python bench/scoring_memory.py [--lines 300000] [--calls 10]

Each line gets an ordinary day: `--calls` calls and messages spread over 24 hours, in and out, to a handful of
contacts, all still inside the windows. Reports resident memory before and after, scaled to a million lines, and
where a line's bytes go (sizes of its parts, from a sample of lines; docs/event-time.md).
"""

from __future__ import annotations

import argparse
import gc
import pathlib
import random
import sys
import time
from collections import Counter
from datetime import date

from services.scoring.engine import Engine
from services.scoring.features import LineState, Profile
from services.scoring.scorecard import load

T0 = 1_790_000_000


def rss_mb() -> float:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def parts(s: LineState) -> Counter[str]:
    """Bytes of a line's containers and number objects (the shared profile left out)."""
    size = sys.getsizeof
    objects = 16  # the garbage collector's header of a tracked object
    book = s.book
    got: Counter[str] = Counter(
        {
            "line": size(s) + objects + sum(size(n) for n in (s.last_t, s.imei_t, s.expire_at) if n > 256),
            "outgoing": size(s.ev) + size(s.pk),
            "peers (book)": size(book) + objects + sum(size(getattr(book, a)) for a in book.__slots__),
            "windows": sum(size(w) + objects + (size(w.duration) if w.duration > 256 else 0) for w in (s.h1, s.d1)),
            "incoming, cells, reports": sum(size(a) for a in (s.incoming, s.cells, s.reports) if a is not None),
            "handsets": size(s.imei) + (size(s.imeis) if s.imeis is not None else 0),
            "week": size(s.week) if s.week is not None else 0,
        }
    )
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=300_000)
    ap.add_argument("--calls", type=int, default=10)
    args = ap.parse_args()
    rng = random.Random(3)
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    engine = Engine(load())
    msisdns = [f"1{3_000_000_000 + i * 7:010d}" for i in range(args.lines)]
    base = rss_mb()
    profile = Profile("44", date(2019, 5, 1))
    for m in msisdns:
        engine.set_profile(m, profile)  # one shared profile: measure the windows, not the profiles
    started = time.perf_counter()
    events = 0
    for k in range(args.calls):
        t = T0 + k * (86_400 // args.calls)
        for i, m in enumerate(msisdns):
            peer = f"15{(i * 13 + rng.randrange(6)) % 10**9:09d}"
            engine.observe(
                m,
                peer,
                "44",
                k % 3 != 0,
                t + i % 600,
                rng.randrange(300),
                f"460-00-{i % 9000}-1",
                False,
                f"86{i:013d}",
                False,
            )
            events += 1
    took = time.perf_counter() - started
    gc.collect()
    used = rss_mb() - base
    print(f"{args.lines:,} lines, {events:,} events in {took:.1f}s ({events / took:,.0f} events/s)")
    print(f"resident: {base:,.0f} MB before the events, {base + used:,.0f} MB after")
    print(f"windows: {used:,.0f} MB resident -> {used * 1_000_000 / args.lines:,.0f} MB per million active lines")
    print(f"          ({used * 1024 * 1024 / args.lines:,.0f} bytes per line with {args.calls} events in its windows)")
    sample = msisdns[:: max(1, args.lines // 1000)]
    total: Counter[str] = Counter()
    for m in sample:
        total.update(parts(engine.lines[m]))
    engine_wide = {"lines": engine.lines, "handsets": engine.handsets, "dirty": engine.dirty}
    print("bytes per line: " + ", ".join(f"{k} {v / len(sample):,.0f}" for k, v in total.items()))
    print(
        "  engine-wide maps per line: "
        + ", ".join(f"{k} {sys.getsizeof(v) / args.lines:,.0f}" for k, v in engine_wide.items())
    )


if __name__ == "__main__":
    main()

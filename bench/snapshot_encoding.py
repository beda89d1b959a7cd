"""What a checkpoint costs the event loop per line: the line's snapshot encoded as stored, now (version 3: the
arrays as bytes) against version 2 (lists of numbers, its encoder kept here as the baseline), in one run.

    .venv/bin/python bench/snapshot_encoding.py [--lines 1000] [--days 7] [--rounds 5]

The lines are a persona corpus replayed through the engine (pscli.personas, seed 5).
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import time

import msgpack
from engine_instructions import prepare

from pscli.personas import generate
from services.scoring.engine import Engine
from services.scoring.features import (
    CALLER,
    EV_SHIFT,
    FLAG_BITS,
    FLAG_MASK,
    MAX_DURATION,
    NOT_STRANGER,
    W_FIELDS,
    WEEK_DAYS,
    LineState,
    local_day,
)
from services.scoring.replay import score_cdrs
from services.scoring.store import packed_window


def version_2(s: LineState) -> list:
    """LineState.snapshot as it was before version 3."""
    book = s.book
    contacts: list[int] = [2]
    callers = []
    for k, first, last, m in zip(book.keys, book.first, book.last, book.meta, strict=True):
        contacts += (k, first, last)
        if m & CALLER:
            callers.append(k)
    out = [[e >> EV_SHIFT, k, e & FLAG_MASK, e >> FLAG_BITS & MAX_DURATION] for e, k in zip(s.ev, s.pk, strict=True)]
    start = local_day(s.last_t) - WEEK_DAYS + 1
    w = s.week or ()
    rows = [v for i in range(W_FIELDS, len(w), W_FIELDS) if w[i] >= start for v in w[i : i + W_FIELDS]]
    strangers = [
        k
        for k, first, m in zip(book.keys, book.first, book.meta, strict=True)
        if not m & NOT_STRANGER and local_day(first) >= start
    ]
    return [
        s.last_t,
        out,
        contacts,
        callers,
        list(s.incoming or ()),
        [[c >> 2, c & 3] for c in s.cells or ()],
        dict(s.handsets()),
        s.imei,
        [[r >> 2, r & 3] for r in s.reports or ()],
        s.abroad,
        s.out_total,
        [rows, strangers],
    ]


def per_line_us(engine: Engine, encode, rounds: int) -> float:
    lines = list(engine.lines)
    took = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for m in lines:
            encode(m)
        took.append((time.perf_counter() - t0) / len(lines) * 1e6)
    return statistics.median(took)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = str(pathlib.Path(tmp) / "corpus.jsonl")
        generate(corpus, seed=5, lines=a.lines, days=a.days)
        engine, rows = prepare(corpus)
    score_cdrs(engine, rows)
    now = per_line_us(engine, lambda m: packed_window(engine.snapshot(m)), a.rounds)
    before = per_line_us(engine, lambda m: msgpack.packb(version_2(engine.lines[m])), a.rounds)
    size_now = statistics.mean(len(packed_window(engine.snapshot(m))[0]) for m in engine.lines)
    size_before = statistics.mean(len(msgpack.packb(version_2(s))) for s in engine.lines.values())
    print(f"{len(engine.lines)} lines, {len(rows):,} CDRs over {a.days} days")
    print(f"version 2 (baseline): {before:6.1f} us a line, {size_before:,.0f} bytes")
    print(f"version 3 (now):      {now:6.1f} us a line, {size_now:,.0f} bytes")
    print(f"now / baseline: {now / before:.3f} of the time, {size_now / size_before:.3f} of the bytes")


if __name__ == "__main__":
    main()

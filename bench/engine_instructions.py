"""The live scoring engine's cost per CDR in CPU instructions (callgrind), which machine load does not change.

    .venv/bin/python bench/engine_instructions.py --generate /tmp/corpus.jsonl [--lines 2000 --days 7]
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg0.out .venv/bin/python bench/engine_instructions.py \
        /tmp/corpus.jsonl --no-replay
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg1.out .venv/bin/python bench/engine_instructions.py \
        /tmp/corpus.jsonl

The two runs do the same set-up (imports, reading the corpus, profiles and cells); only the second feeds the CDRs
through a live engine (no peaks kept). (Ir of the second - Ir of the first) / CDRs is the engine's cost per CDR.
Run it with another checkout on PYTHONPATH, on the same corpus, to compare engines. `--profile` prints cProfile's
hot spots instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from datetime import date

from pscli.scenario import read
from pscommon.validation import Violations
from services.scoring import requests
from services.scoring.engine import Engine
from services.scoring.features import Profile
from services.scoring.replay import score_cdrs
from services.scoring.scorecard import load


def prepare(path: str) -> tuple[Engine, list[requests.CdrRow]]:
    engine = Engine(load())
    rows: list[requests.CdrRow] = []
    for item in read(path).requests():
        kind = item.WhichOneof("item")
        if kind == "subscriber":
            s = item.subscriber
            profile = Profile(s.home_province, date.fromisoformat(s.opened_at), s.enterprise, s.language)
            engine.set_profile(s.msisdn, profile)
        elif kind == "cell" and item.cell.risk >= 2:
            engine.cells[item.cell.cell_id] = item.cell.risk
        elif kind == "cdrs":
            v = Violations()
            rows += requests.cdr_rows(v, item.cdrs.cdrs, "cdrs", requests.REPLAY_LATEST_S)
            v.raise_if_any()
    return engine, rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--generate", action="store_true", help="write a persona corpus to CORPUS and stop")
    ap.add_argument("--lines", type=int, default=2000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--no-replay", action="store_true", help="set up only (the baseline to subtract)")
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    if a.generate:
        from pscli.personas import generate

        print(generate(a.corpus, seed=5, lines=a.lines, days=a.days))
        return
    engine, rows = prepare(a.corpus)
    if a.no_replay:
        print(f"{len(rows)} CDRs, not replayed")
        return
    t0 = time.process_time()
    if a.profile:
        prof = cProfile.Profile()
        escalations = prof.runcall(score_cdrs, engine, rows)
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    else:
        escalations = score_cdrs(engine, rows)
    took = time.process_time() - t0
    print(f"{len(rows)} CDRs, {len(escalations)} escalations, {len(engine.lines)} lines, {took:.2f} s CPU")


if __name__ == "__main__":
    main()

"""Upkeep on the event loop (a checkpoint's sorting and encoding, the idle sweep) in short slices between batches.

Each slice holds the ledger's lock, so it runs between two batches, never inside one: work that could run at each
of a batch's awaits, its journal write included, made each batch wait for several pieces of it, nearly doubling
its time while a partition was encoded. A batch can still meet a slice at each of its awaits outside the lock
(reading its message, writing its answer): one or two slices a batch.

The lock is fair, so a stream that never pauses still leaves the upkeep a slice or two between two of its
batches. A slice is short (SLICE_S) while the upkeep is on time; once it is late (past its `due`), a slice may
run for LATE_SLICE_S, so a saturated shard still checkpoints at a steady pace, at the cost of up to twice that a
batch while it catches up. Measured with a stream sent flat out (bench/scoring_ingest.py, 100,000 lines): one
partition's checkpoint took 4.6-9.3 s with short slices only, 1.0-2.5 s with late slices of 2.5 ms, and
0.1-0.15 s at 20k CDR/s. Its slot is 0.47 s (30 s over 64 partitions), so while a shard is saturated a round
takes about four times its interval, and the journal a restart replays grows with it. Starting the next partition
at once, and late, when behind schedule kept the round near its interval but made the batches after a burst pay
for the catching up (p99 at 20k CDR/s 23-26 ms for batches of 500, against 19-23): latency was chosen.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

SLICE_S = 0.0005
LATE_SLICE_S = 0.0025


async def between_batches(
    lock: asyncio.Lock, total: int, step: int, work: Callable[[int, int], object], due: float = math.inf
) -> None:
    """Calls work(start, stop) over range(total), `step` items at a time, in slices that hold `lock`. `due`: the
    time.monotonic() by which the work should be done."""
    done = 0
    while done < total:
        async with lock:
            until = time.perf_counter() + (LATE_SLICE_S if time.monotonic() > due else SLICE_S)
            while done < total:
                stop = min(done + step, total)
                work(done, stop)
                done = stop
                if time.perf_counter() >= until:
                    break
        await asyncio.sleep(0)  # acquiring a free lock does not yield: a batch that has arrived goes first

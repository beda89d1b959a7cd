"""The cyclic garbage collector, kept off the decision path.

The windows are millions of small long-lived objects without reference cycles. Left to itself the collector
rescans every one of them in each full collection (about 50 ms per 50,000 lines on a slow core, 300 ms past
100,000), and those pauses were the tail of decision latency. So what has lived through a young collection is
moved out of the collector's reach (`gc.freeze`) every second, after a full collection of what is not frozen
yet (the last second's survivors, so it is short): full collections never rescan the windows, and reference
counting still frees a frozen object the moment it is dropped. The price is that a reference cycle still alive
at its freeze and garbage later is never reclaimed: a request that fails after the freeze leaves its exception's
frames behind. A leak would show in the exported `process_resident_memory_bytes`. (`gc.get_freeze_count()` walks
every frozen object, 40 ms at 100,000 lines, so it is not polled.)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc

YOUNG_THRESHOLD = 10_000  # allocations between young collections: each scans at most this many objects
FREEZE_EVERY_S = 1.0
# The Freezer runs only where the shard has its process to itself (server.py's __main__): tests and tools that
# start a shard in their own process keep their objects to the collector.
whole_process = False


def tune() -> None:
    """Once, after the start-up load: what was restored is frozen at once."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 10, 100)


class Freezer:
    def __init__(self, every_s: float = FREEZE_EVERY_S) -> None:
        self._every_s = every_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            freeze_survivors()


def freeze_survivors() -> None:
    gc.collect()  # what is already garbage goes before the rest is frozen (frozen objects are not scanned)
    gc.freeze()

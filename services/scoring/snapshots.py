"""Checkpoints: every few seconds, each owned partition's changed lines are saved with the last journal id they
include, in one transaction; the journal before the oldest checkpoint is then trimmed.

A partition is cut under the ledger's lock, so its saved windows hold exactly the journal up to its checkpoint:
a restart loads them and replays the journal after it (ledger.py). The lines are encoded under the lock (one
partition at a time, so ingest waits at most that long) and written outside it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable

import asyncpg

from services.scoring import store
from services.scoring.engine import Engine
from services.scoring.ledger import Ledger
from services.scoring.partitions import PARTITIONS, partition_of

log = logging.getLogger(__name__)


class SnapshotWriter:
    def __init__(self, pool: asyncpg.Pool, ledger: Ledger, hash_of: Callable[[str], str], interval_s: float) -> None:
        self.pool = pool
        self.ledger = ledger
        self.engine: Engine = ledger.engine
        self.hash_of = hash_of
        self.interval_s = interval_s
        self.dirty: dict[int, dict[str, str]] = defaultdict(dict)  # partition -> changed line -> its hash
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.flush()
                self.engine.sweep()
                await store.trim_journal(self.pool, PARTITIONS)
            except Exception as err:  # noqa: BLE001 - the lines stay dirty and are written next time
                log.warning("window checkpoint failed; will retry (%s)", type(err).__name__)

    def _collect(self) -> None:
        """Moves the engine's changed lines into per-partition sets (hashing a line costs a microsecond or two)."""
        changed, self.engine.dirty = self.engine.dirty, set()
        for msisdn in changed:
            h = self.hash_of(msisdn)
            self.dirty[partition_of(h)][msisdn] = h

    async def flush(self) -> int:
        """Checkpoints every owned partition; returns the lines written."""
        async with self._lock:
            t0 = time.perf_counter()
            saved = 0
            self._collect()
            for p in self.ledger.shards.owned:
                saved += await self._checkpoint(p)
                await asyncio.sleep(0)  # let ingest run between partitions
            if saved:
                log.info("window checkpoint: %d lines in %.2fs", saved, time.perf_counter() - t0)
            return saved

    async def _checkpoint(self, p: int) -> int:
        ledger, engine = self.ledger, self.engine
        async with ledger.lock:
            if ledger.pending:
                await ledger.record_pending()  # never checkpoint past a decision not yet recorded
            self._collect()
            lines, self.dirty[p] = self.dirty[p], {}
            upto = ledger.applied
            rows = [(h, *store.packed_window(engine.snapshot(m))) for m, h in lines.items() if m in engine.lines]
        try:
            return await store.save_partition(self.pool, p, rows, upto, ledger.token)
        except store.PartitionLost:
            ledger.lost()
        except BaseException:
            for m, h in lines.items():
                self.dirty[p].setdefault(m, h)
            raise

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if not self.ledger.gone:
            await self.flush()

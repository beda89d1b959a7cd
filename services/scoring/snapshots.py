"""Writes changed line windows to PostgreSQL every few seconds and on shutdown.

A restarted process rebuilds its windows from these snapshots; a crash loses at most one interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import asyncpg

from services.scoring import store
from services.scoring.engine import Engine

log = logging.getLogger(__name__)
CHUNK = 2000


class SnapshotWriter:
    def __init__(self, pool: asyncpg.Pool, engine: Engine, hash_of: Callable[[str], str], interval_s: float) -> None:
        self.pool = pool
        self.engine = engine
        self.hash_of = hash_of
        self._hashes: dict[str, str] = {}  # a keyed hash costs microseconds; a line is written every interval
        self.interval_s = interval_s
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.flush()
                self.sweep()
            except Exception:  # the lines stay dirty and are written next time
                log.warning("window snapshot failed; will retry", exc_info=True)

    async def flush(self) -> int:
        """Writes every changed line, in chunks, so that ingest keeps running between them."""
        async with self._lock:
            engine = self.engine
            dirty, engine.dirty = list(engine.dirty), set()
            t0 = time.perf_counter()
            saved = 0
            for i in range(0, len(dirty), CHUNK):
                chunk = dirty[i : i + CHUNK]
                # Encoded at once: a snapshot shares the live windows, which the next batch will change.
                rows = [(self._hash(m), *store.packed_window(engine.snapshot(m))) for m in chunk if m in engine.lines]
                try:
                    saved += await store.save_windows(self.pool, rows)
                except BaseException:
                    engine.dirty.update(dirty[i:])
                    raise
            if saved:
                log.info("window snapshot: %d lines in %.2fs", saved, time.perf_counter() - t0)
            return saved

    def _hash(self, msisdn: str) -> str:
        h = self._hashes.get(msisdn)
        if h is None:
            h = self._hashes[msisdn] = self.hash_of(msisdn)
        return h

    def sweep(self) -> None:
        for m in self.engine.sweep():
            self._hashes.pop(m, None)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self.flush()

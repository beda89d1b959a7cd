"""Checkpoints: the changed lines of each owned partition are saved with the last journal id they include, one
partition after another, every partition once per interval; the journal before the oldest checkpoint is then
trimmed.

A checkpoint is cut in an instant, under the ledger's lock: which lines changed, up to which journal id. The
lines are then encoded a slice at a time and written a partition at a time, while ingest goes on: a batch
about to change a line not encoded yet encodes it first (copy on write, `Cut.preserve`). So every saved line is
exactly its state at the cut, a restart loads it and replays the journal after the cut (ledger.py), and ingest
never waits for more than one slice. Each partition is written in its own transaction with its checkpoint.

This work on the event loop (sorting changed lines, encoding, sweeping) runs in short slices between batches
(slices.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import asyncpg

from services.scoring import metrics as scoring_metrics
from services.scoring import store
from services.scoring.engine import Engine
from services.scoring.features import SNAPSHOT_VERSION, WEEK
from services.scoring.ledger import Ledger
from services.scoring.partitions import PARTITIONS, partition_of
from services.scoring.slices import between_batches

log = logging.getLogger(__name__)
# Items between two looks at the clock within a slice (slices.py): each step takes 0.05-0.2 ms.
ENCODE_STEP = 10  # lines encoded
HASH_STEP = 100  # changed lines sorted into partitions
SWEEP_STEP = 500  # lines looked at for idleness
SWEEP_EVERY_S = 600.0  # idle means a week without a call: looking every ten minutes is plenty


class Cut:
    """The lines of one checkpoint, each encoded as it was at the cut."""

    def __init__(self, engine: Engine, lines: dict[int, dict[str, str]], upto: int, version: int) -> None:
        self.engine = engine
        self.version = version  # the stored form written (PSP_SCORING_SNAPSHOT_VERSION)
        self.lines = lines  # partition -> line -> its hash
        self.upto = upto
        self.waiting = {m: p for p, ms in lines.items() for m in ms}  # line -> partition, not encoded yet
        self.encoded: dict[int, list[tuple[str, bytes, int]]] = defaultdict(list)

    def preserve(self, msisdns: Iterable[str]) -> None:
        """Encodes the lines about to change that are still waiting (the ledger calls this before applying)."""
        waiting = self.waiting
        for m in msisdns:
            if m in waiting:
                self._encode(m)

    def _encode(self, m: str) -> None:
        p = self.waiting.pop(m)
        if m in self.engine.lines:
            self.encoded[p].append((self.lines[p][m], *store.packed_window(self.engine.snapshot(m, self.version))))

    async def encode(self, p: int, lock: asyncio.Lock, due: float = math.inf) -> list[tuple[str, bytes, int]]:
        """Partition p's lines as they were at the cut (handed over: the cut keeps no copy), encoded in slices
        holding `lock` (the ledger's)."""
        todo = list(self.lines[p])

        def encode_waiting(start: int, stop: int) -> None:
            for m in todo[start:stop]:
                if m in self.waiting:
                    self._encode(m)

        await between_batches(lock, len(todo), ENCODE_STEP, encode_waiting, due)
        return self.encoded.pop(p, [])


class SnapshotWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        ledger: Ledger,
        hash_of: Callable[[str], str],
        interval_s: float,
        version: int = SNAPSHOT_VERSION,
    ) -> None:
        self.pool = pool
        self.version = version
        self.ledger = ledger
        self.engine: Engine = ledger.engine
        self.hash_of = hash_of
        self.interval_s = interval_s
        self.dirty: dict[int, dict[str, str]] = defaultdict(dict)  # partition -> changed line -> its hash
        # The lines in `dirty`: a line that keeps changing is hashed once per checkpoint of its partition, not once
        # per partition checkpointed meanwhile (hashing was most of the checkpoint's time on the loop).
        self.waiting: set[str] = set()
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._advanced: int | None = None  # the journal id unchanged partitions were last moved up to
        self._swept_at = time.monotonic()
        # partition -> when its last checkpoint was cut (or this process started: what was replayed is as old)
        self.cut_at: dict[int, float] = {}
        self._started = time.monotonic()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        """Checkpoints one owned partition at a time, spread evenly over the interval: all of them at once wrote
        every changed line in a burst that held up the commits of incoming batches (as PostgreSQL spreads its
        own checkpoints)."""
        while True:
            owned = list(self.ledger.shards.owned)
            if not owned:
                await asyncio.sleep(self.interval_s)
            slot = self.interval_s / max(len(owned), 1)
            for p in owned:
                await asyncio.sleep(slot)
                await self._guarded(self.flush([p], changed_only=True, due=time.monotonic() + slot))
                self.report_age()
            await self._guarded(self.advance_unchanged())
            self.report_age()
            if time.monotonic() - self._swept_at >= SWEEP_EVERY_S:
                self._swept_at = time.monotonic()
                await self._guarded(self.sweep())
            await self._guarded(store.trim_journal(self.pool, PARTITIONS))

    def oldest_checkpoint_age(self) -> float:
        """Seconds since the oldest checkpoint among the owned partitions was cut."""
        now = time.monotonic()
        return max((now - self.cut_at.get(p, self._started) for p in self.ledger.shards.owned), default=0.0)

    def report_age(self) -> None:
        scoring_metrics.checkpoint_age(self.oldest_checkpoint_age(), self.ledger.shards.shard)

    async def _guarded(self, step: Awaitable[object]) -> None:
        try:
            await step
        except Exception as err:  # noqa: BLE001 - the lines stay dirty and are written next time
            log.warning("window checkpoint failed; will retry (%s)", type(err).__name__)

    def _collect(self) -> None:
        """Moves the engine's changed lines into per-partition sets (hashing a line costs a microsecond or two)."""
        changed, self.engine.dirty = self.engine.dirty, set()
        self._sort(changed)

    def _sort(self, lines: Iterable[str]) -> None:
        hash_of, dirty, waiting = self.hash_of, self.dirty, self.waiting
        for msisdn in lines:
            if msisdn not in waiting:
                waiting.add(msisdn)
                h = hash_of(msisdn)
                dirty[partition_of(h)][msisdn] = h

    async def _collect_gradually(self, due: float = math.inf) -> None:
        """Most of `_collect`, a slice at a time between batches, before the cut (which then sorts only the few
        lines changed since)."""
        changed, self.engine.dirty = list(self.engine.dirty), set()
        taken = 0

        def sort(start: int, stop: int) -> None:
            nonlocal taken
            self._sort(changed[start:stop])
            taken = stop

        try:
            await between_batches(self.ledger.lock, len(changed), HASH_STEP, sort, due)
        finally:  # cancelled (a stop) between slices: the lines not sorted yet stay changed
            self.engine.dirty.update(changed[taken:])

    @contextlib.asynccontextmanager
    async def _settled(self) -> AsyncIterator[None]:
        """Holds the ledger still, its decisions recorded and its changed lines sorted into `dirty`."""
        async with self.ledger.lock:
            if self.ledger.pending:
                await self.ledger.record_pending()  # never checkpoint past a decision not yet recorded
            self._collect()
            yield

    async def _cut(self, partitions: list[int]) -> Cut:
        async with self._settled():
            lines = {p: self.dirty.pop(p, {}) for p in partitions}
            for taken in lines.values():
                self.waiting.difference_update(taken)  # a change after the cut goes to the next checkpoint
            cut = self.ledger.cut = Cut(self.engine, lines, self.ledger.applied, self.version)
        return cut

    async def flush(
        self, partitions: list[int] | None = None, changed_only: bool = False, due: float = math.inf
    ) -> int:
        """Checkpoints the owned partitions (or `partitions` of them; `changed_only`: those with a changed line);
        returns the lines written. `due`: the time.monotonic() it should be done by (slices.py)."""
        async with self._lock:
            t0 = time.perf_counter()
            await self._collect_gradually(due)
            cut = await self._cut(partitions if partitions is not None else self.ledger.shards.owned)
            cut_at = time.monotonic()
            saved = 0
            unsaved = [p for p, lines in cut.lines.items() if lines or not changed_only]
            try:  # a partition at a time: only one partition's encoded lines are held at once
                while unsaved:
                    p = unsaved[0]
                    rows = await cut.encode(p, self.ledger.lock, due)
                    saved += await store.save_partition(self.pool, p, rows, cut.upto, self.ledger.token)
                    self.cut_at[p] = cut_at
                    unsaved.pop(0)
            except store.PartitionLost:
                self.ledger.lost()
            finally:
                self.ledger.cut = None
                for p in unsaved:  # written next time, as they are then (with that checkpoint)
                    for m, h in cut.lines[p].items():
                        self.dirty[p].setdefault(m, h)
                        self.waiting.add(m)
            if saved and partitions is None:
                log.info("window checkpoint: %d lines in %.2fs", saved, time.perf_counter() - t0)
            return saved

    async def advance_unchanged(self) -> None:
        """Moves the checkpoint of every owned partition without a changed line up to the journal applied so far
        (their saved lines are their state then), in one statement and only when there is anything new, so the
        journal can be trimmed without rewriting partitions nobody touched."""
        async with self._lock:
            await self._collect_gradually()
            ledger = self.ledger
            async with self._settled():
                upto = ledger.applied
                unchanged = [p for p in ledger.shards.owned if not self.dirty.get(p)]
            settled_at = time.monotonic()
            if unchanged and upto != self._advanced:
                try:
                    await store.advance_checkpoints(self.pool, unchanged, upto, ledger.token)
                except store.PartitionLost:
                    ledger.lost()
                self._advanced = upto
            for p in unchanged:  # their checkpoint covers the journal up to `upto`, whether moved now or before
                self.cut_at[p] = settled_at

    async def sweep(self) -> None:
        """Engine.sweep a slice at a time between batches: run in one go, sweeping 100,000 lines and their
        handsets doubled the time of the batches meanwhile (a quarter of a second of 60 ms answers)."""
        engine = self.engine
        week_ago = engine.clock - WEEK
        lines, handsets = list(engine.lines), list(engine.handsets)
        lock = self.ledger.lock
        await between_batches(lock, len(lines), SWEEP_STEP, lambda a, b: engine.forget_idle_lines(lines[a:b], week_ago))
        await between_batches(
            lock, len(handsets), SWEEP_STEP, lambda a, b: engine.forget_idle_handsets(handsets[a:b], week_ago)
        )

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if not self.ledger.gone:
            await self.flush()

"""The checkpoint writer's upkeep between batches: lines idle for a week leave memory (their checkpoint stays), a
line that keeps changing waits in its partition once, hashed once, until that partition is checkpointed, and each
slice of the writer's work on the event loop holds the ledger's lock (it runs between batches, never inside one)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import msgpack

from pscommon import metrics
from services.scoring import slices, snapshots
from services.scoring.features import WEEK
from tests.scoring.processes import LINES, batches, start, windows
from tests.test_metrics import scrape, total


async def test_a_sweep_forgets_lines_idle_for_a_week_and_keeps_the_rest(pool) -> None:
    proc = await start(pool)
    work = batches(3, n=4)
    for rows in work:
        await proc.ingest(rows)
    await proc.snapshots.flush()
    seen = set(proc.engine.lines)
    idle = sorted(seen)[:5]
    for m in idle:
        proc.engine.lines[m].last_t = proc.engine.clock - WEEK - 1
        proc.engine.acted.pop(m, None)
    await proc.snapshots.sweep()
    assert set(proc.engine.lines) == seen - set(idle)
    again = await start(pool)  # their checkpoints stay: a restart within the week still has them
    assert set(windows(again.engine)) >= set(idle) & set(LINES)


async def test_a_line_changed_again_before_its_checkpoint_is_hashed_once(pool, monkeypatch) -> None:
    proc = await start(pool)
    writer = proc.snapshots
    hashed: list[str] = []
    original = writer.hash_of
    monkeypatch.setattr(writer, "hash_of", lambda m: hashed.append(m) or original(m))
    work = batches(4, n=6)
    for rows in work[:3]:
        await proc.ingest(rows)
        writer._collect()
    first = len(hashed)
    assert first == len(set(hashed))  # each changed line once, however many batches changed it
    await writer.flush()
    await proc.ingest(work[3])
    writer._collect()
    assert len(hashed) > first  # after its checkpoint, a change waits (and is hashed) again


async def test_a_stop_while_changed_lines_are_sorted_keeps_the_rest_changed(pool, monkeypatch) -> None:
    monkeypatch.setattr(snapshots, "HASH_STEP", 5)
    monkeypatch.setattr(slices, "SLICE_S", 0.0)
    proc = await start(pool)
    for rows in batches(5, n=3):
        await proc.ingest(rows)
    changed = set(proc.engine.dirty)
    assert len(changed) > 10
    sorting = asyncio.create_task(proc.snapshots._collect_gradually())
    await asyncio.sleep(0)  # one slice sorted; the task waits at its pause
    sorting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sorting
    writer = proc.snapshots
    assert writer.waiting and proc.engine.dirty  # stopped half way
    assert writer.waiting | proc.engine.dirty == changed  # every changed line is still to be checkpointed


async def test_a_stop_while_a_batch_holds_the_ledger_keeps_every_line_changed(pool) -> None:
    proc = await start(pool)
    for rows in batches(5, n=3):
        await proc.ingest(rows)
    changed = set(proc.engine.dirty)
    async with proc.snapshots.ledger.lock:  # a batch being applied: the writer's next slice waits for it
        sorting = asyncio.create_task(proc.snapshots._collect_gradually())
        await asyncio.sleep(0)
        sorting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sorting
    assert not proc.snapshots.waiting  # nothing was sorted while the batch held the ledger
    assert proc.engine.dirty == changed


async def test_each_slice_of_checkpoint_work_holds_the_ledger_lock(pool, monkeypatch) -> None:
    monkeypatch.setattr(snapshots, "HASH_STEP", 5)
    monkeypatch.setattr(snapshots, "ENCODE_STEP", 3)
    monkeypatch.setattr(snapshots, "SWEEP_STEP", 4)
    monkeypatch.setattr(slices, "SLICE_S", 0.0)
    proc = await start(pool)
    writer, engine, lock = proc.snapshots, proc.engine, proc.snapshots.ledger.lock
    held: list[bool] = []

    def watch(name: str, target: object, ours: Callable[..., bool] = lambda *args: True) -> None:
        original = getattr(target, name)

        def watched(*args: object) -> object:
            if ours(*args):
                held.append(lock.locked())
            return original(*args)

        monkeypatch.setattr(target, name, watched)

    watch("_sort", writer)
    # Patched on the class: a scoring server of the session's stack may checkpoint meanwhile, under its own lock.
    watch("_encode", snapshots.Cut, lambda cut, *_: cut.engine is engine)
    watch("forget_idle_lines", engine)
    watch("forget_idle_handsets", engine)
    for rows in batches(7, n=4):
        await proc.ingest(rows)
    await writer.flush()
    await writer.sweep()
    assert len(held) > 10 and all(held)


async def test_checkpoints_written_in_version_2_for_a_rollback_load_the_same_lines(pool) -> None:
    proc = await start(pool)
    proc.snapshots.version = 2  # PSP_SCORING_SNAPSHOT_VERSION=2: what a release before version 3 reads
    for rows in batches(6, n=5):
        await proc.ingest(rows)
    await proc.snapshots.flush()
    stored = [msgpack.unpackb(r["packed"]) for r in await pool.fetch("SELECT packed FROM line_windows")]
    assert stored and all(s[2][0] == 2 for s in stored)
    again = await start(pool)
    assert windows(again.engine) == windows(proc.engine)


async def test_the_oldest_checkpoint_age_is_exported_and_falls_once_every_partition_is_checkpointed(pool) -> None:
    exporting = metrics.setup("tests", port=0)
    proc = await start(pool)
    writer = proc.snapshots
    writer._started -= 600  # started ten minutes ago, and nothing checkpointed since: a restart replays all that
    for rows in batches(8, n=3):
        await proc.ingest(rows)
    writer.report_age()
    assert total(scrape(exporting.port), "psp_scoring_checkpoint_age_seconds", shard="0") >= 600
    await writer.flush(changed_only=True)  # the partitions with a changed line
    assert writer.oldest_checkpoint_age() >= 600  # the others still wait for the end of the round
    await writer.advance_unchanged()
    writer.report_age()
    assert total(scrape(exporting.port), "psp_scoring_checkpoint_age_seconds", shard="0") < 60

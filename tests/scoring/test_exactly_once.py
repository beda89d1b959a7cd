"""Every acknowledged CDR counts exactly once: a scoring process that dies at any point (between batches, in the
middle of a checkpoint, between an outcome and the next checkpoint) comes back, from its checkpoints and the
journal, with the same windows as a run that never crashed; a batch whose commit fails leaves memory as it was.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.scoring import store
from tests.scoring.processes import LINES, batches, reference, start, windows


@pytest.mark.parametrize("seed", [1, 2])
async def test_a_crash_between_batches_and_checkpoints_loses_and_doubles_nothing(pool, seed: int) -> None:
    work = batches(seed)
    proc = await start(pool)
    for i, rows in enumerate(work):
        await proc.ingest(rows)
        if i == 7:
            await proc.snapshots.flush()  # a checkpoint, then more batches only in the journal
        if i in (11, 17):
            proc = await start(pool)  # kill -9: nothing flushed since
    assert windows(proc.engine) == reference(work)


async def test_a_crash_in_the_middle_of_a_checkpoint(pool) -> None:
    work = batches(3)
    proc = await start(pool)
    for rows in work[:10]:
        await proc.ingest(rows)
    await proc.snapshots.flush(proc.servicer.ledger.shards.owned[:20])  # dies after 20 of its 64 partitions
    proc = await start(pool)
    for rows in work[10:]:
        await proc.ingest(rows)
    assert windows(proc.engine) == reference(work)


async def test_an_outcome_survives_a_crash_before_the_next_checkpoint(pool) -> None:
    from pscommon.idempotency import Tx

    work = batches(4)
    proc = await start(pool)
    for rows in work:
        await proc.ingest(rows)
    await proc.snapshots.flush()
    scam = next(m for m in LINES[:6] if proc.engine.acted.get(m))
    async with proc.servicer.ledger.lock, pool.acquire() as conn, conn.transaction():
        cleared = await proc.servicer.ledger.journal_label(
            Tx(conn), "outcome-1", scam, True, frozenset({"CALL_BURST_NEW_PEERS"})
        )
    expected = windows(proc.engine)
    assert proc.engine.acted.get(scam) is None
    proc = await start(pool)  # kill -9 before any checkpoint includes the label
    assert proc.engine.acted.get(scam) is None and proc.engine.cleared.get(scam, frozenset()) == cleared
    assert windows(proc.engine) == expected


async def test_a_batch_whose_commit_fails_leaves_memory_as_it_was(pool, monkeypatch) -> None:
    work = batches(5)
    proc = await start(pool)
    for rows in work[:5]:
        await proc.ingest(rows)
    before = windows(proc.engine)

    async def refused(*args: object) -> int:
        raise asyncpg.exceptions.SerializationError("the commit failed (test)")

    monkeypatch.setattr(store, "journal_whole_batch", refused)
    with pytest.raises(asyncpg.exceptions.SerializationError):
        await proc.ingest(work[5], "batch-5")
    assert windows(proc.engine) == before
    monkeypatch.undo()
    await proc.ingest(work[5], "batch-5")  # mediation sends it again: counted once
    await proc.ingest(work[5], "batch-5")
    for rows in work[6:]:
        await proc.ingest(rows)
    assert windows(proc.engine) == reference(work)


async def test_batches_applied_while_a_checkpoint_is_encoded_count_once(pool, monkeypatch) -> None:
    """Ingest goes on between the checkpoint's slices; a line changed before it was encoded is saved as it was at
    the cut (copy on write), so the journal after the cut replays onto exactly that state."""
    from services.scoring import slices, snapshots

    monkeypatch.setattr(snapshots, "ENCODE_STEP", 3)
    monkeypatch.setattr(slices, "SLICE_S", 0.0)
    work = batches(6)
    proc = await start(pool)
    for rows in work[:8]:
        await proc.ingest(rows)
    later = iter(work[8:16])

    async def ingest_between_slices() -> None:
        for rows in later:
            await proc.ingest(rows)

    real_sleep = asyncio.sleep

    during_cut = 0

    async def slice_boundary(delay: float) -> None:  # a batch arrives between two slices of the checkpoint
        nonlocal during_cut
        rows = next(later, None)
        if rows is not None:
            during_cut += proc.servicer.ledger.cut is not None
            await proc.ingest(rows)
        await real_sleep(delay)

    monkeypatch.setattr(snapshots.asyncio, "sleep", slice_boundary)
    await proc.snapshots.flush()
    monkeypatch.setattr(snapshots.asyncio, "sleep", real_sleep)
    assert during_cut >= 2  # batches went in while lines of the cut were still to be encoded
    await ingest_between_slices()
    proc = await start(pool)  # kill -9 after the checkpoint
    for rows in work[16:]:
        await proc.ingest(rows)
    assert windows(proc.engine) == reference(work)


async def test_a_report_is_counted_once_across_a_checkpoint_and_a_crash(pool) -> None:
    from pscommon.idempotency import Tx

    work = batches(8)
    proc = await start(pool)
    for rows in work[:4]:
        await proc.ingest(rows)
    line = LINES[10]
    async with proc.servicer.ledger.lock, pool.acquire() as conn, conn.transaction():
        await proc.servicer.ledger.journal_report(Tx(conn), "report-1", line, work[3][-1][4], 0)
    expected = windows(proc.engine)
    await proc.snapshots.flush()
    proc = await start(pool)
    assert windows(proc.engine) == expected


async def test_rolling_checkpoints_write_only_changed_partitions_and_lose_nothing(pool) -> None:
    """The writer's round: each partition in its own slot, only if a line of it changed; then the checkpoints of
    the unchanged ones move up in one statement, once, and the journal is trimmed."""
    work = batches(5)
    proc = await start(pool)
    writer = proc.snapshots
    for rows in work[:12]:
        await proc.ingest(rows)
    owned = proc.servicer.ledger.shards.owned
    touched = {p for p, lines in writer.dirty.items() if lines} | {store_partition(m) for m in proc.engine.dirty}
    written = [p for p in owned if await writer.flush([p], changed_only=True)]
    assert set(written) == touched and len(written) < len(owned)
    await writer.advance_unchanged()
    after = {r["partition"]: r for r in await pool.fetch("SELECT partition, journal_id, saved_at FROM checkpoints")}
    assert len(after) == len(owned) and len({r["journal_id"] for r in after.values()}) == 1
    await writer.advance_unchanged()  # nothing new: nothing written
    again = {r["partition"]: r["saved_at"] for r in await pool.fetch("SELECT partition, saved_at FROM checkpoints")}
    assert again == {p: r["saved_at"] for p, r in after.items()}
    assert await store.trim_journal(pool, len(owned)) == 12  # every batch so far is in every checkpoint
    for rows in work[12:18]:
        await proc.ingest(rows)
    proc = await start(pool)  # kill -9 after a round
    for rows in work[18:]:
        await proc.ingest(rows)
    assert windows(proc.engine) == reference(work)


def store_partition(msisdn: str) -> int:
    from services.scoring.partitions import partition_of
    from tests.scoring.processes import hash_of

    return partition_of(hash_of(msisdn))

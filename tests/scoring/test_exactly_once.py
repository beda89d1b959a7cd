"""Every acknowledged CDR counts exactly once: a scoring process that dies at any point (between batches, in the
middle of a checkpoint, between an outcome and the next checkpoint) comes back, from its checkpoints and the
journal, with the same windows as a run that never crashed; a batch whose commit fails leaves memory as it was.
"""

from __future__ import annotations

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
    writer = proc.snapshots
    writer._collect()
    for p in proc.servicer.ledger.shards.owned[:20]:  # the process dies after 20 of its 64 partitions
        await writer._checkpoint(p)
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

    monkeypatch.setattr(store, "append_journal", refused)
    with pytest.raises(asyncpg.exceptions.SerializationError):
        await proc.ingest(work[5], "batch-5")
    assert windows(proc.engine) == before
    monkeypatch.undo()
    await proc.ingest(work[5], "batch-5")  # mediation sends it again: counted once
    await proc.ingest(work[5], "batch-5")
    for rows in work[6:]:
        await proc.ingest(rows)
    assert windows(proc.engine) == reference(work)

"""Scoring sharded by line: every shard journals and checkpoints its own partitions, so a shard killed mid-stream
and restarted, or the shards re-counted (2 -> 3), end with exactly the windows of one process over the same CDRs;
a process whose partitions were claimed by another can no longer change them."""

from __future__ import annotations

import uuid

import grpc
import pytest

from pscommon.errors import ServiceError
from services.scoring.partitions import ShardMap
from tests.scoring.processes import Process, batches, reference, start, windows


class Cluster:
    """N shards over one database; `ingest` does what the receiving shard does with a client's batch: each owner
    applies its part (the tests call the owners' ledgers where a shard would call ApplyPart)."""

    def __init__(self, pool, shards: int) -> None:
        self.pool = pool
        self.shards = shards
        self.procs: list[Process] = []

    async def start(self) -> Cluster:
        self.procs = [await start(self.pool, ShardMap(self.shards, i)) for i in range(self.shards)]
        return self

    async def restart(self, shard: int) -> None:
        """kill -9 of one shard (nothing flushed), then a new process for it."""
        self.procs[shard] = await start(self.pool, ShardMap(self.shards, shard))

    async def ingest(self, rows: list[tuple], batch_id: str, skip: int | None = None) -> None:
        split = self.procs[0].servicer.shards.split([r[0] for r in rows])
        for owner, part in split.parts.items():
            if owner != skip:
                await self.procs[owner].servicer.ledger.ingest(batch_id, [rows[i] for i in part.indices], part)

    def windows(self) -> dict[str, bytes]:
        merged: dict[str, bytes] = {}
        for proc in self.procs:
            mine = windows(proc.engine)
            assert not set(mine) & set(merged), "a line lives on one shard only"
            merged.update(mine)
        return dict(sorted(merged.items()))


@pytest.mark.parametrize("seed", [1, 2])
async def test_a_shard_killed_mid_stream_comes_back_with_exactly_its_lines(pool, seed: int) -> None:
    work = batches(seed, n=30)
    cluster = await Cluster(pool, 3).start()
    for i, rows in enumerate(work):
        if i == 8:
            await cluster.procs[1].snapshots.flush()
        if i == 15:
            # The batch reaches shards 0 and 2; shard 1 dies before applying its part. Mediation, without an
            # answer, sends the whole batch again once shard 1 is back: only shard 1's part is new.
            await cluster.ingest(rows, f"b{i}", skip=1)
            await cluster.restart(1)
        await cluster.ingest(rows, f"b{i}")
    assert cluster.windows() == reference(work)


async def test_re_counting_the_shards_moves_partitions_and_loses_nothing(pool) -> None:
    work = batches(7, n=30)
    two = await Cluster(pool, 2).start()
    for i, rows in enumerate(work[:14]):
        await two.ingest(rows, f"b{i}")
    await two.procs[0].snapshots.flush()  # shard 0 stops cleanly; shard 1 is killed without a checkpoint
    three = await Cluster(pool, 3).start()
    await three.ingest(work[13], "b13")  # a batch sent again after the change: nothing applies twice
    for i, rows in enumerate(work[14:], start=14):
        await three.ingest(rows, f"b{i}")
    assert three.windows() == reference(work)


async def test_a_process_whose_partitions_were_claimed_cannot_change_them(pool) -> None:
    work = batches(9)
    old = await start(pool)
    await old.ingest(work[0])
    stopped: list[bool] = []
    old.servicer.ledger.on_lost = lambda: stopped.append(True)
    new = await start(pool)  # a new process for the same shard (the old one hung, not dead)
    before = windows(old.engine)
    with pytest.raises(ServiceError) as refused:
        await old.ingest(work[1])
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE and refused.value.reason == "PARTITIONS_MOVED"
    assert stopped == [True] and windows(old.engine) == before
    with pytest.raises(ServiceError):
        await old.snapshots.flush()
    await new.ingest(work[1])
    assert windows(new.engine) == reference(work[:2])
    assert uuid.UUID(str(new.servicer.ledger.token)) != old.servicer.ledger.token


async def test_merging_to_one_shard_applies_only_the_parts_not_applied_before(pool) -> None:
    work = batches(11, n=20)
    two = await Cluster(pool, 2).start()
    for i, rows in enumerate(work[:10]):
        await two.ingest(rows, f"b{i}")
    await two.ingest(work[10], "b10", skip=1)  # shard 1 never applied its part of b10
    for proc in two.procs:
        await proc.snapshots.flush()
    one = await start(pool)
    await one.ingest(work[9], "b9")  # applied in parts before: nothing again
    await one.ingest(work[10], "b10")  # only shard 1's part is new
    await one.ingest(work[10], "b10")
    for i, rows in enumerate(work[11:], start=11):
        await one.ingest(rows, f"b{i}")
    assert windows(one.engine) == reference(work)

"""Scoring processes over a test database, built as `scoring.server.start` builds them, and a reference run.

A "crash" drops a process's objects without flushing anything, as kill -9 does; the state is then rebuilt
exactly as a new process builds it (claim, `server.build_engine`, `Ledger.replay`).
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import date

import asyncpg
import msgpack

from pscommon.config import Settings
from pscommon.identity import line_hash
from services.scoring import server as scoring_server
from services.scoring import store
from services.scoring.engine import Engine
from services.scoring.features import Profile
from services.scoring.ledger import _escalations
from services.scoring.partitions import ShardMap
from services.scoring.scorecard import load
from services.scoring.shards import Shards
from services.scoring.snapshots import SnapshotWriter

KEY = "test-line-hash-key"
LINES = [f"1935560{i:04d}" for i in range(40)]
PROFILE = Profile("44", date(2020, 1, 1))


def batches(seed: int, n: int = 24, size: int = 60) -> list[list[tuple]]:
    """Calls of 40 lines over a few hours, a burst of new peers on some (they escalate), in event-time order."""
    rnd = random.Random(seed)
    t = 1_795_000_000
    out = []
    for b in range(n):
        rows = []
        for _ in range(size):
            t += rnd.randint(1, 20)
            m = rnd.choice(LINES)
            scam = m in LINES[:6] and b > n // 3
            peer = f"137{rnd.randint(0, 10**8 if scam else 30):08d}"
            rows.append((m, peer, "51" if scam else "44", 1, t, 0 if scam and rnd.random() < 0.6 else 40, "", 0, "", 1))
        out.append(rows)
    return out


def reference(all_batches: list[list[tuple]]) -> dict[str, bytes]:
    engine = fresh_engine()
    for rows in all_batches:
        _escalations(engine, rows)
    return windows(engine)


def fresh_engine() -> Engine:
    engine = Engine(load())
    for m in LINES:
        engine.set_profile(m, PROFILE)
    return engine


def windows(engine: Engine) -> dict[str, bytes]:
    return {m: msgpack.packb(engine.snapshot(m)) for m in sorted(engine.lines)}


@dataclasses.dataclass
class Process:
    """One scoring process over the test database: its engine, ledger and checkpoint writer."""

    servicer: scoring_server.Scoring
    snapshots: SnapshotWriter

    @property
    def engine(self) -> Engine:
        return self.servicer.engine

    async def ingest(self, rows: list[tuple], batch_id: str | None = None) -> None:
        await self.servicer.ledger.ingest(batch_id or uuid.uuid4().hex, rows)


async def start(pool: asyncpg.Pool, shard_map: ShardMap | None = None) -> Process:
    """What `scoring.server.start` does for the engine: claim the partitions, load their checkpoints, replay the
    journal after them."""
    shard_map = shard_map or ShardMap()
    addrs = ",".join(f"127.0.0.1:{i + 1}" for i in range(shard_map.shards))  # never called: tests route parts
    cfg = Settings(line_hash_key=KEY, scoring_shards=shard_map.shards, scoring_shard_addrs=addrs)
    token = uuid.uuid4()
    await store.claim_partitions(pool, shard_map.owned, token, shard_map.shard, shard_map.shards)
    engine = await scoring_server.build_engine(pool, shard_map)
    shards = Shards(cfg, shard_map, hash_of)
    servicer = scoring_server.Scoring(pool, cfg, engine, None, shards, token)  # type: ignore[arg-type]
    await servicer.ledger.replay(await store.checkpoints(pool, shard_map.owned))
    return Process(servicer, SnapshotWriter(pool, servicer.ledger, hash_of, 3600))


def hash_of(msisdn: str) -> str:
    return line_hash(msisdn, KEY)

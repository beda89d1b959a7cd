"""When and in which order the engine's memory changes, and how it survives a crash.

Write-ahead: a batch of CDRs is written to the journal in the transaction that acknowledges it, and applied to
the engine only once that has committed, under one lock, so memory changes if and only if the batch committed,
in journal order. The decisions the batch causes are written next, keyed by their cause (`<batch>#<index>`);
if that fails they stay pending here, are written before anything else happens, and are never checkpointed
past, so a crash re-derives them from the journal. Reports and outcome labels change memory inside their
transaction, holding the same lock, and are undone if it fails.

A partition's windows are saved together with the last journal id they include (its checkpoint, see
checkpoints.py); a restart loads them and replays the journal after it, so every acknowledged CDR counts once.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, NoReturn, Protocol, TypeVar

import asyncpg
import grpc
import msgpack

from carrier.scoring.v1 import scoring_pb2
from pscommon.db import Conn
from pscommon.errors import ServiceError
from pscommon.idempotency import Tx
from services.scoring import metrics as scoring_metrics
from services.scoring import requests, store
from services.scoring.engine import Engine, Escalation
from services.scoring.partitions import ShardMap, partition_of

log = logging.getLogger(__name__)
OUT, SMS, ABROAD = scoring_pb2.DIRECTION_OUT, scoring_pb2.SERVICE_KIND_SMS, scoring_pb2.ROAMING_INTERNATIONAL

CDRS, REPORT, OUTCOME = 1, 2, 3
REPLAY_CHUNK = 200  # journal entries read at a time on start-up

# decide(conn, escalation, cause, batch id) -> (the decision as answered, its row id): records it in conn's
# transaction, or returns the one already recorded for this cause. recorded(conn, batch id, partitions): the
# decisions a batch took (of its lines in those partitions; None: all).
D = TypeVar("D")  # a decision as the service answers it
Decide = Callable[[Conn, Escalation, str, str | None], Awaitable[tuple[D, int]]]
Recorded = Callable[[Conn, str, list[int] | None], Awaitable[list[D]]]


class Preserving(Protocol):
    def preserve(self, msisdns: Iterable[str]) -> None: ...


@dataclass
class Pending:
    """Escalations applied to memory whose decisions are not recorded yet."""

    journal_id: int
    batch_id: str
    escalations: list[tuple[str, Escalation]]  # (cause, escalation)


@dataclass
class Part:
    """The part of a client's batch one shard applies: its partitions, and per row its partition and its
    position in the client's batch."""

    partitions: list[int]
    row_partitions: list[int]
    indices: list[int]


@dataclass
class Ingested(Generic[D]):
    repeated: bool
    decisions: list[D]
    decision_ids: list[int]  # decisions whose case is yet to be opened
    newest: int = 0  # the latest start among the batch's CDRs (the server sets it; for the stream's lag)


class Ledger(Generic[D]):
    def __init__(
        self,
        pool: asyncpg.Pool,
        engine: Engine,
        shards: ShardMap,
        hash_of: Callable[[str], str],
        decide: Decide[D],
        recorded: Recorded[D],
        token: uuid.UUID,
        on_lost: Callable[[], None] = lambda: None,
    ) -> None:
        self.pool = pool
        self.engine = engine
        self.shards = shards
        self.hash_of = hash_of
        self.decide = decide
        self.recorded = recorded
        self.lock = asyncio.Lock()
        self.applied = 0  # the last journal id applied to memory
        self.pending: list[Pending] = []
        self.token = token  # this process's claim on its partitions (store.claim_partitions, migration 008)
        self.on_lost = on_lost  # what to do once another process has claimed them: stop
        self.gone = False
        self.cut: Preserving | None = None  # a checkpoint being encoded (snapshots.Cut)

    async def _fence(self, conn: Conn, partitions: list[int]) -> None:
        if not await store.owns(conn, partitions, self.token):
            self.lost()

    def lost(self) -> NoReturn:
        log.error("another scoring process has claimed this shard's partitions: stopping")
        if not self.gone:
            self.gone = True
            self.on_lost()
        raise ServiceError(
            grpc.StatusCode.UNAVAILABLE,
            "this scoring shard's partitions moved to another process; retry",
            "PARTITIONS_MOVED",
        )

    # ---- CDR batches -----------------------------------------------------------------------------------

    async def ingest(self, batch_id: str, rows: list[requests.CdrRow], part: Part | None = None) -> Ingested[D]:
        """Journals, applies and decides one validated batch (`part`: the part of it this shard owns, when there
        are several shards); what was applied before (a batch sent again) answers what it decided then."""
        async with self.lock:
            await self.record_pending()
            indices: list[int] | None = None
            async with self.pool.acquire() as conn:
                if part is None:  # the common case, in one round trip
                    shards = self.shards
                    written = await store.journal_whole_batch(
                        conn, batch_id, len(rows), shards.owned, self.token, CDRS, shards.mask, pack([None, rows])
                    )
                    if not written["owned"]:
                        self.lost()
                    if written["parts_seen"]:
                        part = self.whole_as_part(rows)  # applied in parts before the shards were merged
                    elif written["journal_id"] is None:
                        return Ingested(True, await self.recorded(conn, batch_id, None), [])
                    journal_id = written["journal_id"]
                if part is not None:
                    async with conn.transaction():
                        rows, indices = await self._unseen(conn, batch_id, rows, part)
                        if not rows:
                            return Ingested(True, await self.recorded(conn, batch_id, part.partitions), [])
                        await self._fence(conn, part.partitions)
                        body = pack([indices, rows])
                        journal_id = await store.append_journal(conn, CDRS, batch_id, self.shards.mask, body)
            self.applied = journal_id
            if self.cut is not None:
                self.cut.preserve(r[0] for r in rows)
            escalations = self._observe(batch_id, rows, indices)
            if not escalations:
                return Ingested(False, [], [])
            pending = Pending(journal_id, batch_id, escalations)
            self.pending.append(pending)
            decisions, ids = await self._record(pending)
            return Ingested(False, decisions, ids)

    def whole_as_part(self, rows: list[requests.CdrRow]) -> Part:
        row_partitions = [partition_of(self.hash_of(r[0])) for r in rows]
        return Part(sorted(set(row_partitions)), row_partitions, list(range(len(rows))))

    async def _unseen(
        self, conn: Conn, batch_id: str, rows: list[requests.CdrRow], part: Part
    ) -> tuple[list[requests.CdrRow], list[int]]:
        """The part's rows of partitions not applied before, with their positions in the client's batch."""
        if await store.whole_batch_seen(conn, batch_id):
            return [], []
        new = await store.mark_parts(conn, batch_id, part.partitions)
        keep = [k for k, p in enumerate(part.row_partitions) if p in new]
        return [rows[k] for k in keep], [part.indices[k] for k in keep]

    def _observe(
        self, batch_id: str, rows: list[requests.CdrRow], indices: list[int] | None
    ) -> list[tuple[str, Escalation]]:
        engine = self.engine
        refused, late = engine.refused.copy(), engine.late.copy()
        found = _escalations(engine, rows)
        scoring_metrics.event_time(engine.refused - refused, engine.late - late)
        return [(f"{batch_id}#{indices[i] if indices else i}", e) for i, e in found]

    async def record_pending(self) -> list[int]:
        """Records the decisions of batches applied before; returns the ids of those still to be opened."""
        ids: list[int] = []
        while self.pending:
            ids += (await self._record(self.pending[0]))[1]
        return ids

    async def _record(self, pending: Pending) -> tuple[list[D], list[int]]:
        decisions: list[D] = []
        ids: list[int] = []
        async with self.pool.acquire() as conn, conn.transaction():
            for cause, e in pending.escalations:
                d, did = await self.decide(conn, e, cause, pending.batch_id)
                decisions.append(d)
                ids.append(did)
        self.pending.remove(pending)
        return decisions, ids

    # ---- reports and outcome labels: changed in their transaction, undone if it fails ----------------------

    async def journal_report(self, tx: Tx, request_id: str, msisdn: str, at: int, source: int) -> Escalation | None:
        """Applies a report to the line (the caller holds `lock` through the commit) and journals it."""
        engine = self.engine
        line, acted = copy.deepcopy(engine.lines.get(msisdn)), engine.acted.get(msisdn)
        tx.on_rollback(lambda: self._put_back(msisdn, line, acted))
        await self._fence(tx.conn, [partition_of(self.hash_of(msisdn))])
        body = pack([msisdn, at, source])
        self.applied = await store.append_journal(tx.conn, REPORT, request_id, self.shards.mask, body)
        if self.cut is not None:
            self.cut.preserve([msisdn])
        return engine.report(msisdn, at, source)

    async def journal_label(
        self, tx: Tx, request_id: str, msisdn: str, false_positive: bool, codes: frozenset[str]
    ) -> frozenset[str]:
        """Labels the line's case (the caller holds `lock` through the commit) and journals it."""
        engine = self.engine
        acted, cleared = engine.acted.get(msisdn), engine.cleared.get(msisdn)
        tx.on_rollback(lambda: self._put_back(msisdn, engine.lines.get(msisdn), acted, cleared, restore_cleared=True))
        body = pack([msisdn, false_positive, sorted(codes)])
        await self._fence(tx.conn, [partition_of(self.hash_of(msisdn))])
        self.applied = await store.append_journal(tx.conn, OUTCOME, request_id, self.shards.mask, body)
        if self.cut is not None:
            self.cut.preserve([msisdn])
        return engine.label(msisdn, false_positive, codes)

    def _put_back(
        self,
        msisdn: str,
        line: object,
        acted: int | None,
        cleared: frozenset[str] | None = None,
        restore_cleared: bool = False,
    ) -> None:
        engine = self.engine
        if line is None:
            engine.lines.pop(msisdn, None)
        else:
            engine.lines[msisdn] = line  # type: ignore[assignment]
            profile = engine.profiles.get(msisdn)
            if profile is not None:
                engine.lines[msisdn].profile = profile
        _set(engine.acted, msisdn, acted)
        if restore_cleared:
            _set(engine.cleared, msisdn, cleared)

    # ---- start-up ---------------------------------------------------------------------------------------

    async def replay(self, checkpoints: dict[int, int]) -> int:
        """Applies the journal after each owned partition's checkpoint; returns the entries read. Decisions
        the journal causes and that were never recorded are recorded now."""
        owned = set(self.shards.owned)
        partition: dict[str, int] = {}

        def mine(msisdn: str, journal_id: int) -> bool:
            p = partition.get(msisdn)
            if p is None:
                p = partition[msisdn] = partition_of(self.hash_of(msisdn))
            return p in owned and journal_id > checkpoints.get(p, 0)

        read = 0
        after = min((checkpoints.get(p, 0) for p in owned), default=0)
        async with self.lock:
            while True:
                entries = await store.journal_after(self.pool, after, self.shards.mask, REPLAY_CHUNK)
                if not entries:
                    break
                for entry in entries:
                    self._replay_entry(entry, mine)
                    after = self.applied = entry["id"]
                read += len(entries)
            ids = await self.record_pending()
        log.info(
            "journal replayed: %d entries after the checkpoints; %d decisions they caused are on record", read, len(ids)
        )
        return read

    def _replay_entry(self, entry: asyncpg.Record, mine: Callable[[str, int], bool]) -> None:
        jid, kind, batch_id, body = entry["id"], entry["kind"], entry["batch_id"], msgpack.unpackb(entry["body"])
        engine = self.engine
        if kind == CDRS:
            indices, all_rows = body
            rows = [(indices[i] if indices else i, tuple(r)) for i, r in enumerate(all_rows) if mine(r[0], jid)]
            escalations = [(f"{batch_id}#{rows[k][0]}", e) for k, e in _escalations(engine, [r for _, r in rows])]
            if escalations:
                self.pending.append(Pending(jid, batch_id, escalations))
        elif kind == REPORT:
            msisdn, at, source = body
            if mine(msisdn, jid):
                e = engine.report(msisdn, at, source)
                if e is not None:
                    self.pending.append(Pending(jid, batch_id, [(batch_id, e)]))
        elif kind == OUTCOME:
            msisdn, false_positive, codes = body
            if mine(msisdn, jid):
                engine.label(msisdn, false_positive, frozenset(codes))


def pack(value: object) -> bytes:
    return msgpack.packb(value)


def _escalations(engine: Engine, rows: list) -> list[tuple[int, Escalation]]:
    """(index in rows, escalation) for every CDR that escalates its line: the hot loop of ingest and replay."""
    observe = engine.observe
    out = []
    for i, (msisdn, peer, province, direction, start, duration, cell, roaming, imei, service) in enumerate(rows):
        e = observe(
            msisdn, peer, province, direction == OUT, start, duration, cell, roaming == ABROAD, imei, service == SMS
        )
        if e is not None:
            out.append((i, e))
    return out


def _set(d: dict, key: str, value: object) -> None:
    if value is None:
        d.pop(key, None)
    else:
        d[key] = value

"""SQL of the scoring service."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import asyncpg
import msgpack

from pscommon.db import Conn
from services.scoring.features import SNAPSHOT_FIELDS, Profile
from services.scoring.partitions import SQL_PARTITION
from services.scoring.scorecard import Assessment

UPSERT_SLICE = 250  # lines of a checkpoint upserted at a time
UPSERT_PAUSE_S = 0.005


class PartitionLost(Exception):
    """Another process has claimed a partition this one held: it must stop writing and exit."""


def _ts(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def upsert_subscriber(conn: Conn, line_hash: str, msisdn: str, p: Profile) -> None:
    await conn.execute(
        "INSERT INTO subscribers (line_hash, msisdn, home_province, opened_at, enterprise, language)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (line_hash) DO UPDATE SET home_province = excluded.home_province,"
        " opened_at = excluded.opened_at, enterprise = excluded.enterprise, language = excluded.language",
        line_hash,
        msisdn,
        p.home_province,
        p.opened_at,
        p.enterprise,
        p.language,
    )


async def set_enterprise(conn: Conn, line_hash: str, enterprise: str) -> bool:
    done = await conn.execute("UPDATE subscribers SET enterprise = $2 WHERE line_hash = $1", line_hash, enterprise)
    return done != "UPDATE 0"


async def subscribers(pool: asyncpg.Pool, partitions: list[int]) -> list[tuple[str, Profile]]:
    rows = await pool.fetch(f"SELECT * FROM subscribers WHERE {SQL_PARTITION} = ANY($1)", partitions)
    return [(r["msisdn"], Profile(r["home_province"], r["opened_at"], r["enterprise"], r["language"])) for r in rows]


# One statement (so one round trip, committed on its own): the fence (every owned partition still ours, held
# FOR SHARE until the commit so no claim commits in between), the batch recorded unless it was seen whole or in
# parts before, and its journal entry written only if it was recorded here.
_JOURNAL_WHOLE = """
WITH fence AS (SELECT partition FROM partition_owners WHERE partition = ANY($3::smallint[]) AND token = $4 FOR SHARE),
     owned AS (SELECT count(*) = cardinality($3::smallint[]) AS ok FROM fence),
     parts AS (SELECT EXISTS (SELECT 1 FROM ingested_parts WHERE request_id = $1) AS seen),
     batch AS (
         INSERT INTO ingested_batches (request_id, cdrs)
         SELECT $1, $2 FROM owned, parts WHERE owned.ok AND NOT parts.seen
         ON CONFLICT DO NOTHING RETURNING 1
     ),
     entry AS (INSERT INTO journal (kind, batch_id, partitions, body) SELECT $5, $1, $6, $7 FROM batch RETURNING id)
SELECT owned.ok AS owned, parts.seen AS parts_seen, (SELECT id FROM entry) AS journal_id FROM owned, parts
"""


async def journal_whole_batch(
    conn: Conn, request_id: str, cdrs: int, owned: list[int], token: uuid.UUID, kind: int, mask: int, body: bytes
) -> asyncpg.Record:
    """A whole batch on a single shard: (owned, parts_seen, journal_id); journal_id is None when nothing was
    written (the partitions are not all ours, the batch came in parts before, or it was seen before)."""
    row = await conn.fetchrow(_JOURNAL_WHOLE, request_id, cdrs, owned, token, kind, mask, body)
    assert row is not None
    return row


async def whole_batch_seen(conn: Conn, request_id: str) -> bool:
    return await conn.fetchval("SELECT 1 FROM ingested_batches WHERE request_id = $1", request_id) is not None


async def mark_parts(conn: Conn, request_id: str, partitions: list[int]) -> set[int]:
    """Records the batch's partitions; returns those not recorded before."""
    rows = await conn.fetch(
        "INSERT INTO ingested_parts (request_id, partition) SELECT $1, unnest($2::smallint[])"
        " ON CONFLICT DO NOTHING RETURNING partition",
        request_id,
        partitions,
    )
    return {r["partition"] for r in rows}


async def assign_case(conn: Conn, line_hash: str) -> tuple[int, bool]:
    """The case a decision belongs to: the line's open case (join) or a new one. Returns (seq, join)."""
    row = await conn.fetchrow("SELECT last_seq, open FROM cases WHERE line_hash = $1 FOR UPDATE", line_hash)
    if row is not None and row["open"]:
        return row["last_seq"], True
    seq = (row["last_seq"] if row else 0) + 1
    await conn.execute(
        "INSERT INTO cases (line_hash, last_seq, open) VALUES ($1, $2, true)"
        " ON CONFLICT (line_hash) DO UPDATE SET last_seq = excluded.last_seq, open = true",
        line_hash,
        seq,
    )
    return seq, False


async def close_case(conn: Conn, line_hash: str, seq: int) -> None:
    await conn.execute("UPDATE cases SET open = false WHERE line_hash = $1 AND last_seq = $2", line_hash, seq)


async def move_decision(conn: Conn, decision_id: int, case_id: str, join: bool) -> None:
    await conn.execute("UPDATE decisions SET case_id = $2, join_case = $3 WHERE id = $1", decision_id, case_id, join)


async def insert_decision(
    conn: Conn,
    line_hash: str,
    a: Assessment,
    model_version: str,
    at: int,
    case_id: str,
    join: bool,
    trace_id: str,
    batch_id: str | None,
    masked: str,
    cause: str | None = None,
) -> int:
    return await conn.fetchval(
        "INSERT INTO decisions (line_hash, risk_level, action, score, reasons, reason_texts, model_version,"
        " event_time, case_id, join_case, trace_id, batch_id, masked_msisdn, cause)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        line_hash,
        a.level,
        a.action,
        a.score,
        json.dumps([r.code for r in a.reasons]),
        # Both lists in one column, told apart by the sign of the points (rows written before the split hold both).
        json.dumps(
            [[r.code, r.text_zh, r.text_en, r.points] for r in (*a.reasons, *a.mitigations)], ensure_ascii=False
        ),
        model_version,
        _ts(at),
        case_id,
        join,
        trace_id,
        batch_id,
        masked,
        cause,
    )


async def decision_of(conn: Conn, cause: str) -> asyncpg.Record | None:
    """The decision recorded for this cause (a CDR of a batch, a report), if any."""
    return await conn.fetchrow(
        "SELECT id, opened_at, line_hash, masked_msisdn, risk_level, action, score, reason_texts, event_time, case_id"
        " FROM decisions WHERE cause = $1",
        cause,
    )


async def batch_decisions(conn: Conn, request_id: str, partitions: list[int] | None = None) -> list[asyncpg.Record]:
    """The decisions a batch took when it was first ingested (of its lines in `partitions`), in order."""
    return await conn.fetch(
        "SELECT line_hash, masked_msisdn, risk_level, action, score, reason_texts, event_time, case_id"
        f" FROM decisions WHERE batch_id = $1 AND ($2::smallint[] IS NULL OR {SQL_PARTITION} = ANY($2)) ORDER BY id",
        request_id,
        partitions,
    )


async def claim_decisions(conn: Conn, ids: list[int] | None, limit: int, lease_s: float) -> list[asyncpg.Record]:
    """Decisions whose case is not opened yet and that no opener holds, leased to this one for `lease_s`; only a
    line's earliest unopened decision, so a line's decisions reach its case in the order they were taken."""
    return await conn.fetch(
        "WITH claimed AS (UPDATE decisions SET lease_until = now() + make_interval(secs => $3) WHERE id IN ("
        " SELECT id FROM decisions d WHERE opened_at IS NULL AND (lease_until IS NULL OR lease_until < now())"
        " AND ($1::bigint[] IS NULL OR id = ANY($1)) AND NOT EXISTS (SELECT 1 FROM decisions e"
        " WHERE e.line_hash = d.line_hash AND e.opened_at IS NULL AND e.id < d.id)"
        " ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING *)"
        " SELECT c.*, s.msisdn, s.home_province, s.language FROM claimed c JOIN subscribers s USING (line_hash)",
        ids,
        limit,
        lease_s,
    )


async def release_decisions(conn: Conn, ids: list[int]) -> None:
    await conn.execute("UPDATE decisions SET lease_until = NULL WHERE id = ANY($1) AND opened_at IS NULL", ids)


async def mark_opened(conn: Conn, decision_id: int) -> None:
    await conn.execute("UPDATE decisions SET opened_at = now() WHERE id = $1", decision_id)


async def case_reason_codes(conn: Conn, case_id: str) -> list[str]:
    """Reason codes of every decision of a case (what a verified holder is cleared of)."""
    rows = await conn.fetch("SELECT reasons FROM decisions WHERE case_id = $1", case_id)
    return sorted({code for r in rows for code in json.loads(r["reasons"])})


async def record_outcome(
    conn: Conn,
    line_hash: str,
    case_id: str,
    outcome: int,
    model_version: str,
    codes: list[str],
    cleared: list[str],
    recorded_by: str,
) -> None:
    await conn.execute(
        "INSERT INTO outcomes (line_hash, case_id, outcome, model_version, reason_codes, cleared_codes, recorded_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (line_hash, case_id) DO UPDATE SET outcome ="
        " excluded.outcome, recorded_at = now(), model_version = excluded.model_version, reason_codes ="
        " excluded.reason_codes, cleared_codes = excluded.cleared_codes, recorded_by = excluded.recorded_by",
        line_hash,
        case_id,
        outcome,
        model_version,
        json.dumps(codes),
        json.dumps(cleared),
        recorded_by,
    )


def packed_window(snap: list) -> tuple[bytes, int]:
    """A line's snapshot (Engine.snapshot) as stored: MessagePack, and its latest event time (epoch seconds)."""
    return msgpack.packb(snap), snap[0]


def unpacked_window(packed: bytes | None, state: str | None) -> list:
    if packed is not None:
        return msgpack.unpackb(packed)
    assert state is not None, "a stored window has one of the two forms"
    old = json.loads(state)  # written as JSON before migration 003
    return [*(old[k] for k in SNAPSHOT_FIELDS if k in old), old.get("acted", 0), old.get("cleared", [])]


async def save_partition(
    pool: asyncpg.Pool, partition: int, records: list[tuple[str, bytes, int]], journal_id: int, token: uuid.UUID
) -> int:
    """Upserts a partition's changed lines (line hash, packed window, event time in epoch seconds) and its
    checkpoint (the last journal id they include) in one transaction, if this process still owns it."""
    async with pool.acquire() as conn, conn.transaction():
        # A checkpoint need not wait for its own flush to disk: the batches it covers stay in the journal until a
        # later synchronous commit (trim_journal's) has flushed it too, so losing it to a crash only means more
        # journal to replay. Waiting would make the commits of incoming batches queue behind its megabytes.
        await conn.execute("SET LOCAL synchronous_commit = off")
        if not await owns(conn, [partition], token):
            raise PartitionLost(partition)
        if records:
            # COPY into a scratch table, then upserts a slice at a time with a pause between (one transaction
            # still): one upsert of a whole partition kept a core busy for tens of milliseconds, and on a small
            # machine the commits of incoming batches waited for it.
            await conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS windows_in (seq int PRIMARY KEY, line_hash text, packed bytea, epoch bigint)"
                " ON COMMIT DELETE ROWS"
            )
            await conn.copy_records_to_table("windows_in", records=[(i, *r) for i, r in enumerate(records)])
            for start in range(0, len(records), UPSERT_SLICE):
                if start:
                    await asyncio.sleep(UPSERT_PAUSE_S)
                await conn.execute(
                    "INSERT INTO line_windows (line_hash, partition, packed, event_time)"
                    " SELECT line_hash, $1, packed, to_timestamp(epoch) FROM windows_in WHERE seq >= $2 AND seq < $3"
                    " ON CONFLICT (line_hash) DO UPDATE"
                    " SET packed = excluded.packed, state = NULL, event_time = excluded.event_time, saved_at = now()",
                    partition,
                    start,
                    start + UPSERT_SLICE,
                )
        await conn.execute(
            "INSERT INTO checkpoints (partition, journal_id) VALUES ($1, $2) ON CONFLICT (partition) DO UPDATE"
            " SET journal_id = excluded.journal_id, saved_at = now()",
            partition,
            journal_id,
        )
    return len(records)


async def advance_checkpoints(pool: asyncpg.Pool, partitions: list[int], journal_id: int, token: uuid.UUID) -> None:
    """Moves the checkpoints of partitions none of whose lines changed up to `journal_id` (never back)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = off")  # as in save_partition
        if not await owns(conn, partitions, token):
            raise PartitionLost(partitions)
        await conn.execute(
            "INSERT INTO checkpoints (partition, journal_id) SELECT unnest($1::int[]), $2 ON CONFLICT (partition)"
            " DO UPDATE SET journal_id = greatest(checkpoints.journal_id, excluded.journal_id), saved_at = now()",
            partitions,
            journal_id,
        )


async def checkpoints(pool: asyncpg.Pool, partitions: list[int]) -> dict[int, int]:
    rows = await pool.fetch("SELECT partition, journal_id FROM checkpoints WHERE partition = ANY($1)", partitions)
    return {r["partition"]: r["journal_id"] for r in rows}


async def load_windows(pool: asyncpg.Pool, partitions: list[int], latest: int) -> list[tuple[str, list]]:
    """Windows of the partitions' lines active within a week of the latest event time saved (capped at
    `latest`, epoch seconds: a stored time beyond it is not trusted to set the clock)."""
    rows = await pool.fetch(
        "SELECT s.msisdn, w.packed, w.state FROM line_windows w JOIN subscribers s USING (line_hash)"
        " WHERE w.partition = ANY($1) AND w.event_time > (SELECT least(max(event_time), to_timestamp($2))"
        " FROM line_windows WHERE partition = ANY($1)) - interval '7 days'",
        partitions,
        latest,
    )
    return [(r["msisdn"], unpacked_window(r["packed"], r["state"])) for r in rows]


async def append_journal(conn: Conn, kind: int, batch_id: str, partitions: int, body: bytes) -> int:
    return await conn.fetchval(
        "INSERT INTO journal (kind, batch_id, partitions, body) VALUES ($1, $2, $3, $4) RETURNING id",
        kind,
        batch_id,
        partitions,
        body,
    )


async def journal_after(pool: asyncpg.Pool, after: int, partitions: int, limit: int) -> list[asyncpg.Record]:
    """Journal entries after id `after` written by a shard that owned any of `partitions` (a bit mask)."""
    return await pool.fetch(
        "SELECT id, kind, batch_id, body FROM journal WHERE id > $1 AND partitions & $2 <> 0 ORDER BY id LIMIT $3",
        after,
        partitions,
        limit,
    )


async def trim_journal(pool: asyncpg.Pool, partitions: int) -> int:
    """Deletes entries every partition's checkpoint includes (once all `partitions` have one)."""
    done = await pool.execute(
        "DELETE FROM journal WHERE id <= (SELECT min(journal_id) FROM checkpoints HAVING count(*) >= $1)",
        partitions,
    )
    return int(done.split()[-1])


async def save_cells(conn: Conn, cells: list[tuple[str, str, int]], replace: bool) -> None:
    if replace:
        await conn.execute("DELETE FROM cells")
    await conn.executemany(
        "INSERT INTO cells (cell_id, province, risk) VALUES ($1, $2, $3)"
        " ON CONFLICT (cell_id) DO UPDATE SET province = excluded.province, risk = excluded.risk",
        cells,
    )
    await conn.execute("DELETE FROM cells WHERE risk <= 1")


async def cells(conn: Conn | asyncpg.Pool) -> dict[str, int]:
    return {r["cell_id"]: r["risk"] for r in await conn.fetch("SELECT cell_id, risk FROM cells")}


async def update_hot_numbers(conn: Conn, add: list[str], remove: list[str]) -> None:
    await conn.execute("DELETE FROM hot_numbers WHERE number = ANY($1)", remove)
    await conn.executemany("INSERT INTO hot_numbers (number) VALUES ($1) ON CONFLICT DO NOTHING", [(n,) for n in add])


async def hot_numbers(conn: Conn | asyncpg.Pool) -> set[str]:
    return {r["number"] for r in await conn.fetch("SELECT number FROM hot_numbers")}


async def insert_report(conn: Conn, line_hash: str, source: int, at: datetime, request_id: str, principal: str) -> None:
    await conn.execute(
        "INSERT INTO reports (line_hash, source, at, request_id, principal) VALUES ($1, $2, $3, $4, $5)",
        line_hash,
        source,
        at,
        request_id,
        principal,
    )


async def claim_partitions(
    pool: asyncpg.Pool, partitions: list[int], token: uuid.UUID, shard: int, shards: int
) -> None:
    """Makes this process the owner of `partitions` (see migration 008): writes by an earlier owner fail after."""
    await pool.executemany(
        "INSERT INTO partition_owners (partition, token, shard, shards) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (partition) DO UPDATE SET token = excluded.token, shard = excluded.shard,"
        " shards = excluded.shards, since = now()",
        [(p, token, shard, shards) for p in partitions],
    )


async def owns(conn: Conn, partitions: list[int], token: uuid.UUID) -> bool:
    """True when this process still owns every one of `partitions`; holds them (FOR SHARE) until the transaction
    ends, so no claim can commit in between."""
    rows = await conn.fetch(
        "SELECT partition FROM partition_owners WHERE partition = ANY($1) AND token = $2 FOR SHARE",
        partitions,
        token,
    )
    return len(rows) == len(set(partitions))


FEEDS_CHANNEL = "scoring_feeds"


async def announce_feeds(conn: Conn) -> None:
    """Tells every shard, once this transaction commits, to reload the cells and numbers feeds."""
    await conn.execute(f"NOTIFY {FEEDS_CHANNEL}")

"""SQL of the verification service: verifications, failed attempts, sealed evidence, the review queue."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from contracts.case import AuthorityOrder
from pscommon.codec import Sealer
from pscommon.db import Conn
from services.verification.review_rules import WAITING

_WAITING = list(WAITING)


async def insert_verification(conn: Conn, **fields: object) -> None:
    cols = ", ".join(fields)
    params = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    await conn.execute(f"INSERT INTO verifications ({cols}) VALUES ({params})", *fields.values())


async def failures(
    conn: Conn | asyncpg.Pool, line_hash: str, route_class: str, caller: str, since: datetime
) -> tuple[list[datetime], list[datetime]]:
    """Failure times since `since`: for the line on this route class, and for the caller (on any line)."""
    rows = await conn.fetch(
        "SELECT line_hash = $1 AND route_class = $2 AS for_line, caller = $3 AS for_caller, at FROM failed_attempts"
        " WHERE ((line_hash = $1 AND route_class = $2) OR caller = $3) AND at > $4",
        line_hash,
        route_class,
        caller,
        since,
    )
    return [r["at"] for r in rows if r["for_line"]], [r["at"] for r in rows if r["for_caller"]]


async def record_failure(conn: Conn, line_hash: str, route_class: str, caller: str, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO failed_attempts (line_hash, route_class, caller, at) VALUES ($1, $2, $3, $4)",
        line_hash,
        route_class,
        caller,
        at,
    )


async def clear_line_failures(conn: Conn, line_hash: str) -> None:
    """A passed check wipes the line's slate (a caller's failures on other lines still count)."""
    await conn.execute("DELETE FROM failed_attempts WHERE line_hash = $1", line_hash)


async def seal_evidence(
    conn: Conn, sealer: Sealer, owner: uuid.UUID, items: list[tuple[str, str]], retention_s: int
) -> None:
    """Stores each (kind, value) encrypted and bound to its owner; it is deleted when retention ends."""
    rows = []
    for kind, value in items:
        key_id, sealed = sealer.seal(value.encode(), owner.bytes)
        rows.append((owner, kind, key_id, sealed, timedelta(seconds=retention_s)))
    await conn.executemany(
        "INSERT INTO evidence (owner_id, kind, key_id, sealed, expires_at) VALUES ($1, $2, $3, $4, now() + $5)", rows
    )


async def open_evidence(
    conn: Conn | asyncpg.Pool, sealer: Sealer, owners: list[uuid.UUID], kind: str
) -> dict[uuid.UUID, list[str]]:
    """The unexpired items of one kind for each owner, decrypted, oldest first; one query for all owners."""
    rows = await conn.fetch(
        "SELECT owner_id, key_id, sealed FROM evidence WHERE owner_id = ANY($1::uuid[]) AND kind = $2"
        " AND expires_at > now() ORDER BY stored_at",
        owners,
        kind,
    )
    found: dict[uuid.UUID, list[str]] = {}
    for r in rows:
        owner = r["owner_id"]
        found.setdefault(owner, []).append(sealer.open(r["key_id"], bytes(r["sealed"]), owner.bytes).decode())
    return found


async def record_evidence_view(conn: Conn, review_id: uuid.UUID, principal: str) -> None:
    await conn.execute("INSERT INTO evidence_views (review_id, principal) VALUES ($1, $2)", review_id, principal)


async def purge_expired_evidence(pool: asyncpg.Pool) -> int:
    deleted = await pool.fetchval(
        "WITH d AS (DELETE FROM evidence WHERE expires_at <= now() RETURNING 1) SELECT count(*) FROM d"
    )
    return int(deleted)


async def open_review(conn: Conn, **fields: object) -> asyncpg.Record:
    cols = ", ".join(fields)
    params = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    row = await conn.fetchrow(f"INSERT INTO reviews ({cols}) VALUES ({params}) RETURNING *", *fields.values())
    assert row is not None
    return row


async def waiting_review(conn: Conn | asyncpg.Pool, case_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM reviews WHERE case_id = $1 AND status = ANY($2::smallint[])", case_id, _WAITING
    )


async def review(conn: Conn | asyncpg.Pool, review_id: uuid.UUID, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM reviews WHERE review_id = $1" + (" FOR UPDATE" if lock else ""), review_id
    )


async def update_review(conn: Conn, review_id: uuid.UUID, **fields: object) -> asyncpg.Record:
    sets = ", ".join(f"{col} = ${i}" for i, col in enumerate(fields, start=2))
    row = await conn.fetchrow(
        f"UPDATE reviews SET {sets} WHERE review_id = $1 RETURNING *", review_id, *fields.values()
    )
    assert row is not None, "update_review is called on a review locked by this transaction"
    return row


async def list_reviews(
    pool: asyncpg.Pool, statuses: Sequence[int], escalated_only: bool, limit: int
) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM reviews WHERE status = ANY($1::smallint[]) AND (escalated OR NOT $2)"
        " ORDER BY escalated DESC, due_at, created_at LIMIT $3",
        statuses,
        escalated_only,
        limit,
    )


async def latest_case_review(pool: asyncpg.Pool, case_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM reviews WHERE case_id = $1 ORDER BY created_at DESC LIMIT 1", case_id)


async def enqueue_signal(conn: Conn, case_id: str, signal: str, payload: str) -> int:
    """A signal for the case, sent by the relay once this transaction has committed."""
    row_id: int = await conn.fetchval(
        "INSERT INTO case_signals (case_id, signal, payload) VALUES ($1, $2, $3::jsonb) RETURNING id",
        case_id,
        signal,
        payload,
    )
    return row_id


async def claim_signals(conn: Conn, ids: list[int] | None, limit: int, lease_s: float) -> list[asyncpg.Record]:
    """Signals not sent yet that no relay holds, leased to this one for `lease_s`."""
    return await conn.fetch(
        "UPDATE case_signals SET lease_until = now() + make_interval(secs => $3) WHERE id IN ("
        " SELECT id FROM case_signals WHERE sent_at IS NULL AND (lease_until IS NULL OR lease_until < now())"
        " AND ($1::bigint[] IS NULL OR id = ANY($1)) ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING *",
        ids,
        limit,
        lease_s,
    )


async def release_signals(conn: Conn, ids: list[int]) -> None:
    await conn.execute("UPDATE case_signals SET lease_until = NULL WHERE id = ANY($1) AND sent_at IS NULL", ids)


async def mark_signal_sent(conn: Conn, row_id: int) -> None:
    await conn.execute("UPDATE case_signals SET sent_at = now() WHERE id = $1", row_id)


async def record_operator_action(
    conn: Conn, request_id: str, case_id: str, step: str, choice: str, note: str, principal: str
) -> None:
    await conn.execute(
        "INSERT INTO operator_actions (request_id, case_id, step, choice, note, principal)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        request_id,
        case_id,
        step,
        choice,
        note,
        principal,
    )


async def record_order(
    conn: Conn, request_id: str, case_id: str, order: AuthorityOrder, note: str, principal: str
) -> None:
    await conn.execute(
        "INSERT INTO authority_orders (request_id, case_id, authority, order_kind, order_ref, note, principal)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        request_id,
        case_id,
        order.authority,
        order.order,
        order.order_ref,
        note,
        principal,
    )


async def lookups_since(
    conn: Conn, line_hash: str, principal: str, line_since: datetime, caller_since: datetime
) -> asyncpg.Record:
    """Holder lookups of this line and by this principal in their windows: how many, and the oldest of each."""
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE line_hash = $1 AND at > $3) AS line_n,"
        " min(at) FILTER (WHERE line_hash = $1 AND at > $3) AS line_oldest,"
        " count(*) FILTER (WHERE principal = $2 AND at > $4) AS caller_n,"
        " min(at) FILTER (WHERE principal = $2 AND at > $4) AS caller_oldest"
        " FROM holder_lookups WHERE (line_hash = $1 OR principal = $2) AND at > least($3, $4)",
        line_hash,
        principal,
        line_since,
        caller_since,
    )
    assert row is not None
    return row


async def record_lookup(conn: Conn, line_hash: str, principal: str) -> None:
    await conn.execute("INSERT INTO holder_lookups (line_hash, principal) VALUES ($1, $2)", line_hash, principal)

"""SQL of the notify service."""

from __future__ import annotations

import uuid

import asyncpg

from carrier.notify.v1.notify_pb2 import CHANNEL_SMS, DELIVERY_STATUS_DELIVERED, DELIVERY_STATUS_FAILED
from services.notify.receipts import DELIVERED_STATS, FAILED_STATS, Receipt


async def create_notification(conn: asyncpg.Connection, **fields: object) -> uuid.UUID:
    nid = uuid.uuid4()
    cols = ", ".join(fields)
    params = ", ".join(f"${i}" for i in range(2, len(fields) + 2))
    await conn.execute(
        f"INSERT INTO notifications (notification_id, status, {cols}) VALUES ($1, 1, {params})", nid, *fields.values()
    )
    return nid


async def unsent(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Notifications accepted but never handed to a channel (e.g. the service stopped in between)."""
    return await pool.fetch(
        "SELECT n.* FROM notifications n WHERE n.status = 1"
        " AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.notification_id = n.notification_id)"
        " ORDER BY created_at"
    )


async def _next_seq(conn: asyncpg.Connection, nid: uuid.UUID) -> int:
    return await conn.fetchval("SELECT coalesce(max(seq), 0) + 1 FROM attempts WHERE notification_id = $1", nid)


async def _lock_message(conn: asyncpg.Connection, message_id: str) -> None:
    # Receipt and submit record meet under this lock, so whichever commits second sees the other.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))", message_id)


async def _match(conn: asyncpg.Connection, message_id: str) -> None:
    attempt = await conn.fetchrow(
        "UPDATE attempts a SET outcome = CASE WHEN r.stat = ANY($2::text[]) THEN 'delivered' ELSE lower(r.stat) END,"
        " detail = 'stat:' || r.stat || ' err:' || r.err, at = r.received_at"
        " FROM receipts r WHERE a.smsc_message_id = $1 AND r.smsc_message_id = $1 AND a.outcome = 'submitted'"
        " AND r.stat = ANY($3::text[]) RETURNING a.notification_id, a.outcome, a.at",
        message_id,
        list(DELIVERED_STATS),
        list(DELIVERED_STATS | FAILED_STATS),
    )
    if attempt is None:
        return
    if attempt["outcome"] == "delivered":
        await conn.execute(
            "UPDATE notifications SET status = $2, delivered_channel = $3, delivered_at = $4"
            " WHERE notification_id = $1 AND status <> $2",
            attempt["notification_id"],
            DELIVERY_STATUS_DELIVERED,
            CHANNEL_SMS,
            attempt["at"],
        )
    else:
        await conn.execute(
            "UPDATE notifications SET status = $2 WHERE notification_id = $1 AND status = 1",
            attempt["notification_id"],
            DELIVERY_STATUS_FAILED,
        )


async def record_submitted(pool: asyncpg.Pool, nid: uuid.UUID, message_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await _lock_message(conn, message_id)
        await conn.execute(
            "INSERT INTO attempts (notification_id, seq, channel, outcome, detail, smsc_message_id)"
            " VALUES ($1, $2, $3, 'submitted', '', $4)",
            nid,
            await _next_seq(conn, nid),
            CHANNEL_SMS,
            message_id,
        )
        await _match(conn, message_id)


async def record_refused(pool: asyncpg.Pool, nid: uuid.UUID, channel: int, detail: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO attempts (notification_id, seq, channel, outcome, detail) VALUES ($1, $2, $3, 'rejected', $4)",
            nid,
            await _next_seq(conn, nid),
            channel,
            detail,
        )
        await conn.execute(
            "UPDATE notifications SET status = $2 WHERE notification_id = $1 AND status = 1",
            nid,
            DELIVERY_STATUS_FAILED,
        )


async def record_receipt(pool: asyncpg.Pool, receipt: Receipt) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await _lock_message(conn, receipt.message_id)
        await conn.execute(
            "INSERT INTO receipts (smsc_message_id, stat, err) VALUES ($1, $2, $3)"
            " ON CONFLICT (smsc_message_id) DO UPDATE SET stat = excluded.stat, err = excluded.err,"
            " received_at = now()",
            receipt.message_id,
            receipt.stat,
            receipt.err,
        )
        await _match(conn, receipt.message_id)


async def get(pool: asyncpg.Pool, nid: uuid.UUID) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
    n = await pool.fetchrow("SELECT * FROM notifications WHERE notification_id = $1", nid)
    attempts = await pool.fetch("SELECT * FROM attempts WHERE notification_id = $1 ORDER BY seq", nid)
    return n, attempts

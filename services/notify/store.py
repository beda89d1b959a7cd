"""SQL of the notify service: notifications, their channel tracks, every attempt, and SMSC receipts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from carrier.notify.v1 import notify_pb2
from pscommon.db import Conn
from services.notify import metrics as notify_metrics
from services.notify.channels import Outcome
from services.notify.ladder import DELIVERED, FAILED, IN_FLIGHT, RECEIPT_FAILED, UNCONFIRMED, Track
from services.notify.receipts import DELIVERED_STATS, FAILED_STATS, Receipt

PENDING, DELIVERED_STATUS, FAILED_STATUS = (
    notify_pb2.DELIVERY_STATUS_PENDING,
    notify_pb2.DELIVERY_STATUS_DELIVERED,
    notify_pb2.DELIVERY_STATUS_FAILED,
)
CHANNEL_IDS = {
    "sms": notify_pb2.CHANNEL_SMS,
    "push": notify_pb2.CHANNEL_PUSH,
    "email": notify_pb2.CHANNEL_EMAIL,
    "voice": notify_pb2.CHANNEL_VOICE,
    "alternate_contact": notify_pb2.CHANNEL_ALTERNATE_CONTACT,
}
CHANNEL_NAMES = {v: k for k, v in CHANNEL_IDS.items()}
CLASS_IDS = {
    "": 0,
    "temporary": notify_pb2.ERROR_CLASS_TEMPORARY,
    "absent": notify_pb2.ERROR_CLASS_ABSENT,
    "permanent": notify_pb2.ERROR_CLASS_PERMANENT,
}
CLASS_NAMES = {v: k for k, v in CLASS_IDS.items()}


async def create_notification(conn: Conn, **fields: object) -> uuid.UUID:
    nid = uuid.uuid4()
    cols = ", ".join(fields)
    params = ", ".join(f"${i}" for i in range(3, len(fields) + 3))
    await conn.execute(
        f"INSERT INTO notifications (notification_id, status, due_at, {cols}) VALUES ($1, $2, now(), {params})",
        nid,
        PENDING,
        *fields.values(),
    )
    return nid


@dataclass(frozen=True)
class Lease:
    """A dispatcher's hold on one notification. `gen` is the fencing token: the generation the claim took. Every
    write for the notification is made under it, and is refused once a later claim has taken over."""

    notification_id: uuid.UUID
    owner: str
    gen: int
    seconds: float


class LeaseLost(Exception):
    def __init__(self, lease: Lease) -> None:
        super().__init__(
            f"notification {lease.notification_id}: lease generation {lease.gen} of dispatcher {lease.owner}"
            " was taken over"
        )
        self.lease = lease


async def claim_due(
    pool: asyncpg.Pool, owner: str, lease_s: float, limit: int, held: list[uuid.UUID] | None = None
) -> list[asyncpg.Record]:
    """Takes up to `limit` notifications that are due, or whose dispatcher's lease ran out (it died mid-step), each
    under a new lease generation. `held`: what this dispatcher is still stepping, never claimed twice.

    While leased, due_at is NULL: a receipt that lands meanwhile sets it, and `release` keeps the earlier time.
    """
    return await pool.fetch(
        "UPDATE notifications SET lease_owner = $1, lease_until = now() + make_interval(secs => $2), due_at = NULL,"
        " lease_gen = lease_gen + 1"
        " WHERE notification_id IN (SELECT notification_id FROM notifications WHERE status = 1"
        " AND ((due_at <= now() AND lease_until IS NULL) OR lease_until < now())"
        " AND notification_id <> ALL($4::uuid[])"
        " ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING *, EXISTS (SELECT 1 FROM channel_tracks t"
        " WHERE t.notification_id = notifications.notification_id) AS has_tracks",
        owner,
        lease_s,
        limit,
        held or [],
    )


async def renew(pool: asyncpg.Pool, leases: list[Lease]) -> set[tuple[uuid.UUID, int]]:
    """Extends the leases still held as claimed; returns those (id, generation), so the others are known lost."""
    if not leases:
        return set()
    rows = await pool.fetch(
        "UPDATE notifications n SET lease_until = now() + make_interval(secs => h.secs)"
        " FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::float8[]) AS h(id, owner, gen, secs)"
        " WHERE n.notification_id = h.id AND n.lease_owner = h.owner AND n.lease_gen = h.gen"
        " AND n.notification_id IN (SELECT notification_id FROM notifications WHERE notification_id = ANY($1::uuid[])"
        " ORDER BY notification_id FOR UPDATE)"
        " RETURNING n.notification_id, n.lease_gen",
        [le.notification_id for le in leases],
        [le.owner for le in leases],
        [le.gen for le in leases],
        [le.seconds for le in leases],
    )
    return {(r["notification_id"], r["lease_gen"]) for r in rows}


async def _fence(conn: Conn, lease: Lease) -> int:
    """Opens a write under `lease`: locks the notification row if the lease still holds it (a claim cannot slip in
    before the commit), extends the lease, and returns the notification's status. Raises LeaseLost otherwise.
    Locks in one order everywhere: a receipt's message lock, then notification rows, then attempts and tracks."""
    status = await conn.fetchval(
        "UPDATE notifications SET lease_until = now() + make_interval(secs => $4)"
        " WHERE notification_id = $1 AND lease_owner = $2 AND lease_gen = $3 RETURNING status",
        lease.notification_id,
        lease.owner,
        lease.gen,
        lease.seconds,
    )
    if status is None:
        raise LeaseLost(lease)
    return int(status)


async def next_due(pool: asyncpg.Pool) -> datetime | None:
    return await pool.fetchval(
        "SELECT least(min(due_at) FILTER (WHERE lease_until IS NULL), min(lease_until)) FROM notifications"
        " WHERE status = 1"
    )


async def release(pool: asyncpg.Pool, lease: Lease, due_at: datetime | None, location: str, country: str) -> None:
    """Ends a step: the lease goes, the next due time stays the earlier of the step's and a receipt's, and where the
    HLR last saw the handset is recorded (unless it did not answer)."""
    released = await pool.fetchval(
        "UPDATE notifications SET lease_owner = NULL, lease_until = NULL,"
        " due_at = CASE WHEN status = 1 THEN least(due_at, $4) END,"
        " location = CASE WHEN $5 = '' THEN location ELSE $5 END, country = CASE WHEN $5 = '' THEN country ELSE $6 END"
        " WHERE notification_id = $1 AND lease_owner = $2 AND lease_gen = $3 RETURNING 1",
        lease.notification_id,
        lease.owner,
        lease.gen,
        due_at,
        location,
        country,
    )
    if released is None:
        raise LeaseLost(lease)


async def release_all(pool: asyncpg.Pool, owner: str) -> None:
    """On the way out: what this dispatcher held is due again for whoever runs next."""
    await pool.execute(
        "UPDATE notifications SET lease_owner = NULL, lease_until = NULL, due_at = now()"
        " WHERE notification_id IN (SELECT notification_id FROM notifications WHERE lease_owner = $1 AND status = 1"
        " ORDER BY notification_id FOR UPDATE) AND lease_owner = $1",
        owner,
    )


async def tracks(pool: asyncpg.Pool, nid: uuid.UUID) -> tuple[dict[str, Track], dict[str, str]]:
    """The channel tracks, and for tracks in flight the outcome of their latest attempt."""
    rows = await pool.fetch(
        "SELECT t.*, a.outcome AS last_outcome FROM channel_tracks t"
        " LEFT JOIN attempts a ON a.notification_id = t.notification_id AND a.seq = t.last_seq"
        " WHERE t.notification_id = $1",
        nid,
    )
    out = {}
    last = {}
    for r in rows:
        name = CHANNEL_NAMES[r["channel"]]
        out[name] = Track(name, r["tries"], r["state"], CLASS_NAMES[r["error_class"]], r["retry_at"], r["sent_at"])
        last[name] = r["last_outcome"] or ""
    return out, last


def _upsert_track(values: str) -> str:
    """Upserts a channel track from `values`: $1 notification, $2 channel, $3 tries, $4 state, $5 error class,
    $6 retry_at, $7 sent_at, then its latest attempt (0: unchanged). The latest attempt only moves forward."""
    return (
        "INSERT INTO channel_tracks (notification_id, channel, tries, state, error_class, retry_at, sent_at, last_seq) "
        + values
        + " ON CONFLICT (notification_id, channel) DO UPDATE SET tries = excluded.tries, state = excluded.state,"
        " error_class = excluded.error_class, retry_at = excluded.retry_at, sent_at = excluded.sent_at,"
        " last_seq = greatest(excluded.last_seq, channel_tracks.last_seq)"
    )


_SAVE_TRACK = _upsert_track("VALUES ($1, $2, $3, $4, $5, $6, $7, 0)")


def _track_args(nid: uuid.UUID, t: Track) -> tuple:
    return nid, CHANNEL_IDS[t.channel], t.tries, t.state, CLASS_IDS[t.error_class], t.retry_at, t.sent_at


async def _save_track(conn: Conn, nid: uuid.UUID, t: Track) -> None:
    await conn.execute(_SAVE_TRACK, *_track_args(nid, t))


async def save_track(pool: asyncpg.Pool, lease: Lease, t: Track) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await _fence(conn, lease)
        await _save_track(conn, lease.notification_id, t)


async def begin_attempt(pool: asyncpg.Pool, lease: Lease, t: Track, location: str) -> int | None:
    """Writes the attempt as 'sending' before anything leaves: after a crash it is known, and never resent as the
    same attempt. None when the notification was settled meanwhile (a receipt delivered it): nothing to send."""
    async with pool.acquire() as conn, conn.transaction():
        if await _fence(conn, lease) != PENDING:
            return None
        seq: int = await conn.fetchval(
            "WITH a AS (INSERT INTO attempts (notification_id, seq, channel, outcome, location)"
            " SELECT $1, coalesce(max(seq), 0) + 1, $2, 'sending', $8 FROM attempts WHERE notification_id = $1"
            " RETURNING seq), t AS (" + _upsert_track("SELECT $1, $2, $3, $4, $5, $6, $7, seq FROM a") + ")"
            " SELECT seq FROM a",
            *_track_args(lease.notification_id, t),
            location,
        )
        return seq


async def finish_attempt(pool: asyncpg.Pool, lease: Lease, seq: int, t: Track, out: Outcome) -> None:
    nid = lease.notification_id
    async with pool.acquire() as conn, conn.transaction():
        if out.smsc_message_id:
            await _lock_message(conn, out.smsc_message_id)
        await _fence(conn, lease)
        await conn.execute(
            "WITH a AS (UPDATE attempts SET outcome = $9, detail = $10, error_class = $11, smsc_message_id = $12,"
            " at = now() WHERE notification_id = $1 AND seq = $8) " + _SAVE_TRACK,
            *_track_args(nid, t),
            seq,
            out.outcome,
            out.detail,
            CLASS_IDS[out.error_class],
            out.smsc_message_id,
        )
        if t.state == DELIVERED:
            await _delivered(conn, nid, t.channel)
        if out.smsc_message_id:
            await _apply_receipt(conn, out.smsc_message_id)


async def interrupted(pool: asyncpg.Pool, lease: Lease, t: Track) -> None:
    """An attempt left 'sending' by a dispatcher that stopped: it may or may not have gone out. It is closed as
    interrupted (never resent as the same attempt); the channel is retried as a new attempt on schedule."""
    nid = lease.notification_id
    async with pool.acquire() as conn, conn.transaction():
        await _fence(conn, lease)
        await conn.execute(
            "UPDATE attempts SET outcome = 'interrupted', error_class = $3, at = now(),"
            " detail = 'the dispatcher stopped while sending; outcome unknown'"
            " WHERE notification_id = $1 AND seq = (SELECT last_seq FROM channel_tracks"
            " WHERE notification_id = $1 AND channel = $2) AND outcome = 'sending'",
            nid,
            CHANNEL_IDS[t.channel],
            CLASS_IDS["temporary"],
        )
        await _save_track(conn, nid, t)


async def receipt_overdue(pool: asyncpg.Pool, lease: Lease, t: Track, timeout_s: int) -> bool:
    """The SMS's final receipt did not come in time: the attempt is marked so and its track saved as `t` says
    (unconfirmed). False, with nothing written, when a receipt changed the track since the step read it."""
    nid = lease.notification_id
    async with pool.acquire() as conn, conn.transaction():
        await _fence(conn, lease)  # from here no receipt can touch this notification until the commit
        state = await conn.fetchval(
            "SELECT state FROM channel_tracks WHERE notification_id = $1 AND channel = $2", nid, CHANNEL_IDS[t.channel]
        )
        if state != IN_FLIGHT:
            return False
        await conn.execute(
            "UPDATE attempts SET outcome = 'no_receipt', error_class = $3,"
            " detail = detail || format('; no final receipt within %s s; not resent unless a receipt says it failed',"
            " $4::int) WHERE notification_id = $1 AND seq = (SELECT last_seq FROM channel_tracks"
            " WHERE notification_id = $1 AND channel = $2) AND outcome = 'submitted'",
            nid,
            CHANNEL_IDS[t.channel],
            CLASS_IDS["temporary"],
            timeout_s,
        )
        await _save_track(conn, nid, t)
        return True


async def give_up(pool: asyncpg.Pool, lease: Lease) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await _fence(conn, lease)
        await conn.execute(
            "UPDATE notifications SET status = $2, due_at = NULL WHERE notification_id = $1 AND status = 1",
            lease.notification_id,
            FAILED_STATUS,
        )


async def reattached(pool: asyncpg.Pool, msisdn: str) -> int:
    """The handset is back on the network: its channels that failed as absent are due now."""
    async with pool.acquire() as conn, conn.transaction():
        ids = [
            r["notification_id"]
            for r in await conn.fetch(
                "SELECT notification_id FROM notifications WHERE msisdn = $1 AND status = 1"
                " ORDER BY notification_id FOR UPDATE",
                msisdn,
            )
        ]
        if not ids:
            return 0
        await conn.execute(
            "UPDATE channel_tracks SET retry_at = now() WHERE notification_id = ANY($1::uuid[]) AND state = $2"
            " AND error_class = $3",
            ids,
            FAILED,
            CLASS_IDS["absent"],
        )
        await conn.execute("UPDATE notifications SET due_at = now() WHERE notification_id = ANY($1::uuid[])", ids)
        return len(ids)


async def _delivered(conn: Conn, nid: uuid.UUID, channel: str) -> None:
    # A late receipt can still turn a notification marked for manual outreach into a delivered one.
    row = await conn.fetchrow(
        "UPDATE notifications SET status = $2, delivered_channel = $3, delivered_at = now(), due_at = NULL"
        " WHERE notification_id = $1 AND status <> $2"
        " RETURNING template, delivered_at - created_at AS took, (SELECT location FROM attempts a"
        "   WHERE a.notification_id = $1 AND a.channel = $3 ORDER BY a.seq DESC LIMIT 1) AS location",
        nid,
        DELIVERED_STATUS,
        CHANNEL_IDS[channel],
    )
    if row is not None:
        notify_metrics.delivered(row["template"], channel, row["location"] or "", row["took"].total_seconds())


async def _lock_message(conn: Conn, message_id: str) -> None:
    # Receipt and submit record meet under this lock, so whichever commits second sees the other.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))", message_id)


async def _apply_receipt(conn: Conn, message_id: str) -> bool:
    """Matches a stored final receipt to its attempt; True when it matched one (the dispatcher has work)."""
    row = await conn.fetchrow(
        "UPDATE attempts a SET outcome = CASE WHEN r.stat = ANY($2::text[]) THEN 'delivered' ELSE lower(r.stat) END,"
        " detail = a.detail || '; stat:' || r.stat || ' err:' || r.err, at = r.received_at"
        " FROM receipts r WHERE a.smsc_message_id = $1 AND r.smsc_message_id = $1"
        " AND a.outcome IN ('submitted', 'no_receipt')"
        " AND r.stat = ANY($3::text[]) RETURNING a.notification_id, a.seq, a.channel, r.stat, r.err",
        message_id,
        list(DELIVERED_STATS),
        list(DELIVERED_STATS | FAILED_STATS),
    )
    if row is None:
        return False
    nid, channel = row["notification_id"], CHANNEL_NAMES[row["channel"]]
    receipt = Receipt(message_id, row["stat"], row["err"])
    if receipt.delivered:
        await conn.execute(
            "UPDATE channel_tracks SET state = $3, sent_at = NULL WHERE notification_id = $1 AND channel = $2",
            nid,
            row["channel"],
            DELIVERED,
        )
        await _delivered(conn, nid, channel)
        return True
    await conn.execute(
        "UPDATE attempts SET error_class = $3 WHERE notification_id = $1 AND seq = $2",
        nid,
        row["seq"],
        CLASS_IDS[receipt.error_class],
    )
    # Only the channel's latest attempt decides its track; the dispatcher works out the retry when it is due.
    # An unconfirmed SMS (no receipt in time) that the SMSC now says failed is worth its retry after all.
    changed = await conn.fetchval(
        "UPDATE channel_tracks SET state = $6, error_class = $4 WHERE notification_id = $1"
        " AND channel = $2 AND last_seq = $3 AND state = ANY($5::text[]) RETURNING 1",
        nid,
        row["channel"],
        row["seq"],
        CLASS_IDS[receipt.error_class],
        [IN_FLIGHT, UNCONFIRMED],
        RECEIPT_FAILED,
    )
    if changed:
        await conn.execute("UPDATE notifications SET due_at = now() WHERE notification_id = $1 AND status = 1", nid)
    return True


async def record_receipts(pool: asyncpg.Pool, receipts: list[Receipt]) -> int:
    """Stores a batch of receipts (a later one for the same message wins) and matches them to their attempts, in
    one transaction; returns how many matched an attempt."""
    latest = {r.message_id: r for r in receipts}
    ids = sorted(latest)
    async with pool.acquire() as conn, conn.transaction():
        # Every lock before any row is touched, in one order: a submit being recorded holds at most one of them.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(m, 1)) FROM unnest($1::text[]) m", ids)
        # Then their notifications, in one order: a dispatcher's fenced write holds one such row while it writes.
        await conn.execute(
            "SELECT 1 FROM notifications WHERE notification_id IN (SELECT notification_id FROM attempts"
            " WHERE smsc_message_id = ANY($1::text[])) ORDER BY notification_id FOR UPDATE",
            ids,
        )
        await conn.execute(
            "INSERT INTO receipts (smsc_message_id, stat, err) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
            " ON CONFLICT (smsc_message_id) DO UPDATE SET stat = excluded.stat, err = excluded.err,"
            " received_at = now()",
            ids,
            [latest[m].stat for m in ids],
            [latest[m].err for m in ids],
        )
        matched = 0
        for m in ids:
            matched += await _apply_receipt(conn, m)
        return matched


async def get(pool: asyncpg.Pool, nid: uuid.UUID) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
    n = await pool.fetchrow("SELECT * FROM notifications WHERE notification_id = $1", nid)
    attempts = await pool.fetch("SELECT * FROM attempts WHERE notification_id = $1 ORDER BY seq", nid)
    return n, attempts

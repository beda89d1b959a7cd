"""SQL of the suspension service."""

from __future__ import annotations

import json
from dataclasses import asdict

import asyncpg

from pscommon.db import Conn
from services.suspension.state_machine import ACTIVE, NOTHING_BARRED, Barring


async def lock_line(conn: Conn, line_hash: str, msisdn: str, masked: str, province: str) -> asyncpg.Record:
    """The line's row, locked for this transaction; a line we have never touched starts ACTIVE."""
    await conn.execute(
        "INSERT INTO lines (line_hash, msisdn, masked_msisdn, home_province, state, barring)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (line_hash) DO NOTHING",
        line_hash,
        msisdn,
        masked,
        province,
        ACTIVE,
        json.dumps(asdict(NOTHING_BARRED)),
    )
    row = await conn.fetchrow("SELECT * FROM lines WHERE line_hash = $1 FOR UPDATE", line_hash)
    assert row is not None  # inserted above if it was not there
    return row


async def apply_transition(
    conn: Conn,
    line_hash: str,
    from_state: int,
    to_state: int,
    barring: Barring,
    restore: bool,
    actor: tuple[str, str],
    case_id: str,
    reason: str,
    request_id: str,
    principal: str,
) -> tuple[asyncpg.Record, int]:
    barring_json = json.dumps(asdict(barring))
    line = await conn.fetchrow(
        "UPDATE lines SET state = $2, barring = $3, restore_count = restore_count + $4, updated_at = now()"
        " WHERE line_hash = $1 RETURNING *",
        line_hash,
        to_state,
        barring_json,
        1 if restore else 0,
    )
    seq = await conn.fetchval(
        "INSERT INTO line_history (line_hash, from_state, to_state, actor_kind, actor_id, case_id, reason,"
        " request_id, barring, principal) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq",
        line_hash,
        from_state,
        to_state,
        actor[0],
        actor[1],
        case_id,
        reason,
        request_id,
        barring_json,
        principal,
    )
    assert line is not None  # locked by this transaction (lock_line)
    return line, seq


async def lock_existing_line(conn: Conn, line_hash: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM lines WHERE line_hash = $1 FOR UPDATE", line_hash)


async def get_line(conn: Conn | asyncpg.Pool, line_hash: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM lines WHERE line_hash = $1", line_hash)


async def history(conn: Conn | asyncpg.Pool, line_hash: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM line_history WHERE line_hash = $1 ORDER BY seq", line_hash)


def barring_of(record: asyncpg.Record) -> Barring:
    value = record["barring"]
    return Barring(**(json.loads(value) if isinstance(value, str) else value))

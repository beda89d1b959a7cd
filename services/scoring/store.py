"""SQL of the scoring service."""

from __future__ import annotations

import json
from datetime import date, datetime

import asyncpg

from services.scoring.features import Profile
from services.scoring.scorecard import Assessment


async def upsert_subscriber(conn: asyncpg.Connection, line_hash: str, msisdn: str, p: Profile) -> None:
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


async def subscribers(pool: asyncpg.Pool) -> list[tuple[str, Profile]]:
    rows = await pool.fetch("SELECT * FROM subscribers")
    return [(r["msisdn"], Profile(r["home_province"], r["opened_at"], r["enterprise"], r["language"])) for r in rows]


async def batch_seen(conn: asyncpg.Connection, request_id: str, cdrs: int) -> bool:
    """Records the batch; True when it had been ingested before."""
    inserted = await conn.fetchval(
        "INSERT INTO ingested_batches (request_id, cdrs) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
        request_id,
        cdrs,
    )
    return inserted is None


async def record_decision(
    pool: asyncpg.Pool, line_hash: str, a: Assessment, model_version: str, at: datetime, case_id: str
) -> None:
    await pool.execute(
        "INSERT INTO decisions (line_hash, risk_level, action, score, reasons, model_version, event_time, case_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        line_hash,
        a.level,
        a.action,
        a.score,
        json.dumps([r.code for r in a.reasons]),
        model_version,
        at,
        case_id,
    )


async def record_outcome(conn: asyncpg.Connection, line_hash: str, case_id: str, outcome: int) -> None:
    await conn.execute(
        "INSERT INTO outcomes (line_hash, case_id, outcome) VALUES ($1, $2, $3)"
        " ON CONFLICT (line_hash, case_id) DO UPDATE SET outcome = excluded.outcome, recorded_at = now()",
        line_hash,
        case_id,
        outcome,
    )


def parse_date(value: str) -> date:
    return date.fromisoformat(value)

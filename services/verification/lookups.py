"""How often a holder may be looked up: per line and per caller, so a holder reference cannot be guessed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from pscommon.errors import resource_exhausted
from services.verification import store
from services.verification.policy import Policy


async def admit(pool: asyncpg.Pool, p: Policy, line_hash: str, principal: str) -> None:
    """Counts this lookup, or refuses it with RESOURCE_EXHAUSTED and when to try again."""
    now = datetime.now(UTC)
    line, caller = p.lookups_per_line, p.lookups_per_principal
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 3))", line_hash)
        seen = await store.lookups_since(
            conn, line_hash, principal, now - timedelta(seconds=line.window_s), now - timedelta(seconds=caller.window_s)
        )
        for scope, count, oldest, rate in (
            ("line", seen["line_n"], seen["line_oldest"], line),
            ("caller", seen["caller_n"], seen["caller_oldest"], caller),
        ):
            if count >= rate.max:
                lifts = oldest + timedelta(seconds=rate.window_s)
                raise resource_exhausted(
                    f"too many holder lookups for this {scope}; try again after {lifts.isoformat()}",
                    "TOO_MANY_LOOKUPS",
                    (lifts - now).total_seconds(),
                    {"scope": scope, "lifts_at": lifts.isoformat()},
                )
        await store.record_lookup(conn, line_hash, principal)

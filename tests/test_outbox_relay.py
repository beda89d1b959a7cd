"""The outbox relay claims rows with a lease and delivers them without holding a connection: a slow Temporal
call leaves the pool free, a failed delivery gives its rows back at once, and a leased row is not delivered twice
by two relays."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from pscommon.db import Conn
from pscommon.outbox import Relay
from stack import postgres


async def claim(conn: Conn, ids: list[int] | None, limit: int, lease_s: float) -> list[asyncpg.Record]:
    return await conn.fetch(
        "UPDATE outbox SET lease_until = now() + make_interval(secs => $3) WHERE id IN (SELECT id FROM outbox"
        " WHERE sent_at IS NULL AND (lease_until IS NULL OR lease_until < now())"
        " AND ($1::bigint[] IS NULL OR id = ANY($1)) ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING *",
        ids,
        limit,
        lease_s,
    )


async def mark_sent(conn: Conn, row_id: int) -> None:
    await conn.execute("UPDATE outbox SET sent_at = now() WHERE id = $1", row_id)


async def release(conn: Conn, ids: list[int]) -> None:
    await conn.execute("UPDATE outbox SET lease_until = NULL WHERE id = ANY($1)", ids)


@pytest_asyncio.fixture
async def pool(database_server: str) -> AsyncIterator[asyncpg.Pool]:
    dsn = await postgres.ensure_database(database_server, f"psp_outbox_{uuid.uuid4().hex[:8]}")
    p = await asyncpg.create_pool(dsn, min_size=1, max_size=1)  # one connection: nothing may sit on it
    await p.execute(
        "CREATE TABLE outbox (id bigserial PRIMARY KEY, body text, sent_at timestamptz, lease_until timestamptz)"
    )
    await p.executemany("INSERT INTO outbox (body) VALUES ($1)", [("a",), ("b",), ("c",)])
    yield p
    await p.close()


async def test_a_slow_delivery_holds_no_connection(pool) -> None:
    entered, release_call = asyncio.Event(), asyncio.Event()
    delivered: list[str] = []

    async def deliver(row: asyncpg.Record) -> None:
        entered.set()
        await release_call.wait()  # Temporal is slow to answer
        delivered.append(row["body"])

    relay = Relay("test", pool, claim, deliver, mark_sent, release)
    sending = asyncio.create_task(relay.deliver_now([1, 2, 3]))
    await entered.wait()
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 3  # the only connection is free meanwhile
    release_call.set()
    await sending
    assert delivered == ["a", "b", "c"]
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0


async def test_a_failed_delivery_gives_its_rows_back(pool) -> None:
    async def deliver(row: asyncpg.Record) -> None:
        if row["body"] == "b":
            raise ConnectionError("Temporal is away")

    relay = Relay("test", pool, claim, deliver, mark_sent, release)
    with pytest.raises(ConnectionError):
        await relay._deliver(None)
    rows = await pool.fetch("SELECT body, sent_at IS NOT NULL AS sent, lease_until FROM outbox ORDER BY id")
    assert [(r["body"], r["sent"]) for r in rows] == [("a", True), ("b", False), ("c", False)]
    assert rows[1]["lease_until"] is None and rows[2]["lease_until"] is None  # claimable again at once


async def test_a_row_leased_to_one_relay_is_not_delivered_by_another(pool) -> None:
    entered, release_call = asyncio.Event(), asyncio.Event()
    first: list[str] = []
    second: list[str] = []

    async def slow(row: asyncpg.Record) -> None:
        entered.set()
        await release_call.wait()
        first.append(row["body"])

    async def fast(row: asyncpg.Record) -> None:
        second.append(row["body"])

    one = asyncio.create_task(Relay("one", pool, claim, slow, mark_sent, release).deliver_now([1, 2]))
    await entered.wait()
    await Relay("two", pool, claim, fast, mark_sent, release).deliver_now([1, 2, 3])
    release_call.set()
    await one
    assert first == ["a", "b"] and second == ["c"]

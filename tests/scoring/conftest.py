"""The scoring tests' own database per test, with the lines of tests/scoring/processes.py on file."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from pscommon import db
from pscommon.identity import line_hash
from services.scoring import server as scoring_server
from services.scoring import store
from stack import postgres
from tests.scoring.processes import KEY, LINES, PROFILE


@pytest_asyncio.fixture
async def pool(database_server: str) -> AsyncIterator[asyncpg.Pool]:
    dsn = await postgres.ensure_database(database_server, f"psp_exact_{uuid.uuid4().hex[:8]}")
    p = await db.connect(dsn, "scoring", scoring_server.MIGRATIONS)
    async with p.acquire() as conn:
        for m in LINES:
            await store.upsert_subscriber(conn, line_hash(m, KEY), m, PROFILE)
    yield p
    await p.close()

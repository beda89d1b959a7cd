"""Notify's own pieces driven directly: a schema of notify's tables of their own (so the stack's dispatcher never
claims what a test creates) and channels a test scripts, behind the real dispatcher and store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest_asyncio

from carrier.notify.v1 import notify_pb2
from pscommon import db
from services.notify import store
from services.notify.channels import Contacts, Location, Message, Outcome
from services.notify.server import MIGRATIONS


@pytest_asyncio.fixture
async def notify_pool(stack) -> AsyncIterator[asyncpg.Pool]:
    schema = f"notify_t_{uuid.uuid4().hex[:10]}"
    pool = await db.connect(stack.cfg.database_url, schema, MIGRATIONS, max_size=20)
    try:
        yield pool
    finally:
        await pool.close()
        conn = await asyncpg.connect(stack.cfg.database_url)
        try:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        finally:
            await conn.close()


async def new_notification(pool: asyncpg.Pool, msisdn: str = "13900000001") -> uuid.UUID:
    async with pool.acquire() as conn:
        return await store.create_notification(
            conn,
            case_id=f"case-{uuid.uuid4().hex[:8]}",
            line_hash="h",
            msisdn=msisdn,
            home_province="44",
            template=notify_pb2.TEMPLATE_WARNING,
            language="en",
            body="your line will be restricted",
            policy_version="test",
            give_up_at=datetime.now(UTC) + timedelta(hours=1),
        )


Send = Callable[[Message], Awaitable[Outcome]]


class _NoLocations:
    def WatchLocations(self, request: object) -> _NoLocations:
        return self

    def __aiter__(self) -> _NoLocations:
        return self

    async def __anext__(self) -> object:
        await asyncio.Event().wait()  # no handset ever moves
        raise StopAsyncIteration


@dataclass
class FakeChannels:
    """What the dispatcher needs of `Channels`, with each channel's send scripted; every send is recorded with
    the dispatcher's tag."""

    tag: str
    senders: dict[str, Send]
    sent: list[tuple[str, str, str]]  # (tag, channel, request id), shared between dispatchers
    hlr: _NoLocations = field(default_factory=_NoLocations)

    async def location(self, msisdn: str, home_province: str) -> Location:
        return Location("home")

    async def contacts(self, msisdn: str, home_province: str) -> Contacts:
        return Contacts(email="holder@example.cn", push_token="token")

    async def send(self, name: str, m: Message, contacts: Contacts | None) -> Outcome:
        self.sent.append((self.tag, name, m.request_id))
        return await self.senders[name](m)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)

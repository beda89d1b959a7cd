"""pscli/sms_inbox.py, which `psctl demo` reads the holder's link with: the case's warning SMS from notify's store
(the real notify schema, migrated by notify's own migrations, in a real PostgreSQL), waiting for its delivery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from carrier.notify.v1 import notify_pb2
from pscli.sms_inbox import link_in, warning_sms
from pscommon import db
from services.notify import server as notify_server
from stack import postgres

BASE = "http://127.0.0.1:8090/h"
LINK = f"{BASE}/link-1.y0ZuVExC4_UuxQAAAAEAayFCSJcX_6UDciATygfxvQ"
CASE = "case-" + "ab" * 10 + "-1"


@pytest_asyncio.fixture
async def dsn(database_server) -> AsyncIterator[str]:
    url = await postgres.ensure_database(database_server, f"psp_inbox_{uuid.uuid4().hex[:8]}")
    pool = await db.connect(url, "notify", notify_server.MIGRATIONS)
    await pool.close()
    yield url


async def store(dsn: str, case_id: str, template: int, body: str, delivered: bool) -> uuid.UUID:
    nid = uuid.uuid4()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO notify.notifications (notification_id, case_id, line_hash, msisdn, home_province, template,"
            " language, body, status, delivered_at) VALUES ($1, $2, 'h', '19300000000', '44', $3, 'zh', $4, $5,"
            " CASE WHEN $6 THEN now() END)",
            nid,
            case_id,
            template,
            body,
            notify_pb2.DELIVERY_STATUS_DELIVERED if delivered else notify_pb2.DELIVERY_STATUS_PENDING,
            delivered,
        )
    finally:
        await conn.close()
    return nid


async def test_the_delivered_warning_of_the_case_and_its_link(dsn):
    await store(dsn, "case-" + "cd" * 10 + "-1", notify_pb2.TEMPLATE_WARNING, f"other case {BASE}/k.other", True)
    await store(
        dsn, CASE, notify_pb2.TEMPLATE_WARNING, f"【运营商】您的号码193****0000存在风险，请在线核验 {LINK}。", True
    )
    sms = await warning_sms(dsn, CASE, deadline_s=5)
    assert sms is not None and sms.delivered_at is not None
    assert link_in(sms.body, BASE) == LINK  # the sentence's full stop is not part of it


async def test_waits_for_the_delivery(dsn):
    nid = await store(dsn, CASE, notify_pb2.TEMPLATE_WARNING, f"verify {LINK}", False)
    waiting = asyncio.create_task(warning_sms(dsn, CASE, deadline_s=30))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE notify.notifications SET delivered_at = now() WHERE notification_id = $1", nid)
    finally:
        await conn.close()
    sms = await asyncio.wait_for(waiting, 30)
    assert sms is not None and sms.delivered_at is not None


async def test_undelivered_after_the_deadline_is_returned_as_stored(dsn):
    await store(dsn, CASE, notify_pb2.TEMPLATE_WARNING, f"verify {LINK}", False)
    sms = await warning_sms(dsn, CASE, deadline_s=0.3)
    assert sms is not None and sms.delivered_at is None and link_in(sms.body, BASE) == LINK


async def test_no_warning_is_none(dsn):
    await store(dsn, CASE, notify_pb2.TEMPLATE_REMINDER, f"reminder {LINK}", True)
    assert await warning_sms(dsn, CASE, deadline_s=0.3) is None


def test_link_in():
    assert link_in(f"no link, only {BASE}", BASE) is None
    assert link_in(f"another site https://evil.example/h/{LINK.rsplit('/', 1)[1]}", BASE) is None
    assert link_in(f"({LINK})", BASE + "/") == LINK

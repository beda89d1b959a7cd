"""The warning SMS a case's holder received on the local stack, and the link in it.

Notify keeps every message it sends (notify.notifications: the body as sent, its template, when it was delivered);
the SMSC simulator keeps no bodies. So the holder's phone is read from notify's store, as the holder's browser test
does (tests/portal/test_browser.py). Local stack only: it reads the stack's database (DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from carrier.notify.v1 import notify_pb2

_QUERY = (
    "SELECT body, delivered_at FROM notify.notifications WHERE case_id = $1 AND template = $2"
    " ORDER BY created_at LIMIT 1"
)


@dataclass(frozen=True)
class Sms:
    body: str
    delivered_at: datetime | None  # None: notify has not delivered it (yet)


async def warning_sms(database_url: str, case_id: str, deadline_s: float = 30.0) -> Sms | None:
    """The case's warning SMS once delivered; when the deadline passes first, as stored (or None if there is none)."""
    conn = await asyncpg.connect(database_url)
    try:
        end = time.monotonic() + deadline_s
        while True:
            row = await conn.fetchrow(_QUERY, case_id, notify_pb2.TEMPLATE_WARNING)
            sms = Sms(row["body"], row["delivered_at"]) if row else None
            if (sms is not None and sms.delivered_at is not None) or time.monotonic() >= end:
                return sms
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


def link_in(body: str, verify_url_base: str) -> str | None:
    """The holder's link in a message: PSP_VERIFY_URL, then a signed token (<key id>.<base64url>: pscommon/links.py)."""
    m = re.search(re.escape(verify_url_base.rstrip("/")) + r"/[A-Za-z0-9_-]{1,16}\.[A-Za-z0-9_-]+", body)
    return m[0] if m else None

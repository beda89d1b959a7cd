"""A new incident after a case has ended opens the line's next case: a case id never gets a second run, so no
request id of its steps is ever reused with other content."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from contracts.case import Action, RiskLevel, case_id
from pscommon import db
from pscommon.identity import line_hash
from services.scoring import cases, store
from services.scoring import server as scoring_server
from services.scoring.scorecard import Assessment, Reason
from tests.helpers import ingest, reach, register_line, scam_burst

MSISDN = "19355502020"


async def deliver(stack, pool: asyncpg.Pool, decision_id: int) -> asyncpg.Record:
    """Delivers one decision as the opener does; waits out the service's own relay if it holds the row."""
    relay = cases.CaseStarter(stack.client, stack.cfg, pool).relay()
    for _ in range(3):
        await relay.deliver_now([decision_id])
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM decisions WHERE id = $1 FOR UPDATE", decision_id)
        if row["opened_at"] is not None:
            return row
    raise AssertionError("the decision was never delivered")


async def later_decision(pool: asyncpg.Pool, h: str) -> int:
    """A decision taken later for the line, as ingest records it: joined to the case scoring believes open."""
    a = Assessment(
        0.9, RiskLevel.HIGH, Action.SUSPEND, (Reason("CALL_BURST_NEW_PEERS", "频繁外呼", "call burst", 0.6),)
    )
    at = int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())
    async with pool.acquire() as conn, conn.transaction():
        seq, join = await store.assign_case(conn, h)
        return await store.insert_decision(conn, h, a, "test", at, case_id(h, seq), join, "", None, "")


async def test_an_incident_after_a_case_ended_outside_the_platform_opens_the_next_case(stack) -> None:
    await register_line(stack.cfg, MSISDN, "44", "holder-case-numbers")
    h = line_hash(MSISDN, stack.cfg.line_hash_key)
    first = await ingest(stack.cfg, scam_burst(MSISDN, datetime.now(UTC) - timedelta(minutes=50), calls=20))
    assert first.decisions and first.decisions[0].case_id == case_id(h, 1)
    # Ended while it waits on its grace timer (the test server's clock stays free: no activity is cut off).
    await reach(stack, case_id(h, 1), "warning_delivered")
    await stack.client.get_workflow_handle(case_id(h, 1)).terminate("closed by an operator in the Temporal UI")

    pool = await db.connect(stack.cfg.database_url, "scoring", scoring_server.MIGRATIONS, max_size=2)
    try:
        joined = await deliver(stack, pool, await later_decision(pool, h))
        assert (joined["case_id"], joined["join_case"]) == (case_id(h, 2), False)
        second = await stack.client.get_workflow_handle(case_id(h, 2)).describe()
        assert second.status is not None and second.status.name == "RUNNING"

        # Delivered again as a start of the ended case (a repeat from before the move): it joins case 2 instead.
        again = await later_decision(pool, h)
        async with pool.acquire() as conn:
            await store.move_decision(conn, again, case_id(h, 1), False)
        moved = await deliver(stack, pool, again)
        assert (moved["case_id"], moved["join_case"]) == (case_id(h, 2), True)
        ended = await stack.client.get_workflow_handle(case_id(h, 1)).describe()
        assert ended.status is not None and ended.status.name == "TERMINATED"  # the ended case never ran again
    finally:
        await pool.close()

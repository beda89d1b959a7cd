"""The case opener delivers a line's decisions in the order they were taken: a later decision (a stronger
assessment joining the case) is not claimed while an earlier one of the line is unopened, so a join never finds
its case missing and opens a second case beside it. Found by the kill drill after a PostgreSQL restart."""

from __future__ import annotations

from contracts.case import Action, RiskLevel, case_id
from pscommon.identity import line_hash
from services.scoring import store
from services.scoring.scorecard import Assessment, Reason
from tests.scoring.processes import KEY, LINES

WARN = Assessment(40.0, RiskLevel.MEDIUM, Action.WARN, (Reason("CALL_BURST", "外呼", "burst", 40.0),))
RESTRICT = Assessment(70.0, RiskLevel.HIGH, Action.RESTRICT, (Reason("CALL_BURST", "外呼", "burst", 70.0),))


async def decide(pool, h: str, a: Assessment, cause: str) -> int:
    async with pool.acquire() as conn, conn.transaction():
        seq, join = await store.assign_case(conn, h)
        return await store.insert_decision(
            conn, h, a, "test", 1_795_000_000, case_id(h, seq), join, "", None, "193****0000", cause
        )


async def test_a_later_decision_waits_for_the_earlier_one_of_its_line(pool) -> None:
    h, other = line_hash(LINES[0], KEY), line_hash(LINES[1], KEY)
    first = await decide(pool, h, WARN, "b#1")
    second = await decide(pool, h, RESTRICT, "b#2")
    elsewhere = await decide(pool, other, WARN, "b#3")
    async with pool.acquire() as conn:
        assert await store.claim_decisions(conn, [second], 10, 10) == []  # held back behind `first`
        claimed = await store.claim_decisions(conn, None, 10, 10)
        assert sorted(r["id"] for r in claimed) == [first, elsewhere]
        await store.mark_opened(conn, first)
        later = await store.claim_decisions(conn, None, 10, 10)
        assert [(r["id"], r["join_case"], r["case_id"]) for r in later] == [(second, True, case_id(h, 1))]

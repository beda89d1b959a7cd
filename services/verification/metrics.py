"""Verification's metrics (instruments declared in pscommon/metrics.py), and the review gauges it keeps."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from carrier.verification.v1 import verification_pb2 as vpb
from contracts.case import AuthorityOrder, ReviewKind
from contracts.pb import REVIEW_KIND_OF
from pscommon import metrics
from services.verification import review_rules

log = logging.getLogger(__name__)
REFRESH_S = 30.0


def _name(enum: object, value: int, prefix: str) -> str:
    try:
        return enum.Name(value).removeprefix(prefix).lower()  # type: ignore[attr-defined]
    except ValueError:
        return "other"


def checked(outcome: vpb.VerificationOutcome) -> None:
    """A check decided: passed, failed or pending_review, by route (online, in_person)."""
    route = _name(vpb.Route, outcome.route, "ROUTE_")
    metrics.VERIFICATIONS.add(1, route=route, result=_name(vpb.Result, outcome.result, "RESULT_"))


def locked_out(scope: str) -> None:
    metrics.LOCKOUTS.add(1, scope=scope)


def ordered(order: AuthorityOrder) -> None:
    metrics.AUTHORITY_ORDERS.add(1, authority=str(order.authority), order=str(order.order))


async def refresh_review_gauges(conn: asyncpg.Pool | asyncpg.Connection) -> dict[str, tuple[int, int]]:
    """Reviews waiting and past their SLA, by kind, from the database (every kind set, zeros included)."""
    rows = await conn.fetch(
        "SELECT kind, count(*) AS waiting, count(*) FILTER (WHERE due_at < now()) AS late"
        " FROM reviews WHERE status = ANY($1::smallint[]) GROUP BY kind",
        list(review_rules.WAITING),
    )
    found = {str(REVIEW_KIND_OF[r["kind"]]): (int(r["waiting"]), int(r["late"])) for r in rows}
    counts = {str(k): found.get(str(k), (0, 0)) for k in ReviewKind}
    for kind, (waiting, late) in counts.items():
        metrics.REVIEWS_WAITING.set(waiting, kind=kind)
        metrics.REVIEWS_PAST_SLA.set(late, kind=kind)
    return counts


async def keep_review_gauges(pool: asyncpg.Pool, every_s: float = REFRESH_S) -> None:
    while True:
        try:
            await refresh_review_gauges(pool)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            log.warning("review gauges not refreshed (%s); next in %.0fs", type(err).__name__, every_s)
        await asyncio.sleep(every_s)

"""Scoring's metrics (instruments declared in pscommon/metrics.py): what one call at each site records."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from typing import Protocol, TypeVar

from carrier.common.v1 import common_pb2
from carrier.scoring.v1 import scoring_pb2
from pscommon import metrics
from pscommon.errors import ServiceError


class _Decision(Protocol):
    @property
    def risk_level(self) -> common_pb2.RiskLevel.ValueType: ...

    @property
    def action(self) -> common_pb2.Action.ValueType: ...


class _Done(Protocol):
    @property
    def repeated(self) -> bool: ...

    @property
    def decisions(self) -> Sequence[_Decision]: ...

    @property
    def newest(self) -> int: ...


D = TypeVar("D", bound=_Done)


def level_name(level: int) -> str:
    return common_pb2.RiskLevel.Name(level).removeprefix("RISK_LEVEL_").lower()  # type: ignore[arg-type]


def action_name(action: int) -> str:
    return common_pb2.Action.Name(action).removeprefix("ACTION_").lower()  # type: ignore[arg-type]


async def scored(work: Awaitable[D], cdrs: Sequence[scoring_pb2.Cdr]) -> D:
    """Awaits one batch's scoring: its CDRs ingested (or refused, by reason), its latency, how far behind real
    time its newest call started (the stream's lag), its decisions by level and action. A repeated batch
    (answered from the ledger) counts nothing again."""
    started = time.perf_counter()
    try:
        done = await work
    except ServiceError as err:
        metrics.CDRS_REFUSED.add(len(cdrs), reason=err.reason)
        raise
    if done.repeated:
        return done
    metrics.DECISION_DURATION.record(time.perf_counter() - started)
    metrics.CDRS_INGESTED.add(len(cdrs))
    if done.newest:
        metrics.INGEST_LAG.record(time.time() - done.newest)
    for (level, action), n in Counter((d.risk_level, d.action) for d in done.decisions).items():
        metrics.DECISIONS.add(n, risk_level=level_name(level), action=action_name(action))
    return done


def event_time(refused: Counter[str], late: Counter[str]) -> None:
    """What one batch's CDRs did to the engine's event-time counts (the differences over the batch)."""
    for reason, n in refused.items():
        metrics.CDRS_DROPPED.add(n, reason=reason)
    for lateness, n in late.items():
        metrics.CDRS_LATE.add(n, lateness=lateness)


def case_opened(risk_level: str, joined: bool) -> None:
    """A case started (joining the open one is no new case)."""
    if not joined:
        metrics.CASES_OPENED.add(1, risk_level=risk_level)


def checkpoint_age(seconds: float, shard: int) -> None:
    metrics.CHECKPOINT_AGE.set(seconds, shard=str(shard))

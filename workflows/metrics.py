"""The case worker's metrics (instruments declared in pscommon/metrics.py): activity failures, cases closed by
outcome, and open cases by stage (counted through Temporal visibility, as an operator's list query would)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from contracts.case import WORKFLOW_NAME, Stage
from pscommon import metrics

log = logging.getLogger(__name__)
REFRESH_S = 30.0


def error_name(err: BaseException) -> str:
    """A bounded name: the application error's type (a gRPC code name, mostly) or the exception's class."""
    if isinstance(err, ApplicationError) and err.type:
        return err.type
    return type(err).__name__


class _CountFailures(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except Exception as err:
            metrics.ACTIVITY_FAILURES.add(1, activity=activity.info().activity_type, error=error_name(err))
            raise


class ActivityMetrics(Interceptor):
    """Counts every failed activity attempt (a retry that then succeeds still counted its failure)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CountFailures(next)


def case_closed(outcome: str) -> None:
    """OUTCOME_FALSE_POSITIVE → false_positive ... (recorded once scoring has the outcome)."""
    metrics.CASES_CLOSED.add(1, outcome=outcome.removeprefix("OUTCOME_").lower())


def stage_query(stage: Stage) -> str:
    return f"WorkflowType = '{WORKFLOW_NAME}' AND ExecutionStatus = 'Running' AND CaseStage = '{stage.value}'"


async def refresh_stage_gauge(client: Client) -> dict[str, int]:
    """Open cases in each stage, from Temporal's visibility store."""
    counts = {stage.value: (await client.count_workflows(stage_query(stage))).count for stage in Stage}
    for stage, n in counts.items():
        metrics.CASES_IN_STAGE.set(n, stage=stage)
    return counts


async def keep_stage_gauge(client: Client, every_s: float = REFRESH_S) -> None:
    while True:
        try:
            await refresh_stage_gauge(client)
        except RPCError as err:
            log.warning("case stage gauge not refreshed (%s); next in %.0fs", err.status.name, every_s)
        await asyncio.sleep(every_s)

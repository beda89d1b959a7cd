"""The Temporal worker: runs the case workflow and its activities."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from pscommon import metrics, temporal
from pscommon.config import Settings, settings
from pscommon.telemetry import setup_logging, setup_tracing
from workflows import metrics as case_metrics
from workflows.activities import CaseActivities
from workflows.case_workflow import ProtectiveSuspensionCase


def build(client: Client, cfg: Settings) -> Worker:
    return Worker(
        client,
        task_queue=cfg.task_queue,
        workflows=[ProtectiveSuspensionCase],
        activities=CaseActivities(cfg).all(),
        interceptors=[case_metrics.ActivityMetrics()],
        graceful_shutdown_timeout=timedelta(seconds=cfg.shutdown_grace_s),
    )


async def main() -> None:
    setup_logging("worker")
    setup_tracing("worker")
    cfg = settings()
    metrics.setup_from_settings("worker", cfg.metrics_port)
    client = await temporal.connect(cfg)
    await temporal.ensure_search_attributes(client)
    worker = build(client, cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gauge = asyncio.create_task(case_metrics.keep_stage_gauge(client))
    async with worker:
        logging.getLogger(__name__).info("worker polling %s", cfg.task_queue)
        await stop.wait()
    gauge.cancel()


if __name__ == "__main__":
    asyncio.run(main())

"""Starting a case against the fake carrier, moving it along, and recording its history for the replay test."""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import uuid
from contextlib import AsyncExitStack
from datetime import timedelta

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pscommon import temporal
from tests.workflow.fakes import (
    CASE_RENEWED,
    QUERY_STATUS,
    UPDATE_WAIT_STAGE,
    WORKFLOW_NAME,
    CaseInput,
    CaseStatus,
    FakeCarrier,
)
from workflows.case_workflow import ProtectiveSuspensionCase

HISTORIES = pathlib.Path(__file__).with_name("histories")
RECORD = os.environ.get("PSP_RECORD_HISTORIES") == "1"
RESULT_WAIT_S = 5.0  # real seconds


class Case:
    """One running case: its handle, the fake carrier behind it, and a few shorthands."""

    def __init__(self, env: WorkflowEnvironment, handle: WorkflowHandle, carrier: FakeCarrier, name: str) -> None:
        self.env = env
        self.handle = handle
        self.carrier = carrier
        self.name = name

    async def reach(self, stage: str) -> CaseStatus:
        """Returns once the case has entered `stage` (the workflow's own wait_for_stage update)."""
        return await temporal.update_following_runs(
            self.env.client, self.handle.id, UPDATE_WAIT_STAGE, stage, CaseStatus, CASE_RENEWED
        )

    async def status(self) -> CaseStatus:
        return await self.env.client.get_workflow_handle(self.handle.id).query(QUERY_STATUS, result_type=CaseStatus)

    async def details(self) -> str:
        """The Markdown details the Temporal UI shows (the SDK's built-in metadata query)."""
        meta = await self.env.client.get_workflow_handle(self.handle.id).query(
            "__temporal_workflow_metadata", result_type=WorkflowMetadata
        )
        return meta.current_details

    async def signal(self, name: str, arg: object) -> None:
        await self.handle.signal(name, arg)

    async def skip(self, **kw: float) -> None:
        """Moves the test server's clock on (no real waiting)."""
        await self.env.sleep(timedelta(**kw))

    async def result(self) -> CaseStatus:
        """The case's result, without letting the server skip time while waiting: a case that still waits on a
        timer fails the test within seconds rather than leaping to its end. (An unlocked wait also leaves the
        server's clock years ahead once the case completes.) Skip to the moment with `skip()` first."""
        with self.env.auto_time_skipping_disabled():
            return await asyncio.wait_for(self.handle.result(), RESULT_WAIT_S)

    async def stages(self) -> list[str]:
        return [h.stage for h in (await self.status()).history]

    async def record_history(self) -> None:
        """With PSP_RECORD_HISTORIES=1, writes the history as it stands to histories/<test name>.json.

        A file already there is kept: it is a case as an older build left it, which a deploy still meets.
        """
        if not RECORD:
            return
        path = HISTORIES / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', self.name)}.json"
        if path.exists():
            return
        history = await self.handle.fetch_history()
        HISTORIES.mkdir(exist_ok=True)
        path.write_text(history.to_json() + "\n")


class Cases:
    """Starts cases for one test: a worker with the fakes on a task queue of its own, a unique workflow id."""

    def __init__(self, env: WorkflowEnvironment, test_name: str) -> None:
        self.env = env
        self.test_name = test_name
        self.started: list[Case] = []
        self._stack = AsyncExitStack()

    async def start(self, carrier: FakeCarrier, case: CaseInput) -> Case:
        suffix = uuid.uuid4().hex[:8]
        queue = f"wf-test-{suffix}"
        worker = Worker(
            self.env.client, task_queue=queue, workflows=[ProtectiveSuspensionCase], activities=carrier.all()
        )
        await self._stack.enter_async_context(worker)
        handle = await self.env.client.start_workflow(
            WORKFLOW_NAME,
            case,
            id=f"case-{self.test_name.removeprefix('test_')[:60]}-{suffix}",
            task_queue=queue,
            result_type=CaseStatus,
        )
        started = Case(self.env, handle, carrier, self.test_name)
        self.started.append(started)
        return started

    async def close(self) -> None:
        """Terminates cases still running (left waiting they would hold the shared clock) and stops the workers."""
        try:
            for case in self.started:
                if (await case.handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await case.handle.terminate("test over")
        finally:
            await self._stack.aclose()

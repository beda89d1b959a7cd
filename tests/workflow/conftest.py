"""One Temporal time-skipping test server for the workflow tests; no database, services or simulators.

The client keeps Temporal's default data converter (no encryption codec), so recorded histories are plain JSON.
Nothing here asks for the `stack` fixture of tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from pscommon import temporal
from stack.binaries import venv_bin
from tests.workflow.harness import Cases


@pytest_asyncio.fixture(scope="session")
async def workflow_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=venv_bin("temporal-test-server"))
    await temporal.ensure_search_attributes(env.client)  # the case upserts CaseStage, RiskLevel and Roaming
    yield env
    await env.shutdown()


@pytest_asyncio.fixture
async def cases(workflow_env: WorkflowEnvironment, request: pytest.FixtureRequest) -> AsyncIterator[Cases]:
    """Runs cases of this test on their own task queue with a fresh worker; ends what is left running."""
    runner = Cases(workflow_env, request.node.name)
    try:
        yield runner
    finally:
        await runner.close()

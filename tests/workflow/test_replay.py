"""Replays every recorded case history against today's workflow code.

A history that no longer replays means a change to the workflow would break the cases already running when it
is deployed: put the change behind `workflow.patched()` and keep the old histories (see README.md).
"""

from __future__ import annotations

import json
import pathlib

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.workflow.fakes import WORKFLOW_NAME
from workflows.case_workflow import ProtectiveSuspensionCase

HISTORIES = sorted(pathlib.Path(__file__).with_name("histories").glob("*.json"))
MIN_HISTORIES = 8
CLOSED = {
    f"workflowExecution{e}" for e in ("Completed", "Failed", "Terminated", "Canceled", "TimedOut", "ContinuedAsNew")
}


def test_there_are_histories_to_replay() -> None:
    assert len(HISTORIES) >= MIN_HISTORIES, f"only {len(HISTORIES)} histories; record them (see README.md)"
    last = [_final_event(p) for p in HISTORIES]
    assert "workflowExecutionCompleted" in last, "no finished case among the histories"
    assert any(e not in CLOSED for e in last), "no case still running among the histories"


def _load(path: pathlib.Path) -> dict:
    return json.loads(path.read_text())


def _final_event(path: pathlib.Path) -> str:
    events = _load(path)["events"]
    return next(k for k in events[-1] if k.endswith("EventAttributes")).removesuffix("EventAttributes")


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: pathlib.Path) -> None:
    data = _load(path)
    started = data["events"][0]["workflowExecutionStartedEventAttributes"]
    assert started["workflowType"]["name"] == WORKFLOW_NAME
    history = WorkflowHistory.from_json(f"replay-{path.stem}", data)
    result = await Replayer(workflows=[ProtectiveSuspensionCase]).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure!r}"

"""The case's activities turn the services' answers into what the workflow decides on."""

from __future__ import annotations

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from pscommon.errors import ServiceError, failed_precondition
from workflows.activities import CaseActivities, LineChange


def refused(err: ServiceError) -> AioRpcError:
    status = err.to_status()
    return AioRpcError(status.code, Metadata(), Metadata(*status.trailing_metadata), status.details)


class Refusing:
    def __init__(self, err: AioRpcError) -> None:
        self.err = err

    async def ChangeLineState(self, request: object, timeout: float) -> object:
        raise self.err


def activities(err: AioRpcError) -> CaseActivities:
    acts = CaseActivities.__new__(CaseActivities)
    acts.suspension = Refusing(err)  # type: ignore[assignment]
    return acts


CHANGE = LineChange("case-x:line-restore", "19900000001", "44", "case-x", "LINE_STATE_RESTORED", "VERIFIED_ONLINE")


async def test_a_line_already_in_the_target_state_is_the_outcome_wanted() -> None:
    err = refused(failed_precondition("line is already LINE_STATE_RESTORED", "ALREADY_IN_STATE"))
    assert await activities(err).change_line_state(CHANGE) == "LINE_STATE_RESTORED"


async def test_another_refusal_fails_for_good_with_its_reason() -> None:
    err = refused(failed_precondition("a terminated line cannot be restored", "INVALID_TRANSITION"))
    with pytest.raises(ApplicationError) as raised:
        await activities(err).change_line_state(CHANGE)
    assert raised.value.non_retryable and raised.value.type == grpc.StatusCode.FAILED_PRECONDITION.name
    assert raised.value.details == ("INVALID_TRANSITION",)


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
async def test_a_transient_failure_is_left_to_temporal_to_retry_without_a_traceback(code: grpc.StatusCode) -> None:
    err = AioRpcError(code, Metadata(), Metadata(), "suspension is restarting")
    with pytest.raises(ApplicationError) as raised:
        await activities(err).change_line_state(CHANGE)
    assert not raised.value.non_retryable and raised.value.type == code.name
    # benign: the SDK logs the failed attempt at DEBUG, so a restarting service leaves no traceback in the log
    assert raised.value.category == ApplicationErrorCategory.BENIGN

"""Operators acting on a case that waits for them: a step failed for good and the case is in needs_attention."""

from __future__ import annotations

from contracts.case import OperatorAction, OperatorChoice, Stage
from pscommon.errors import failed_precondition
from pscommon.idempotency import Tx
from pscommon.identity import Principal
from services.verification import store
from services.verification.case_gateway import CaseGateway


class CaseOperations:
    def __init__(self, case: CaseGateway) -> None:
        self.case = case

    async def act(self, tx: Tx, request_id: str, case_id: str, choice: OperatorChoice, note: str, by: Principal) -> str:
        """Records the operator's choice and tells the case after the commit; returns the step acted on."""
        case = await self.case.status(case_id)
        if case.stage != Stage.NEEDS_ATTENTION or case.attention is None:
            raise failed_precondition(
                f"the case is not waiting for an operator (stage {case.stage})", "CASE_NOT_WAITING"
            )
        if choice not in case.attention.choices:
            offered = ", ".join(case.attention.choices)
            raise failed_precondition(f"'{case.attention.step}' offers: {offered}", "CHOICE_NOT_OFFERED")
        await store.record_operator_action(tx.conn, request_id, case_id, case.attention.step, choice, note, by.name)
        await self.case.tell(tx, case_id, OperatorAction(choice, note, by.name), case)
        return case.attention.step

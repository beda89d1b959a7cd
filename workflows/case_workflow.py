"""The protective-suspension case: warn, wait, restrict or suspend, verify, restore, feed back.

Cases run for weeks, across deploys: cases started before version 2 keep running the first saga
(case_v1.py) exactly as they began; new cases run version 2 (case_v2.py). A workflow decides once, with
`workflow.patched`, which one it runs (the answer is kept for the whole run, also in its signal handlers)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.converter import value_to_type
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.case import (
        CASE_RENEWED,
        QUERY_STATUS,
        SIGNAL_ASSESSMENT,
        SIGNAL_AUTHORITY_ORDER,
        SIGNAL_OPERATOR,
        SIGNAL_REVIEW_DECIDED,
        SIGNAL_REVIEW_OPENED,
        SIGNAL_VERIFIED,
        UPDATE_WAIT_STAGE,
        WORKFLOW_NAME,
        Assessment,
        AuthorityOrder,
        CaseInput,
        CaseStatus,
        OperatorAction,
        ReviewDecided,
        ReviewOpened,
        Stage,
        VerificationPassed,
    )
    from pscommon import temporal

from workflows.case_v1 import CaseV1
from workflows.case_v2 import CaseMemory, CaseV2, Escalation

V2 = "case-v2"  # escalation, no dead ends, needs_attention, termination with notice and outcome


@workflow.defn(name=WORKFLOW_NAME)
class ProtectiveSuspensionCase(CaseV1, CaseV2):
    @workflow.run
    async def run(self, case: CaseInput) -> CaseStatus:
        if case.resume is not None or self._v2():
            memory = value_to_type(CaseMemory, case.resume) if case.resume is not None else None
            return await self._run_v2(case, memory)
        return await self._run_v1(case)

    def _v2(self) -> bool:
        return workflow.patched(V2)

    @workflow.query(name=QUERY_STATUS)
    def status_query(self) -> CaseStatus:
        return self.status()

    @workflow.update(name=UPDATE_WAIT_STAGE)
    async def wait_for_stage(self, stage: Stage) -> CaseStatus:
        """Returns once the case has reached `stage` (at once if it already has). A case renewing its history
        (continue-as-new) answers CASE_RENEWED instead: ask again, by workflow id, and the new run answers."""
        await workflow.wait_condition(lambda: self._reached(stage) or self.renewing)
        if not self._reached(stage):
            raise ApplicationError("the case renewed its history; ask again", type=CASE_RENEWED, non_retryable=True)
        return self.status()

    def _reached(self, stage: Stage) -> bool:
        return any(h.stage == stage for h in self.history)

    @workflow.signal(name=SIGNAL_VERIFIED)
    def verification_passed(self, passed: VerificationPassed) -> None:
        self.inbox.append(passed)

    @workflow.signal(name=SIGNAL_REVIEW_OPENED)
    def review_opened(self, opened: ReviewOpened) -> None:
        self.inbox.append(opened)

    @workflow.signal(name=SIGNAL_REVIEW_DECIDED)
    def review_decided(self, decided: ReviewDecided) -> None:
        self.inbox.append(decided)

    @workflow.signal(name=SIGNAL_AUTHORITY_ORDER)
    def authority_order(self, order: AuthorityOrder) -> None:
        self.inbox.append(order)

    @workflow.signal(name=SIGNAL_OPERATOR)
    def operator_action(self, action: OperatorAction) -> None:
        if self._v2():
            self.inbox.append(action)
        else:
            workflow.logger.warning("operator action on a case of the first version: not supported, ignored")

    @workflow.signal(name=SIGNAL_ASSESSMENT)
    def new_assessment(self, assessment: Assessment) -> None:
        if self._v2():
            self.inbox.append(Escalation(assessment))
            return
        if self.assessment is None or assessment.action.stronger(self.assessment.action):
            self.assessment = assessment
            workflow.upsert_search_attributes([temporal.RISK_LEVEL.value_set(assessment.risk_level)])
            if self.case is not None:
                workflow.set_current_details(self._details())

"""The protective-suspension case: warn, wait, restrict or suspend, verify, restore, feed back.

Cases run for weeks, across deploys: cases started before version 2 keep running the first saga
(case_v1.py) exactly as they began; new cases run version 2 (case_v2.py). A workflow decides once, with
`workflow.patched`, which one it runs."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.case import (
        QUERY_STATUS,
        SIGNAL_ASSESSMENT,
        SIGNAL_AUTHORITY_ORDER,
        SIGNAL_REVIEW_DECIDED,
        SIGNAL_REVIEW_OPENED,
        SIGNAL_VERIFIED,
        UPDATE_WAIT_STAGE,
        WORKFLOW_NAME,
        Assessment,
        AuthorityOrder,
        CaseInput,
        CaseStatus,
        ReviewDecided,
        ReviewOpened,
        Stage,
        VerificationPassed,
    )
    from pscommon import temporal

from workflows.case_v1 import CaseV1


@workflow.defn(name=WORKFLOW_NAME)
class ProtectiveSuspensionCase(CaseV1):
    @workflow.run
    async def run(self, case: CaseInput) -> CaseStatus:
        return await self._run_v1(case)

    @workflow.query(name=QUERY_STATUS)
    def status_query(self) -> CaseStatus:
        return self.status()

    @workflow.update(name=UPDATE_WAIT_STAGE)
    async def wait_for_stage(self, stage: Stage) -> CaseStatus:
        """Returns once the case has reached `stage` (at once if it already has)."""
        await workflow.wait_condition(lambda: any(h.stage == stage for h in self.history))
        return self.status()

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

    @workflow.signal(name=SIGNAL_ASSESSMENT)
    def new_assessment(self, assessment: Assessment) -> None:
        if self.assessment is None or assessment.action.stronger(self.assessment.action):
            self.assessment = assessment
            workflow.upsert_search_attributes([temporal.RISK_LEVEL.value_set(assessment.risk_level)])
            if self.case is not None:
                workflow.set_current_details(self._details())

"""The saga as cases started before version 2 run it, kept exactly so their histories replay (see case_v2.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.case import (
        Action,
        AuthorityOrder,
        CaseInput,
        CaseStatus,
        Delivery,
        DeliveryStatus,
        OrderKind,
        ReviewDecided,
        ReviewDecision,
        ReviewKind,
        ReviewOpened,
        ReviewState,
        ReviewStatus,
        RiskLevel,
        Stage,
        VerificationPassed,
    )
    from pscommon import temporal
    from workflows.activities import CaseActivities, LineChange, NotifyArgs, OutcomeArgs
    from workflows.policy import CasePolicy

from workflows.case_state import (
    CALL,
    DELIVERY_CHECK_MAX,
    ENFORCED_STATE,
    REJECTED_STAGES,
    REVIEW_STAGES,
    CaseBase,
    Resolution,
)


class CaseV1(CaseBase):
    async def _run_v1(self, case: CaseInput) -> CaseStatus:
        self.case = case
        if self.assessment is None:
            self.assessment = case.assessment
        policy: CasePolicy = await workflow.execute_activity_method(
            CaseActivities.load_case_policy, summary="load the case policy", **CALL
        )
        self.route = await workflow.execute_activity_method(
            CaseActivities.restore_route,
            args=[self.assessment.risk_level, case.msisdn],
            summary=f"how a {self.assessment.risk_level}-risk holder restores",
            **CALL,
        )
        action = self.assessment.action
        grace = timedelta(seconds=policy.grace_s[action])
        deadline = workflow.now() + grace
        self.deadline = deadline

        await self._change("LINE_STATE_WARNED", f"RISK_{self.assessment.risk_level.upper()}", "warn")
        warning = await self._notify(
            "TEMPLATE_WARNING", deadline.isoformat(), "warning", action if action in ENFORCED_STATE else ""
        )
        consequence = {
            Action.WARN: "the case stays open",
            Action.RESTRICT: "outgoing calls are barred",
            Action.SUSPEND: "the line is suspended",
        }[action]
        self._enter(Stage.WARNED, f"holder verifies by {deadline.isoformat()}; otherwise {consequence}")
        await self._await_warning_delivery(warning, deadline)
        await self._wait_events(deadline, f"grace window ({grace}) before '{action}'")

        if self.resolution is None:
            if not self.fraud_confirmed:
                await self._enforce()
            await self._wait_for_resolution(policy)
        if self.resolution is None:
            self.deadline = None
            self._enter(Stage.CLOSED_UNVERIFIED, "line stays as it is; the holder can still restore in person")
        elif self.resolution.action == "terminate":
            await self._terminate()
        else:
            await self._restore()
        return self.status()

    async def _enforce(self) -> None:
        """The grace window ended without verification: apply the action (scoring may have escalated it)."""
        assert self.assessment is not None
        action = self.assessment.action
        reason = f"UNVERIFIED_AFTER_WARNING_{action.upper()}"
        if action == Action.SUSPEND and not self._warned() and self.assessment.risk_level != RiskLevel.EXTREME:
            # The holder may never have seen the warning (abroad, handset off): keep incoming SMS and data
            # so the verification link still arrives, and only bar calling out.
            action, reason = Action.RESTRICT, "WARNING_UNDELIVERED_RESTRICT_ONLY"
        if action in ENFORCED_STATE:
            await self._change(ENFORCED_STATE[action], reason, action)
            await self._notify("TEMPLATE_SUSPENDED", None, action)
            stage = Stage.RESTRICTED if action == Action.RESTRICT else Stage.SUSPENDED
            self._enter(stage, f"holder restores: {self.route.en}")

    async def _wait_for_resolution(self, policy: CasePolicy) -> None:
        """Waits for the holder, a reviewer or an authority, reminding the holder on schedule and escalating a
        review whose SLA runs out. The case closes unresolved when the window ends with nothing under review."""
        window_end = workflow.now() + timedelta(seconds=policy.verification_window_s)
        every = timedelta(seconds=policy.reminder_every_s)
        next_reminder = workflow.now() + every
        reminder = 0
        while self.resolution is None:
            review = self._waiting_review()
            sla_end = datetime.fromisoformat(review.due) if review else None
            due = [window_end, next_reminder] + ([sla_end] if review and sla_end and not review.escalated else [])
            self.deadline = sla_end or window_end
            await self._wait_events(min(due), "wait for verification, a review or an authority")
            if self.resolution is not None:
                return
            now = workflow.now()
            review = self._waiting_review()
            if review and not review.escalated and now >= datetime.fromisoformat(review.due):
                await workflow.execute_activity_method(
                    CaseActivities.escalate_review,
                    args=[self._rid(f"escalate-{review.review_id}"), review.review_id],
                    summary="the review's SLA ran out: escalate it",
                    **CALL,
                )
                review.escalated = True
                self._enter(Stage.REVIEW_ESCALATED, "a senior reviewer decides; the review is at the top of the queue")
            if now >= window_end and review is None:
                return
            if now >= next_reminder:
                next_reminder = now + every
                if review is None:  # nothing is asked of the holder while a reviewer decides
                    reminder += 1
                    await self._notify("TEMPLATE_REMINDER", window_end.isoformat(), f"reminder-{reminder}")

    async def _wait_events(self, until: datetime, summary: str) -> None:
        """Acts on signals as they arrive, until `until`, a resolution, or fraud confirmed (which ends a grace)."""
        while self.resolution is None:
            if not self.inbox:
                left = until - workflow.now()
                if left <= timedelta(0):
                    return
                try:
                    await workflow.wait_condition(lambda: bool(self.inbox), timeout=left, timeout_summary=summary)
                except TimeoutError:
                    return
            confirmed_before = self.fraud_confirmed
            await self._handle(self.inbox.pop(0))
            if self.fraud_confirmed and not confirmed_before:
                return

    async def _handle(self, ev: object) -> None:
        if isinstance(ev, VerificationPassed):
            self.resolution = Resolution("restore", f"VERIFIED_{ev.route.upper()}")
        elif isinstance(ev, ReviewOpened):
            due = workflow.now() + timedelta(seconds=ev.sla_s)
            self.review = ReviewState(ev.review_id, ev.kind, due.isoformat())
            self.more_requested = ""
            self._enter(REVIEW_STAGES[ev.kind], f"a reviewer decides by {due.isoformat()}")
        elif isinstance(ev, ReviewDecided):
            await self._decided(ev)
        elif isinstance(ev, AuthorityOrder) and ev.order == OrderKind.RESTORE:
            self.resolution = Resolution(
                "restore", f"AUTHORITY_{ev.authority.upper()}_RESTORE", ev.authority, ev.order_ref
            )
        elif isinstance(ev, AuthorityOrder):
            await self._fraud_confirmed(ev)

    async def _decided(self, d: ReviewDecided) -> None:
        if self.review is None or self.review.review_id != d.review_id:
            workflow.logger.warning("decision for a review this case is not waiting on; ignored")
            return
        if d.decision == ReviewDecision.APPROVE:
            self.review.status = ReviewStatus.APPROVED
            if d.kind == ReviewKind.TERMINATION:
                self.resolution = Resolution("terminate", "REVIEWER_CONFIRMED_TERMINATION", "reviewer", d.reviewer_id)
            else:
                self.resolution = Resolution("restore", f"REVIEW_APPROVED_{d.kind.upper()}", "reviewer", d.reviewer_id)
        elif d.decision == ReviewDecision.REJECT:
            self.review.status = ReviewStatus.REJECTED
            self._enter(REJECTED_STAGES[d.kind], f"holder restores: {self.route.en}")
        else:
            self.review.status = ReviewStatus.MORE_REQUESTED
            self.more_requested = d.more_requested
            self._enter(Stage.MORE_REQUESTED, f"holder provides: {d.more_requested}")
            await self._notify(
                "TEMPLATE_REMINDER",
                None,
                f"more-{d.review_id}",
                next_step=f"审核人员需要补充材料：{d.more_requested}（在App或营业厅提交）",
                next_step_en=f"the reviewer asks for: {d.more_requested} (send it in the app or at a hall)",
            )

    async def _fraud_confirmed(self, order: AuthorityOrder) -> None:
        """The police or the regulator confirmed fraud: the line is (or stays) suspended, scoring learns it, and
        a reviewer decides on termination (verification opens that review)."""
        assert self.case is not None
        self.fraud_confirmed = True
        if self.line_state != "LINE_STATE_SUSPENDED":
            await self._change("LINE_STATE_SUSPENDED", f"AUTHORITY_{order.authority.upper()}_CONFIRMED_FRAUD", "fraud")
        await self._record_outcome("OUTCOME_CONFIRMED_FRAUD")
        self._enter(Stage.FRAUD_CONFIRMED, "a reviewer decides whether the line is terminated")

    async def _await_warning_delivery(self, notification_id: str, deadline: datetime) -> None:
        """Follows the warning until it has an outcome or the grace window ends, and records it.

        Checks back on a doubling interval (1 s up to 10 min) rather than holding an activity open for a day, so
        the history stays small and nothing is in flight across the window.
        """
        delay = timedelta(seconds=1)
        while True:
            delivery: Delivery = await workflow.execute_activity_method(
                CaseActivities.get_delivery, notification_id, summary="has the warning reached the holder?", **CALL
            )
            left = deadline - workflow.now()
            if delivery.status != DeliveryStatus.PENDING or self.resolution is not None or left <= timedelta(0):
                break
            await self._wait_events(workflow.now() + min(delay, left), "check the warning's delivery again")
            delay = min(delay * 2, DELIVERY_CHECK_MAX)
        self._learned(delivery)
        workflow.upsert_search_attributes([temporal.ROAMING.value_set(delivery.roaming)])
        if delivery.status == DeliveryStatus.DELIVERED:
            self._enter(Stage.WARNING_DELIVERED, f"holder verifies by {deadline.isoformat()}")
        else:
            self._enter(
                Stage.WARNING_UNDELIVERED,
                "reach the holder in person (manual outreach); the line is at most restricted unless risk is extreme",
            )

    async def _restore(self) -> None:
        assert self.resolution is not None
        self.deadline = None
        self._enter(Stage.VERIFIED, "restore the line")
        await self._change("LINE_STATE_RESTORED", self.resolution.reason, "restore")
        await self._notify("TEMPLATE_RESTORED", None, "restored")
        if not self.fraud_confirmed:
            await self._record_outcome("OUTCOME_FALSE_POSITIVE")
        self._enter(Stage.RESTORED, "none: the line is back in service")

    async def _terminate(self) -> None:
        assert self.resolution is not None
        self.deadline = None
        await self._change("LINE_STATE_TERMINATED", self.resolution.reason, "terminate")
        self._enter(Stage.TERMINATED, "none: the line was terminated on a reviewer's decision")

    async def _record_outcome(self, outcome: str) -> None:
        assert self.case is not None
        await workflow.execute_activity_method(
            CaseActivities.record_outcome,
            OutcomeArgs(self._rid(f"outcome-{outcome}"), self.case.msisdn, workflow.info().workflow_id, outcome),
            summary=f"tell scoring: {outcome.removeprefix('OUTCOME_').lower().replace('_', ' ')}",
            **CALL,
        )

    async def _change(self, target: str, reason: str, step: str) -> None:
        """Moves the line; a restore or termination is made on the authority of whoever resolved the case."""
        assert self.case is not None
        by = self.resolution if step in ("restore", "terminate") and self.resolution else Resolution("", "")
        self.line_state = await workflow.execute_activity_method(
            CaseActivities.change_line_state,
            LineChange(
                self._rid(f"line-{step}"),
                self.case.msisdn,
                self.case.home_province,
                workflow.info().workflow_id,
                target,
                reason,
                by.actor_kind,
                by.actor_id,
            ),
            summary=f"line → {target.removeprefix('LINE_STATE_').lower()} ({reason})",
            **CALL,
        )

    async def _notify(
        self,
        template: str,
        deadline: str | None,
        step: str,
        pending_action: str = "",
        next_step: str = "",
        next_step_en: str = "",
    ) -> str:
        assert self.case is not None and self.assessment is not None
        nid = await workflow.execute_activity_method(
            CaseActivities.send_notification,
            NotifyArgs(
                request_id=self._rid(f"notify-{step}"),
                msisdn=self.case.msisdn,
                home_province=self.case.home_province,
                case_id=workflow.info().workflow_id,
                template=template,
                language=self.case.language,
                reasons=self.assessment.reasons,
                line_state=self.line_state,
                deadline=deadline,
                next_step_zh=next_step or self.route.zh,
                next_step_en=next_step_en or self.route.en,
                pending_action=pending_action,
            ),
            summary=f"notify holder: {template.removeprefix('TEMPLATE_').lower()}",
            **CALL,
        )
        self._noted(template, nid)
        return nid

"""Version 2 of the saga: one loop that acts on whatever is due next.

What it adds to the first version (which cases started before it keep running, see case_v1.py):
- a stronger assessment during the case moves it on: the holder is warned of the stronger action with its own
  grace, then it is applied; a weaker one changes nothing;
- no dead ends: after the verification window a case whose line is barred stays open (reminding the holder
  monthly, its history renewed by continue-as-new); only a line that is not barred closes, and every end tells
  scoring its outcome;
- a failure path: a step that fails for good parks the case in `needs_attention` (what failed, since when)
  until an operator retries or skips it, or resolves the case (restore, close);
- reviews: their time limit is watched as a deadline of its own, enforcement waits while an appeal is decided,
  a termination needs the four-eyes approval verification sends, and tells the holder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.case import (
        Action,
        Assessment,
        Attention,
        AuthorityOrder,
        CaseInput,
        CaseStatus,
        Delivery,
        DeliveryStatus,
        OperatorAction,
        OperatorChoice,
        OrderKind,
        ReviewDecided,
        ReviewDecision,
        ReviewKind,
        ReviewOpened,
        ReviewState,
        ReviewStatus,
        RiskLevel,
        Stage,
        StageEntry,
        VerificationPassed,
    )
    from pscommon import temporal
    from workflows.activities import CaseActivities, LineChange, NotifyArgs, OutcomeArgs, RouteText
    from workflows.policy import CasePolicy

from workflows.case_state import (
    DELIVERY_CHECK_MAX,
    ENFORCED_STATE,
    REJECTED_STAGES,
    REVIEW_STAGES,
    Call,
    CaseBase,
    Resolution,
)

T = TypeVar("T")
BARRED = {"LINE_STATE_RESTRICTED", "LINE_STATE_SUSPENDED"}
ENFORCED_ACTION = {
    "LINE_STATE_WARNED": Action.WARN,
    "LINE_STATE_RESTRICTED": Action.RESTRICT,
    "LINE_STATE_SUSPENDED": Action.SUSPEND,
}
CONSEQUENCE = {
    Action.WARN: "the case stays open",
    Action.RESTRICT: "outgoing calls are barred",
    Action.SUSPEND: "the line is suspended",
}
STEP_TIMEOUT = timedelta(seconds=30)
# Patch: the WarningDelivered search attribute, upserted with Roaming once a warning's delivery is known.
WARNING_DELIVERED_ATTRIBUTE = "warning-delivered-attribute"


@dataclass
class Escalation:
    """A new assessment from scoring, acted on in turn like any other event."""

    assessment: Assessment


class CaseResolved(Exception):
    """An operator resolved the case while a step waited for them."""


@dataclass
class CaseMemory:
    """What a case carries into its next run when its history is renewed (continue-as-new)."""

    policy: CasePolicy
    assessment: Assessment
    route: RouteText
    stage: Stage
    next_step: str
    line_state: str
    history: list[StageEntry]
    warning_delivery: Delivery | None
    review: ReviewState | None
    fraud_confirmed: bool
    more_requested: str
    window_end: str
    next_reminder: str
    enforce_at: str
    counters: dict[str, int] = field(default_factory=dict)
    notified: list[list[str]] = field(default_factory=list)  # CaseBase.notified, for the details' summary


class CaseV2(CaseBase):
    # ---- the loop ----------------------------------------------------------------------------------

    async def _run_v2(self, case: CaseInput, memory: CaseMemory | None) -> CaseStatus:
        self.case = case
        try:
            if memory is None:
                await self._v2_open(case)
            else:
                self._v2_resume(memory)
            while self.resolution is None:
                if self._v2_may_close():
                    await self._v2_close("the verification window ended; the line was never barred")
                    return self.status()
                await self._v2_wait(self._v2_next_due())
                await self._v2_tick()
                if self._v2_renew_history():
                    self.renewing = True  # waiting updates answer first: they would be lost with this run
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    workflow.continue_as_new(dataclasses.replace(case, resume=dataclasses.asdict(self._v2_memory())))
        except CaseResolved:
            if self.resolution is None:
                await self._v2_close("an operator closed the case")
                return self.status()
        assert self.resolution is not None
        if self.resolution.action == "terminate":
            await self._v2_terminate()
        elif self.resolution.action == "close":
            await self._v2_close(self.resolution.reason)
        else:
            await self._v2_restore()
        return self.status()

    async def _v2_open(self, case: CaseInput) -> None:
        self.assessment = self.assessment or case.assessment
        self.policy = await self._act(
            "load the case policy",
            lambda: workflow.execute_activity_method(
                CaseActivities.load_case_policy, summary="load the case policy", **self._call()
            ),
        )
        # Assessments that arrive before the first warning (the rest of one CDR batch) make that one warning.
        routed: RiskLevel | None = None
        while routed != self.assessment.risk_level:
            self._v2_absorb_escalations()
            routed = self.assessment.risk_level
            await self._v2_route()
            self._v2_absorb_escalations()
        if self.assessment.risk_level != case.assessment.risk_level:
            workflow.upsert_search_attributes([temporal.RISK_LEVEL.value_set(self.assessment.risk_level)])
        await self._v2_change("LINE_STATE_WARNED", f"RISK_{self.assessment.risk_level.upper()}", "warn")
        await self._v2_warn(first=True)

    def _v2_absorb_escalations(self) -> None:
        assert self.assessment is not None
        for ev in [e for e in self.inbox if isinstance(e, Escalation)]:
            self.assessment = _stronger_of(self.assessment, ev.assessment)
            self.inbox.remove(ev)

    def _v2_resume(self, m: CaseMemory) -> None:
        self.policy, self.assessment, self.route = m.policy, m.assessment, m.route
        self.stage, self.next_step, self.line_state, self.history = m.stage, m.next_step, m.line_state, m.history
        self.warning_delivery, self.review, self.fraud_confirmed = m.warning_delivery, m.review, m.fraud_confirmed
        self.more_requested, self.counters, self.notified = m.more_requested, m.counters, m.notified
        self.window_end = datetime.fromisoformat(m.window_end) if m.window_end else None
        self.next_reminder = datetime.fromisoformat(m.next_reminder) if m.next_reminder else None
        self.enforce_at = datetime.fromisoformat(m.enforce_at) if m.enforce_at else None
        workflow.set_current_details(self._details())

    def _v2_memory(self) -> CaseMemory:
        assert self.policy is not None and self.assessment is not None
        return CaseMemory(
            self.policy,
            self.assessment,
            self.route,
            self.stage,
            self.next_step,
            self.line_state,
            self.history[-200:],
            self.warning_delivery,
            self.review,
            self.fraud_confirmed,
            self.more_requested,
            self.window_end.isoformat() if self.window_end else "",
            self.next_reminder.isoformat() if self.next_reminder else "",
            self.enforce_at.isoformat() if self.enforce_at else "",
            dict(self.counters),
            [list(row) for row in self.notified[-500:]],
        )

    def _v2_renew_history(self) -> bool:
        assert self.policy is not None
        info = workflow.info()
        long = info.get_current_history_length() > self.policy.continue_after_events
        return (long or info.is_continue_as_new_suggested()) and not self.inbox and self.following is None

    def _v2_may_close(self) -> bool:
        """After the window, a case closes only if the line is not barred and nobody is deciding anything."""
        return (
            self.window_end is not None
            and workflow.now() >= self.window_end
            and self.line_state not in BARRED
            and self._waiting_review() is None
            and self.enforce_at is None
            and not self.inbox
        )

    def _v2_next_due(self) -> datetime:
        due = [self.window_end] if self.window_end is not None and workflow.now() < self.window_end else []
        if self.next_reminder is not None:
            due.append(self.next_reminder)
        if self.enforce_at is not None:
            due.append(self.enforce_at)
        if self.following is not None:
            due.append(self.following[1])
        review = self._waiting_review()
        if review is not None and not review.escalated:
            due.append(datetime.fromisoformat(review.due))
        return min(due) if due else workflow.now() + timedelta(days=30)

    async def _v2_wait(self, until: datetime) -> None:
        left = until - workflow.now()
        if self.inbox or left <= timedelta(0):
            return
        try:
            await workflow.wait_condition(lambda: bool(self.inbox), timeout=left, timeout_summary=self._v2_waiting())
        except TimeoutError:
            pass

    def _v2_waiting(self) -> str:
        if self._waiting_review() is not None:
            return "wait for the reviewer (or the review's time limit)"
        if self.enforce_at is not None:
            return f"grace before '{self.assessment.action if self.assessment else ''}'"
        return "wait for verification, a review or an authority"

    async def _v2_tick(self) -> None:
        """Acts on every event that arrived, then on whatever is due."""
        while self.inbox and self.resolution is None:
            await self._v2_handle(self.inbox.pop(0))
        if self.resolution is not None:
            return
        now = workflow.now()
        if self.following is not None and now >= self.following[1]:
            await self._v2_follow_delivery()
        review = self._waiting_review()
        if review is not None and not review.escalated and now >= datetime.fromisoformat(review.due):
            await self._v2_escalate_review(review)
        if self.enforce_at is not None and now >= self.enforce_at:
            await self._v2_enforce()
        if self.next_reminder is not None and now >= self.next_reminder:
            await self._v2_remind()

    # ---- events -------------------------------------------------------------------------------------

    async def _v2_handle(self, ev: object) -> None:
        if isinstance(ev, VerificationPassed):
            self.resolution = Resolution("restore", f"VERIFIED_{ev.route.upper()}")
        elif isinstance(ev, ReviewOpened):
            due = workflow.now() + timedelta(seconds=ev.sla_s)
            self.review = ReviewState(ev.review_id, ev.kind, due.isoformat())
            self.more_requested = ""
            self.deadline = due
            self._enter(REVIEW_STAGES[ev.kind], f"a reviewer decides by {due.isoformat()}")
        elif isinstance(ev, ReviewDecided):
            await self._v2_decided(ev)
        elif isinstance(ev, AuthorityOrder) and ev.order == OrderKind.RESTORE:
            self.resolution = Resolution(
                "restore", f"AUTHORITY_{ev.authority.upper()}_RESTORE", ev.authority, ev.order_ref
            )
        elif isinstance(ev, AuthorityOrder):
            await self._v2_fraud_confirmed(ev)
        elif isinstance(ev, Escalation):
            await self._v2_escalate(ev.assessment)
        elif isinstance(ev, OperatorAction):
            self._v2_operator(ev)

    def _v2_operator(self, act: OperatorAction) -> None:
        """An operator acts only on a step waiting for them, with one of the choices it offers."""
        if not self.operator_waiting or self.attention is None or act.action not in self.attention.choices:
            workflow.logger.warning("operator %s: not a choice the case offers now; ignored", act.action)
        elif act.action == OperatorChoice.RESTORE:
            self.resolution = Resolution("restore", "OPERATOR_RESTORE", "operator", act.by)
        elif act.action == OperatorChoice.CLOSE:
            self.resolution = Resolution("close", "an operator closed the case", "operator", act.by)
        else:
            self.pending_choice = act

    async def _v2_escalate(self, new: Assessment) -> None:
        """A stronger action is warned of with its own grace, then applied; a higher risk with the same action
        can still tighten the enforcement (an extreme risk is suspended even when the warning did not land)."""
        assert self.assessment is not None and self.policy is not None
        old = self.assessment
        stronger = new.action.stronger(old.action)
        riskier = _rank(new.risk_level) > _rank(old.risk_level)
        if not stronger and not riskier:
            return
        self.assessment = _stronger_of(old, new)
        workflow.upsert_search_attributes([temporal.RISK_LEVEL.value_set(self.assessment.risk_level)])
        if riskier:
            await self._v2_route()
        enforced = ENFORCED_ACTION.get(self.line_state, Action.NONE)
        if stronger and self.assessment.action.stronger(enforced) and not self.fraud_confirmed:
            await self._v2_warn(first=False)
        elif (
            self.assessment.risk_level == RiskLevel.EXTREME
            and self.assessment.action == Action.SUSPEND
            and self.line_state == "LINE_STATE_RESTRICTED"
        ):
            await self._v2_enforce()  # the undelivered-warning exception no longer holds
        else:
            workflow.set_current_details(self._details())

    async def _v2_decided(self, d: ReviewDecided) -> None:
        if self.review is None or self.review.review_id != d.review_id:
            workflow.logger.warning("decision for a review this case is not waiting on; ignored")
            return
        if d.decision == ReviewDecision.APPROVE:
            self.review.status = ReviewStatus.APPROVED
            kind = "terminate" if d.kind == ReviewKind.TERMINATION else "restore"
            reason = "REVIEWER_CONFIRMED_TERMINATION" if kind == "terminate" else f"REVIEW_APPROVED_{d.kind.upper()}"
            self.resolution = Resolution(kind, reason, "reviewer", d.reviewer_id)
            return
        if d.decision == ReviewDecision.REJECT:
            if self.enforce_at == datetime.fromisoformat(self.review.due):
                self.enforce_at = workflow.now()  # enforcement waited for this appeal: it goes ahead now
            self.review.status = ReviewStatus.REJECTED
            self.deadline = self.window_end
            self._enter(REJECTED_STAGES[d.kind], f"holder restores: {self.route.en}")
            return
        self.review.status = ReviewStatus.MORE_REQUESTED
        self.more_requested = d.more_requested
        self._enter(Stage.MORE_REQUESTED, f"holder provides: {d.more_requested}")
        await self._v2_notify(
            "TEMPLATE_REMINDER",
            None,
            self._step(f"more-{d.review_id}"),
            next_step=f"审核人员需要补充材料：{d.more_requested}（在App或营业厅提交）",
            next_step_en=f"the reviewer asks for: {d.more_requested} (send it in the app or at a hall)",
        )

    async def _v2_fraud_confirmed(self, order: AuthorityOrder) -> None:
        """The police or the regulator confirmed fraud: the line is suspended at once, scoring learns it, and a
        reviewer decides on termination (verification opens that review)."""
        self.fraud_confirmed = True
        self.enforce_at = None
        self.following = None
        if self.line_state != "LINE_STATE_SUSPENDED":
            await self._v2_change(
                "LINE_STATE_SUSPENDED", f"AUTHORITY_{order.authority.upper()}_CONFIRMED_FRAUD", "fraud"
            )
        await self._v2_outcome("OUTCOME_CONFIRMED_FRAUD")
        self._enter(Stage.FRAUD_CONFIRMED, "a reviewer decides whether the line is terminated")

    # ---- what is due ------------------------------------------------------------------------------

    async def _v2_warn(self, first: bool) -> None:
        """Warns the holder of the action pending with its grace, and follows the warning's delivery."""
        assert self.assessment is not None and self.policy is not None
        action = self.assessment.action
        grace = timedelta(seconds=self.policy.grace_s.get(action, self.policy.grace_s.get("warn", 86400)))
        deadline = workflow.now() + grace
        if self.enforce_at is not None:
            deadline = min(deadline, self.enforce_at)  # a stronger action never waits longer than the weaker one
        self.enforce_at = deadline
        self.deadline = deadline
        step = self._step("warning")
        nid = await self._v2_notify(
            "TEMPLATE_WARNING", deadline.isoformat(), step, action if action in ENFORCED_STATE else ""
        )
        # A warning an operator skipped (sent another way) has no delivery to follow.
        self.following = (nid, workflow.now() + timedelta(seconds=1), timedelta(seconds=1)) if nid else None
        stage = Stage.WARNED if first else Stage.ESCALATED
        self._enter(stage, f"holder verifies by {deadline.isoformat()}; otherwise {CONSEQUENCE.get(action, '')}")

    async def _v2_follow_delivery(self) -> None:
        assert self.following is not None
        nid, _, delay = self.following
        delivery: Delivery = await self._act(
            "has the warning reached the holder?",
            lambda: workflow.execute_activity_method(
                CaseActivities.get_delivery, nid, summary="has the warning reached the holder?", **self._call()
            ),
        )
        grace_over = self.enforce_at is None or workflow.now() >= self.enforce_at
        if delivery.status == DeliveryStatus.PENDING and not grace_over:
            delay = min(delay * 2, DELIVERY_CHECK_MAX)
            self.following = (nid, workflow.now() + delay, delay)
            return
        self.following = None
        self._learned(delivery)
        attributes: list[SearchAttributeUpdate[Any]] = [temporal.ROAMING.value_set(delivery.roaming)]
        if workflow.patched(WARNING_DELIVERED_ATTRIBUTE):
            reached = delivery.status == DeliveryStatus.DELIVERED
            attributes.append(temporal.WARNING_DELIVERED.value_set(reached))
        workflow.upsert_search_attributes(attributes)
        if self.stage in (Stage.WARNED, Stage.ESCALATED):
            if delivery.status == DeliveryStatus.DELIVERED:
                self._enter(Stage.WARNING_DELIVERED, self.next_step)
            else:
                self._enter(
                    Stage.WARNING_UNDELIVERED,
                    "reach the holder in person (manual outreach); the line is at most restricted unless risk is"
                    " extreme",
                )
        else:
            workflow.set_current_details(self._details())

    async def _v2_enforce(self) -> None:
        """The grace ended without verification: apply the action, unless a reviewer is deciding an appeal (the
        holder is heard first) or risk is extreme. The verification window and the reminders start now."""
        assert self.assessment is not None and self.policy is not None
        if self.window_end is None:
            self.window_end = workflow.now() + timedelta(seconds=self.policy.verification_window_s)
            self.next_reminder = workflow.now() + timedelta(seconds=self.policy.reminder_every_s)
        if self.following is not None:
            await self._v2_follow_delivery()  # the warning's last word before deciding how hard to bar
        review = self._waiting_review()
        extreme = self.assessment.risk_level == RiskLevel.EXTREME
        if review is not None and review.kind == ReviewKind.APPEAL and not extreme:
            due = datetime.fromisoformat(review.due)
            if workflow.now() < due:
                self.enforce_at = due  # looked at again when the review has an answer, or at its time limit
                return
        self.enforce_at = None
        action = self.assessment.action
        reason = f"UNVERIFIED_AFTER_WARNING_{action.upper()}"
        if action == Action.SUSPEND and not self._warned() and not extreme:
            # The holder may never have seen the warning (abroad, handset off): keep incoming SMS and data so
            # the verification link still arrives, and only bar calling out.
            action, reason = Action.RESTRICT, "WARNING_UNDELIVERED_RESTRICT_ONLY"
        if action not in ENFORCED_STATE or not action.stronger(ENFORCED_ACTION.get(self.line_state, Action.NONE)):
            return
        self.following = None
        self.deadline = self.window_end
        await self._v2_change(ENFORCED_STATE[action], reason, action)
        await self._v2_notify("TEMPLATE_SUSPENDED", None, action)
        stage = Stage.RESTRICTED if action == Action.RESTRICT else Stage.SUSPENDED
        self._enter(stage, f"holder restores: {self.route.en}")

    async def _v2_remind(self) -> None:
        """Reminds the holder while they have something to do; after the window, at the dormant pace."""
        assert self.policy is not None and self.window_end is not None
        now = workflow.now()
        after_window = now >= self.window_end
        every = self.policy.dormant_reminder_every_s if after_window else self.policy.reminder_every_s
        self.next_reminder = now + timedelta(seconds=every)
        if self._waiting_review() is not None or self.fraud_confirmed:
            return  # nothing is asked of the holder while a reviewer or an authority decides
        deadline = None if after_window else self.window_end.isoformat()
        await self._v2_notify("TEMPLATE_REMINDER", deadline, f"reminder-{self._count('reminder')}")
        if after_window and self.stage != Stage.NEEDS_ATTENTION:
            self.next_step = f"the holder can restore at any time: {self.route.en}"
            workflow.set_current_details(self._details())

    async def _v2_escalate_review(self, review: ReviewState) -> None:
        await self._act(
            "escalate the review",
            lambda: workflow.execute_activity_method(
                CaseActivities.escalate_review,
                args=[self._rid(self._step(f"escalate-{review.review_id}")), review.review_id],
                summary="the review's time limit ran out: escalate it",
                **self._call(),
            ),
        )
        review.escalated = True
        self._enter(Stage.REVIEW_ESCALATED, "a senior reviewer decides; the review is at the top of the queue")

    # ---- the end ----------------------------------------------------------------------------------------

    async def _v2_restore(self) -> None:
        assert self.resolution is not None
        self.deadline = None
        self._enter(Stage.VERIFIED, "restore the line")
        if self.line_state != "LINE_STATE_RESTORED":
            await self._v2_change("LINE_STATE_RESTORED", self.resolution.reason, "restore")
        await self._v2_notify("TEMPLATE_RESTORED", None, "restored")
        if not self.fraud_confirmed:
            await self._v2_outcome("OUTCOME_FALSE_POSITIVE")
        self._enter(Stage.RESTORED, "none: the line is back in service")

    async def _v2_terminate(self) -> None:
        assert self.resolution is not None
        self.deadline = None
        await self._v2_change("LINE_STATE_TERMINATED", self.resolution.reason, "terminate")
        await self._v2_notify(
            "TEMPLATE_TERMINATED",
            None,
            "terminated",
            next_step="联系办案单位",
            next_step_en="contact the authority that confirmed the fraud",
        )
        if not self.fraud_confirmed:  # told already when the authority confirmed it
            await self._v2_outcome("OUTCOME_CONFIRMED_FRAUD")
        self._enter(Stage.TERMINATED, "none: the line was terminated on two reviewers' decision")

    async def _v2_close(self, why: str) -> None:
        self.deadline = None
        await self._v2_outcome("OUTCOME_CLOSED_UNVERIFIED")
        self._enter(Stage.CLOSED_UNVERIFIED, f"{why}; the line stays as it is")

    # ---- steps: each an activity, bounded retries, then an operator --------------------------------------

    def _call(self) -> Call:
        attempts = self.policy.step_attempts if self.policy else 10
        retry = RetryPolicy(
            initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1), maximum_attempts=attempts
        )
        return Call(start_to_close_timeout=STEP_TIMEOUT, retry_policy=retry)

    async def _act(self, step: str, call: Callable[[], Awaitable[T]], skipped: T | None = None) -> T:
        """Runs a step; when it fails for good, the case waits in needs_attention for an operator: retry (run it
        again), skip (go on with `skipped`, where a step may be skipped), or restore/close (resolve the case)."""
        while True:
            try:
                return await call()
            except ActivityError as err:
                cause = err.cause
                error = f"{cause.type}: {cause.message}" if isinstance(cause, ApplicationError) else str(cause)
                choice = await self._v2_attention(step, error, skippable=skipped is not None)
                if choice == OperatorChoice.SKIP and skipped is not None:
                    return skipped

    async def _v2_attention(self, step: str, error: str, skippable: bool) -> OperatorChoice:
        before = (self.stage, self.next_step)
        choices = [OperatorChoice.RETRY] + ([OperatorChoice.SKIP] if skippable else [])
        if self.resolution is None:
            choices.append(OperatorChoice.RESTORE)
            if self.line_state not in BARRED:  # closing a barred line would leave the holder no way back
                choices.append(OperatorChoice.CLOSE)
        self.attention = Attention(step, error[:500], workflow.now().isoformat(), self.stage, choices)
        self._enter(Stage.NEEDS_ATTENTION, f"an operator retries or skips '{step}', or resolves the case")
        self.operator_waiting = True
        ending = self.resolution is not None  # a step of the end failed: only a retry or a skip helps
        try:
            while True:
                await workflow.wait_condition(lambda: bool(self.inbox) or self.pending_choice is not None)
                while self.inbox and self.pending_choice is None and (ending or self.resolution is None):
                    ev = self.inbox.pop(0)
                    if isinstance(ev, OperatorAction):
                        self._v2_operator(ev)
                    else:
                        self.parked.append(ev)  # acted on once the step is through
                if not ending and self.resolution is not None:
                    raise CaseResolved()
                if self.pending_choice is not None:
                    choice = self.pending_choice.action
                    self.pending_choice = None
                    break
        finally:
            self.operator_waiting = False
            self.inbox[:0] = self.parked
            self.parked = []
        self.attention = None
        self._enter(before[0], before[1])
        return choice

    async def _v2_route(self) -> None:
        assert self.assessment is not None and self.case is not None
        level = self.assessment.risk_level
        self.route = await self._act(
            "how the holder restores",
            lambda: workflow.execute_activity_method(
                CaseActivities.restore_route,
                args=[level, self.case.msisdn if self.case else ""],
                summary=f"how a {level}-risk holder restores",
                **self._call(),
            ),
        )

    async def _v2_change(self, target: str, reason: str, step: str) -> None:
        assert self.case is not None
        by = self.resolution if step in ("restore", "terminate") and self.resolution else Resolution("", "")
        change = LineChange(
            self._rid(f"line-{step}"),
            self.case.msisdn,
            self.case.home_province,
            workflow.info().workflow_id,
            target,
            reason,
            by.actor_kind,
            by.actor_id,
        )
        self.line_state = await self._act(
            f"line → {target.removeprefix('LINE_STATE_').lower()}",
            lambda: workflow.execute_activity_method(
                CaseActivities.change_line_state,
                change,
                summary=f"line → {target.removeprefix('LINE_STATE_').lower()} ({reason})",
                **self._call(),
            ),
        )

    async def _v2_notify(
        self,
        template: str,
        deadline: str | None,
        step: str,
        pending_action: str = "",
        next_step: str = "",
        next_step_en: str = "",
    ) -> str:
        assert self.case is not None and self.assessment is not None
        args = NotifyArgs(
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
        )
        what = template.removeprefix("TEMPLATE_").lower()
        nid = await self._act(
            f"notify holder: {what}",
            lambda: workflow.execute_activity_method(
                CaseActivities.send_notification, args, summary=f"notify holder: {what}", **self._call()
            ),
            skipped="",
        )
        self._noted(template, nid)
        return nid

    async def _v2_outcome(self, outcome: str) -> None:
        assert self.case is not None
        args = OutcomeArgs(self._rid(f"outcome-{outcome}"), self.case.msisdn, workflow.info().workflow_id, outcome)
        await self._act(
            f"tell scoring: {outcome}",
            lambda: workflow.execute_activity_method(
                CaseActivities.record_outcome,
                args,
                summary=f"tell scoring: {outcome.removeprefix('OUTCOME_').lower().replace('_', ' ')}",
                **self._call(),
            ),
        )

    def _count(self, key: str) -> int:
        """1, 2, 3 ... per key: request ids of repeated steps never repeat."""
        self.counters[key] = self.counters.get(key, 0) + 1
        return self.counters[key]

    def _step(self, key: str) -> str:
        """The step's id: `key` the first time, then key-2, key-3 ... (request ids never repeat)."""
        n = self._count(key)
        return key if n == 1 else f"{key}-{n}"


def _rank(level: RiskLevel) -> int:
    return list(RiskLevel).index(level)


def _stronger_of(old: Assessment, new: Assessment) -> Assessment:
    """The new assessment, keeping the old action when the new one is weaker (risk never lowers the action)."""
    return (
        new
        if new.action.stronger(old.action) or new.action == old.action
        else dataclasses.replace(new, action=old.action)
    )

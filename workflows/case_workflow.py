"""The protective-suspension case: warn, wait, restrict or suspend, verify, restore, feed back."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pscommon import temporal
    from workflows.activities import CaseActivities, LineChange, NotifyArgs, OutcomeArgs, RouteText
    from workflows.contracts import (
        QUERY_STATUS,
        SIGNAL_ASSESSMENT,
        SIGNAL_VERIFIED,
        UPDATE_WAIT_STAGE,
        WORKFLOW_NAME,
        Assessment,
        CaseInput,
        CaseStatus,
        Delivery,
        StageEntry,
        VerificationPassed,
    )
    from workflows.policy import CasePolicy

ACTIONS = ("none", "warn", "restrict", "suspend")
ENFORCED_STATE = {"restrict": "LINE_STATE_RESTRICTED", "suspend": "LINE_STATE_SUSPENDED"}
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
CALL = {"start_to_close_timeout": timedelta(seconds=30), "retry_policy": RETRY}
DELIVERY_CHECK_MAX = timedelta(minutes=10)


@workflow.defn(name=WORKFLOW_NAME)
class ProtectiveSuspensionCase:
    def __init__(self) -> None:
        self.case: CaseInput | None = None
        self.assessment: Assessment | None = None
        self.stage = "opened"
        self.next_step = "assess"
        self.line_state = "LINE_STATE_ACTIVE"
        self.verified: VerificationPassed | None = None
        self.history: list[StageEntry] = []
        self.notifications: list[str] = []
        self.route = RouteText("", "")
        self.warning_delivery: Delivery | None = None

    # ---- what operators and callers see -------------------------------------------------------

    @workflow.query(name=QUERY_STATUS)
    def status(self) -> CaseStatus:
        return CaseStatus(
            stage=self.stage,
            next_step=self.next_step,
            line_state=self.line_state,
            risk_level=self.assessment.risk_level if self.assessment else "",
            history=list(self.history),
            warning_delivery=self.warning_delivery,
        )

    @workflow.update(name=UPDATE_WAIT_STAGE)
    async def wait_for_stage(self, stage: str) -> CaseStatus:
        """Returns once the case has reached `stage` (at once if it already has)."""
        await workflow.wait_condition(lambda: any(h.stage == stage for h in self.history))
        return self.status()

    @workflow.signal(name=SIGNAL_VERIFIED)
    def verification_passed(self, passed: VerificationPassed) -> None:
        if self.verified is None:
            self.verified = passed

    @workflow.signal(name=SIGNAL_ASSESSMENT)
    def new_assessment(self, assessment: Assessment) -> None:
        if self.assessment is None or ACTIONS.index(assessment.action) > ACTIONS.index(self.assessment.action):
            self.assessment = assessment
            workflow.upsert_search_attributes([temporal.RISK_LEVEL.value_set(assessment.risk_level)])
            if self.case is not None:
                workflow.set_current_details(self._details())

    def _enter(self, stage: str, next_step: str) -> None:
        self.stage, self.next_step = stage, next_step
        self.history.append(StageEntry(stage, workflow.now().isoformat()))
        workflow.upsert_search_attributes([temporal.CASE_STAGE.value_set(stage)])
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        assert self.case is not None and self.assessment is not None
        a = self.assessment
        rows = "\n".join(f"| {h.stage} | {h.at} |" for h in self.history)
        reasons = "\n".join(f"- {r.text_en} / {r.text_zh}" for r in a.reasons)
        notes = ", ".join(f"`{n}`" for n in self.notifications) or "none yet"
        return (
            f"### {self.case.masked_msisdn} · {a.risk_level} risk → {a.action}\n\n"
            f"**Stage** {self.stage} · **line** {self.line_state.removeprefix('LINE_STATE_').lower()} · "
            f"**next** {self.next_step}\n\n**Reasons**\n{reasons}\n\n"
            f"| stage | at |\n|---|---|\n{rows}\n\n"
            f"{self._delivery_details()}"
            f"**Notifications** {notes}\n\n**Trace** `{self.case.trace_id}`"
        )

    def _delivery_details(self) -> str:
        d = self.warning_delivery
        if d is None:
            return ""
        where = {"roaming_international": f"roaming abroad ({d.country})", "roaming_domestic": "roaming in China"}
        place = where.get(d.location, d.location or "location unknown")
        if d.status == "delivered":
            head = f"delivered by **{d.channel}** at {d.at}"
        elif d.status == "failed":
            head = "**not delivered** by any channel: marked for manual outreach"
        else:
            head = "**no delivery outcome** within the grace window"
        rows = "\n".join(
            f"| {i} | {x.channel} | {x.outcome} | {x.error_class or '-'} | {x.at} | {x.detail} |"
            for i, x in enumerate(d.attempts, 1)
        )
        return (
            f"**Warning** {head}; handset {place}\n\n"
            f"| # | channel | outcome | error class | at | detail |\n|---|---|---|---|---|---|\n{rows}\n\n"
        )

    # ---- the saga ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, case: CaseInput) -> CaseStatus:
        self.case = case
        if self.assessment is None:
            self.assessment = case.assessment
        policy: CasePolicy = await workflow.execute_activity_method(
            CaseActivities.load_case_policy, summary="load the case policy", **CALL
        )
        self.route = await workflow.execute_activity_method(
            CaseActivities.restore_route,
            self.assessment.risk_level,
            summary=f"how a {self.assessment.risk_level}-risk holder restores",
            **CALL,
        )
        action = self.assessment.action
        grace = timedelta(seconds=policy.grace_s[action])
        deadline = workflow.now() + grace

        await self._change("LINE_STATE_WARNED", f"RISK_{self.assessment.risk_level.upper()}", "warn")
        warning = await self._notify(
            "TEMPLATE_WARNING", deadline.isoformat(), "warning", action if action in ENFORCED_STATE else ""
        )
        consequence = {
            "warn": "the case stays open",
            "restrict": "outgoing calls are barred",
            "suspend": "the line is suspended",
        }[action]
        self._enter("warned", f"holder verifies by {deadline.isoformat()}; otherwise {consequence}")
        await self._await_warning_delivery(warning, deadline)

        if not await self._wait_verified(deadline - workflow.now(), f"grace window ({grace}) before '{action}'"):
            action = self.assessment.action  # scoring may have escalated meanwhile
            reason = f"UNVERIFIED_AFTER_WARNING_{action.upper()}"
            if action == "suspend" and not self._warned() and self.assessment.risk_level != "extreme":
                # The holder may never have seen the warning (abroad, handset off): keep incoming SMS and data
                # so the verification link still arrives, and only bar calling out.
                action, reason = "restrict", "WARNING_UNDELIVERED_RESTRICT_ONLY"
            if action in ENFORCED_STATE:
                await self._change(ENFORCED_STATE[action], reason, action)
                await self._notify("TEMPLATE_SUSPENDED", None, action)
                self._enter(
                    "restricted" if action == "restrict" else "suspended",
                    f"holder restores: {self.route.en}",
                )
            window_end = workflow.now() + timedelta(seconds=policy.verification_window_s)
            reminder = 0
            while not self.verified and workflow.now() < window_end:
                wait = min(timedelta(seconds=policy.reminder_every_s), window_end - workflow.now())
                if await self._wait_verified(wait, f"wait for verification; reminder #{reminder + 1} after"):
                    break
                if workflow.now() < window_end:
                    reminder += 1
                    await self._notify("TEMPLATE_REMINDER", window_end.isoformat(), f"reminder-{reminder}")

        if self.verified is None:
            self._enter("closed_unverified", "line stays as it is; the holder can still restore in person")
            return self.status()
        await self._restore()
        return self.status()

    def _warned(self) -> bool:
        return self.warning_delivery is not None and self.warning_delivery.status == "delivered"

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
            if delivery.status != "pending" or self.verified is not None or left <= timedelta(0):
                break
            await self._wait_verified(min(delay, left), "check the warning's delivery again")
            delay = min(delay * 2, DELIVERY_CHECK_MAX)
        self.warning_delivery = delivery
        workflow.upsert_search_attributes([temporal.ROAMING.value_set(delivery.roaming)])
        if delivery.status == "delivered":
            self._enter("warning_delivered", f"holder verifies by {deadline.isoformat()}")
        else:
            self._enter(
                "warning_undelivered",
                "reach the holder in person (manual outreach); the line is at most restricted unless risk is extreme",
            )

    async def _wait_verified(self, timeout: timedelta, summary: str) -> bool:
        if timeout <= timedelta(0):
            return self.verified is not None
        try:
            await workflow.wait_condition(lambda: self.verified is not None, timeout=timeout, timeout_summary=summary)
        except TimeoutError:
            return False
        return True

    async def _restore(self) -> None:
        assert self.verified is not None
        self._enter("verified", "restore the line")
        await self._change("LINE_STATE_RESTORED", f"VERIFIED_{self.verified.route.upper()}", "restore")
        await self._notify("TEMPLATE_RESTORED", None, "restored")
        assert self.case is not None
        await workflow.execute_activity_method(
            CaseActivities.record_outcome,
            OutcomeArgs(self._rid("outcome"), self.case.msisdn, workflow.info().workflow_id, "OUTCOME_FALSE_POSITIVE"),
            summary="tell scoring: false positive",
            **CALL,
        )
        self._enter("restored", "none: the line is back in service")

    def _rid(self, step: str) -> str:
        return f"{workflow.info().workflow_id}:{step}"

    async def _change(self, target: str, reason: str, step: str) -> None:
        assert self.case is not None
        self.line_state = await workflow.execute_activity_method(
            CaseActivities.change_line_state,
            LineChange(
                self._rid(f"line-{step}"),
                self.case.msisdn,
                self.case.home_province,
                workflow.info().workflow_id,
                target,
                reason,
            ),
            summary=f"line → {target.removeprefix('LINE_STATE_').lower()} ({reason})",
            **CALL,
        )

    async def _notify(self, template: str, deadline: str | None, step: str, pending_action: str = "") -> str:
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
                next_step_zh=self.route.zh,
                next_step_en=self.route.en,
                pending_action=pending_action,
            ),
            summary=f"notify holder: {template.removeprefix('TEMPLATE_').lower()}",
            **CALL,
        )
        self.notifications.append(nid)
        return nid

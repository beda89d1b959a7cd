"""Each branch of the case workflow (version 2, which new cases run), against fake activities on Temporal's
time-skipping server.

A test asserts what the case went through (the stages in its `status` history), what it asked of the carrier
(line state changes with reason and actor, notifications with template and request id, outcomes told to scoring,
reviews escalated) and where it stopped. Times come from the small policy in fakes.py: grace 6 h (warn), 4 h
(restrict), 2 h (suspend); a reminder every 24 h; a 3-day verification window. With PSP_RECORD_HISTORIES=1 each
test writes its case's history, as it stands at the end of the test, to histories/<test name>.json.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timedelta

import pytest

from pscommon import temporal
from tests.workflow.fakes import (
    MSISDN,
    SIGNAL_ASSESSMENT,
    SIGNAL_AUTHORITY_ORDER,
    SIGNAL_OPERATOR,
    SIGNAL_REVIEW_DECIDED,
    SIGNAL_REVIEW_OPENED,
    SIGNAL_VERIFIED,
    Attention,
    AuthorityOrder,
    CaseStatus,
    FakeCarrier,
    LineMove,
    OperatorAction,
    OperatorChoice,
    ReviewDecided,
    ReviewOpened,
    RouteText,
    VerificationPassed,
    assessment,
    case_input,
    delivered,
    failed,
    pending,
    small_policy,
)
from tests.workflow.harness import Case, Cases

CASE = ("workflow", "protective-suspension-case")  # the actor of every change the case makes on its own
SLA_S = 48 * 3600
IN_PERSON = RouteText("请本人携带身份证到营业厅办理", "bring your ID card to a business hall", "in_person")


def steps(case: Case) -> list[str]:
    """The notifications' request ids without the case id: the idempotency keys a refactor must keep."""
    prefix = f"{case.handle.id}:"
    assert all(n.request_id.startswith(prefix) for n in case.carrier.notifications)
    return [n.request_id.removeprefix(prefix) for n in case.carrier.notifications]


def assert_table_row(markdown: str, cells: list[str]) -> None:
    rows = [
        [c.strip(" \u00a0") for c in line.strip("|").split("|")] for line in markdown.splitlines() if line[:1] == "|"
    ]
    assert cells in rows, rows


def warned(risk: str) -> LineMove:
    return LineMove("LINE_STATE_WARNED", f"RISK_{risk.upper()}", *CASE)


async def restricted_case(cases: Cases, carrier: FakeCarrier | None = None) -> Case:
    """A high-risk 'restrict' case whose 4-hour grace ran out: the line is restricted."""
    case = await cases.start(carrier or FakeCarrier(), case_input("high", "restrict"))
    await case.reach("warned")
    await case.skip(hours=5)
    await case.reach("restricted")
    return case


# ---- the grace window -------------------------------------------------------------------------


async def test_verified_during_grace_restores_as_false_positive(cases: Cases) -> None:
    case = await cases.start(FakeCarrier(), case_input("medium", "restrict"))
    st = await case.reach("warning_delivered")
    assert st.line_state == "LINE_STATE_WARNED" and st.risk_level == "medium" and st.route == "online"
    assert st.masked_msisdn == "199****0001" and st.home_province == "44"
    assert st.warning_delivery is not None and st.warning_delivery.status == "delivered"
    # The 4-hour grace counts from before the line was warned (the deadline is set first, then the line moves).
    grace_left = datetime.fromisoformat(st.deadline) - datetime.fromisoformat(st.history[0].at)
    assert timedelta(hours=4) - timedelta(minutes=1) < grace_left <= timedelta(hours=4)

    await case.signal(SIGNAL_VERIFIED, VerificationPassed("ver-1", "online", "verification-policy-1"))
    done = await case.result()

    assert [h.stage for h in done.history] == ["warned", "warning_delivered", "verified", "restored"]
    assert done.line_state == "LINE_STATE_RESTORED" and done.deadline == ""
    assert case.carrier.moves() == [warned("medium"), LineMove("LINE_STATE_RESTORED", "VERIFIED_ONLINE", *CASE)]
    assert case.carrier.templates() == ["TEMPLATE_WARNING", "TEMPLATE_RESTORED"]
    assert steps(case) == ["notify-warning", "notify-restored"]
    warning = case.carrier.notifications[0]
    assert warning.pending_action == "restrict" and warning.deadline == st.deadline
    assert warning.msisdn == MSISDN and warning.line_state == "LINE_STATE_WARNED"
    assert case.carrier.outcome_names() == ["OUTCOME_FALSE_POSITIVE"]
    assert case.carrier.outcomes[0].request_id == f"{case.handle.id}:outcome-OUTCOME_FALSE_POSITIVE"
    assert case.carrier.route_requests == [("medium", MSISDN)]
    await case.record_history()


async def test_grace_runs_out_line_restricted(cases: Cases) -> None:
    case = await cases.start(FakeCarrier(), case_input("high", "restrict"))
    await case.reach("warned")
    await case.skip(hours=5)
    st = await case.reach("restricted")

    assert [h.stage for h in st.history] == ["warned", "warning_delivered", "restricted"]
    assert st.line_state == "LINE_STATE_RESTRICTED" and st.next_step == "holder restores: verify in the app"
    assert case.carrier.moves() == [
        warned("high"),
        LineMove("LINE_STATE_RESTRICTED", "UNVERIFIED_AFTER_WARNING_RESTRICT", *CASE),
    ]
    assert case.carrier.templates() == ["TEMPLATE_WARNING", "TEMPLATE_SUSPENDED"]
    assert steps(case) == ["notify-warning", "notify-restrict"]
    assert case.carrier.notifications[1].deadline is None
    assert case.carrier.notifications[1].line_state == "LINE_STATE_RESTRICTED"
    assert case.carrier.outcomes == []
    desc = await case.handle.describe()
    assert desc.typed_search_attributes.get(temporal.CASE_STAGE) == "restricted"
    assert desc.typed_search_attributes.get(temporal.WARNING_DELIVERED) is True
    # The details summarise notifications by purpose, channel and outcome, not by id.
    details = await case.details()
    assert "ntf-1" not in details and "ntf-2" not in details
    assert_table_row(details, ["warning", "sms", "delivered", "1"])
    assert_table_row(details, ["suspended", "-", "sent (notify follows it)", "1"])
    # Scoring sets RiskLevel when it starts a case (not done here); the workflow sets it on a new assessment only.
    assert desc.typed_search_attributes.get(temporal.RISK_LEVEL) is None
    await case.record_history()  # running: the holder has not verified yet


async def test_grace_runs_out_line_suspended(cases: Cases) -> None:
    case = await cases.start(FakeCarrier(deliveries=[delivered()]), case_input("high", "suspend"))
    await case.reach("warned")
    await case.skip(hours=3)
    st = await case.reach("suspended")

    assert [h.stage for h in st.history] == ["warned", "warning_delivered", "suspended"]
    assert st.line_state == "LINE_STATE_SUSPENDED"
    assert case.carrier.moves() == [
        warned("high"),
        LineMove("LINE_STATE_SUSPENDED", "UNVERIFIED_AFTER_WARNING_SUSPEND", *CASE),
    ]
    assert case.carrier.templates() == ["TEMPLATE_WARNING", "TEMPLATE_SUSPENDED"]
    assert steps(case) == ["notify-warning", "notify-suspend"]
    assert case.carrier.notifications[0].pending_action == "suspend"
    assert case.carrier.outcomes == []
    await case.record_history()  # running: suspended, waiting for the holder to verify


async def test_reminded_daily_then_verified_in_person(cases: Cases) -> None:
    case = await restricted_case(cases, FakeCarrier(route=IN_PERSON))
    await case.skip(hours=25)  # one daily reminder
    await case.signal(SIGNAL_VERIFIED, VerificationPassed("ver-2", "in_person", "verification-policy-1"))
    done = await case.result()

    assert [h.stage for h in done.history] == ["warned", "warning_delivered", "restricted", "verified", "restored"]
    assert done.route == "in_person"
    assert case.carrier.moves()[-1] == LineMove("LINE_STATE_RESTORED", "VERIFIED_IN_PERSON", *CASE)
    assert case.carrier.templates() == [
        "TEMPLATE_WARNING",
        "TEMPLATE_SUSPENDED",
        "TEMPLATE_REMINDER",
        "TEMPLATE_RESTORED",
    ]
    assert steps(case) == ["notify-warning", "notify-restrict", "notify-reminder-1", "notify-restored"]
    reminder = case.carrier.notifications[2]
    assert reminder.next_step_en == IN_PERSON.en and reminder.deadline is not None
    restricted_at = datetime.fromisoformat(done.history[2].at)
    window = datetime.fromisoformat(reminder.deadline) - restricted_at  # the window counts from the grace's end
    assert timedelta(days=3) - timedelta(seconds=1) < window <= timedelta(days=3)
    assert case.carrier.outcome_names() == ["OUTCOME_FALSE_POSITIVE"]
    await case.record_history()


async def test_after_the_window_a_barred_line_stays_reachable(cases: Cases) -> None:
    """No dead end: the window ends, the line stays restricted, and the case waits on (reminding monthly)."""
    case = await cases.start(FakeCarrier(), case_input("high", "restrict"))
    await case.skip(days=4)  # the 4-hour grace, daily reminders, the 3-day window
    st = await case.status()

    assert [h.stage for h in st.history] == ["warned", "warning_delivered", "restricted"]
    assert st.line_state == "LINE_STATE_RESTRICTED" and st.next_step.startswith("the holder can restore at any time")
    assert steps(case)[2:] == ["notify-reminder-1", "notify-reminder-2", "notify-reminder-3"]
    assert case.carrier.notifications[-1].deadline is None  # after the window: no deadline, just the way back
    assert case.carrier.outcomes == []
    await case.skip(days=31)  # the dormant pace: one more reminder a month
    assert steps(case)[-1] == "notify-reminder-4"
    await case.signal(SIGNAL_VERIFIED, VerificationPassed("ver-9", "online", "verification-policy-1"))
    done = await case.result()
    assert done.stage == "restored" and case.carrier.outcome_names() == ["OUTCOME_FALSE_POSITIVE"]
    await case.record_history()


async def test_window_closes_a_case_whose_line_was_never_barred_and_tells_scoring(cases: Cases) -> None:
    case = await cases.start(FakeCarrier(), case_input("medium", "warn"))
    await case.skip(days=4)  # the 6-hour grace, daily reminders, the 3-day window
    done = await case.result()

    assert [h.stage for h in done.history] == ["warned", "warning_delivered", "closed_unverified"]
    assert done.line_state == "LINE_STATE_WARNED" and done.deadline == ""
    assert case.carrier.outcome_names() == ["OUTCOME_CLOSED_UNVERIFIED"]  # scoring's case closes too
    await case.record_history()


# ---- the warning's delivery -----------------------------------------------------------------------


async def test_undelivered_warning_high_risk_only_restricts(cases: Cases) -> None:
    case = await cases.start(FakeCarrier(deliveries=[failed()]), case_input("high", "suspend"))
    st = await case.reach("warning_undelivered")
    assert st.warning_delivery is not None and st.warning_delivery.status == "failed"
    assert [a.channel for a in st.warning_delivery.attempts] == ["sms", "voice"]
    await case.skip(hours=3)
    st = await case.reach("restricted")

    assert [h.stage for h in st.history] == ["warned", "warning_undelivered", "restricted"]
    assert st.line_state == "LINE_STATE_RESTRICTED"
    assert case.carrier.moves() == [
        warned("high"),
        LineMove("LINE_STATE_RESTRICTED", "WARNING_UNDELIVERED_RESTRICT_ONLY", *CASE),
    ]
    assert case.carrier.templates() == ["TEMPLATE_WARNING", "TEMPLATE_SUSPENDED"]
    assert steps(case) == ["notify-warning", "notify-restrict"]
    assert case.carrier.notifications[0].pending_action == "suspend"
    assert len(case.carrier.delivery_checks) == 1
    await case.record_history()


async def test_undelivered_warning_extreme_risk_still_suspends(cases: Cases) -> None:
    case = await cases.start(FakeCarrier(deliveries=[failed()]), case_input("extreme", "suspend"))
    await case.reach("warning_undelivered")
    await case.skip(hours=3)
    st = await case.reach("suspended")

    assert [h.stage for h in st.history] == ["warned", "warning_undelivered", "suspended"]
    assert case.carrier.moves() == [
        warned("extreme"),
        LineMove("LINE_STATE_SUSPENDED", "UNVERIFIED_AFTER_WARNING_SUSPEND", *CASE),
    ]
    assert steps(case) == ["notify-warning", "notify-suspend"]
    await case.record_history()


async def test_roamer_never_reached_is_only_restricted(cases: Cases) -> None:
    carrier = FakeCarrier(deliveries=[pending("roaming_international", "TH")])
    case = await cases.start(carrier, case_input("high", "suspend"))
    await case.reach("warned")
    await case.skip(hours=3)
    st = await case.reach("restricted")

    assert [h.stage for h in st.history] == ["warned", "warning_undelivered", "restricted"]
    assert st.warning_delivery is not None
    assert (st.warning_delivery.status, st.warning_delivery.location, st.warning_delivery.country) == (
        "pending",
        "roaming_international",
        "TH",
    )
    assert st.warning_delivery.notification_id == "ntf-1"
    # Checked back after 1 s, doubling up to 10 min, until the 2-hour grace ended (about 11 + 10 checks).
    assert set(carrier.delivery_checks) == {"ntf-1"} and 20 <= len(carrier.delivery_checks) <= 22
    assert carrier.moves()[-1] == LineMove("LINE_STATE_RESTRICTED", "WARNING_UNDELIVERED_RESTRICT_ONLY", *CASE)
    desc = await case.handle.describe()
    assert desc.typed_search_attributes.get(temporal.ROAMING) is True
    # "Roamers not reached" (psctl views): the warning's outcome is a search attribute too.
    assert desc.typed_search_attributes.get(temporal.WARNING_DELIVERED) is False
    details = await case.details()
    assert "| warning" in details and "| pending" in details and "ntf-1" not in details
    await case.record_history()


# ---- a new assessment during the case -------------------------------------------------------------


async def test_stronger_assessment_in_grace_warns_again_and_applies_it(cases: Cases) -> None:
    case = await cases.start(FakeCarrier(), case_input("medium", "warn"))
    await case.reach("warning_delivered")
    await case.signal(SIGNAL_ASSESSMENT, assessment("high", "suspend", 0.93))
    st = await case.reach("escalated")
    assert st.risk_level == "high"
    warning = case.carrier.notifications[1]
    assert warning.pending_action == "suspend" and warning.request_id.endswith(":notify-warning-2")
    assert datetime.fromisoformat(warning.deadline) - datetime.fromisoformat(st.history[-1].at) <= timedelta(hours=2)
    await case.skip(hours=3)  # the 2-hour grace of the stronger action
    st = await case.reach("suspended")

    assert [h.stage for h in st.history] == [
        "warned",
        "warning_delivered",
        "escalated",
        "warning_delivered",
        "suspended",
    ]
    assert case.carrier.moves() == [
        warned("medium"),
        LineMove("LINE_STATE_SUSPENDED", "UNVERIFIED_AFTER_WARNING_SUSPEND", *CASE),
    ]
    assert steps(case) == ["notify-warning", "notify-warning-2", "notify-suspend"]
    assert case.carrier.route_requests == [("medium", MSISDN), ("high", MSISDN)]  # a higher risk: asked again
    desc = await case.handle.describe()
    assert desc.typed_search_attributes.get(temporal.RISK_LEVEL) == "high"
    await case.record_history()


async def test_weaker_assessment_in_grace_changes_nothing(cases: Cases) -> None:
    case = await cases.start(FakeCarrier(), case_input("high", "restrict"))
    await case.reach("warning_delivered")
    await case.signal(SIGNAL_ASSESSMENT, assessment("low", "warn", 0.2))
    await case.skip(hours=5)
    st = await case.reach("restricted")

    assert [h.stage for h in st.history] == ["warned", "warning_delivered", "restricted"]
    assert st.risk_level == "high"
    assert case.carrier.moves()[-1] == LineMove("LINE_STATE_RESTRICTED", "UNVERIFIED_AFTER_WARNING_RESTRICT", *CASE)
    await case.record_history()


async def test_stronger_assessment_after_enforcement_warns_then_applies(cases: Cases) -> None:
    case = await restricted_case(cases)
    await case.signal(SIGNAL_ASSESSMENT, assessment("extreme", "suspend", 0.99))
    st = await case.reach("escalated")
    assert st.risk_level == "extreme" and st.line_state == "LINE_STATE_RESTRICTED"
    await case.skip(hours=3)
    st = await case.reach("suspended")

    assert [h.stage for h in st.history][2:] == ["restricted", "escalated", "warning_delivered", "suspended"]
    assert case.carrier.moves()[-1] == LineMove("LINE_STATE_SUSPENDED", "UNVERIFIED_AFTER_WARNING_SUSPEND", *CASE)
    assert steps(case) == ["notify-warning", "notify-restrict", "notify-warning-2", "notify-suspend"]
    await case.record_history()


async def test_extreme_risk_suspends_a_line_only_restricted_for_an_undelivered_warning(cases: Cases) -> None:
    case = await cases.start(FakeCarrier(deliveries=[failed()]), case_input("high", "suspend"))
    await case.skip(hours=3)
    await case.reach("restricted")
    await case.signal(SIGNAL_ASSESSMENT, assessment("extreme", "suspend", 0.99))
    st = await case.reach("suspended")

    assert case.carrier.moves()[-2:] == [
        LineMove("LINE_STATE_RESTRICTED", "WARNING_UNDELIVERED_RESTRICT_ONLY", *CASE),
        LineMove("LINE_STATE_SUSPENDED", "UNVERIFIED_AFTER_WARNING_SUSPEND", *CASE),
    ]
    assert st.risk_level == "extreme"
    await case.record_history()


# ---- reviews ------------------------------------------------------------------------------------


async def test_appeal_opened_waits_in_review(cases: Cases) -> None:
    case = await restricted_case(cases)
    await case.signal(SIGNAL_REVIEW_OPENED, ReviewOpened("rv-1", "appeal", SLA_S))
    st = await case.reach("in_review")

    assert [h.stage for h in st.history] == ["warned", "warning_delivered", "restricted", "in_review"]
    assert st.review is not None
    assert (st.review.review_id, st.review.kind, st.review.status, st.review.escalated) == (
        "rv-1",
        "appeal",
        "waiting",
        False,
    )
    assert datetime.fromisoformat(st.review.due) - datetime.fromisoformat(st.history[-1].at) == timedelta(hours=48)
    assert st.line_state == "LINE_STATE_RESTRICTED"
    assert len(case.carrier.notifications) == 2
    await case.record_history()  # running: a reviewer has not decided yet


async def test_appeal_ask_for_more_then_approved_restores(cases: Cases) -> None:
    case = await restricted_case(cases)
    await case.signal(SIGNAL_REVIEW_OPENED, ReviewOpened("rv-2", "appeal", SLA_S))
    await case.reach("in_review")
    ask = ReviewDecided("rv-2", "appeal", "ask_for_more", "reviewer-7", more_requested="a letter from the employer")
    await case.signal(SIGNAL_REVIEW_DECIDED, ask)
    st = await case.reach("more_requested")
    assert st.more_requested == "a letter from the employer"
    assert st.review is not None and st.review.status == "more_requested"
    assert st.next_step == "holder provides: a letter from the employer"

    await case.signal(SIGNAL_REVIEW_OPENED, ReviewOpened("rv-2", "appeal", SLA_S))  # the holder sent it
    await case.signal(SIGNAL_REVIEW_DECIDED, ReviewDecided("rv-2", "appeal", "approve", "reviewer-7"))
    done = await case.result()

    assert [h.stage for h in done.history] == [
        "warned",
        "warning_delivered",
        "restricted",
        "in_review",
        "more_requested",
        "in_review",
        "verified",
        "restored",
    ]
    assert done.more_requested == ""
    assert case.carrier.moves()[-1] == LineMove(
        "LINE_STATE_RESTORED", "REVIEW_APPROVED_APPEAL", "reviewer", "reviewer-7"
    )
    assert steps(case) == ["notify-warning", "notify-restrict", "notify-more-rv-2", "notify-restored"]
    more = case.carrier.notifications[2]
    assert more.template == "TEMPLATE_REMINDER" and more.deadline is None
    assert more.next_step_en == "the reviewer asks for: a letter from the employer (send it in the app or at a hall)"
    assert more.next_step_zh == "审核人员需要补充材料：a letter from the employer（在App或营业厅提交）"
    assert case.carrier.outcome_names() == ["OUTCOME_FALSE_POSITIVE"]
    await case.record_history()


async def test_appeal_rejected_line_stays_restricted(cases: Cases) -> None:
    case = await restricted_case(cases)
    await case.signal(SIGNAL_REVIEW_OPENED, ReviewOpened("rv-3", "appeal", SLA_S))
    await case.reach("in_review")
    await case.signal(SIGNAL_REVIEW_DECIDED, ReviewDecided("rv-3", "appeal", "reject", "reviewer-7", note="scam"))
    st = await case.reach("appeal_rejected")

    assert [h.stage for h in st.history][-2:] == ["in_review", "appeal_rejected"]
    assert st.review is not None and st.review.status == "rejected"
    assert st.line_state == "LINE_STATE_RESTRICTED" and st.next_step == "holder restores: verify in the app"
    assert len(case.carrier.line_changes) == 2 and len(case.carrier.notifications) == 2
    await case.record_history()  # running: the holder can still verify


async def test_review_sla_runs_out_review_escalated(cases: Cases) -> None:
    case = await restricted_case(cases)
    await case.signal(SIGNAL_REVIEW_OPENED, ReviewOpened("rv-4", "appeal", SLA_S))
    await case.reach("in_review")
    await case.skip(hours=49)
    st = await case.reach("review_escalated")

    assert [h.stage for h in st.history][-2:] == ["in_review", "review_escalated"]
    assert st.review is not None and st.review.escalated and st.review.status == "waiting"
    in_review, escalated = (datetime.fromisoformat(h.at) for h in st.history[-2:])
    assert timedelta(hours=48) <= escalated - in_review < timedelta(hours=48, minutes=1)
    assert case.carrier.escalations == [(f"{case.handle.id}:escalate-rv-4", "rv-4")]
    assert case.carrier.templates() == ["TEMPLATE_WARNING", "TEMPLATE_SUSPENDED"]  # no reminders while in review
    await case.record_history()  # running: a senior reviewer decides


async def test_restore_approval_by_reviewer_restores(cases: Cases) -> None:
    carrier = FakeCarrier(route=RouteText("营业厅核验并经审核", "a hall check and a reviewer", "in_person_with_review"))
    case = await cases.start(carrier, case_input("extreme", "suspend"))
    await case.reach("warned")
    await case.skip(hours=3)
    await case.reach("suspended")
    await case.signal(SIGNAL_REVIEW_OPENED, ReviewOpened("rv-6", "restore_approval", SLA_S))
    st = await case.reach("awaiting_reviewer")
    assert st.review is not None and st.review.kind == "restore_approval"
    await case.signal(SIGNAL_REVIEW_DECIDED, ReviewDecided("rv-6", "restore_approval", "approve", "reviewer-8"))
    done = await case.result()

    assert [h.stage for h in done.history] == [
        "warned",
        "warning_delivered",
        "suspended",
        "awaiting_reviewer",
        "verified",
        "restored",
    ]
    assert carrier.moves() == [
        warned("extreme"),
        LineMove("LINE_STATE_SUSPENDED", "UNVERIFIED_AFTER_WARNING_SUSPEND", *CASE),
        LineMove("LINE_STATE_RESTORED", "REVIEW_APPROVED_RESTORE_APPROVAL", "reviewer", "reviewer-8"),
    ]
    assert carrier.outcome_names() == ["OUTCOME_FALSE_POSITIVE"]
    await case.record_history()


# ---- authorities ----------------------------------------------------------------------------------


async def test_police_restore_order_restores(cases: Cases) -> None:
    case = await cases.start(FakeCarrier(), case_input("extreme", "suspend"))
    await case.reach("warned")
    await case.skip(hours=3)
    await case.reach("suspended")
    await case.signal(SIGNAL_AUTHORITY_ORDER, AuthorityOrder("police", "restore", "GA-TEST-0001"))
    done = await case.result()

    assert [h.stage for h in done.history] == ["warned", "warning_delivered", "suspended", "verified", "restored"]
    assert case.carrier.moves()[-1] == LineMove(
        "LINE_STATE_RESTORED", "AUTHORITY_POLICE_RESTORE", "police", "GA-TEST-0001"
    )
    assert case.carrier.templates()[-1] == "TEMPLATE_RESTORED"
    assert case.carrier.outcome_names() == ["OUTCOME_FALSE_POSITIVE"]
    await case.record_history()


async def test_confirmed_fraud_suspends_then_reviewer_terminates(cases: Cases) -> None:
    case = await restricted_case(cases)
    await case.signal(SIGNAL_AUTHORITY_ORDER, AuthorityOrder("police", "confirm_fraud", "GA-TEST-0002"))
    st = await case.reach("fraud_confirmed")
    assert st.line_state == "LINE_STATE_SUSPENDED"
    assert case.carrier.outcome_names() == ["OUTCOME_CONFIRMED_FRAUD"]
    assert case.carrier.outcomes[0].request_id == f"{case.handle.id}:outcome-OUTCOME_CONFIRMED_FRAUD"

    await case.signal(SIGNAL_REVIEW_OPENED, ReviewOpened("rv-5", "termination", SLA_S))
    await case.reach("termination_review")
    await case.signal(SIGNAL_REVIEW_DECIDED, ReviewDecided("rv-5", "termination", "approve", "reviewer-9"))
    done = await case.result()

    assert [h.stage for h in done.history] == [
        "warned",
        "warning_delivered",
        "restricted",
        "fraud_confirmed",
        "termination_review",
        "terminated",
    ]
    assert done.line_state == "LINE_STATE_TERMINATED"
    assert case.carrier.moves() == [
        warned("high"),
        LineMove("LINE_STATE_RESTRICTED", "UNVERIFIED_AFTER_WARNING_RESTRICT", *CASE),
        LineMove("LINE_STATE_SUSPENDED", "AUTHORITY_POLICE_CONFIRMED_FRAUD", *CASE),
        LineMove("LINE_STATE_TERMINATED", "REVIEWER_CONFIRMED_TERMINATION", "reviewer", "reviewer-9"),
    ]
    assert [c.request_id.removeprefix(f"{case.handle.id}:") for c in case.carrier.line_changes] == [
        "line-warn",
        "line-restrict",
        "line-fraud",
        "line-terminate",
    ]
    assert case.carrier.templates() == ["TEMPLATE_WARNING", "TEMPLATE_SUSPENDED", "TEMPLATE_TERMINATED"]
    assert case.carrier.outcome_names() == ["OUTCOME_CONFIRMED_FRAUD"]  # told once, when the police confirmed it
    await case.record_history()


async def test_confirmed_fraud_in_grace_suspends_at_once_and_waits_for_termination_review(cases: Cases) -> None:
    case = await cases.start(FakeCarrier(), case_input("high", "restrict"))
    await case.reach("warning_delivered")
    await case.signal(SIGNAL_AUTHORITY_ORDER, AuthorityOrder("regulator", "confirm_fraud", "FZ-TEST-0003"))
    await case.reach("fraud_confirmed")
    await case.skip(hours=5)  # past the grace: nothing more is enforced
    await case.signal(SIGNAL_REVIEW_OPENED, ReviewOpened("rv-7", "termination", SLA_S))
    st = await case.reach("termination_review")

    assert [h.stage for h in st.history] == ["warned", "warning_delivered", "fraud_confirmed", "termination_review"]
    assert st.line_state == "LINE_STATE_SUSPENDED"
    assert case.carrier.moves() == [
        warned("high"),
        LineMove("LINE_STATE_SUSPENDED", "AUTHORITY_REGULATOR_CONFIRMED_FRAUD", *CASE),
    ]
    assert case.carrier.templates() == ["TEMPLATE_WARNING"]
    assert case.carrier.outcome_names() == ["OUTCOME_CONFIRMED_FRAUD"]
    await case.record_history()  # running: a reviewer decides on termination


async def test_an_appeal_during_the_grace_holds_enforcement_until_decided(cases: Cases) -> None:
    case = await cases.start(FakeCarrier(), case_input("high", "restrict"))
    await case.reach("warning_delivered")
    await case.signal(SIGNAL_REVIEW_OPENED, ReviewOpened("rv-8", "appeal", SLA_S))
    await case.reach("in_review")
    await case.skip(hours=5)  # past the 4-hour grace: the holder is heard first
    assert (await case.status()).line_state == "LINE_STATE_WARNED"
    await case.signal(SIGNAL_REVIEW_DECIDED, ReviewDecided("rv-8", "appeal", "reject", "reviewer-7"))
    await case.reach("appeal_rejected")
    st = await case.reach("restricted")  # the hold ends with the decision
    assert st.line_state == "LINE_STATE_RESTRICTED"
    await case.record_history()


async def test_an_appeal_nobody_decides_holds_enforcement_only_until_its_time_limit(cases: Cases) -> None:
    case = await cases.start(FakeCarrier(), case_input("high", "restrict"))
    await case.reach("warning_delivered")
    await case.signal(SIGNAL_REVIEW_OPENED, ReviewOpened("rv-10", "appeal", SLA_S))
    await case.reach("in_review")
    await case.skip(hours=5)
    assert (await case.status()).line_state == "LINE_STATE_WARNED"
    await case.skip(hours=49)  # the review's time limit passed: escalated, and the grace is over
    st = await case.reach("restricted")
    assert [h.stage for h in st.history][-3:] == ["in_review", "review_escalated", "restricted"]
    assert case.carrier.escalations == [(f"{case.handle.id}:escalate-rv-10", "rv-10")]
    await case.record_history()


# ---- when a step fails for good ----------------------------------------------------------------------


async def test_a_step_failing_for_good_waits_for_an_operator_who_retries_it(cases: Cases) -> None:
    carrier = FakeCarrier(broken={"change_line_state:LINE_STATE_RESTRICTED": 1})
    case = await cases.start(carrier, case_input("high", "restrict"))
    await case.skip(hours=5)
    st = await case.reach("needs_attention")

    assert st.attention is not None and st.attention.step == "line → restricted"
    assert st.attention.error.startswith("FAILED_PRECONDITION") and st.attention.resumes_stage == "warning_delivered"
    desc = await case.handle.describe()
    assert desc.typed_search_attributes.get(temporal.CASE_STAGE) == "needs_attention"
    await case.signal(SIGNAL_OPERATOR, OperatorAction(OperatorChoice.RETRY, "HLR back", "ops/ops"))
    st = await case.reach("restricted")
    assert st.attention is None and st.line_state == "LINE_STATE_RESTRICTED"
    assert [h.stage for h in st.history] == [
        "warned",
        "warning_delivered",
        "needs_attention",
        "warning_delivered",
        "restricted",
    ]
    await case.record_history()


async def test_an_operator_skips_a_notification_that_cannot_be_sent(cases: Cases) -> None:
    carrier = FakeCarrier(broken={"send_notification:TEMPLATE_WARNING": 1})
    case = await cases.start(carrier, case_input("high", "restrict"))
    st = await case.reach("needs_attention")
    assert st.attention is not None and st.attention.step == "notify holder: warning"
    await case.signal(SIGNAL_OPERATOR, OperatorAction(OperatorChoice.SKIP, "told by phone", "ops/ops"))
    await case.reach("warned")
    await case.skip(hours=5)
    st = await case.reach("restricted")
    assert st.warning_delivery is None  # nothing to follow: the warning went another way
    await case.record_history()


async def test_an_operator_resolves_a_stuck_case_by_restoring_the_line(cases: Cases) -> None:
    carrier = FakeCarrier(broken={"change_line_state:LINE_STATE_SUSPENDED": 1})
    case = await restricted_case(cases, FakeCarrier())
    case2 = await cases.start(carrier, case_input("high", "suspend"))
    await case2.skip(hours=3)
    await case2.reach("needs_attention")
    await case2.signal(SIGNAL_OPERATOR, OperatorAction(OperatorChoice.RESTORE, "line verified by phone", "ops/ops"))
    done = await case2.result()
    assert done.stage == "restored"
    assert carrier.moves()[-1] == LineMove("LINE_STATE_RESTORED", "OPERATOR_RESTORE", "operator", "ops/ops")
    assert case.carrier.moves()[-1].target == "LINE_STATE_RESTRICTED"  # another case is not disturbed
    await case2.record_history()


async def test_a_long_case_renews_its_history_and_keeps_its_state(cases: Cases) -> None:
    policy = small_policy()
    policy.continue_after_events = 40
    case = await cases.start(FakeCarrier(policy=policy), case_input("high", "restrict"))
    await case.reach("warned")
    await case.skip(hours=5)
    await case.reach("restricted")
    first_run = (await case.handle.describe()).run_id
    # A caller waiting for the restore while the case renews: the old run answers CASE_RENEWED, the next one
    # answers the stage.
    restored = asyncio.create_task(case.reach("restored"))
    await case.skip(days=40)  # daily, then dormant reminders: the history grows past 40 events
    st = await case.status()
    assert st.stage == "restricted" and st.line_state == "LINE_STATE_RESTRICTED"
    assert (await case.handle.describe()).run_id != first_run  # continued as new
    reminders = [n.request_id for n in case.carrier.notifications if n.template == "TEMPLATE_REMINDER"]
    assert len(reminders) >= 4 and len(set(reminders)) == len(reminders)  # reminded on, ids never reused
    await case.signal(SIGNAL_VERIFIED, VerificationPassed("ver-3", "online", "verification-policy-1"))
    done = await case.result()
    assert done.stage == "restored" and [h.stage for h in done.history][:3] == [
        "warned",
        "warning_delivered",
        "restricted",
    ]
    assert (await asyncio.wait_for(restored, 5)).stage == "restored"


RESTORE_PATH_STEPS = [
    ("load_case_policy", "load the case policy"),
    ("restore_route", "how the holder restores"),
    ("change_line_state:LINE_STATE_WARNED", "line → warned"),
    ("send_notification:TEMPLATE_WARNING", "notify holder: warning"),
    ("get_delivery", "has the warning reached the holder?"),
    ("change_line_state:LINE_STATE_RESTRICTED", "line → restricted"),
    ("send_notification:TEMPLATE_SUSPENDED", "notify holder: suspended"),
    ("change_line_state:LINE_STATE_RESTORED", "line → restored"),
    ("send_notification:TEMPLATE_RESTORED", "notify holder: restored"),
    ("record_outcome:OUTCOME_FALSE_POSITIVE", "tell scoring: OUTCOME_FALSE_POSITIVE"),
]


@pytest.mark.parametrize(("broken", "step"), RESTORE_PATH_STEPS, ids=[b for b, _ in RESTORE_PATH_STEPS])
async def test_every_step_failing_for_good_waits_for_an_operator_then_completes_once(
    cases: Cases, broken: str, step: str
) -> None:
    """A permanent failure at any step of warn → restrict → verify → restore: the case waits in needs_attention
    naming the step, an operator's retry runs it, and every effect happens exactly once."""
    carrier = FakeCarrier(broken={broken: 1})
    case = await cases.start(carrier, case_input("high", "restrict"))
    attended: list[Attention] = []

    async def until(stage: str) -> None:
        """Waits for `stage`; if the case asks for an operator first, retries the step once."""
        if attended:
            await case.reach(stage)
            return
        got = await _first(case.reach(stage), case.reach("needs_attention"))
        if got.stage == "needs_attention" and got.attention is not None:
            attended.append(got.attention)
            await case.signal(SIGNAL_OPERATOR, OperatorAction(OperatorChoice.RETRY, "fixed", "ops/ops"))
            await case.reach(stage)

    await until("warned")
    await case.skip(hours=5)
    await until("restricted")
    await case.signal(SIGNAL_VERIFIED, VerificationPassed("ver-1", "online", "verification-policy-1"))
    await until("restored")
    done = await case.result()

    assert [a.step for a in attended] == [step]
    assert done.stage == "restored" and done.attention is None
    assert [m.target for m in carrier.moves()] == ["LINE_STATE_WARNED", "LINE_STATE_RESTRICTED", "LINE_STATE_RESTORED"]
    assert carrier.templates() == ["TEMPLATE_WARNING", "TEMPLATE_SUSPENDED", "TEMPLATE_RESTORED"]
    assert carrier.outcome_names() == ["OUTCOME_FALSE_POSITIVE"]
    ids = [c.request_id for c in carrier.line_changes] + [n.request_id for n in carrier.notifications]
    assert len(set(ids)) == len(ids)


async def test_a_review_escalation_failing_for_good_waits_for_an_operator(cases: Cases) -> None:
    carrier = FakeCarrier(broken={"escalate_review": 1})
    case = await restricted_case(cases, carrier)
    await case.signal(SIGNAL_REVIEW_OPENED, ReviewOpened("rev-9", "appeal", SLA_S))
    await case.reach("in_review")
    await case.skip(hours=49)
    st = await case.reach("needs_attention")
    assert st.attention is not None and st.attention.step == "escalate the review"
    await case.signal(SIGNAL_OPERATOR, OperatorAction(OperatorChoice.RETRY, "queue back", "ops/ops"))
    st = await case.reach("review_escalated")
    assert [r for _, r in carrier.escalations] == ["rev-9"] and st.line_state == "LINE_STATE_RESTRICTED"


async def _first(*waits: Awaitable[CaseStatus]) -> CaseStatus:
    tasks = [asyncio.ensure_future(w) for w in waits]
    done, pending_ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in pending_:
        t.cancel()
    return next(iter(done)).result()

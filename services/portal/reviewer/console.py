"""What the console shows and accepts, without HTTP or gRPC: labels, the rows of the queue and the case file,
and the decision form read into a `Decision` (or the field that is wrong)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from google.protobuf.timestamp_pb2 import Timestamp

from carrier.common.v1 import common_pb2
from carrier.verification.v1 import verification_pb2 as vpb
from services.portal.reviewer.desk import Decision

KIND = {
    vpb.REVIEW_KIND_APPEAL: "Appeal",
    vpb.REVIEW_KIND_RESTORE_APPROVAL: "Restore approval",
    vpb.REVIEW_KIND_TERMINATION: "Termination",
}
STATUS = {
    vpb.REVIEW_STATUS_OPEN: "Open",
    vpb.REVIEW_STATUS_CLAIMED: "Claimed",
    vpb.REVIEW_STATUS_MORE_REQUESTED: "Waiting for the holder",
    vpb.REVIEW_STATUS_APPROVED: "Approved",
    vpb.REVIEW_STATUS_REJECTED: "Rejected",
    vpb.REVIEW_STATUS_SECOND_APPROVAL: "Waiting for a second approval",
}
DECIDED = {
    vpb.REVIEW_STATUS_APPROVED: "approved",
    vpb.REVIEW_STATUS_REJECTED: "rejected",
    vpb.REVIEW_STATUS_MORE_REQUESTED: "more_requested",
    vpb.REVIEW_STATUS_SECOND_APPROVAL: "second_approval",
}
DECIDED_TEXT = {
    "approved": "Your decision was recorded: approved.",
    "rejected": "Your decision was recorded: rejected.",
    "more_requested": "The holder has been asked for more.",
    "second_approval": "Your approval was recorded; the termination now waits for a second, different reviewer.",
}
DECISIONS = {
    "approve": vpb.DECISION_APPROVE,
    "reject": vpb.DECISION_REJECT,
    "ask_for_more": vpb.DECISION_ASK_FOR_MORE,
}
CLAIMABLE = (vpb.REVIEW_STATUS_OPEN, vpb.REVIEW_STATUS_SECOND_APPROVAL)
FINAL = (vpb.REVIEW_STATUS_APPROVED, vpb.REVIEW_STATUS_REJECTED)
OUTCOME = {
    vpb.DECISION_APPROVE: "Approved: the line is restored",
    vpb.DECISION_REJECT: "Rejected: the line stays as it was",
}
TERMINATION_OUTCOME = {
    vpb.DECISION_APPROVE: "Approved: the line is terminated",
    vpb.DECISION_REJECT: "Rejected: the line is kept",
}
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
DOCUMENT_CODES = re.compile(r"[a-z0-9_]+(,[a-z0-9_]+)*")
MAX_NOTE = 1000


class BadForm(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def review_id_of(value: str) -> str | None:
    """The canonical form of a review id from a URL, or None if it is not one."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def request_id_of(form_value: str) -> str:
    if not REQUEST_ID.fullmatch(form_value):
        raise BadForm("request_id", "the form is out of date: reload the page")
    return form_value


def new_request_id() -> str:
    """One per rendered form: submitting the same form twice is one claim or one decision (AIP-155)."""
    return uuid.uuid4().hex


def decision_of(kind: vpb.ReviewKind.ValueType, form: dict[str, str]) -> Decision:
    choice = DECISIONS.get(form.get("decision", ""))
    if choice is None:
        raise BadForm("decision", "choose approve, reject or ask for more")
    if choice == vpb.DECISION_ASK_FOR_MORE and kind == vpb.REVIEW_KIND_TERMINATION:
        raise BadForm("decision", "a termination is decided on the case file: approve or reject")
    note = form.get("note", "").strip()
    if len(note) > MAX_NOTE:
        raise BadForm("note", f"at most {MAX_NOTE} characters")
    asked = form.get("more_requested", "").replace(" ", "").strip(",")
    if choice == vpb.DECISION_ASK_FOR_MORE and not DOCUMENT_CODES.fullmatch(asked):
        raise BadForm("more_requested", "give the codes of the documents to ask for, e.g. employment_letter")
    return Decision(choice, note, asked if choice == vpb.DECISION_ASK_FOR_MORE else "")


def is_mine(r: vpb.Review, me: str) -> bool:
    return r.status == vpb.REVIEW_STATUS_CLAIMED and r.claimed_by == me


def is_termination(r: vpb.Review) -> bool:
    return r.kind == vpb.REVIEW_KIND_TERMINATION


@dataclass(frozen=True)
class Evidence:
    n: int
    ref: str
    stored_here: bool  # an upload the portal keeps sealed (upload:<id>); other refs name documents held elsewhere


def evidence_items(refs: list[str]) -> list[Evidence]:
    return [Evidence(i, ref, ref.startswith("upload:")) for i, ref in enumerate(refs)]


def when(ts: Timestamp) -> str:
    if not ts.seconds and not ts.nanos:
        return ""
    return ts.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M UTC")


def overdue(ts: Timestamp, now: datetime | None = None) -> bool:
    return bool(ts.seconds) and ts.ToDatetime(tzinfo=UTC) < (now or datetime.now(UTC))


def who(reviewer_id: str, me: str) -> str:
    if not reviewer_id:
        return ""
    return "you" if reviewer_id == me else reviewer_id


@dataclass(frozen=True)
class Row:
    review_id: str
    kind: str
    status: str
    masked_msisdn: str
    home_province: str
    due: str
    overdue: bool
    escalated: bool
    claimed_by: str
    first_approved_by: str
    evidence_count: int
    mine: bool
    claimable: bool


def row(r: vpb.Review, me: str) -> Row:
    return Row(
        review_id=r.review_id,
        kind=KIND.get(r.kind, "Review"),
        status=STATUS.get(r.status, "Unknown"),
        masked_msisdn=r.masked_msisdn,
        home_province=r.home_province,
        due=when(r.due_at),
        overdue=overdue(r.due_at),
        escalated=r.escalated,
        claimed_by=who(r.claimed_by, me),
        first_approved_by=who(r.first_approved_by, me),
        evidence_count=r.evidence_count,
        mine=is_mine(r, me),
        claimable=r.status in CLAIMABLE and r.first_approved_by != me,
    )


@dataclass(frozen=True)
class Verdict:
    """A decided review, shown read-only: what was decided, by whom, when, and the reviewers' note."""

    outcome: str
    decided_by: str
    decided_at: str
    note: str


def verdict(r: vpb.Review, me: str) -> Verdict | None:
    if r.status not in FINAL:
        return None
    outcomes = TERMINATION_OUTCOME if is_termination(r) else OUTCOME
    return Verdict(
        outcome=outcomes.get(r.decision, STATUS.get(r.status, "Decided")),
        # The decider keeps the claim; a termination's first approver is shown apart (four eyes).
        decided_by=who(r.claimed_by, me),
        decided_at=when(r.decided_at),
        note=r.decision_note,
    )


@dataclass(frozen=True)
class Reason:
    code: str
    text_en: str
    text_zh: str
    weight: float


@dataclass(frozen=True)
class CaseFile:
    case_id: str
    stage: str
    line_state: str
    risk_level: str
    restore_count: int
    reasons: list[Reason]
    mitigations: list[Reason]
    history: list[tuple[str, str]]
    line_changes: list[tuple[str, str, str]]
    next_step_en: str
    deadline: str
    temporal_url: str


def _reasons(rs: list[common_pb2.Reason]) -> list[Reason]:
    return [Reason(r.code, r.text_en, r.text_zh, round(r.weight, 2)) for r in rs]


def case_file(s: vpb.GetCaseStatusResponse, temporal_ui: str, namespace: str) -> CaseFile:
    return CaseFile(
        case_id=s.case_id,
        stage=s.stage.replace("_", " "),
        line_state=common_pb2.LineState.Name(s.line_state).removeprefix("LINE_STATE_").lower(),
        risk_level=common_pb2.RiskLevel.Name(s.risk_level).removeprefix("RISK_LEVEL_").lower(),
        restore_count=s.restore_count,
        reasons=_reasons(list(s.reasons)),
        mitigations=_reasons(list(s.mitigations)),
        history=[(e.stage.replace("_", " "), when(e.at)) for e in s.history],
        line_changes=[
            (common_pb2.LineState.Name(c.state).removeprefix("LINE_STATE_").lower(), when(c.at), c.by)
            for c in s.line_changes
        ],
        next_step_en=s.next_step_en,
        deadline=when(s.deadline),
        temporal_url=temporal_link(temporal_ui, namespace, s.case_id),
    )


def temporal_link(temporal_ui: str, namespace: str, case_id: str) -> str:
    """The case's workflow in the Temporal UI (case ids carry a keyed line hash, never the number)."""
    return f"{temporal_ui.rstrip('/')}/namespaces/{quote(namespace, safe='')}/workflows/{quote(case_id, safe='')}"

"""What the holder's page says, from a case's status and the policy's requirements: plain words, no gRPC."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from carrier.common.v1.common_pb2 import LineState
from carrier.verification.v1 import verification_pb2 as vpb

CHINA_TZ = timezone(timedelta(hours=8))
DONE_STAGES = {"restored", "terminated", "closed_unverified"}
# Stages in which the holder can still do something about the case on this page.
OPEN_STAGES = {
    "opened",
    "warned",
    "warning_delivered",
    "warning_undelivered",
    "restricted",
    "suspended",
    "escalated",
    "more_requested",
    "appeal_rejected",
    "restore_refused",
}

STAGE = {
    "zh": {
        "opened": "发现异常",
        "warned": "已发送安全提醒",
        "warning_delivered": "提醒已送达",
        "warning_undelivered": "提醒未送达，正在改用其他方式通知",
        "restricted": "已限制呼出",
        "suspended": "已保护性停机",
        "in_review": "申诉审核中",
        "awaiting_reviewer": "核验已通过，等待审核人员确认复机",
        "termination_review": "销号审核中",
        "review_escalated": "审核已加急",
        "more_requested": "审核人员需要补充材料",
        "appeal_rejected": "申诉未通过",
        "restore_refused": "复机未获批准",
        "termination_refused": "不予销号",
        "fraud_confirmed": "经公安或监管部门确认涉诈",
        "escalated": "风险升级",
        "needs_attention": "系统处理中，工作人员已介入",
        "verified": "核验通过",
        "restored": "已复机",
        "terminated": "已销号",
        "closed_unverified": "已结案",
    },
    "en": {
        "opened": "Unusual use found",
        "warned": "Security notice sent",
        "warning_delivered": "Notice delivered",
        "warning_undelivered": "Notice not delivered; trying other channels",
        "restricted": "Outgoing calls barred",
        "suspended": "Protectively suspended",
        "in_review": "Appeal under review",
        "awaiting_reviewer": "Check passed; a reviewer confirms the restore",
        "termination_review": "Termination under review",
        "review_escalated": "Review escalated",
        "more_requested": "The reviewer asks for more documents",
        "appeal_rejected": "Appeal not accepted",
        "restore_refused": "Restore not approved",
        "termination_refused": "Line kept",
        "fraud_confirmed": "Fraud confirmed by the police or the regulator",
        "escalated": "Risk raised",
        "needs_attention": "Being handled by our staff",
        "verified": "Verified",
        "restored": "Back in service",
        "terminated": "Terminated",
        "closed_unverified": "Closed",
    },
}
STATE = {
    "zh": {
        LineState.LINE_STATE_ACTIVE: "您的号码{m}可正常使用，但需要完成核验",
        LineState.LINE_STATE_WARNED: "您的号码{m}目前可正常使用，请按时完成核验",
        LineState.LINE_STATE_RESTRICTED: "您的号码{m}已被限制呼出",
        LineState.LINE_STATE_SUSPENDED: "您的号码{m}已被保护性停机",
        LineState.LINE_STATE_RESTORED: "您的号码{m}已恢复正常使用",
        LineState.LINE_STATE_TERMINATED: "您的号码{m}已注销",
    },
    "en": {
        LineState.LINE_STATE_ACTIVE: "Your number {m} works, but needs to be verified",
        LineState.LINE_STATE_WARNED: "Your number {m} still works; please verify in time",
        LineState.LINE_STATE_RESTRICTED: "Outgoing calls from your number {m} are barred",
        LineState.LINE_STATE_SUSPENDED: "Your number {m} is protectively suspended",
        LineState.LINE_STATE_RESTORED: "Your number {m} is back in service",
        LineState.LINE_STATE_TERMINATED: "Your number {m} has been terminated",
    },
}
SERVICES = {
    "zh": {
        "outgoing": "拨打电话和发送短信",
        "international": "国际及港澳台通话",
        "incoming_calls": "接听来电",
        "incoming_sms": "接收短信（包括银行验证码和本页链接）",
        "data": "上网（移动数据）",
    },
    "en": {
        "outgoing": "making calls and sending SMS",
        "international": "international calls",
        "incoming_calls": "receiving calls",
        "incoming_sms": "receiving SMS (bank codes, this link)",
        "data": "mobile data",
    },
}
_ALL = ("outgoing", "international", "incoming_calls", "incoming_sms", "data")
_BARRED = {
    LineState.LINE_STATE_RESTRICTED: ("outgoing", "international"),
    LineState.LINE_STATE_SUSPENDED: _ALL,
    LineState.LINE_STATE_TERMINATED: _ALL,
}
# What a hall visit needs, by the policy's evidence codes.
BRING = {
    "zh": {
        "holder_match": "本人有效身份证件",
        "province_code": "本省公安电子码（如广东“粤居码”），在手机上出示",
        "risk_notice": "在营业厅签署风险告知书",
        "extra_evidence": "补充材料（如工作证明、通话用途说明）",
    },
    "en": {
        "holder_match": "your own valid ID card",
        "province_code": "your provincial public-security code (e.g. Guangdong's 粤居码), on your phone",
        "risk_notice": "you sign the risk notice at the hall",
        "extra_evidence": "extra documents (e.g. an employer's letter, what the calls were for)",
    },
}
FAILURE = {
    "zh": {
        "holder_match": "身份信息与登记的机主不一致",
        "liveness": "活体检测未通过，请在光线充足处重新录制",
        "risk_notice": "请阅读并确认风险告知",
    },
    "en": {
        "holder_match": "the identity does not match the registered holder",
        "liveness": "the liveness check failed; please record again in good light",
        "risk_notice": "please read and accept the risk notice",
    },
}
RISK = {
    "zh": {1: "低", 2: "中", 3: "较高", 4: "极高"},
    "en": {1: "low", 2: "medium", 3: "high", 4: "very high"},
}


@dataclass
class Event:
    at: str
    text: str


@dataclass
class HolderView:
    case_id: str
    masked: str
    headline: str
    restored: bool
    done: bool
    risk: str
    stage: str
    reasons: list[str]
    in_favour: list[str]
    barred: list[str]
    kept: list[str]
    next_step: str
    where: str
    online: bool  # the online check is this case's route, and it is open
    can_appeal: bool
    bring: list[str]
    deadline: str
    estimated_restore: str
    history: list[Event] = field(default_factory=list)
    review_id: str = ""  # answering a reviewer's request for more
    more_requested: bool = False


def when(ts: datetime | None, lang: str) -> str:
    if ts is None:
        return ""
    local = ts.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")
    return local + ("（北京时间）" if lang == "zh" else " (Beijing time)")


def build(s: vpb.GetCaseStatusResponse, reqs: vpb.GetRequirementsResponse | None, lang: str) -> HolderView:
    zh = lang == "zh"
    state = s.line_state
    barred = _BARRED.get(state, ())
    first = reqs.requirements[0] if reqs is not None and reqs.requirements else None
    route = first.route if first is not None else vpb.ROUTE_UNSPECIFIED
    open_ = s.stage in OPEN_STAGES
    online = open_ and route == vpb.ROUTE_ONLINE and s.restore_count == 0
    more = s.review.status == vpb.REVIEW_STATUS_MORE_REQUESTED
    bring = [] if online or first is None else [BRING[lang][e] for e in first.evidence if e in BRING[lang]]
    history = [Event(when(h.at.ToDatetime(tzinfo=UTC), lang), STAGE[lang].get(h.stage, h.stage)) for h in s.history]
    return HolderView(
        case_id=s.case_id,
        masked=s.masked_msisdn,
        headline=STATE[lang].get(state, STATE[lang][LineState.LINE_STATE_WARNED]).format(m=s.masked_msisdn),
        restored=state == LineState.LINE_STATE_RESTORED,
        done=s.stage in DONE_STAGES,
        risk=RISK[lang].get(s.risk_level, ""),
        stage=STAGE[lang].get(s.stage, s.stage),
        reasons=[r.text_zh if zh else r.text_en for r in s.reasons],
        in_favour=[r.text_zh if zh else r.text_en for r in s.mitigations],
        barred=[SERVICES[lang][k] for k in barred],
        kept=[SERVICES[lang][k] for k in _ALL if k not in barred],
        next_step=s.next_step_zh if zh else s.next_step_en,
        where=s.where_zh if zh else s.where_en,
        online=online,
        can_appeal=open_ or more or s.stage == "in_review",
        bring=bring,
        deadline=when(s.deadline.ToDatetime(tzinfo=UTC), lang) if s.HasField("deadline") else "",
        estimated_restore=when(s.estimated_restore_at.ToDatetime(tzinfo=UTC), lang)
        if s.HasField("estimated_restore_at")
        else "",
        history=history,
        review_id=s.review.review_id if more else "",
        more_requested=more,
    )


def failures(codes: list[str], lang: str) -> list[str]:
    words = FAILURE[lang]
    return [words.get(c.removesuffix("_FAILED").lower(), c) for c in codes]

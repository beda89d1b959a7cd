"""Messages a holder can act on, in Chinese and English: why, what happens next, by when, how to restore.

Only the masked number appears; the reasons are the scoring engine's sentences, with their figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from carrier.common.v1.common_pb2 import Action, LineState
from carrier.notify.v1.notify_pb2 import Template

CHINA_TZ = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Content:
    masked_msisdn: str
    reasons: list[str]  # sentences in the message's language
    deadline: datetime | None
    next_step: str  # how to restore: the online link, or the hall and what to bring
    pending_action: Action.ValueType = Action.ACTION_UNSPECIFIED  # a warning: what happens without verification
    line_state: LineState.ValueType = LineState.LINE_STATE_UNSPECIFIED  # a suspension notice: what is barred now
    link: str = ""  # the holder's signed page link, when next_step does not already carry it


_ZH = {
    Template.TEMPLATE_WARNING: "【安全提醒】您的号码{m}近期使用异常：{r}。请于{d}前完成核验：{n}。逾期未核验，{c}。",
    Template.TEMPLATE_REMINDER: "【核验提醒】您的号码{m}尚未完成核验（{r}）。请于{d}前完成：{n}。",
    Template.TEMPLATE_SUSPENDED: "【保护性停机】为保护您的权益，{s}。原因：{r}。恢复方法：{n}。",
    Template.TEMPLATE_RESTORED: "【复机通知】您的号码{m}已完成核验并恢复正常使用。感谢您的配合。",
    Template.TEMPLATE_TERMINATED: "【销号通知】经公安或监管部门确认涉诈并经审核，您的号码{m}已依法注销。原因：{r}。如有异议：{n}。",
}
_EN = {
    Template.TEMPLATE_WARNING: "[Security notice] Unusual use of your number {m}: {r}. Please verify by {d}: {n}. "
    "If not verified, {c}.",
    Template.TEMPLATE_REMINDER: "[Reminder] Your number {m} is not yet verified ({r}). Please verify by {d}: {n}.",
    Template.TEMPLATE_SUSPENDED: "[Protective suspension] To protect you, {s}. Why: {r}. To restore: {n}.",
    Template.TEMPLATE_RESTORED: "[Restored] Your number {m} has been verified and is back in service. Thank you.",
    Template.TEMPLATE_TERMINATED: "[Terminated] After fraud was confirmed by the police or the regulator and reviewed, your"
    " number {m} has been terminated. Why: {r}. To dispute it: {n}.",
}
_SUBJECT = {
    "zh": {
        Template.TEMPLATE_WARNING: "号码安全提醒",
        Template.TEMPLATE_REMINDER: "号码核验提醒",
        Template.TEMPLATE_SUSPENDED: "号码保护性停机通知",
        Template.TEMPLATE_RESTORED: "号码复机通知",
        Template.TEMPLATE_TERMINATED: "号码注销通知",
    },
    "en": {
        Template.TEMPLATE_WARNING: "Security notice for your number",
        Template.TEMPLATE_REMINDER: "Reminder: please verify your number",
        Template.TEMPLATE_SUSPENDED: "Your number has been protectively suspended",
        Template.TEMPLATE_RESTORED: "Your number is back in service",
        Template.TEMPLATE_TERMINATED: "Your number has been terminated",
    },
}
# What happens to the line without verification (warning), by pending action.
_CONSEQUENCE = {
    "zh": {
        Action.ACTION_RESTRICT: "号码将被限制呼出和发送短信（仍可接听来电、接收短信和使用数据）",
        Action.ACTION_SUSPEND: "号码将被暂停全部服务",
    },
    "en": {
        Action.ACTION_RESTRICT: "outgoing calls and SMS will be barred (you can still receive calls, SMS and use data)",
        Action.ACTION_SUSPEND: "all services of the number will be suspended",
    },
}
_CONSEQUENCE_DEFAULT = {"zh": "号码可能被限制或暂停使用", "en": "the number may be restricted or suspended"}
# What is barred now (suspension notice), by line state.
_STATE = {
    "zh": {
        LineState.LINE_STATE_RESTRICTED: "号码{m}已限制呼出和发送短信，仍可接听来电、接收短信和使用数据",
        LineState.LINE_STATE_SUSPENDED: "号码{m}已暂停全部服务",
    },
    "en": {
        LineState.LINE_STATE_RESTRICTED: "outgoing calls and SMS from {m} are barred; you can still receive calls, "
        "SMS and use data",
        LineState.LINE_STATE_SUSPENDED: "all services of {m} are suspended",
    },
}
_STATE_DEFAULT = {"zh": "号码{m}已暂停部分或全部服务", "en": "services of {m} are restricted or suspended"}


# The holder's page (reason, what to do, the online check, an appeal, live status): signed link, no number in it.
_LINK = {"zh": "详情及办理：{l}", "en": " Details and self-service: {l}"}
LINKED = {Template.TEMPLATE_WARNING, Template.TEMPLATE_REMINDER, Template.TEMPLATE_SUSPENDED}


def subject(template: Template.ValueType, language: str) -> str:
    return _SUBJECT["zh" if language == "zh" else "en"][template]


def render(template: Template.ValueType, language: str, c: Content) -> str:
    lang = "zh" if language == "zh" else "en"
    table = _ZH if lang == "zh" else _EN
    if c.deadline is not None:
        deadline = c.deadline.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")
        deadline += "（北京时间）" if lang == "zh" else " (Beijing time)"
    else:
        deadline = "尽快" if lang == "zh" else "as soon as possible"
    sep = "；" if lang == "zh" else "; "
    consequence = _CONSEQUENCE[lang].get(c.pending_action, _CONSEQUENCE_DEFAULT[lang])
    state = _STATE[lang].get(c.line_state, _STATE_DEFAULT[lang]).format(m=c.masked_msisdn)
    body = table[template].format(
        m=c.masked_msisdn, r=sep.join(c.reasons), d=deadline, n=c.next_step, c=consequence, s=state
    )
    return body + _LINK[lang].format(l=c.link) if c.link and template in LINKED else body

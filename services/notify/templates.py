"""Messages a holder can act on, in Chinese and English: why, what happens next, by when, how to restore."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from carrier.notify.v1.notify_pb2 import Template

CHINA_TZ = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Content:
    masked_msisdn: str
    reasons: list[str]  # sentences in the message's language
    deadline: datetime | None
    next_step: str


_ZH = {
    Template.TEMPLATE_WARNING: "【安全提醒】您的号码{m}近期使用异常：{r}。请于{d}前完成核验：{n}。逾期未核验，号码可能被限制或暂停使用。",
    Template.TEMPLATE_REMINDER: "【核验提醒】您的号码{m}尚未完成核验（{r}）。请于{d}前完成：{n}。",
    Template.TEMPLATE_SUSPENDED: "【保护性停机】为保护您的权益，号码{m}已暂停部分或全部服务，原因：{r}。恢复方法：{n}。",
    Template.TEMPLATE_RESTORED: "【复机通知】您的号码{m}已完成核验并恢复正常使用。感谢您的配合。",
}
_EN = {
    Template.TEMPLATE_WARNING: "[Security notice] Unusual use of your number {m}: {r}. Please verify by {d}: {n}. "
    "If not verified, the number may be restricted or suspended.",
    Template.TEMPLATE_REMINDER: "[Reminder] Your number {m} is not yet verified ({r}). Please verify by {d}: {n}.",
    Template.TEMPLATE_SUSPENDED: "[Protective suspension] To protect you, services of {m} are restricted or suspended. "
    "Why: {r}. To restore: {n}.",
    Template.TEMPLATE_RESTORED: "[Restored] Your number {m} has been verified and is back in service. Thank you.",
}


def render(template: int, language: str, c: Content) -> str:
    table = _ZH if language == "zh" else _EN
    if c.deadline is not None:
        deadline = c.deadline.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")
    else:
        deadline = "尽快" if language == "zh" else "as soon as possible"
    sep = "；" if language == "zh" else "; "
    return table[template].format(m=c.masked_msisdn, r=sep.join(c.reasons), d=deadline, n=c.next_step)

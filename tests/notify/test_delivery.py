"""Notify reaches the holder over the channel ladder, through the real SMSC, push gateway, mail server and IVR."""

from __future__ import annotations

from datetime import timedelta

from google.protobuf.duration_pb2 import Duration

from carrier.common.v1 import common_pb2
from carrier.hlr.v1 import hlr_pb2
from carrier.notify.v1 import notify_pb2, notify_pb2_grpc
from tests.helpers import connect, register_line, rid


def notify(stack) -> notify_pb2_grpc.NotifyServiceStub:
    return notify_pb2_grpc.NotifyServiceStub(connect(stack.cfg, "notify", "worker"))


async def send_warning(stack, msisdn: str, province: str = "65", language: str = "zh") -> str:
    resp = await notify(stack).SendNotification(
        notify_pb2.SendNotificationRequest(
            request_id=rid(),
            msisdn=msisdn,
            home_province=province,
            case_id=f"case-test-{rid()[:8]}",
            template=notify_pb2.TEMPLATE_WARNING,
            language=language,
            reasons=[common_pb2.Reason(code="CALL_BURST", text_zh="1小时内拨出23次", text_en="23 calls in 1 hour")],
            line_state=common_pb2.LINE_STATE_WARNED,
            next_step_zh="登录 https://verify.example/r 完成实名核验",
            next_step_en="verify online at https://verify.example/r",
            pending_action=common_pb2.ACTION_RESTRICT,
        )
    )
    return resp.notification_id


async def outcome(stack, nid: str, wait_s: float = 20) -> notify_pb2.GetNotificationResponse:
    return await notify(stack).GetNotification(
        notify_pb2.GetNotificationRequest(notification_id=nid, wait_for_outcome=Duration(seconds=int(wait_s))),
        timeout=wait_s + 5,
    )


def attempts(n: notify_pb2.GetNotificationResponse) -> list[tuple[str, str, str]]:
    return [
        (
            notify_pb2.Channel.Name(a.channel).removeprefix("CHANNEL_").lower(),
            a.outcome,
            notify_pb2.ErrorClass.Name(a.error_class).removeprefix("ERROR_CLASS_").lower(),
        )
        for a in n.attempts
    ]


async def test_sms_at_home_is_delivered_by_receipt(stack):
    msisdn = "13800000101"
    await register_line(stack.cfg, msisdn, "44", "holder-44-0101")
    n = await outcome(stack, await send_warning(stack, msisdn, "44"))
    assert n.status == notify_pb2.DELIVERY_STATUS_DELIVERED
    assert n.delivered_channel == notify_pb2.CHANNEL_SMS
    assert n.location == "home"
    assert attempts(n) == [("sms", "delivered", "unspecified")]


async def test_abroad_sms_fails_absent_and_push_lands(stack):
    msisdn = "13800000102"
    await register_line(stack.cfg, msisdn, "65", "holder-65-0102", push_token="push-0102", email="zhang@example.cn")
    stack.sims.network.move(msisdn, hlr_pb2.LOCATION_STATUS_ROAMING_INTERNATIONAL, "NP")
    n = await outcome(stack, await send_warning(stack, msisdn))
    assert n.status == notify_pb2.DELIVERY_STATUS_DELIVERED
    assert n.delivered_channel == notify_pb2.CHANNEL_PUSH
    assert (n.location, n.country) == ("roaming_international", "NP")
    assert attempts(n) == [("sms", "undeliv", "absent"), ("push", "delivered", "unspecified")]
    assert all(a.location == "roaming_international" for a in n.attempts)


async def test_no_app_falls_back_to_email_then_manual_outreach_when_nothing_works(stack):
    msisdn = "13800000103"
    await register_line(stack.cfg, msisdn, "65", "holder-65-0103", email="li@example.cn")
    stack.sims.network.move(msisdn, hlr_pb2.LOCATION_STATUS_ROAMING_INTERNATIONAL, "NP")
    n = await outcome(stack, await send_warning(stack, msisdn, language="en"))
    assert n.delivered_channel == notify_pb2.CHANNEL_EMAIL
    assert attempts(n) == [
        ("sms", "undeliv", "absent"),
        ("push", "skipped", "permanent"),
        ("email", "delivered", "unspecified"),
    ]
    mail = [m for m in stack.sims.mail.handler.received if m.to == "li@example.cn"]
    assert len(mail) == 1 and "138****0103" in mail[0].body and msisdn not in mail[0].body
    assert "outgoing calls and SMS will be barred" in mail[0].body
    assert "li@" not in "".join(a.detail for a in n.attempts)  # contacts masked: l***@example.cn


async def test_handset_that_reattaches_gets_the_sms_at_once(stack):
    msisdn = "13800000104"
    await register_line(stack.cfg, msisdn, "44", "holder-44-0104")
    stack.sims.network.move(msisdn, hlr_pb2.LOCATION_STATUS_ABSENT)
    nid = await send_warning(stack, msisdn, "44")
    n = await outcome(stack, nid, wait_s=2)
    assert n.status == notify_pb2.DELIVERY_STATUS_PENDING
    assert ("sms", "undeliv", "absent") in attempts(n) and ("voice", "failed", "absent") in attempts(n)
    # Without the re-attach, the next try would wait for the absent-subscriber schedule.
    assert n.next_attempt_at.ToDatetime() - n.attempts[0].at.ToDatetime() > timedelta(minutes=5)
    stack.sims.network.move(msisdn, hlr_pb2.LOCATION_STATUS_HOME)
    n = await outcome(stack, nid)
    assert n.status == notify_pb2.DELIVERY_STATUS_DELIVERED and n.delivered_channel == notify_pb2.CHANNEL_SMS

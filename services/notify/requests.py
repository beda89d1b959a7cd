"""What the notify service accepts: every field checked before anything happens."""

from __future__ import annotations

from carrier.notify.v1 import notify_pb2
from pscommon.validation import Violations

TEMPLATES = set(notify_pb2.Template.values()) - {notify_pb2.TEMPLATE_UNSPECIFIED}


def check_send(r: notify_pb2.SendNotificationRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    v.msisdn(r.msisdn)
    v.province(r.home_province, "home_province")
    v.required(r.case_id, "case_id")
    v.enum(r.template, "template", TEMPLATES)
    v.check(r.language in ("zh", "en"), "language", "must be 'zh' or 'en'")
    v.raise_if_any()


MAX_WAIT_S = 300  # a long poll, not a parked connection


def check_get(r: notify_pb2.GetNotificationRequest) -> None:
    v = Violations()
    v.uuid(r.notification_id, "notification_id")
    wait = r.wait_for_outcome
    v.check(
        0 <= wait.seconds <= MAX_WAIT_S and wait.nanos >= 0, "wait_for_outcome", f"from 0 up to {MAX_WAIT_S} seconds"
    )
    v.raise_if_any()

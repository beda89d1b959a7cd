"""Every warning, restriction notice and reminder carries the holder's signed link; a restored notice does not."""

from __future__ import annotations

import dataclasses
import re

from carrier.notify.v1 import notify_pb2
from pscommon.config import Settings
from pscommon.identity import line_hash
from services.notify.server import Notify
from tests.portal.conftest import LINK_KEYS, key_spec, signer

CASE = f"case-{line_hash('19880000002', 'k')}-1"
BASE = "http://127.0.0.1:8090/h"


def notify(**kw) -> Notify:
    cfg = dataclasses.replace(Settings(), link_keys=key_spec(LINK_KEYS), link_active_key="p1", verify_url_base=BASE)
    return Notify(None, dataclasses.replace(cfg, **kw), None)  # type: ignore[arg-type]


def req(template, language="zh", case_id=CASE) -> notify_pb2.SendNotificationRequest:
    return notify_pb2.SendNotificationRequest(case_id=case_id, template=template, language=language)


def test_the_bare_address_in_the_next_step_becomes_the_signed_link():
    step, extra = notify()._with_link(req(notify_pb2.TEMPLATE_WARNING), f"在短信链接中完成核验（{BASE}）")
    token = re.search(re.escape(BASE) + r"/([A-Za-z0-9_.-]+)", step)[1]
    assert extra == "" and signer().verify(token).case_id == CASE and signer().verify(token).language == "zh"


def test_a_next_step_without_the_address_gets_the_link_appended_in_the_holders_language():
    for template in (notify_pb2.TEMPLATE_REMINDER, notify_pb2.TEMPLATE_SUSPENDED):
        step, extra = notify()._with_link(req(template, "en"), "visit a business hall")
        assert step == "visit a business hall" and extra.startswith(BASE + "/")
        assert signer().verify(extra.rsplit("/", 1)[1]).language == "en"


def test_no_link_for_restored_notices_unknown_case_ids_or_without_keys():
    assert notify()._with_link(req(notify_pb2.TEMPLATE_RESTORED), "x") == ("x", "")
    assert notify()._with_link(req(notify_pb2.TEMPLATE_WARNING, case_id="case-1"), "x") == ("x", "")
    assert notify(link_keys="")._with_link(req(notify_pb2.TEMPLATE_WARNING), "x") == ("x", "")

"""The holder's pages and forms, through aiohttp's test client, against the real verification service and case."""

from __future__ import annotations

import dataclasses
import pathlib
import re

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from carrier.verification.v1 import verification_pb2 as vpb
from carrier.verification.v1 import verification_pb2_grpc
from pscommon.channels import channel
from pscommon.tls import TlsFiles
from services.portal.clients import Clients
from services.portal.web import UPLOADS, build_app
from tests.helpers import connect, open_case, reach, register_line
from tests.portal.conftest import LINK_KEYS, MP4, PNG, form_value, key_spec, signer

pytestmark = pytest.mark.timeout(120)


async def case_for(stack, msisdn: str, holder: str, level: str = "medium", action: str = "restrict") -> str:
    await register_line(stack.cfg, msisdn, "44", holder)
    case_id = await open_case(stack, msisdn, level, action)
    await reach(stack, case_id, "warned")
    return case_id


def status_of(stack, case_id: str):
    stub = verification_pb2_grpc.VerificationServiceStub(connect(stack.cfg, "verification", "ops"))
    return stub.GetCaseStatus(vpb.GetCaseStatusRequest(case_id=case_id))


def verify_form(html: str, msisdn: str, holder: str, video: bytes = MP4, notice: bool = True) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("csrf_token", form_value(html, "csrf_token"))
    form.add_field("request_id", form_value(html, "request_id"))
    form.add_field("msisdn", msisdn)
    form.add_field("holder_ref", holder)
    form.add_field("liveness", video, filename="me.mp4", content_type="video/mp4")
    if notice:
        form.add_field("risk_notice", "yes")
    return form


def appeal_form(html: str, msisdn: str, text: str, files: list[tuple[str, bytes]]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("csrf_token", form_value(html, "csrf_token", -1))
    form.add_field("request_id", form_value(html, "request_id", -1))
    form.add_field("msisdn", msisdn)
    form.add_field("explanation", text)
    for name, data in files:
        form.add_field("evidence", data, filename=name, content_type="application/octet-stream")
    return form


async def test_the_page_says_why_what_is_barred_what_to_do_and_by_when_in_the_holders_language(stack, portal):
    msisdn = "19880000101"
    case_id = await case_for(stack, msisdn, "holder-88-0101")
    token = signer().sign(case_id, "zh")
    resp = await portal.get(f"/h/{token}")
    html = await resp.text()
    assert resp.status == 200, html
    assert '<html lang="zh-CN">' in html
    assert "198****0101" in html and msisdn not in html
    assert "1小时内向23个从未联系过的号码拨出电话" in html  # the reason with its numbers
    assert "下一步怎么做" in html and "请在此时间前完成" in html and "北京时间" in html
    assert 'name="liveness"' in html and 'name="explanation"' in html  # medium risk: online check and appeal
    assert "已发送安全提醒" in html  # history
    title = re.search(r"<title>(.*)</title>", html)[1]
    assert "198" not in title
    csp = resp.headers["Content-Security-Policy"]
    assert resp.headers["Referrer-Policy"] == "no-referrer" and "script-src 'self'" in csp and "unsafe" not in csp
    en = await (await portal.get(f"/h/{token}?lang=en")).text()
    assert '<html lang="en">' in en and "23 calls in 1 hour to numbers never called before" in en
    assert "What to do next" in en


async def test_a_high_risk_holder_is_sent_to_a_hall_with_what_to_bring(stack, portal):
    msisdn = "19880000102"
    case_id = await case_for(stack, msisdn, "holder-88-0102", level="high", action="suspend")
    html = await (await portal.get(f"/h/{signer().sign(case_id, 'en')}")).text()
    assert "business hall" in html and "public-security code" in html and "your own valid ID card" in html
    assert 'name="liveness"' not in html  # no online check for high risk
    assert 'name="explanation"' in html


async def test_wrong_tampered_and_expired_links_show_what_to_do_never_a_trace(stack, portal):
    msisdn = "19880000103"
    case_id = await case_for(stack, msisdn, "holder-88-0103")
    good = signer().sign(case_id, "zh")
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    expired = signer(ttl_s=-1).sign(case_id, "zh")
    for path, status in (
        (f"/h/{tampered}", 404),
        ("/h/p1.short", 404),
        ("/h/", 404),
        ("/h/nonsense/status", 404),
        (f"/h/{expired}", 410),
        (f"/h/{tampered}/status", 404),
    ):
        resp = await portal.get(path)
        html = await resp.text()
        assert resp.status == status, path
        assert "营业厅" in html and "10086" in html and "Traceback" not in html
    assert "链接已过期" in await (await portal.get(f"/h/{expired}")).text()
    unknown = signer().sign(case_id.rsplit("-", 1)[0] + "-99", "en")  # a well-signed link to no case
    resp = await portal.get(f"/h/{unknown}")
    assert resp.status == 404 and "cannot be found" in await resp.text()


async def test_a_forged_or_missing_csrf_token_is_refused_and_nothing_happens(stack, portal):
    msisdn, holder = "19880000104", "holder-88-0104"
    case_id = await case_for(stack, msisdn, holder)
    token = signer().sign(case_id, "zh")
    html = await (await portal.get(f"/h/{token}")).text()
    form = verify_form(html.replace(form_value(html, "csrf_token"), "0" * 64), msisdn, holder)
    resp = await portal.post(f"/h/{token}/verify", data=form)
    assert resp.status == 403 and "不是从本页面提交" in await resp.text()
    portal.session.cookie_jar.clear()  # a cross-site request: no session cookie, a token copied from elsewhere
    resp = await portal.post(f"/h/{token}/verify", data=verify_form(html, msisdn, holder))
    assert resp.status == 403
    assert (await status_of(stack, case_id)).stage == "warned"


async def test_bad_input_is_named_on_the_form(stack, portal):
    msisdn, holder = "19880000105", "holder-88-0105"
    case_id = await case_for(stack, msisdn, holder)
    token = signer().sign(case_id, "en")
    html = await (await portal.get(f"/h/{token}")).text()
    cases = [
        (verify_form(html, "19880000999", holder), 400, "not the number of this case"),
        (verify_form(html, "12ab", holder), 400, "11-digit"),
        (verify_form(html, msisdn, "bad holder ref with spaces"), 400, "ID number"),
        (verify_form(html, msisdn, holder, video=b"just some text"), 415, "MP4, MOV or WebM"),
        (verify_form(html, msisdn, holder, video=MP4 + bytes(8 * 1024 * 1024)), 413, "too large"),
        (verify_form(html, msisdn, holder, notice=False), 400, "tick the risk notice"),
    ]
    for form, status, words in cases:
        resp = await portal.post(f"/h/{token}/verify", data=form)
        assert resp.status == status and words in await resp.text(), words
    huge = verify_form(html, msisdn, holder, video=MP4 + bytes(13 * 1024 * 1024))
    resp = await portal.post(f"/h/{token}/verify", data=huge)
    assert resp.status == 413 and "Traceback" not in await resp.text()
    assert (await status_of(stack, case_id)).stage == "warned"


async def test_a_failed_check_says_what_failed_and_how_many_tries_are_left(stack, portal):
    msisdn = "19880000106"
    case_id = await case_for(stack, msisdn, "holder-88-0106")
    token = signer().sign(case_id, "en")
    html = await (await portal.get(f"/h/{token}")).text()
    resp = await portal.post(f"/h/{token}/verify", data=verify_form(html, msisdn, "forged-88-0106"))
    text = await resp.text()
    assert resp.status == 422 and "does not match the registered holder" in text and "4 more times" in text


async def test_the_online_check_restores_the_line_and_the_status_page_follows_it(stack, portal):
    msisdn, holder = "19880000107", "holder-88-0107"
    case_id = await case_for(stack, msisdn, holder)
    token = signer().sign(case_id, "zh")
    html = await (await portal.get(f"/h/{token}")).text()
    resp = await portal.post(f"/h/{token}/verify", data=verify_form(html, msisdn, holder), allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith(f"/h/{token}/status?sent=verify")
    live = await (await portal.get(resp.headers["Location"])).text()
    assert "已收到您的核验" in live or 'id="restored"' in live  # the line may be back already
    await reach(stack, case_id, "restored")
    done = await (await portal.get(f"/h/{token}/status")).text()
    assert 'id="restored"' in done and "status.js" not in done  # done: nothing polls any more
    polled = await (await portal.get(f"/h/{token}/status.json?lang=en")).json()
    assert polled == {"stage": "Back in service", "restored": True, "done": True}
    store = portal.server.app[UPLOADS]  # the liveness video is sealed at rest: its bytes never appear in the file
    (stored,) = list(store.folder.iterdir())
    assert b"ftypmp42" not in stored.read_bytes() and store.open("upload:" + stored.name).data == MP4


async def test_an_appeal_with_evidence_reaches_a_reviewer_and_the_files_are_sealed(stack, portal):
    msisdn, holder = "19880000108", "holder-88-0108"
    case_id = await case_for(stack, msisdn, holder, level="high", action="suspend")
    token = signer().sign(case_id, "en")
    html = await (await portal.get(f"/h/{token}")).text()
    wrong = await portal.post(f"/h/{token}/appeal", data=appeal_form(html, "19880000999", "deliveries", []))
    assert wrong.status == 400 and 'id="a_msisdn-error"' in await wrong.text()  # shown on the appeal form
    for files, status, words in (
        ([("a.txt", b"hello")], 415, "JPG, PNG or PDF"),
        ([("big.png", PNG + bytes(2 * 1024 * 1024))], 413, "larger than allowed"),
        ([(f"{i}.png", PNG) for i in range(6)], 400, "Too many files"),
    ):
        resp = await portal.post(f"/h/{token}/appeal", data=appeal_form(html, msisdn, "deliveries", files))
        assert resp.status == status and words in await resp.text()
    resp = await portal.post(
        f"/h/{token}/appeal",
        data=appeal_form(html, msisdn, "I deliver parcels; these were my customers.", [("slip.png", PNG)]),
        allow_redirects=False,
    )
    assert resp.status == 303
    s = await status_of(stack, case_id)
    assert s.review.kind == vpb.REVIEW_KIND_APPEAL and s.review.evidence_count == 1
    store = portal.server.app[UPLOADS]
    (stored,) = [p for p in store.folder.iterdir()]
    assert PNG[:8] not in stored.read_bytes()
    opened = store.open("upload:" + stored.name)
    assert opened is not None and opened.data == PNG and opened.content_type == "image/png"


async def test_verification_unreachable_is_a_busy_page_not_a_trace(stack, tmp_path):
    cfg = dataclasses.replace(
        stack.cfg, link_keys=key_spec(LINK_KEYS), link_active_key="p1", portal_uploads=str(tmp_path)
    )
    tls = TlsFiles.in_folder(pathlib.Path(cfg.pki_dir), "app")
    # Nothing listens on port 9 (discard): every call is UNAVAILABLE.
    dead = Clients(verification_pb2_grpc.VerificationServiceStub(channel("127.0.0.1:9", tls)))
    async with TestClient(TestServer(build_app(cfg, dead))) as client:
        resp = await client.get(f"/h/{signer().sign('case-' + '0' * 20 + '-1', 'en')}")
        text = await resp.text()
    assert resp.status == 503 and "Nothing about your number changes" in text and "Traceback" not in text

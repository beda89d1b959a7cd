"""The holder's side of the portal under attack: an outsider or a hostile holder with real requests.

What held is listed in docs/security.md; each test here is a finding that once got through."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from pscommon import links
from services.portal.clients import Clients
from services.portal.uploads import sniff
from services.portal.web import FORM_DEADLINE, UPLOADS, build_app
from tests.portal.conftest import LINK_KEYS, MP4, PNG, form_value, key_spec, signer
from tests.portal.test_holder_pages import appeal_form, case_for, status_of, verify_form

pytestmark = pytest.mark.timeout(120)
SID = "a" * 32  # a well-formed session cookie: the attacker has fetched a page first


async def raw(client: TestClient, request: bytes, wait_s: float = 10) -> bytes:
    """What the server answers to bytes no well-behaved client would send (an HTTP/1.1 exchange, then close)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), wait_s)
    finally:
        writer.close()


@pytest_asyncio.fixture
async def strict_portal(stack, tmp_path) -> AsyncIterator[TestClient]:
    """The portal behind TLS (secure cookies), giving any form at most half a second to arrive."""
    cfg = dataclasses.replace(
        stack.cfg,
        link_keys=key_spec(LINK_KEYS),
        link_active_key="p1",
        portal_uploads=str(tmp_path),
        portal_secure_cookies=True,
    )
    app = build_app(cfg, Clients.from_settings(dataclasses.replace(cfg, principal="app")))
    app[FORM_DEADLINE] = (0.5, 1024 * 1024)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_a_path_starting_with_two_slashes_never_becomes_a_link_to_another_site(portal):
    # Medium: the language switch echoed the path, so /​/evil.example gave a 404 page linking to evil.example.
    answer = await raw(portal, b"GET //evil.example/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404")
    assert b"evil.example" not in answer
    assert b'class="switch" href="?lang=en"' in answer


def test_a_link_has_exactly_one_spelling():
    # Low: the decoder skipped stray characters, padding and the last character's spare bits, so `"<>` inside a
    # token (or 15 other last characters) still opened the case.
    s = signer()
    token = s.sign("case-" + "ab" * 10 + "-1", "zh")
    kid, b64 = token.split(".")
    spare_bits = [kid + "." + b64[:-1] + c for c in "AEIMQUYcgkosw048" if c != b64[-1]]
    for variant in [kid + "." + b64[:5] + '"<>' + b64[5:], token + "==", *spare_bits]:
        with pytest.raises(links.LinkError) as refused:
            s.verify(variant)
        assert refused.value.reason in ("malformed", "tampered"), variant
    assert s.verify(token).case_id == "case-" + "ab" * 10 + "-1"


async def test_a_non_ascii_csrf_token_is_refused_not_an_error(portal):
    # Low: hmac.compare_digest raised TypeError on a non-ASCII str: a 500 instead of a 403.
    resp = await portal.post("/h/x/verify", data={"csrf_token": "é" * 64}, cookies={"psp_sid": SID})
    assert resp.status == 403


async def test_a_form_that_does_not_parse_is_bad_input_not_an_error(portal):
    # Low: a broken multipart body was a 500 ("unhandled InvalidHeader"); bad input is a 400.
    for body, ctype in (
        (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
        (b"{}", "multipart/form-data"),
    ):
        resp = await portal.post("/h/x/verify", data=body, headers={"Content-Type": ctype}, cookies={"psp_sid": SID})
        assert resp.status == 400, ctype
        assert "Traceback" not in await resp.text()


async def test_a_body_that_stalls_is_cut_off(strict_portal):
    # Medium: aiohttp has no read timeout on bodies: a client announcing 100 kB and sending 11 bytes held the
    # connection (and the handler) for as long as it liked: slowloris with a handful of sockets.
    head = (
        b"POST /reviewer/sign-in HTTP/1.1\r\nHost: x\r\nCookie: psp_sid=" + SID.encode() + b"\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\ncsrf_token="
    )
    answer = await raw(strict_portal, head, wait_s=15)
    assert answer.startswith(b"HTTP/1.1 408")


async def test_no_version_banner_and_https_only_behind_tls(strict_portal):
    # Low: `Server: Python/3.11 aiohttp/3.14.5` told an attacker which CVEs to try; no HSTS behind TLS.
    resp = await strict_portal.get("/h/")
    assert "aiohttp" not in resp.headers.get("Server", "") and "Python" not in resp.headers.get("Server", "")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    assert resp.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    static = await strict_portal.get("/static/portal.css")
    assert static.status == 200 and "aiohttp" not in static.headers.get("Server", "")


async def test_an_appeal_naming_another_review_is_refused_in_words(stack, portal):
    # Low: a review id that is not this case's (tampered, or stale) made verification answer NOT_FOUND, which the
    # page showed as the generic 500 error page.
    msisdn = "19880000151"
    case_id = await case_for(stack, msisdn, "holder-88-0151")
    token = signer().sign(case_id, "en")
    html = await (await portal.get(f"/h/{token}")).text()
    form = appeal_form(html, msisdn, "deliveries before the holiday", [])
    form.add_field("review_id", str(uuid.uuid4()))
    resp = await portal.post(f"/h/{token}/appeal", data=form)
    text = await resp.text()
    assert resp.status == 409, text
    assert "reload the page to see where it stands" in text
    assert (await status_of(stack, case_id)).stage == "warned"


async def test_a_token_from_another_session_or_a_method_override_is_refused(stack, portal):
    # Held (kept as a guard): the CSRF token is bound to the session cookie it was issued with.
    msisdn, holder = "19880000152", "holder-88-0152"
    case_id = await case_for(stack, msisdn, holder)
    token = signer().sign(case_id, "zh")
    theirs = await (await portal.get(f"/h/{token}")).text()
    portal.session.cookie_jar.clear()
    await portal.get(f"/h/{token}")  # a session of our own, and the other session's token
    resp = await portal.post(f"/h/{token}/verify", data=verify_form(theirs, msisdn, holder))
    assert resp.status == 403
    resp = await portal.post(f"/h/{token}/verify", data={"_method": "GET"}, headers={"X-HTTP-Method-Override": "GET"})
    assert resp.status == 403
    mine = form_value(await (await portal.get(f"/h/{token}")).text(), "csrf_token")
    resp = await portal.post(f"/h/{token}/verify", json={"csrf_token": mine})  # the token, but not as a form
    assert resp.status == 403
    resp = await portal.post(f"/h/{token}/verify", data=f"csrf_token={mine}", headers={"Content-Type": "text/plain"})
    assert resp.status == 403
    assert (await status_of(stack, case_id)).stage == "warned"


async def test_files_of_a_refused_submission_do_not_stay_on_disk(stack, portal):
    # Medium: uploads were sealed and stored before verification answered and kept for 180 days when it refused:
    # a link and the number let anyone add 10 MB a request, unlimited (each repeat appeal is refused, files stay).
    msisdn = "19880000153"
    case_id = await case_for(stack, msisdn, "holder-88-0153", level="high", action="suspend")
    token = signer().sign(case_id, "en")
    store = portal.server.app[UPLOADS]
    html = await (await portal.get(f"/h/{token}")).text()
    first = await portal.post(
        f"/h/{token}/appeal", data=appeal_form(html, msisdn, "my deliveries", [("a.png", PNG)]), allow_redirects=False
    )
    assert first.status == 303
    assert len(list(store.folder.iterdir())) == 1
    for i in range(3):
        html = await (await portal.get(f"/h/{token}")).text()
        files = [(f"{i}-{n}.png", PNG) for n in range(5)]
        resp = await portal.post(f"/h/{token}/appeal", data=appeal_form(html, msisdn, "again", files))
        assert resp.status == 409, await resp.text()
    assert len(list(store.folder.iterdir())) == 1


def test_only_real_video_containers_pass_as_a_liveness_video():
    # Low: any bytes with `ftyp` at offset 4 passed as video/mp4 (an HTML page, a script).
    assert sniff(b"\x00\x00\x00\x00ftyp<html><script>alert(1)</script>") is None
    assert sniff(b"\x00\x00\x00\x18ftyp#!/bin/sh\nrm -rf /") is None
    assert sniff(MP4) == "video/mp4"
    assert sniff(b"\x00\x00\x00\x14ftypqt  " + bytes(64)) == "video/quicktime"
    assert sniff(b"\x1a\x45\xdf\xa3" + bytes(64)) == "video/webm"

"""The console behind the carrier's SSO proxy (PSP_PORTAL_SSO_HEADER, as deploy/k8s runs it): the proxy's header
names the reviewer, the password form is off, and a session lasts only while the proxy names the same reviewer.
Only the sign-in page is opened, so no verification is needed; the tests' CA issued reviewer-1 and reviewer-2."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from pscommon import codec
from pscommon.config import Settings
from services.portal.reviewer.session import COOKIE
from services.portal.web import CSRF_SECRET, SESSION_COOKIE, build_app

HEADER = "X-Auth-Request-User"


@pytest_asyncio.fixture
async def console(pki_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PSP_PORTAL_SSO_HEADER", HEADER)
    monkeypatch.setenv("PSP_PORTAL_REVIEWER_PASSWORD", "a-password-that-must-not-work")
    cfg = dataclasses.replace(
        Settings(),
        portal_pages="reviewer",
        pki_dir=str(pki_dir),
        codec_keys=codec.new_key_spec("t1"),
        codec_active_key="t1",
        portal_uploads=str(tmp_path),
        portal_secret="test-secret",
        portal_secure_cookies=False,
    )
    async with TestClient(TestServer(build_app(cfg, None))) as client:
        yield client


async def sign_in(client: TestClient, reviewer: str | None, cookie: str = ""):
    headers = {HEADER: reviewer} if reviewer is not None else {}
    if cookie:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    return await client.get("/reviewer/sign-in", headers=headers, allow_redirects=False)


async def test_the_proxys_reviewer_is_signed_in_and_stays_while_the_proxy_names_them(console):
    first = await sign_in(console, "reviewer-1")
    assert first.status == 303 and first.headers["Location"] == "/reviewer/"
    cookie = first.cookies[COOKIE].value
    again = await sign_in(console, "reviewer-1", cookie)
    assert again.status == 303 and COOKIE not in again.cookies  # the session holds: no new one
    # Another reviewer at the proxy (a shared desk computer): reviewer-1's session is not theirs.
    other = await sign_in(console, "reviewer-2", cookie)
    assert other.status == 303 and other.cookies[COOKIE].value != cookie


async def test_no_session_without_the_proxys_word(console):
    cookie = (await sign_in(console, "reviewer-1")).cookies[COOKIE].value
    resp = await sign_in(console, None, cookie)
    assert resp.status == 403 and "does not name a reviewer" in await resp.text()


@pytest.mark.parametrize("subject", ["app", "ops", "reviewer-9", "../reviewer-1", "", "REVIEWER-1"])
async def test_a_subject_that_is_not_a_reviewer_of_ours_is_refused(console, subject):
    resp = await sign_in(console, subject)
    assert resp.status == 403 and COOKIE not in resp.cookies


async def test_the_password_form_is_off(console):
    sid = "0" * 32
    token = hmac.new(console.server.app[CSRF_SECRET], b"csrf:" + sid.encode(), hashlib.sha256).hexdigest()
    resp = await console.post(
        "/reviewer/sign-in",
        data={"csrf_token": token, "reviewer_id": "reviewer-1", "password": "a-password-that-must-not-work"},
        headers={"Cookie": f"{SESSION_COOKIE}={sid}"},
        allow_redirects=False,
    )
    assert resp.status == 403 and "single sign-on" in await resp.text()
    assert COOKIE not in resp.cookies

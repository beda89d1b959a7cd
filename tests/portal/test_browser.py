"""End to end in headless Chromium on a phone-sized screen: the holder opens the link from the warning SMS, reads
why, passes the online check and sees the line restored; every page passes axe's accessibility rules.

Runs when a `chromium` binary is installed (Debian: apt-get install chromium) and the pinned playwright is
importable; skipped with the reason otherwise. Screenshots go to PSP_SHOTS (default /tmp/portal-shots).
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import shutil
import time

import pytest

from pscli.sms_inbox import link_in, warning_sms
from tests.helpers import open_case, reach, register_line
from tests.portal.conftest import MP4

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from axe_playwright_python.async_playwright import Axe
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - the dev requirements pin both
    async_playwright = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium); browser test skipped"
    ),
    pytest.mark.skipif(
        async_playwright is None, reason="playwright not installed (pip install -r requirements-dev.txt)"
    ),
]
SHOTS = pathlib.Path(os.environ.get("PSP_SHOTS", "/tmp/portal-shots"))
PHONE = {"width": 390, "height": 844}


async def accessible(page, name: str) -> None:
    results = await Axe().run(page)
    violations = [(v["id"], v["help"]) for v in results.response["violations"]]
    assert violations == [], f"{name}: {violations}"


async def test_holder_opens_the_sms_link_verifies_online_and_sees_the_line_restored(stack, portal):
    await asyncio.to_thread(SHOTS.mkdir, parents=True, exist_ok=True)
    msisdn, holder = "19880000201", "holder-88-0201"
    await register_line(stack.cfg, msisdn, "44", holder)
    case_id = await open_case(stack, msisdn, "medium", "restrict")
    await reach(stack, case_id, "warned")
    sms = await warning_sms(stack.cfg.database_url, case_id)
    assert sms is not None, "no warning SMS stored for the case"
    link = link_in(sms.body, stack.cfg.verify_url_base)
    assert link is not None, "the warning SMS carries no link"
    token = link.rsplit("/", 1)[1]
    assert msisdn not in sms.body and msisdn not in token
    base = str(portal.make_url("")).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await (await browser.new_context(viewport=PHONE, locale="zh-CN")).new_page()
            started = time.monotonic()
            await page.goto(f"{base}/h/{token}")
            load_ms = (time.monotonic() - started) * 1000
            print(f"holder page loaded in {load_ms:.0f} ms")
            assert await page.title() == "号码核验 · 号码安全服务"
            assert "198****0201" in await page.inner_text("main") and msisdn not in await page.content()
            await page.screenshot(path=SHOTS / "1-holder-page-zh.png", full_page=True)
            await accessible(page, "holder page (zh)")
            await page.get_by_role("link", name="English").click()
            assert await page.get_attribute("html", "lang") == "en"
            await page.screenshot(path=SHOTS / "2-holder-page-en.png", full_page=True)
            await accessible(page, "holder page (en)")
            await page.fill("#v-msisdn", msisdn)
            await page.fill("#v-holder", holder)
            await page.set_input_files("#v-video", {"name": "me.mp4", "mimeType": "video/mp4", "buffer": MP4})
            await page.check("#v-notice")
            await page.get_by_role("button", name="Verify", exact=True).click()
            await page.wait_for_url(re.compile(r"/status"))
            await page.screenshot(path=SHOTS / "3-status-after-verify.png", full_page=True)
            await accessible(page, "status page")
            # The page refreshes itself every 3 s until the line is back; wait for that (bounded), not a sleep.
            await page.wait_for_selector("#restored", timeout=60_000)
            assert "is back in service" in await page.inner_text("main")
            await page.screenshot(path=SHOTS / "4-restored.png", full_page=True)
            await accessible(page, "restored page")
            await page.goto(f"{base}/h/{token[:-3]}xyz")
            assert "链接无效" in await page.inner_text("main")  # no language known: Chinese, with a switch
            await page.screenshot(path=SHOTS / "5-bad-link.png", full_page=True)
            await accessible(page, "bad link page")
        finally:
            await browser.close()

"""A reviewer in headless Chromium: signs in, claims an appeal from the queue, reads the case and approves it,
then opens the decided review read-only; every page passes axe's accessibility rules (labels, contrast, the
language attribute ...). Screenshots go to /tmp/portal-shots/reviewer-*.png.

Needs a `chromium` binary (Debian: apt-get install -y chromium); without one the test is skipped, saying so.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest
from aiohttp.test_utils import TestServer

from contracts.case import CaseStatus
from services.portal.reviewer.directory import reviewer_password
from tests.helpers import appeal_in_review
from tests.portal.reviewer.conftest import PASSWORD, portal_app

CHROMIUM = os.environ.get("PSP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = pathlib.Path(os.environ.get("PSP_SHOTS", "/tmp/portal-shots"))
# The same markers as the holder's browser test (tests/portal/test_browser.py): `make test-browser` runs both.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        CHROMIUM is None or not os.path.exists(CHROMIUM),
        reason="no chromium binary on PATH (apt-get install chromium); browser test skipped",
    ),
]


def shot(name: str) -> str:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return str(SHOTS / f"reviewer-{name}.png")


async def accessible(page, name: str) -> None:
    from axe_playwright_python.async_playwright import Axe

    await page.screenshot(path=shot(name), full_page=True)
    results = await Axe().run(page)
    assert results.violations_count == 0, results.generate_report()


async def test_a_reviewer_signs_in_and_decides_an_appeal_in_chromium(stack, tmp_path):
    from playwright.async_api import async_playwright

    msisdn = "19320000097"
    case_id, review_id = await appeal_in_review(stack, msisdn)
    app = portal_app(stack, tmp_path / "uploads")  # Secure cookies: Chromium keeps them for http://127.0.0.1
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(f"{base}/reviewer/")
            assert page.url.endswith("/reviewer/sign-in")
            await accessible(page, "sign-in")

            await page.get_by_label("Reviewer id").fill("reviewer-1")
            await page.get_by_label("Password").fill(reviewer_password(PASSWORD, "reviewer-1"))
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{base}/reviewer/")
            assert await page.title() == "Review queue · Protective suspension"
            await accessible(page, "queue")

            await page.locator(f'form[action="/reviewer/reviews/{review_id}/claim"] button').click()
            await page.wait_for_url(f"{base}/reviewer/reviews/{review_id}")
            await page.get_by_text("I deliver parcels before the holiday").wait_for()
            await accessible(page, "case")

            await page.get_by_label("Approve: restore the line").check()
            await page.get_by_label("Note for reviewers (never shown to the holder)").fill("courier badge matches")
            await page.get_by_role("button", name="Record decision").click()
            await page.wait_for_url(f"{base}/reviewer/?decided=approved")
            await page.get_by_text("Your decision was recorded: approved.").wait_for()
            await accessible(page, "decided")
            html = await page.content()
            assert msisdn not in html

            # The decided review still opens (it left the queue), read-only.
            await page.goto(f"{base}/reviewer/reviews/{review_id}")
            await page.get_by_text("This review is decided; it is shown read-only.").wait_for()
            await page.get_by_text("Approved: the line is restored").wait_for()
            assert await page.get_by_role("button", name="Record decision").count() == 0
            await accessible(page, "decided-review")
            assert msisdn not in await page.content()
            await browser.close()
    finally:
        await server.close()
    done = await stack.client.get_workflow_handle(case_id, result_type=CaseStatus).result()
    assert done.stage == "restored"

"""The reviewer console under attack: an outsider guessing passwords, a hostile or careless reviewer."""

from __future__ import annotations

import pytest

from services.portal.reviewer.directory import MAX_FAILURES, MAX_FAILURES_ALL, WINDOW_S, reviewer_password
from services.portal.reviewer.routes import CONSOLE
from services.portal.reviewer.session import Sessions
from tests.helpers import appeal_in_review
from tests.portal.reviewer.conftest import PASSWORD, csrf_of, post, sign_in, signed_in

pytestmark = pytest.mark.timeout(120)


def fake_clock(new) -> list[float]:
    now = [1000.0]
    d = new.app[CONSOLE].directory
    d.per_reviewer.clock = d.everyone.clock = lambda: now[0]
    return now


async def test_guessing_the_password_locks_the_reviewer_id_for_a_while(browser_of):
    # Medium: 50 wrong passwords in 1.9 s against the running stack, then the right one signed in; the local
    # password is shared by every reviewer, so one guessed password is every reviewer.
    now = fake_clock(browser_of)
    client = await browser_of()
    for i in range(MAX_FAILURES):
        assert await sign_in(client, "reviewer-1", f"guess-{i}") == 401
    assert await sign_in(client, "reviewer-1") == 401  # locked: even the right password is refused
    assert await sign_in(client, "reviewer-2") == 303  # others are not locked out by it
    now[0] += WINDOW_S + 1
    assert await sign_in(await browser_of(), "reviewer-1") == 303


async def test_guesses_spread_over_made_up_reviewer_ids_are_counted_together(browser_of):
    now = fake_clock(browser_of)
    client = await browser_of()
    for i in range(MAX_FAILURES_ALL):
        assert await sign_in(client, f"made-up-{i}", f"guess-{i}") == 401
    assert await sign_in(client, "reviewer-1") == 401
    now[0] += WINDOW_S + 1
    assert await sign_in(client, "reviewer-1") == 303


async def test_a_cookie_with_non_ascii_bytes_is_no_session_not_an_error(browser_of):
    # Low: hmac.compare_digest raised TypeError on the signature's non-ASCII characters: every console page 500.
    client = await browser_of()
    resp = await client.get("/reviewer/", cookies={"psp_reviewer": "abc.é"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/reviewer/sign-in"


def test_a_revoked_session_is_no_session_even_with_its_cookie():
    sessions = Sessions(b"k" * 32)
    s = sessions.new("reviewer-1")
    cookie = sessions.dump(s)
    sessions.revoke(s)
    assert sessions.load(cookie) is None
    assert sessions.load(sessions.dump(sessions.new("reviewer-1"))) is not None


async def test_a_cookie_copied_before_sign_out_is_dead_after_it(browser_of):
    # Medium: a copied session cookie (shared computer, proxy log) kept acting as the reviewer for 8 hours.
    client = await signed_in(browser_of, "reviewer-1")
    cookie = next(c for c in client.session.cookie_jar if c.key == "psp_reviewer").value
    page = await (await client.get("/reviewer/")).text()
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert (await client.post("/reviewer/sign-out", data={"csrf_token": csrf}, allow_redirects=False)).status == 303
    resp = await client.get("/reviewer/", cookies={"psp_reviewer": cookie}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/reviewer/sign-in"


async def test_one_password_does_not_make_one_person_two_reviewers(browser_of):
    # High: one local password for every reviewer made whoever knew it reviewer-1 and reviewer-2 (four eyes: two).
    own = reviewer_password(PASSWORD, "reviewer-1")
    assert await sign_in(await browser_of(), "reviewer-1", own) == 303
    assert await sign_in(await browser_of(), "reviewer-2", own) == 401
    assert await sign_in(await browser_of(), "reviewer-1", PASSWORD) == 401  # the desk secret is no password


async def test_a_document_number_that_is_not_ascii_digits_is_not_found(stack, browser_of):
    _, review_id = await appeal_in_review(stack, "19880000161")
    client = await signed_in(browser_of, "reviewer-1")
    assert (await post(client, review_id, "claim")).status == 303
    resp = await client.get(f"/reviewer/reviews/{review_id}/evidence/%C2%B2", allow_redirects=False)
    assert resp.status == 404


async def test_a_holders_explanation_is_shown_as_text_never_as_markup(stack, browser_of):
    # Held (kept as a guard): what a holder types reaches the reviewer's page escaped.
    attack = '</blockquote><script>alert(1)</script><img src=x onerror="alert(2)">'
    _, review_id = await appeal_in_review(stack, "19880000162", explanation=attack)
    client = await signed_in(browser_of, "reviewer-1")
    assert (await post(client, review_id, "claim")).status == 303
    html = await (await client.get(f"/reviewer/reviews/{review_id}")).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html and "<img" not in html


async def test_signing_in_starts_a_new_form_session(browser_of):
    # Low (session fixation): the CSRF token of the anonymous sign-in page stayed valid for the signed-in reviewer.
    client = await browser_of()
    before = csrf_of(await (await client.get("/reviewer/sign-in")).text())
    assert await sign_in(client, "reviewer-1") == 303
    after = csrf_of(await (await client.get("/reviewer/")).text())
    assert after != before

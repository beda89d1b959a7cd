"""The reviewer console's pages and forms against the real verification service, Temporal and PostgreSQL."""

from __future__ import annotations

import logging
import pathlib
from datetime import timedelta

import asyncpg

from carrier.verification.v1 import verification_pb2 as vpb
from carrier.verification.v1 import verification_pb2_grpc
from contracts.case import CaseStatus
from pscommon.identity import Principal
from pscommon.pki import LocalPki
from services.portal.reviewer.directory import reviewer_password
from services.portal.reviewer.routes import CONSOLE
from services.portal.web import UPLOADS
from tests.helpers import appeal_in_review, connect, open_case, reach, register_line, rid
from tests.portal.reviewer.conftest import PASSWORD, csrf_of, form_fields, post, sign_in, signed_in


async def evidence_views(stack, review_id: str) -> list[str]:
    conn = await asyncpg.connect(stack.cfg.database_url)
    try:
        rows = await conn.fetch("SELECT principal FROM verification.evidence_views WHERE review_id = $1", review_id)
    finally:
        await conn.close()
    return [r["principal"] for r in rows]


async def test_without_a_session_pages_lead_to_sign_in_and_forms_are_refused(browser_of):
    client = await browser_of()
    resp = await client.get("/reviewer/", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/reviewer/sign-in"
    resp = await client.get("/reviewer/reviews/00000000-0000-0000-0000-000000000001", allow_redirects=False)
    assert resp.status == 303
    resp = await client.get("/reviewer/reviews/00000000-0000-0000-0000-000000000001/evidence/0", allow_redirects=False)
    assert resp.status == 303
    token = csrf_of(await (await client.get("/reviewer/sign-in")).text())
    fields = {"csrf_token": token, "request_id": rid(), "decision": "approve"}
    for action in ("claim", "decide"):
        resp = await client.post(
            f"/reviewer/reviews/00000000-0000-0000-0000-000000000001/{action}", data=fields, allow_redirects=False
        )
        assert resp.status == 401 and "Sign in again" in await resp.text()


async def test_sign_in_maps_to_a_reviewer_certificate_and_sets_a_strict_cookie(browser_of):
    client = await browser_of()
    page = await client.get("/reviewer/sign-in")
    html = await page.text()
    assert page.status == 200 and '<html lang="en">' in html and 'for="reviewer_id"' in html
    assert page.headers["X-Frame-Options"] == "DENY" and "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "<title>Sign in · Protective suspension</title>" in html

    assert await sign_in(client, "reviewer-1", "wrong") == 401
    assert await sign_in(client, "app", client_password := "local-console-password") == 401  # not a reviewer
    assert client_password and await sign_in(client, "reviewer-9") == 401  # no such certificate
    assert await sign_in(client, "../ca") == 401

    forged = await client.post(
        "/reviewer/sign-in",
        data={"csrf_token": "forged", "reviewer_id": "reviewer-1", "password": "local-console-password"},
        allow_redirects=False,
    )
    assert forged.status == 403
    assert (await client.get("/reviewer/", allow_redirects=False)).status == 303

    page = await (await client.get("/reviewer/sign-in")).text()
    resp = await client.post(
        "/reviewer/sign-in",
        data={
            "csrf_token": csrf_of(page),
            "reviewer_id": "reviewer-1",
            "password": reviewer_password(PASSWORD, "reviewer-1"),
        },
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/reviewer/"
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/reviewer" in cookie
    queue = await client.get("/reviewer/")
    html = await queue.text()
    assert queue.status == 200 and "Signed in as <strong>reviewer-1</strong>" in html

    sign_out = await client.post("/reviewer/sign-out", data={"csrf_token": csrf_of(html)}, allow_redirects=False)
    assert sign_out.status == 303
    assert (await client.get("/reviewer/", allow_redirects=False)).status == 303


async def test_a_tampered_session_cookie_is_no_session(browser_of):
    client = await browser_of()
    assert await sign_in(client, "reviewer-1") == 303
    cookie = next(c for c in client.session.cookie_jar if c.key == "psp_reviewer")
    body, sig = cookie.value.rsplit(".", 1)
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({"psp_reviewer": f"{body}.{'0' * len(sig)}"}, client.make_url("/"))
    assert (await client.get("/reviewer/", allow_redirects=False)).status == 303


async def test_a_reviewer_claims_reads_the_file_and_decides_an_appeal(stack, browser_of, caplog):
    caplog.set_level(logging.INFO)
    msisdn = "19320000091"
    case_id, review_id = await appeal_in_review(stack, msisdn)
    one, two = await signed_in(browser_of, "reviewer-1"), await signed_in(browser_of, "reviewer-2")

    queue = await (await one.get("/reviewer/")).text()
    assert f"/reviewer/reviews/{review_id}" in queue and "193****0091" in queue and msisdn not in queue

    page = await one.get(f"/reviewer/reviews/{review_id}")
    html = await page.text()
    assert page.status == 200 and "Claim this review" in html and "I deliver parcels" not in html
    assert "<title>Appeal review · Protective suspension</title>" in html
    assert "CALL_BURST_NEW_PEERS" in html and "23 calls in 1 hour" in html  # the case's reasons
    assert "restricted" in html  # its history
    assert f'href="http://127.0.0.1:8233/namespaces/default/workflows/{case_id}"' in html
    assert await evidence_views(stack, review_id) == []

    forged = await one.post(
        f"/reviewer/reviews/{review_id}/claim",
        data={"csrf_token": "forged", "request_id": rid()},
        allow_redirects=False,
    )
    assert forged.status == 403
    assert "Claim this review" in await (await one.get(f"/reviewer/reviews/{review_id}")).text()  # nothing changed

    claimed = await post(one, review_id, "claim")
    assert claimed.status == 303 and claimed.headers["Location"] == f"/reviewer/reviews/{review_id}"
    html = await (await one.get(f"/reviewer/reviews/{review_id}")).text()
    assert "I deliver parcels before the holiday" in html and "upload-courier-badge" in html
    assert "this viewing is recorded" in html and "Record decision" in html
    assert await evidence_views(stack, review_id) == ["reviewer-1"]

    # Another reviewer sees the case but not the sealed evidence, and cannot decide what they did not claim.
    other = await (await two.get(f"/reviewer/reviews/{review_id}")).text()
    assert "I deliver parcels" not in other and "Record decision" not in other
    fields = {"csrf_token": csrf_of(other), "request_id": rid(), "decision": "approve"}
    stolen = await two.post(f"/reviewer/reviews/{review_id}/decide", data=fields, allow_redirects=False)
    assert stolen.status == 403 and "only the reviewer who claimed" in await stolen.text()
    grab = await two.post(f"/reviewer/reviews/{review_id}/claim", data=fields, allow_redirects=False)
    assert grab.status == 409 and "another reviewer has claimed" in await grab.text()
    assert await evidence_views(stack, review_id) == ["reviewer-1"]

    unknown = await one.get("/reviewer/reviews/00000000-0000-0000-0000-0000000000aa")
    assert unknown.status == 404 and "No review has this id." in await unknown.text()
    assert (await one.get("/reviewer/reviews/not-a-review")).status == 404
    assert (await post(one, review_id, "decide", decision="maybe")).status == 400
    assert (await post(one, review_id, "decide", decision="ask_for_more")).status == 400  # which documents?
    assert (await post(one, review_id, "decide", decision="approve", note="x" * 1001)).status == 400
    bad_rid = {**(await form_fields(one, review_id)), "request_id": "../1", "decision": "approve"}
    assert (await one.post(f"/reviewer/reviews/{review_id}/decide", data=bad_rid)).status == 400

    decided = await post(one, review_id, "decide", decision="approve", note="courier badge matches the calls")
    assert decided.status == 303 and decided.headers["Location"] == "/reviewer/?decided=approved"
    done = await stack.client.get_workflow_handle(case_id, result_type=CaseStatus).result()
    assert done.stage == "restored"
    after = await (await one.get("/reviewer/?decided=approved")).text()
    assert "Your decision was recorded: approved." in after and f"/reviewer/reviews/{review_id}" not in after
    assert msisdn not in caplog.text and "I deliver parcels" not in caplog.text


async def test_a_reviewer_asks_the_holder_for_more(stack, browser_of):
    _, review_id = await appeal_in_review(stack, "19320000092")
    one = await signed_in(browser_of, "reviewer-1")
    assert (await post(one, review_id, "claim")).status == 303
    asked = await post(one, review_id, "decide", decision="ask_for_more", more_requested="not_a_document")
    assert asked.status == 400 and "more_requested" in await asked.text()
    asked = await post(one, review_id, "decide", decision="ask_for_more", more_requested="employment_letter")
    assert asked.headers["Location"] == "/reviewer/?decided=more_requested"
    html = await (await one.get(f"/reviewer/reviews/{review_id}")).text()
    assert "Waiting for the holder" in html and "employment_letter" in html


async def test_a_termination_needs_a_second_different_reviewer(stack, browser_of):
    msisdn = "19320000093"
    await register_line(stack.cfg, msisdn, "44", "holder-44-0093")
    case_id = await open_case(stack, msisdn, "extreme", "suspend")
    await reach(stack, case_id, "warned")
    regulator = verification_pb2_grpc.VerificationServiceStub(connect(stack.cfg, "verification", "regulator"))
    await regulator.SubmitAuthorityOrder(
        vpb.SubmitAuthorityOrderRequest(
            request_id=rid(),
            case_id=case_id,
            authority=vpb.AUTHORITY_REGULATOR,
            order=vpb.ORDER_CONFIRM_FRAUD,
            order_ref="FZ-2026-9093",
        )
    )
    review_id = (await reach(stack, case_id, "termination_review")).review.review_id
    one, two = await signed_in(browser_of, "reviewer-1"), await signed_in(browser_of, "reviewer-2")

    assert (await post(one, review_id, "claim")).status == 303
    html = await (await one.get(f"/reviewer/reviews/{review_id}")).text()
    assert "Approve the termination (a second reviewer must approve too)" in html and "ask_for_more" not in html
    assert (await post(one, review_id, "decide", decision="ask_for_more", more_requested="payslip")).status == 400
    first = await post(one, review_id, "decide", decision="approve", note="regulator file FZ-2026-9093")
    assert first.headers["Location"] == "/reviewer/?decided=second_approval"

    html = await (await one.get(f"/reviewer/reviews/{review_id}")).text()
    assert "You approved this termination first" in html and "Claim this review" not in html
    again = {"csrf_token": csrf_of(html), "request_id": rid()}
    refused = await one.post(f"/reviewer/reviews/{review_id}/claim", data=again, allow_redirects=False)
    assert refused.status == 403 and "second reviewer" in await refused.text()
    assert (await reach(stack, case_id, "termination_review")).line_state == "LINE_STATE_SUSPENDED"

    assert (await post(two, review_id, "claim")).status == 303
    second = await post(two, review_id, "decide", decision="approve")
    assert second.headers["Location"] == "/reviewer/?decided=approved"
    done = await stack.client.get_workflow_handle(case_id, result_type=CaseStatus).result()
    assert done.stage == "terminated" and done.line_state == "LINE_STATE_TERMINATED"

    # Decided, it still opens, read-only: both approvers, and no form but signing out.
    html = await (await one.get(f"/reviewer/reviews/{review_id}")).text()
    assert "Approved: the line is terminated" in html and "<dt>Decided by</dt><dd>reviewer-2</dd>" in html
    assert "<dt>First approval</dt><dd>you</dd>" in html and "You approved this termination first" not in html
    assert "request_id" not in html and "Claim this review" not in html


async def test_escalated_reviews_come_first_in_the_queue(stack, browser_of):
    _, first = await appeal_in_review(stack, "19320000094")
    await stack.env.sleep(timedelta(hours=49))  # its SLA runs out: escalated
    _, later = await appeal_in_review(stack, "19320000095")
    one = await signed_in(browser_of, "reviewer-1")
    html = await (await one.get("/reviewer/")).text()
    assert html.index(f"/reviewer/reviews/{first}") < html.index(f"/reviewer/reviews/{later}")
    assert "Escalated" in html


PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


async def test_uploaded_evidence_opens_for_the_claiming_reviewer_and_each_opening_is_recorded(stack, browser_of):
    ref = browser_of.app[UPLOADS].put(PNG, "image/png", "badge.png")
    _, review_id = await appeal_in_review(stack, "19320000096", refs=(ref,))
    one, two = await signed_in(browser_of, "reviewer-1"), await signed_in(browser_of, "reviewer-2")
    document = f"/reviewer/reviews/{review_id}/evidence/0"
    assert (await one.get(document)).status == 403  # not claimed yet
    assert (await post(one, review_id, "claim")).status == 303
    html = await (await one.get(f"/reviewer/reviews/{review_id}")).text()
    assert f'href="{document}"' in html and ref not in html
    got = await one.get(document)
    assert got.status == 200 and got.headers["Content-Type"] == "image/png" and await got.read() == PNG
    assert (await one.get(f"/reviewer/reviews/{review_id}/evidence/7")).status == 404
    assert (await two.get(document)).status == 403
    assert await evidence_views(stack, review_id) == ["reviewer-1", "reviewer-1", "reviewer-1"]


async def test_a_reviewer_certificate_issued_later_can_sign_in_and_acts_as_itself(stack, browser_of):
    LocalPki(pathlib.Path(stack.cfg.pki_dir), stack.cfg.trust_domain).ensure(
        Principal(stack.cfg.trust_domain, "reviewer", "reviewer-7")
    )
    _, review_id = await appeal_in_review(stack, "19320000098")
    seven = await signed_in(browser_of, "reviewer-7")
    assert (await post(seven, review_id, "claim")).status == 303
    html = await (await seven.get(f"/reviewer/reviews/{review_id}")).text()
    assert "Claimed (you)" in html
    assert await evidence_views(stack, review_id) == ["reviewer-7"]


async def test_a_decided_review_opens_read_only_for_any_reviewer(stack, browser_of, caplog):
    caplog.set_level(logging.INFO)
    msisdn = "19320000099"
    case_id, review_id = await appeal_in_review(stack, msisdn, explanation="I run a call centre for a bakery")
    one, two = await signed_in(browser_of, "reviewer-1"), await signed_in(browser_of, "reviewer-2")
    assert (await post(one, review_id, "claim")).status == 303
    rejected = await post(one, review_id, "decide", decision="reject", note="no employer letter on file")
    assert rejected.headers["Location"] == "/reviewer/?decided=rejected"
    await reach(stack, case_id, "appeal_rejected")
    assert f"/reviewer/reviews/{review_id}" not in await (await two.get("/reviewer/")).text()  # not waiting any more

    page = await two.get(f"/reviewer/reviews/{review_id}")
    html = await page.text()
    assert page.status == 200 and "This review is decided; it is shown read-only." in html
    assert "<dt>Decision</dt><dd>Rejected: the line stays as it was</dd>" in html
    assert "<dt>Decided by</dt><dd>reviewer-1</dd>" in html and "<dt>Decided at</dt>" in html
    assert "no employer letter on file" in html  # the reviewers' note, for reviewers
    assert "193****0099" in html and msisdn not in html
    assert "bakery" not in html and "stay sealed now the review is decided" in html
    assert "Record decision" not in html and "Claim this review" not in html and "request_id" not in html
    assert "CALL_BURST_NEW_PEERS" in html  # the case file is still there
    assert "<dt>Decided by</dt><dd>you</dd>" in await (await one.get(f"/reviewer/reviews/{review_id}")).text()
    assert await evidence_views(stack, review_id) == ["reviewer-1"]  # the one view while it was claimed

    fields = {"csrf_token": csrf_of(html), "request_id": rid(), "decision": "approve"}
    for action in ("claim", "decide"):
        late = await two.post(f"/reviewer/reviews/{review_id}/{action}", data=fields, allow_redirects=False)
        assert late.status in (403, 409), action
    assert "Rejected: the line stays as it was" in await (await two.get(f"/reviewer/reviews/{review_id}")).text()
    assert msisdn not in caplog.text and "bakery" not in caplog.text


async def test_a_review_the_queue_does_not_show_still_opens_by_id(stack, browser_of, monkeypatch):
    """The review page asks verification for the review itself, never for a page of the queue (a queue longer
    than a page hid the rest)."""
    _, review_id = await appeal_in_review(stack, "19320004041")
    one = await signed_in(browser_of, "reviewer-1")
    desk = browser_of.app[CONSOLE].desk

    async def a_queue_without_it(reviewer: str) -> list:
        return []

    monkeypatch.setattr(desk, "queue", a_queue_without_it)
    page = await one.get(f"/reviewer/reviews/{review_id}")
    assert page.status == 200 and "Claim this review" in await page.text()
    assert (await post(one, review_id, "claim")).status == 303
    assert (await post(one, review_id, "decide", decision="approve")).headers[
        "Location"
    ] == "/reviewer/?decided=approved"

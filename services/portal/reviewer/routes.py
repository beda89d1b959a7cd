"""The reviewer console's pages and forms under /reviewer: HTTP in, the desk's calls, HTML out.

Mounted by the portal (services/portal/web.py), whose middleware refuses any form without the session-bound CSRF
token and adds the security headers. Every page here also needs a signed-in reviewer; every form carries a
request id (a second submit of the same form is the same claim or decision). URLs hold review ids only; pages
show masked numbers only; logs name the reviewer's id and the review id, never a holder.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pscommon.config import Settings
from services.portal.reviewer import console
from services.portal.reviewer.desk import NO_REVIEW, Desk, Refused
from services.portal.reviewer.directory import REVIEWER_ID, Directory
from services.portal.reviewer.session import COOKIE, LIFETIME_S, PATH, Session, Sessions
from services.portal.web import JINJA, SETTINGS, UPLOADS, csrf_token, renew_session_id

log = logging.getLogger(__name__)
# Evidence a browser may show in the page; anything else is a download.
INLINE_TYPES = ("image/jpeg", "image/png")
DOCUMENT_NUMBER = re.compile(r"[0-9]{1,3}", re.ASCII)


@dataclass
class Console:
    desk: Desk
    directory: Directory
    sessions: Sessions
    temporal_ui: str
    namespace: str
    secure_cookies: bool


CONSOLE = web.AppKey("reviewer_console", Console)
FORM = web.RequestKey("reviewer_form", dict)


def from_settings(cfg: Settings) -> Console:
    """Besides the portal's settings: PSP_PORTAL_REVIEWER_PASSWORD, the local stack's sign-in password (unset:
    local sign-in is off), PSP_PORTAL_SSO_HEADER, the header in which the carrier's SSO proxy forwards the verified
    reviewer id (set: the proxy signs reviewers in, the password form is off), and PSP_PORTAL_SESSION_KEY (hex;
    unset: random per process, sessions end at restart)."""
    key = os.environ.get("PSP_PORTAL_SESSION_KEY", "")
    directory = Directory(
        cfg.pki_dir, os.environ.get("PSP_PORTAL_REVIEWER_PASSWORD", ""), os.environ.get("PSP_PORTAL_SSO_HEADER", "")
    )
    return Console(
        desk=Desk(cfg.verification_addr, directory),
        directory=directory,
        sessions=Sessions(bytes.fromhex(key) if key else secrets.token_bytes(32)),
        temporal_ui=cfg.temporal_ui_url,
        namespace=cfg.temporal_namespace,
        secure_cookies=cfg.portal_secure_cookies,
    )


def setup_reviewer(app: web.Application, console_: Console | None = None) -> None:
    app[CONSOLE] = console_ or from_settings(app[SETTINGS])
    app.router.add_get(PATH, queue_page)
    app.router.add_get(PATH + "/", queue_page)
    app.router.add_get(PATH + "/sign-in", sign_in_page)
    app.router.add_post(PATH + "/sign-in", sign_in)
    app.router.add_post(PATH + "/sign-out", sign_out)
    app.router.add_get(PATH + "/reviews/{review_id}", review_page)
    app.router.add_get(PATH + "/reviews/{review_id}/evidence/{n}", evidence_file)
    app.router.add_post(PATH + "/reviews/{review_id}/claim", claim)
    app.router.add_post(PATH + "/reviews/{review_id}/decide", decide)


# Plumbing ------------------------------------------------------------------------------------------------------------


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def _session(request: web.Request) -> Session | None:
    c = _console(request)
    s = c.sessions.load(request.cookies.get(COOKIE))
    # Behind the SSO proxy a session lasts only while the proxy still vouches for the same reviewer.
    if s is not None and c.directory.sso_header and c.directory.sso_reviewer(request.headers) != s.reviewer:
        return None
    return s


def _start_session(request: web.Request, c: Console, reviewer: str) -> web.HTTPSeeOther:
    log.info("reviewer console: %s signed in", reviewer)
    renew_session_id(request)  # the anonymous sign-in page's form session (and CSRF token) ends here
    resp = web.HTTPSeeOther(PATH + "/")
    resp.set_cookie(
        COOKIE,
        c.sessions.dump(c.sessions.new(reviewer)),
        max_age=LIFETIME_S,
        path=PATH,
        secure=c.secure_cookies,
        httponly=True,
        samesite="Strict",
    )
    return resp


def _render(request: web.Request, template: str, status: int = 200, reviewer: str = "", **context: Any) -> web.Response:
    html = (
        request.app[JINJA]
        .get_template(f"reviewer/{template}")
        .render(reviewer=reviewer, csrf_token=csrf_token(request), **context)
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _refused(request: web.Request, status: int, message: str, reviewer: str = "") -> web.Response:
    return _render(request, "refused.html", status=status, reviewer=reviewer, message=message)


Handler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def _signed_in(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Pages without a reviewer's session lead to the sign-in page; forms are refused (401)."""

    async def page(request: web.Request) -> web.StreamResponse:
        s = _session(request)
        if request.method == "GET":
            if s is None:
                raise web.HTTPSeeOther(PATH + "/sign-in")
            return await handler(request, s)
        if s is None:
            return _refused(request, 401, "Your session has ended. Sign in again.")
        request[FORM] = await _form(request)
        return await handler(request, s)

    return page


async def _form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _review_id(request: web.Request) -> str | None:
    return console.review_id_of(request.match_info["review_id"])


# Sign-in ------------------------------------------------------------------------------------------------------------


async def sign_in_page(request: web.Request) -> web.Response:
    if _session(request) is not None:
        raise web.HTTPSeeOther(PATH + "/")
    c = _console(request)
    if c.directory.sso_header:
        reviewer = c.directory.sso_reviewer(request.headers)
        if reviewer is None:
            log.info("reviewer console: the SSO proxy named no reviewer of this desk")
            return _refused(request, 403, "Your sign-on does not name a reviewer of this desk. Ask its lead.")
        raise _start_session(request, c, reviewer)
    return _render(request, "sign_in.html", enabled=c.directory.enabled, error="", given="")


async def sign_in(request: web.Request) -> web.Response:
    c = _console(request)
    if c.directory.sso_header:
        return _refused(request, 403, "Reviewers sign in through the carrier's single sign-on here.")
    form = await _form(request)
    reviewer = form.get("reviewer_id", "").strip()
    if not c.directory.sign_in(reviewer, form.get("password", "")):
        log.info("reviewer console: a sign-in was refused")
        given = reviewer if REVIEWER_ID.fullmatch(reviewer) else ""
        return _render(
            request,
            "sign_in.html",
            status=401,
            enabled=c.directory.enabled,
            error="Unknown reviewer or wrong password.",
            given=given,
        )
    raise _start_session(request, c, reviewer)


@_signed_in
async def sign_out(request: web.Request, s: Session) -> web.StreamResponse:
    _console(request).sessions.revoke(s)  # a copy of the cookie (a shared computer, a proxy log) dies too
    resp = web.HTTPSeeOther(PATH + "/sign-in")
    resp.del_cookie(COOKIE, path=PATH)
    raise resp


# The queue and the case file ---------------------------------------------------------------------------------------


@_signed_in
async def queue_page(request: web.Request, s: Session) -> web.StreamResponse:
    try:
        reviews = await _console(request).desk.queue(s.reviewer)
    except Refused as r:
        return _refused(request, r.http_status, str(r), s.reviewer)
    return _render(
        request,
        "queue.html",
        reviewer=s.reviewer,
        rows=[console.row(r, s.reviewer) for r in reviews],
        notice=console.DECIDED_TEXT.get(request.query.get("decided", ""), ""),
        request_id=console.new_request_id,
    )


@_signed_in
async def review_page(request: web.Request, s: Session) -> web.StreamResponse:
    c = _console(request)
    review_id = _review_id(request)
    if review_id is None:
        return _refused(request, 404, NO_REVIEW, s.reviewer)
    try:
        review = await c.desk.review(s.reviewer, review_id)
        explanation, evidence_refs = "", []
        if console.is_mine(review, s.reviewer):
            opened = await c.desk.evidence(s.reviewer, review_id)
            review, explanation, evidence_refs = opened.review, opened.review.explanation, list(opened.evidence_refs)
            log.info("reviewer console: %s opened the evidence of review %s", s.reviewer, review_id)
        case = console.case_file(await c.desk.case(s.reviewer, review.case_id), c.temporal_ui, c.namespace)
    except Refused as r:
        return _refused(request, r.http_status, str(r), s.reviewer)
    return _render(
        request,
        "review.html",
        reviewer=s.reviewer,
        r=console.row(review, s.reviewer),
        verdict=console.verdict(review, s.reviewer),
        termination=console.is_termination(review),
        more_requested=review.more_requested,
        explanation=explanation,
        evidence=console.evidence_items(evidence_refs),
        case=case,
        request_id=console.new_request_id(),
    )


@_signed_in
async def evidence_file(request: web.Request, s: Session) -> web.StreamResponse:
    """One uploaded document of a claimed review, opened from the portal's sealed store; each opening is
    recorded by verification (the refs come from GetReviewEvidence, never from the URL)."""
    review_id = _review_id(request)
    n = request.match_info["n"]
    if review_id is None or not DOCUMENT_NUMBER.fullmatch(n):
        return _refused(request, 404, NO_REVIEW, s.reviewer)
    try:
        opened = await _console(request).desk.evidence(s.reviewer, review_id)
    except Refused as r:
        return _refused(request, r.http_status, str(r), s.reviewer)
    refs = list(opened.evidence_refs)
    doc = await asyncio.to_thread(request.app[UPLOADS].open, refs[int(n)]) if int(n) < len(refs) else None
    if doc is None:
        return _refused(
            request, 404, "That document is not stored here (or its retention period has ended).", s.reviewer
        )
    log.info("reviewer console: %s opened document %s of review %s", s.reviewer, n, review_id)
    inline = doc.content_type in INLINE_TYPES
    resp = web.Response(body=doc.data, content_type=doc.content_type)
    resp.headers["Content-Disposition"] = "inline" if inline else f'attachment; filename="evidence-{n}"'
    return resp


@_signed_in
async def claim(request: web.Request, s: Session) -> web.StreamResponse:
    review_id = _review_id(request)
    if review_id is None:
        return _refused(request, 404, NO_REVIEW, s.reviewer)
    try:
        request_id = console.request_id_of(request[FORM].get("request_id", ""))
        await _console(request).desk.claim(s.reviewer, review_id, request_id)
    except console.BadForm as bad:
        return _refused(request, 400, str(bad), s.reviewer)
    except Refused as r:
        return _refused(request, r.http_status, str(r), s.reviewer)
    log.info("reviewer console: %s claimed review %s", s.reviewer, review_id)
    raise web.HTTPSeeOther(f"{PATH}/reviews/{review_id}")


@_signed_in
async def decide(request: web.Request, s: Session) -> web.StreamResponse:
    c = _console(request)
    review_id = _review_id(request)
    if review_id is None:
        return _refused(request, 404, NO_REVIEW, s.reviewer)
    form = request[FORM]
    try:
        request_id = console.request_id_of(form.get("request_id", ""))
        review = await c.desk.review(s.reviewer, review_id)
        decided = await c.desk.decide(s.reviewer, review_id, request_id, console.decision_of(review.kind, form))
    except console.BadForm as bad:
        return _refused(request, 400, str(bad), s.reviewer)
    except Refused as r:
        return _refused(request, r.http_status, str(r), s.reviewer)
    outcome = console.DECIDED.get(decided.status, "")
    log.info("reviewer console: %s decided review %s (%s)", s.reviewer, review_id, outcome or "recorded")
    raise web.HTTPSeeOther(f"{PATH}/?decided={outcome}")

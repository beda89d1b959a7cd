"""The reviewer console's pages and forms (aiohttp): HTTP in, the desk's calls, HTML out.

Every page is behind the reviewer's session; every form carries the session's CSRF token and a request id (a
second submit of the same form is the same claim or decision). URLs hold review ids only; pages show masked
numbers only; logs name the reviewer's id and the review id, never a holder.
"""

from __future__ import annotations

import logging
import os
import pathlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jinja2
from aiohttp import web

from pscommon.config import Settings
from services.portal.reviewer import console
from services.portal.reviewer.desk import Decision, Desk, Refused
from services.portal.reviewer.directory import Directory
from services.portal.reviewer.session import COOKIE, LIFETIME_S, PATH, Session, Sessions

log = logging.getLogger(__name__)
TEMPLATES = pathlib.Path(__file__).parent.parent / "templates"
STATIC = pathlib.Path(__file__).parent.parent / "static" / "reviewer"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MAX_FORM_BYTES = 16 * 1024


@dataclass
class Console:
    desk: Desk
    directory: Directory
    sessions: Sessions
    temporal_ui: str
    namespace: str
    env: jinja2.Environment


CONSOLE = web.AppKey("reviewer_console", Console)
FORM = web.RequestKey("reviewer_form", dict)


def from_environment(cfg: Settings) -> Console:
    """PSP_PORTAL_SESSION_KEY (hex; random per process when unset: sessions then end at restart) and
    PSP_PORTAL_REVIEWER_PASSWORD (the local stack's sign-in password; unset: local sign-in is off)."""
    key = os.environ.get("PSP_PORTAL_SESSION_KEY", "")
    directory = Directory(cfg.pki_dir, os.environ.get("PSP_PORTAL_REVIEWER_PASSWORD", ""))
    return Console(
        desk=Desk(cfg.verification_addr, directory),
        directory=directory,
        sessions=Sessions(bytes.fromhex(key) if key else secrets.token_bytes(32)),
        temporal_ui=cfg.temporal_ui_url,
        namespace=cfg.temporal_namespace,
        env=jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
        ),
    )


def setup_reviewer(app: web.Application, cfg: Settings, console_: Console | None = None) -> None:
    """Mounts the console under /reviewer on the portal's application."""
    app[CONSOLE] = console_ or from_environment(cfg)
    app.router.add_get(PATH, queue_page)
    app.router.add_get(PATH + "/", queue_page)
    app.router.add_get(PATH + "/sign-in", sign_in_page)
    app.router.add_post(PATH + "/sign-in", sign_in)
    app.router.add_post(PATH + "/sign-out", sign_out)
    app.router.add_get(PATH + "/reviews/{review_id}", review_page)
    app.router.add_post(PATH + "/reviews/{review_id}/claim", claim)
    app.router.add_post(PATH + "/reviews/{review_id}/decide", decide)
    app.router.add_static(PATH + "/static", STATIC)


# Plumbing ------------------------------------------------------------------------------------------------------------


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def _session(request: web.Request) -> Session | None:
    return _console(request).sessions.load(request.cookies.get(COOKIE))


def _render(
    request: web.Request, template: str, status: int = 200, session: Session | None = None, **context: Any
) -> web.Response:
    c = _console(request)
    s = session or _session(request)
    html = c.env.get_template(f"reviewer/{template}").render(
        reviewer=s.reviewer if s else "", csrf=s.csrf if s else "", **context
    )
    resp = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    resp.headers.update(SECURITY_HEADERS)
    if session is not None:
        _set_cookie(request, resp, session)
    return resp


def _set_cookie(request: web.Request, resp: web.StreamResponse, s: Session) -> None:
    resp.set_cookie(
        COOKIE,
        _console(request).sessions.dump(s),
        max_age=LIFETIME_S,
        path=PATH,
        secure=True,
        httponly=True,
        samesite="Strict",
    )


def _refused(request: web.Request, status: int, message: str) -> web.Response:
    return _render(request, "refused.html", status=status, message=message)


def _see_other(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location, headers=SECURITY_HEADERS)


Handler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def _signed_in(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Pages: not signed in, to the sign-in page. Forms: also a CSRF token that matches the session's."""

    async def page(request: web.Request) -> web.StreamResponse:
        s = _session(request)
        if request.method == "GET":
            if s is None or not s.signed_in:
                raise _see_other(PATH + "/sign-in")
            return await handler(request, s)
        form = await _form(request)
        if s is None or not s.signed_in:
            return _refused(request, 401, "Your session has ended. Sign in again.")
        if not s.csrf_ok(form.get("csrf_token", "")):
            log.warning("reviewer console: a form without this session's CSRF token was refused")
            return _refused(request, 403, "This form was not sent from this console. Reload the page and try again.")
        request[FORM] = form
        return await handler(request, s)

    return page


async def _form(request: web.Request) -> dict[str, str]:
    if (request.content_length or 0) > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM_BYTES, actual_size=request.content_length or 0)
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _review_id(request: web.Request) -> str | None:
    return console.review_id_of(request.match_info["review_id"])


# Sign-in ------------------------------------------------------------------------------------------------------------


async def sign_in_page(request: web.Request) -> web.Response:
    s = _session(request)
    if s is not None and s.signed_in:
        raise _see_other(PATH + "/")
    fresh = s or _console(request).sessions.new()
    return _render(
        request, "sign_in.html", session=fresh, enabled=_console(request).directory.enabled, error="", given=""
    )


async def sign_in(request: web.Request) -> web.Response:
    c = _console(request)
    form = await _form(request)
    s = _session(request)
    if s is None or not s.csrf_ok(form.get("csrf_token", "")):
        return _refused(request, 403, "This form was not sent from this console. Reload the sign-in page.")
    reviewer = form.get("reviewer_id", "").strip()
    if not c.directory.sign_in(reviewer, form.get("password", "")):
        log.info("reviewer console: a sign-in was refused")
        given = reviewer if console.REVIEWER_ID_SHOWN.fullmatch(reviewer) else ""
        return _render(
            request,
            "sign_in.html",
            status=401,
            session=s,
            enabled=c.directory.enabled,
            error="Unknown reviewer or wrong password.",
            given=given,
        )
    log.info("reviewer console: %s signed in", reviewer)
    resp = _see_other(PATH + "/")
    _set_cookie(request, resp, c.sessions.new(reviewer))  # a new CSRF token from here on
    raise resp


@_signed_in
async def sign_out(request: web.Request, s: Session) -> web.StreamResponse:
    resp = _see_other(PATH + "/sign-in")
    resp.del_cookie(COOKIE, path=PATH)
    raise resp


# The queue and the case file ---------------------------------------------------------------------------------------


@_signed_in
async def queue_page(request: web.Request, s: Session) -> web.StreamResponse:
    try:
        reviews = await _console(request).desk.queue(s.reviewer)
    except Refused as r:
        return _refused(request, r.http_status, str(r))
    decided = request.query.get("decided", "")
    return _render(
        request,
        "queue.html",
        rows=[console.row(r, s.reviewer) for r in reviews],
        notice=console.DECIDED_TEXT.get(decided, ""),
        request_id=console.new_request_id,
    )


@_signed_in
async def review_page(request: web.Request, s: Session) -> web.StreamResponse:
    c = _console(request)
    review_id = _review_id(request)
    if review_id is None:
        return _refused(request, 404, "No review waiting for a decision has this id.")
    try:
        review = await c.desk.review(s.reviewer, review_id)
        explanation, evidence_refs = "", []
        if review.status == console.vpb.REVIEW_STATUS_CLAIMED and review.claimed_by == s.reviewer:
            opened = await c.desk.evidence(s.reviewer, review_id)
            review, explanation, evidence_refs = opened.review, opened.review.explanation, list(opened.evidence_refs)
            log.info("reviewer console: %s opened the evidence of review %s", s.reviewer, review_id)
        case = console.case_file(await c.desk.case(s.reviewer, review.case_id), c.temporal_ui, c.namespace)
    except Refused as r:
        return _refused(request, r.http_status, str(r))
    return _render(
        request,
        "review.html",
        r=console.row(review, s.reviewer),
        termination=review.kind == console.vpb.REVIEW_KIND_TERMINATION,
        more_requested=review.more_requested,
        explanation=explanation,
        evidence_refs=evidence_refs,
        case=case,
        request_id=console.new_request_id(),
        error="",
    )


@_signed_in
async def claim(request: web.Request, s: Session) -> web.StreamResponse:
    review_id = _review_id(request)
    if review_id is None:
        return _refused(request, 404, "No review waiting for a decision has this id.")
    try:
        request_id = console.request_id_of(request[FORM].get("request_id", ""))
        await _console(request).desk.claim(s.reviewer, review_id, request_id)
    except console.BadForm as bad:
        return _refused(request, 400, str(bad))
    except Refused as r:
        return _refused(request, r.http_status, str(r))
    log.info("reviewer console: %s claimed review %s", s.reviewer, review_id)
    raise _see_other(f"{PATH}/reviews/{review_id}")


@_signed_in
async def decide(request: web.Request, s: Session) -> web.StreamResponse:
    c = _console(request)
    review_id = _review_id(request)
    if review_id is None:
        return _refused(request, 404, "No review waiting for a decision has this id.")
    form: dict[str, str] = request[FORM]
    try:
        request_id = console.request_id_of(form.get("request_id", ""))
        review = await c.desk.review(s.reviewer, review_id)
        decision: Decision = console.decision_of(review.kind, form)
        decided = await c.desk.decide(s.reviewer, review_id, request_id, decision)
    except console.BadForm as bad:
        return _refused(request, 400, str(bad))
    except Refused as r:
        return _refused(request, r.http_status, str(r))
    outcome = console.DECIDED.get(decided.status, "")
    log.info("reviewer console: %s decided review %s (%s)", s.reviewer, review_id, outcome or "recorded")
    raise _see_other(f"{PATH}/?decided={outcome}")

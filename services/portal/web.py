"""Shared plumbing of the portal: the app factory, templates, sessions and CSRF, error pages, masking.

Route modules (the holder's pages in holder/, the reviewer console in reviewer/) each export
`setup_<name>(app: web.Application) -> None`, which adds routes and may read `app[SETTINGS]`, `app[CLIENTS]`.
Pages render through `render(request, "x.html", {...})`: templates extend "base.html" and get `t` (the words in
the page's language), `lang`, `csrf_token` and the `masked` filter. Every form carries
`<input type="hidden" name="csrf_token" value="{{ csrf_token }}">`: a POST without the right token is refused
with 403 before any handler runs. Handlers that want a language set `request[LANG]` before rendering.

CSRF: a token bound to the session, HMAC(secret, session id), compared with the form's field (the signed
double-submit pattern OWASP recommends). No library: aiohttp-csrf has not been maintained for years, and the
session cookie is SameSite=Strict, HttpOnly and carries nothing but a random id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import importlib
import importlib.util
import logging
import pathlib
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
import jinja2
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from pscommon import codec, links, metrics
from pscommon.config import Settings
from pscommon.identity import mask
from services.portal.clients import Clients
from services.portal.i18n import TEXT, language
from services.portal.uploads import SealedUploads

log = logging.getLogger("portal")
HERE = pathlib.Path(__file__).parent
SETTINGS = web.AppKey("settings", Settings)
CLIENTS = web.AppKey("clients", Clients)
JINJA = web.AppKey("jinja", jinja2.Environment)
CSRF_SECRET = web.AppKey("csrf_secret", bytes)
LINKS = web.AppKey("links", links.LinkSigner)
UPLOADS = web.AppKey("uploads", SealedUploads)
FORM_DEADLINE = web.AppKey("form_deadline", tuple)  # (seconds, bytes per second): how long a form may take to arrive
UPLOAD_RETENTION_S = 180 * 86400  # as the verification policy keeps evidence (evidence_retention)
SID = web.RequestKey("sid", str)
NEW_SID = web.RequestKey("new_sid", bool)
LANG = web.RequestKey("lang", str)  # the page's language unless ?lang= says otherwise (a link's: the holder's)
SESSION_COOKIE = "psp_sid"
CSRF_FIELD = "csrf_token"
MAX_BODY = 12 * 1024 * 1024  # the largest request at all (uploads are limited per file by their handler)
# A form gets a base time plus its size at a slow mobile rate, then 408: a body that trickles in (or stalls) must
# not hold a connection for ever (aiohttp itself has no read timeout on request bodies).
FORM_BASE_S = 20.0
FORM_MIN_RATE = 32 * 1024
HSTS = "max-age=31536000"
_SID_RE = re.compile(r"[0-9a-f]{32}", re.ASCII)
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_ERROR_TEXT = {
    403: ("forbidden_title", "forbidden_body"),
    404: ("not_found_title", "not_found_body"),
    413: ("too_large_title", "too_large_body"),
    503: ("unavailable_title", "unavailable_body"),
}
_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
_HEADERS = {
    # Scripts only from our own static files (the status page's poller), nothing inline; the token in a holder's
    # URL never leaves in a Referer.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self';"
    " img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    # No other site's window keeps a handle on ours, no other site embeds our files (a reviewer's evidence images).
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# HOOK: the route setups the app runs, in order. The reviewer console joins when services/portal/reviewer/
# exists and exports setup_reviewer(app) (see build_app). PSP_PORTAL_PAGES picks which of them a process serves.
ROUTE_MODULES = ("services.portal.holder", "services.portal.reviewer")
PAGES = tuple(m.rsplit(".", 1)[1] for m in ROUTE_MODULES)
HEALTH_PATH = "/healthz"  # the kubelet's probes; says nothing but "ok"


def masked(msisdn: str) -> str:
    """Only ever show a number masked (193****5678); anything that is not a number shows as stars."""
    return mask(msisdn) if msisdn.isdigit() else "*" * min(len(msisdn), 11)


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["masked"] = masked
    return env


def session_id(request: web.Request) -> str:
    sid = request.get(SID)
    if sid is None:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        sid = cookie if _SID_RE.fullmatch(cookie) else secrets.token_hex(16)
        request[SID] = sid
        request[NEW_SID] = sid != cookie
    return sid


def renew_session_id(request: web.Request) -> None:
    """A fresh form session from this response on (after signing in: no token from before it stays valid)."""
    request[SID] = secrets.token_hex(16)
    request[NEW_SID] = True


def csrf_token(request: web.Request) -> str:
    return hmac.new(request.app[CSRF_SECRET], b"csrf:" + session_id(request).encode(), hashlib.sha256).hexdigest()


def page_language(request: web.Request) -> str:
    return language(request.query.get("lang"), request.get(LANG, "zh"))


def render(request: web.Request, name: str, ctx: Mapping[str, Any] | None = None, status: int = 200) -> web.Response:
    lang = page_language(request)
    other = "en" if lang == "zh" else "zh"
    html = (
        request.app[JINJA]
        .get_template(name)
        .render(
            lang=lang,
            t=TEXT[lang],
            csrf_token=csrf_token(request),
            # Relative to the page itself: the path is the client's (it may be `//elsewhere`), never put it in a link.
            switch_url=f"?lang={other}",
            hotline=request.app[SETTINGS].portal_hotline,
            **(ctx or {}),
        )
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def error_page(request: web.Request, status: int, title: str = "", body: str = "") -> web.Response:
    """A page that says what happened and what to do (app, hall, hotline); never a trace."""
    default_title, default_body = _ERROR_TEXT.get(status, ("error_title", "error_body"))
    ctx = {"title_key": title or default_title, "body_key": body or default_body, "status": status}
    return render(request, "error.html", ctx, status=status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            _secure(request, exc)
            _form_session_cookie(request, exc)
            log.info("%s %s %d", request.method, _route(request), exc.status)
            raise
        resp = error_page(request, exc.status)
    except grpc.aio.AioRpcError as err:
        log.warning("gRPC %s on %s", err.code().name, _route(request))
        resp = error_page(request, 503 if err.code() in _TRANSIENT else 500)
    except Exception as err:  # noqa: BLE001 -- the holder sees a page; the log names the error class only
        log.error("unhandled %s on %s", type(err).__name__, _route(request))
        resp = error_page(request, 500)
    _secure(request, resp)
    _form_session_cookie(request, resp)
    route = _route(request)
    metrics.PORTAL_REQUESTS.add(route=route, status=str(resp.status))
    if route != HEALTH_PATH:  # a probe every few seconds would drown the log
        log.info("%s %s %d %.0fms", request.method, route, resp.status, (time.monotonic() - started) * 1000)
    return resp


def _form_session_cookie(request: web.Request, resp: web.StreamResponse) -> None:
    if request.get(NEW_SID):
        resp.set_cookie(
            SESSION_COOKIE,
            request[SID],
            httponly=True,
            samesite="Strict",
            secure=request.app[SETTINGS].portal_secure_cookies,
            path="/",
        )


@web.middleware
async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in _UNSAFE:
        # No session, no form: refused before a byte of the body is read.
        if not _SID_RE.fullmatch(request.cookies.get(SESSION_COOKIE, "")):
            raise web.HTTPForbidden()
        form = await _form(request)  # cached: the handler reads the same form
        sent = form.get(CSRF_FIELD)
        # compare_digest refuses non-ASCII str with TypeError: such a token is simply wrong.
        if not (isinstance(sent, str) and sent.isascii()):
            raise web.HTTPForbidden()
        if not hmac.compare_digest(sent, csrf_token(request)):
            raise web.HTTPForbidden()
    return await handler(request)


async def _form(request: web.Request) -> Any:
    base_s, rate = request.app[FORM_DEADLINE]
    size = request.content_length if request.content_length is not None else MAX_BODY
    try:
        async with asyncio.timeout(base_s + min(size, MAX_BODY) / rate):
            return await request.post()
    except TimeoutError:
        raise web.HTTPRequestTimeout() from None
    except (ValueError, HttpProcessingError):  # a multipart body that does not parse is bad input, not our error
        raise web.HTTPBadRequest() from None


def _secure(request: web.Request, resp: web.StreamResponse) -> None:
    for k, v in _HEADERS.items():
        resp.headers.setdefault(k, v)
    if request.app[SETTINGS].portal_secure_cookies:  # served behind TLS: browsers must never fall back to http
        resp.headers.setdefault("Strict-Transport-Security", HSTS)


async def _no_server_banner(request: web.Request, resp: web.StreamResponse) -> None:
    resp.headers["Server"] = "portal"  # not which Python and aiohttp versions answer


def _route(request: web.Request) -> str:
    """The route's pattern, never the path itself (a holder's path carries a link token)."""
    info = request.match_info.route.resource
    return info.canonical if info is not None else "?"


def pages(settings: Settings) -> list[str]:
    """The pages PSP_PORTAL_PAGES names, checked: "holder", "reviewer" or both."""
    named = [p.strip() for p in settings.portal_pages.split(",") if p.strip()]
    unknown = sorted(set(named) - set(PAGES))
    if unknown or not named:
        raise ValueError(f"PSP_PORTAL_PAGES: {settings.portal_pages!r}; name one or more of {', '.join(PAGES)}")
    return named


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def build_app(settings: Settings, clients: Clients | None) -> web.Application:
    """`clients` (the portal's own `app` principal) is needed by the holder's pages only: a process serving only
    the reviewer console calls verification with each reviewer's certificate and holds no `app` certificate."""
    serving = pages(settings)
    if clients is None and "holder" in serving:
        raise ValueError("the holder's pages call verification as the portal's `app` principal: no clients given")
    app = web.Application(middlewares=[errors, csrf], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    if clients is not None:
        app[CLIENTS] = clients
    app[FORM_DEADLINE] = (FORM_BASE_S, FORM_MIN_RATE)
    app.on_response_prepare.append(_no_server_banner)
    app[JINJA] = templates()
    secret = settings.portal_secret.encode() or secrets.token_bytes(32)
    app[CSRF_SECRET] = hashlib.sha256(b"portal-csrf:" + secret).digest()
    # Without configured link keys no link verifies (a random key): the pages then say what else to do.
    signer = links.signer_from_settings(settings.link_keys, settings.link_active_key, settings.link_ttl_s)
    app[LINKS] = signer or links.LinkSigner({"none": secrets.token_bytes(32)}, "none")
    sealer = codec.sealer_from_settings(settings.codec_keys, settings.codec_active_key)
    folder = pathlib.Path(settings.portal_uploads or "portal-uploads")
    app[UPLOADS] = SealedUploads(folder, sealer, UPLOAD_RETENTION_S)
    app.router.add_static("/static", HERE / "static")
    app.router.add_get(HEALTH_PATH, healthz)
    # HOOK: each route module present exports setup_<last part>(app); the reviewer console plugs in here.
    for name in ROUTE_MODULES:
        if name.rsplit(".", 1)[1] in serving and importlib.util.find_spec(name) is not None:
            mod = importlib.import_module(name)
            getattr(mod, f"setup_{name.rsplit('.', 1)[1]}")(app)
    return app

"""The holder's pages: /h/<token> (the case, what to do, the forms), its two forms, and /h/<token>/status.

The token is the signed link from the SMS (pscommon/links.py); it names the case and the holder's language,
never the number. The holder proves who they are by typing the number and their ID and recording a liveness
video; verification judges that, as for the carrier's app (the portal calls as the `app` principal).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from aiohttp import web
from multidict import MultiDictProxy

from carrier.common.v1.common_pb2 import RISK_LEVEL_UNSPECIFIED
from carrier.verification.v1 import verification_pb2 as vpb
from contracts.case import case_line_hash
from pscommon.errors import parse_details
from pscommon.identity import is_msisdn, line_hash
from pscommon.links import Link, LinkError
from services.portal.holder import view
from services.portal.uploads import EVIDENCE_TYPES, VIDEO_TYPES, sniff
from services.portal.web import CLIENTS, LANG, LINKS, SETTINGS, UPLOADS, error_page, page_language, render, session_id

LIVENESS_MAX = 8 * 1024 * 1024
EVIDENCE_MAX = 2 * 1024 * 1024
EVIDENCE_FILES = 5
EXPLANATION_MAX = 4000
HOLDER_REF_MAX = 64
RPC_TIMEOUT_S = 10
_RID_RE = re.compile(r"[0-9a-f]{32}", re.ASCII)
_PRINTABLE_RE = re.compile(r"[\x21-\x7e]+", re.ASCII)
FileField = web.FileField


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _link(request: web.Request) -> Link:
    try:
        link = request.app[LINKS].verify(request.match_info["token"])
    except LinkError as err:
        if err.reason == "expired":
            raise _Refused(error_page(request, 410, "link_expired_title", "link_expired_body")) from None
        raise _Refused(error_page(request, 404, "link_bad_title", "link_bad_body")) from None
    request[LANG] = link.language
    return link


async def _status(request: web.Request, case_id: str) -> vpb.GetCaseStatusResponse:
    cfg = request.app[SETTINGS]
    req = vpb.GetCaseStatusRequest(case_id=case_id, caller_province=cfg.portal_province, caller_channel="portal")
    try:
        return await request.app[CLIENTS].verification.GetCaseStatus(req, timeout=RPC_TIMEOUT_S)
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.NOT_FOUND:
            raise _Refused(error_page(request, 404, "case_unknown_title", "case_unknown_body")) from None
        raise


async def _requirements(request: web.Request, s: vpb.GetCaseStatusResponse) -> vpb.GetRequirementsResponse:
    """What the policy table asks at the case's risk level (only the full page shows it)."""
    if s.risk_level == RISK_LEVEL_UNSPECIFIED:
        return vpb.GetRequirementsResponse()
    req = vpb.GetRequirementsRequest(risk_level=s.risk_level)
    return await request.app[CLIENTS].verification.GetRequirements(req, timeout=RPC_TIMEOUT_S)


def _refusing(handler: Callable[[web.Request], Awaitable[web.Response]]) -> Callable[..., Awaitable[web.Response]]:
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except _Refused as r:
            return r.response

    return wrapped


async def _page(
    request: web.Request,
    link: Link,
    errors: dict[str, str] | None = None,
    notice: list[str] | None = None,
    status: int = 200,
    failed: list[str] | None = None,
    attempts_left: int | None = None,
) -> web.Response:
    s = await _status(request, link.case_id)
    v = view.build(s, await _requirements(request, s), page_language(request))
    ctx = {
        "failed": failed or [],
        "attempts_left": attempts_left,
        "v": v,
        "token": request.match_info["token"],
        "errors": errors or {},
        "notice": notice or [],
        "verify_rid": uuid.uuid4().hex,
        "appeal_rid": uuid.uuid4().hex,
        "limits": {"video_mb": LIVENESS_MAX >> 20, "file_mb": EVIDENCE_MAX >> 20, "files": EVIDENCE_FILES},
    }
    return render(request, "holder/page.html", ctx, status=status)


@_refusing
async def page(request: web.Request) -> web.Response:
    return await _page(request, _link(request))


@_refusing
async def status(request: web.Request) -> web.Response:
    link = _link(request)
    v = view.build(await _status(request, link.case_id), None, page_language(request))
    ctx = {"v": v, "token": request.match_info["token"], "sent": request.query.get("sent", ""), "refresh_s": 3}
    return render(request, "holder/status.html", ctx)


@_refusing
async def status_json(request: web.Request) -> web.Response:
    """What the status page's poller reads: the stage in words and whether the case is done (nothing personal)."""
    link = _link(request)
    v = view.build(await _status(request, link.case_id), None, page_language(request))
    return web.json_response({"stage": v.stage, "restored": v.restored, "done": v.done or v.restored})


def _text(form: MultiDictProxy[Any], name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _request_id(form: MultiDictProxy[Any], name: str) -> str:
    """The form's own id (a double submit repeats it: verification answers the first once), else a new one."""
    rid = _text(form, name)
    return rid if _RID_RE.fullmatch(rid) else uuid.uuid4().hex


def _number(form: MultiDictProxy[Any], link: Link, request: web.Request, errors: dict[str, str], key: str) -> str:
    """The number the holder typed, if it is the case's line (else an error under `key`, the form's field)."""
    msisdn = _text(form, "msisdn").replace(" ", "").replace("-", "")
    h = case_line_hash(link.case_id)
    if not is_msisdn(msisdn):
        errors[key] = "err_msisdn"
    elif h is None or line_hash(msisdn, request.app[SETTINGS].line_hash_key) != h:
        errors[key] = "err_msisdn_other"
    return msisdn


def _file(value: Any) -> FileField | None:
    return value if isinstance(value, FileField) and value.filename else None


def _read(f: FileField, limit: int) -> bytes | None:
    """The file's bytes, or None when it is larger than `limit`."""
    data = f.file.read(limit + 1)
    return None if len(data) > limit else data


def _upload_status(errors: dict[str, str]) -> int:
    codes = set(errors.values())
    if codes & {"err_liveness_size", "err_evidence_size"}:
        return 413
    if codes & {"err_liveness_type", "err_evidence_type"}:
        return 415
    return 400


def _caller_id(request: web.Request) -> str:
    """The session, for verification's per-caller lockouts (a hash: the cookie itself stays in the browser)."""
    return "portal-" + hashlib.sha256(session_id(request).encode()).hexdigest()[:16]


def _refusal(err: grpc.aio.AioRpcError) -> str | None:
    """Words for a refusal the holder can act on; None for errors that are ours (shown as the error page)."""
    info, _ = parse_details(err)
    reason = info.reason if info is not None else ""
    if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return "refused_locked"
    if err.code() == grpc.StatusCode.FAILED_PRECONDITION:
        return {"ROUTE_NOT_ACCEPTED": "refused_route", "RISK_LEVEL_MISMATCH": "refused_changed"}.get(
            reason, "refused_state"
        )
    if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return "refused_input"
    if err.code() == grpc.StatusCode.NOT_FOUND and reason == "REVIEW_NOT_FOUND":  # a stale or foreign review id
        return "refused_state"
    return None


async def _forget(request: web.Request, refs: list[str]) -> None:
    """Files of a submission verification refused: nothing refers to them, so they must not sit on disk (a link
    and a number would otherwise fill it, 12 MB a request, for the whole retention period)."""
    delete = request.app[UPLOADS].delete
    for ref in refs:
        await asyncio.to_thread(delete, ref)


@_refusing
async def verify(request: web.Request) -> web.Response:
    link = _link(request)
    form = await request.post()
    errors: dict[str, str] = {}
    msisdn = _number(form, link, request, errors, "msisdn")
    holder_ref = _text(form, "holder_ref")
    if not holder_ref or len(holder_ref) > HOLDER_REF_MAX or not _PRINTABLE_RE.fullmatch(holder_ref):
        errors["holder_ref"] = "err_holder_ref"
    video, kind = _file(form.get("liveness")), None
    data = _read(video, LIVENESS_MAX) if video is not None else b""
    if video is None:
        errors["liveness"] = "err_liveness"
    elif data is None:
        errors["liveness"] = "err_liveness_size"
    elif (kind := sniff(data)) not in VIDEO_TYPES:
        errors["liveness"] = "err_liveness_type"
    if _text(form, "risk_notice") != "yes":
        errors["risk_notice"] = "err_risk_notice"
    if errors:
        return await _page(request, link, errors, status=_upload_status(errors))
    assert data is not None and kind is not None
    s = await _status(request, link.case_id)
    ref = await asyncio.to_thread(request.app[UPLOADS].put, data, kind, "liveness")
    try:
        out = await request.app[CLIENTS].verification.SubmitOnlineVerification(
            vpb.SubmitOnlineVerificationRequest(
                request_id=_request_id(form, "request_id"),
                case_id=link.case_id,
                msisdn=msisdn,
                risk_level=s.risk_level,
                claimed_holder_ref=holder_ref,
                liveness_token=ref,
                risk_notice_acknowledged=True,
                caller_province=request.app[SETTINGS].portal_province,
                caller_id=_caller_id(request),
            ),
            timeout=RPC_TIMEOUT_S,
        )
    except grpc.aio.AioRpcError as err:
        await _forget(request, [ref])
        words = _refusal(err)
        if words is None:
            raise
        return await _page(request, link, notice=[words], status=409 if words != "refused_input" else 400)
    outcome = out.outcome
    if outcome.result == vpb.RESULT_FAILED:
        failed = view.failures(list(outcome.failures), page_language(request))
        return await _page(request, link, None, ["check_failed"], 422, failed, outcome.attempts_left)
    raise web.HTTPSeeOther(f"/h/{request.match_info['token']}/status?sent=verify&lang={page_language(request)}")


@_refusing
async def appeal(request: web.Request) -> web.Response:
    link = _link(request)
    form = await request.post()
    errors: dict[str, str] = {}
    msisdn = _number(form, link, request, errors, "a_msisdn")
    explanation = _text(form, "explanation")
    if not explanation or len(explanation) > EXPLANATION_MAX:
        errors["explanation"] = "err_explanation"
    files = [f for f in map(_file, form.getall("evidence", [])) if f is not None]
    if len(files) > EVIDENCE_FILES:
        errors["evidence"] = "err_evidence_count"
    blobs: list[tuple[bytes, str, str]] = []
    for f in files[:EVIDENCE_FILES]:
        data = _read(f, EVIDENCE_MAX)
        if data is None:
            errors["evidence"] = "err_evidence_size"
            break
        kind = sniff(data)
        if kind not in EVIDENCE_TYPES:
            errors["evidence"] = "err_evidence_type"
            break
        blobs.append((data, kind, f.filename))
    if errors:
        return await _page(request, link, errors, status=_upload_status(errors))
    put = request.app[UPLOADS].put
    refs = [await asyncio.to_thread(put, data, kind, name) for data, kind, name in blobs]
    review_id = _text(form, "review_id")
    try:
        uuid.UUID(review_id)
    except ValueError:
        review_id = ""
    try:
        await request.app[CLIENTS].verification.SubmitAppeal(
            vpb.SubmitAppealRequest(
                request_id=_request_id(form, "request_id"),
                case_id=link.case_id,
                msisdn=msisdn,
                explanation=explanation,
                evidence_refs=refs,
                caller_province=request.app[SETTINGS].portal_province,
                review_id=review_id,
            ),
            timeout=RPC_TIMEOUT_S,
        )
    except grpc.aio.AioRpcError as err:
        await _forget(request, refs)
        words = _refusal(err)
        if words is None:
            raise
        return await _page(request, link, notice=[words], status=409 if words != "refused_input" else 400)
    raise web.HTTPSeeOther(f"/h/{request.match_info['token']}/status?sent=appeal&lang={page_language(request)}")


async def no_token(request: web.Request) -> web.Response:
    return error_page(request, 404, "link_bad_title", "link_bad_body")


def setup_holder(app: web.Application) -> None:
    app.router.add_get("/h/", no_token)
    app.router.add_get("/h/{token}", page)
    app.router.add_get("/h/{token}/status", status)
    app.router.add_get("/h/{token}/status.json", status_json)
    app.router.add_post("/h/{token}/verify", verify)
    app.router.add_post("/h/{token}/appeal", appeal)

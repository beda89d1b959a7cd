"""PSP_PORTAL_PAGES: production runs the holder's pages and the reviewer console as separate processes
(deploy/k8s: the public portal and the internal reviewer-console), each with only its own routes; /healthz for
the kubelet's probes. No stack needed: nothing here calls verification."""

from __future__ import annotations

import dataclasses

import grpc
import pytest
from aiohttp.test_utils import TestClient, TestServer

from carrier.verification.v1 import verification_pb2_grpc
from pscommon import codec
from pscommon.config import Settings
from services.portal.clients import Clients
from services.portal.web import build_app


def settings(pages: str, tmp_path) -> Settings:
    return dataclasses.replace(
        Settings(),
        portal_pages=pages,
        codec_keys=codec.new_key_spec("t1"),
        codec_active_key="t1",
        portal_uploads=str(tmp_path),
        portal_secret="test-secret",
    )


def clients() -> Clients:
    # Never called: the tests only open pages that make no call.
    return Clients(verification_pb2_grpc.VerificationServiceStub(grpc.aio.insecure_channel("127.0.0.1:9")))


def routes(app) -> set[str]:
    return {r.canonical for r in app.router.resources()}


async def test_the_public_portal_has_no_reviewer_route(tmp_path):
    app = build_app(settings("holder", tmp_path), clients())
    assert "/h/{token}" in routes(app)
    assert not [r for r in routes(app) if r.startswith("/reviewer")]
    async with TestClient(TestServer(app)) as client:
        console = await client.get("/reviewer/sign-in")
        assert console.status == 404
        assert (await client.get("/static/portal.css")).status == 200


async def test_the_console_alone_needs_no_app_principal_and_has_no_holder_route(tmp_path):
    app = build_app(settings("reviewer", tmp_path), None)
    assert "/reviewer/sign-in" in routes(app)
    assert not [r for r in routes(app) if r.startswith("/h/")]
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/reviewer/sign-in")).status == 200
        assert (await client.get("/h/abc.def")).status == 404


async def test_both_by_default(tmp_path):
    app = build_app(settings(Settings().portal_pages, tmp_path), clients())
    assert {"/h/{token}", "/reviewer/sign-in"} <= routes(app)


async def test_healthz_says_ok_and_nothing_else(tmp_path):
    async with TestClient(TestServer(build_app(settings("holder", tmp_path), clients()))) as client:
        resp = await client.get("/healthz")
        assert resp.status == 200 and await resp.text() == "ok\n"
        assert resp.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("pages", ["", "holder,admin", "reviewers"])
def test_unknown_pages_are_refused_at_start(tmp_path, pages):
    with pytest.raises(ValueError, match="PSP_PORTAL_PAGES"):
        build_app(settings(pages, tmp_path), clients())


def test_the_holder_pages_need_the_app_principal(tmp_path):
    with pytest.raises(ValueError, match="`app` principal"):
        build_app(settings("holder,reviewer", tmp_path), None)

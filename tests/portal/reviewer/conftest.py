"""The reviewer console on the test session's stack, and helpers that act as a reviewer's browser would."""

from __future__ import annotations

import dataclasses
import pathlib
import re
from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp import CookieJar, web
from aiohttp.test_utils import TestClient, TestServer

from carrier.verification.v1 import verification_pb2_grpc
from services.portal.clients import Clients
from services.portal.reviewer.desk import Desk
from services.portal.reviewer.directory import Directory, reviewer_password
from services.portal.reviewer.routes import CONSOLE, Console
from services.portal.reviewer.session import Sessions
from services.portal.web import build_app
from tests.helpers import connect

PASSWORD = "local-console-password"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
REQUEST_ID = re.compile(r'name="request_id" value="([0-9a-f]{32})"')


def console_for(stack) -> Console:
    directory = Directory(stack.cfg.pki_dir, PASSWORD)
    return Console(
        desk=Desk(stack.cfg.verification_addr, directory),
        directory=directory,
        sessions=Sessions(b"k" * 32),
        temporal_ui="http://127.0.0.1:8233",
        namespace="default",
        secure_cookies=True,
    )


def portal_app(stack, uploads: pathlib.Path) -> web.Application:
    """The whole portal as `python -m services.portal` builds it, on the test stack, with a known password."""
    cfg = dataclasses.replace(stack.cfg, portal_secret="test-portal-secret", portal_uploads=str(uploads))
    app_stub = verification_pb2_grpc.VerificationServiceStub(connect(stack.cfg, "verification", "app"))
    app = build_app(cfg, Clients(app_stub))
    app[CONSOLE] = console_for(stack)
    return app


@pytest_asyncio.fixture
async def browser_of(stack, tmp_path) -> AsyncIterator:
    """Makes clients of one portal; each keeps its own cookies, as one reviewer's browser does."""
    app = portal_app(stack, tmp_path / "uploads")
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    clients: list[TestClient] = []

    async def new() -> TestClient:
        jar = CookieJar(unsafe=True, treat_as_secure_origin=[str(server.make_url("/"))])
        client = TestClient(server, cookie_jar=jar)
        await client.start_server()
        clients.append(client)
        return client

    new.app = app  # type: ignore[attr-defined]
    yield new
    for c in clients:
        await c.close()
    await server.close()


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def sign_in(client: TestClient, reviewer: str, password: str | None = None) -> int:
    """Signs in with the reviewer's own password (or `password`); returns the status."""
    page = await (await client.get("/reviewer/sign-in")).text()
    given = reviewer_password(PASSWORD, reviewer) if password is None else password
    resp = await client.post(
        "/reviewer/sign-in",
        data={"csrf_token": csrf_of(page), "reviewer_id": reviewer, "password": given},
        allow_redirects=False,
    )
    return resp.status


async def signed_in(new, reviewer: str) -> TestClient:
    client = await new()
    assert await sign_in(client, reviewer) == 303
    return client


async def form_fields(client: TestClient, review_id: str) -> dict[str, str]:
    html = await (await client.get(f"/reviewer/reviews/{review_id}")).text()
    rid_ = REQUEST_ID.search(html)
    assert rid_, "the review page has no form"
    return {"csrf_token": csrf_of(html), "request_id": rid_.group(1)}


async def post(client: TestClient, review_id: str, action: str, **data: str):
    fields = await form_fields(client, review_id)
    return await client.post(f"/reviewer/reviews/{review_id}/{action}", data={**fields, **data}, allow_redirects=False)

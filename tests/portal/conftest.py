"""The portal against the tests' real stack (verification, Temporal, PostgreSQL), through aiohttp's test client."""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from pscommon import links
from services.portal.clients import Clients
from services.portal.web import build_app

# Fixed test keys: pytest imports this file twice (as conftest and as tests.portal.conftest).
LINK_KEYS = {"p1": bytes(range(32)), "p0": bytes(range(1, 33))}
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(2048)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(512)


def key_spec(keys: dict[str, bytes]) -> str:
    return ",".join(f"{k}={base64.b64encode(v).decode()}" for k, v in keys.items())


def signer(active: str = "p1", ttl_s: int = 3600) -> links.LinkSigner:
    return links.LinkSigner(LINK_KEYS, active, ttl_s)


def form_value(html: str, name: str, nth: int = 0) -> str:
    found = re.findall(rf'name="{name}" value="([^"]*)"', html)
    return found[nth]


@pytest_asyncio.fixture
async def portal(stack, tmp_path) -> AsyncIterator[TestClient]:
    cfg = dataclasses.replace(
        stack.cfg,
        principal="app",
        # The stack's key (links notify put in the SMS) and the tests' own, as during a key rotation.
        link_keys=f"{stack.cfg.link_keys},{key_spec(LINK_KEYS)}",
        link_active_key="p1",
        portal_uploads=str(tmp_path / "uploads"),
        portal_secure_cookies=False,
        portal_secret="test-secret",
    )
    client = TestClient(TestServer(build_app(cfg, Clients.from_settings(cfg))))
    await client.start_server()
    yield client
    await client.close()

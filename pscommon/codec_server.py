"""Codec server for the Temporal UI: lets authorised operators read encrypted payloads.

Same shape as the temporalio samples' encryption codec server: POST /encode and /decode with
Payloads as JSON, CORS for the UI's origin. Put it behind the operators' SSO in production.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import hdrs, web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from pscommon.codec import EncryptionCodec, from_settings
from pscommon.config import settings
from pscommon.telemetry import setup_logging


def build_app(codec: EncryptionCodec, allowed_origins: set[str]) -> web.Application:
    def cors(req: web.Request, resp: web.Response) -> web.Response:
        origin = req.headers.get(hdrs.ORIGIN, "")
        if origin in allowed_origins:
            resp.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            resp.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "POST"
            resp.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = "content-type,x-namespace,authorization"
        return resp

    async def options(req: web.Request) -> web.Response:
        return cors(req, web.Response())

    async def apply(fn: Callable[[Sequence[Payload]], Awaitable[list[Payload]]], req: web.Request) -> web.Response:
        payloads = json_format.Parse(await req.read(), Payloads())
        result = Payloads(payloads=await fn(payloads.payloads))
        return cors(req, web.Response(content_type="application/json", text=json_format.MessageToJson(result)))

    async def encode(req: web.Request) -> web.Response:
        return await apply(codec.encode, req)

    async def decode(req: web.Request) -> web.Response:
        return await apply(codec.decode, req)

    app = web.Application()
    app.add_routes(
        [
            web.post("/encode", encode),
            web.post("/decode", decode),
            web.options("/encode", options),
            web.options("/decode", options),
        ]
    )
    return app


async def main() -> None:
    setup_logging("codec-server")
    cfg = settings()
    origins = set(os.environ.get("PSP_CODEC_CORS_ORIGINS", f"{cfg.temporal_ui_url},http://localhost:8233").split(","))
    runner = web.AppRunner(build_app(from_settings(cfg.codec_keys, cfg.codec_active_key), origins))
    await runner.setup()
    await web.TCPSite(runner, os.environ.get("PSP_BIND_HOST", "127.0.0.1"), cfg.codec_server_port).start()
    logging.getLogger(__name__).info("codec server on port %d", cfg.codec_server_port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())

"""The reviewer console on its own (until it is mounted on the portal with `setup_reviewer`):
`python -m services.portal.reviewer.app` serves it on PSP_PORTAL_PORT (default 8090)."""

from __future__ import annotations

import os

from aiohttp import web

from pscommon.config import Settings, apply_env_file
from services.portal.reviewer.routes import Console, setup_reviewer


def make_app(cfg: Settings, console_: Console | None = None) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    setup_reviewer(app, cfg, console_)
    return app


def main() -> None:
    apply_env_file()
    cfg = Settings()
    host = os.environ.get("PSP_BIND_HOST", "127.0.0.1")
    web.run_app(make_app(cfg), host=host, port=int(os.environ.get("PSP_PORTAL_PORT", "8090")))


if __name__ == "__main__":
    main()

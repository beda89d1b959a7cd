"""python -m services.portal: the web portal on PSP_PORTAL_HOST:PSP_PORTAL_PORT."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from pscommon import channels
from pscommon.config import settings
from pscommon.telemetry import setup_logging
from services.portal.clients import Clients
from services.portal.web import build_app

log = logging.getLogger("portal")


async def main() -> None:
    setup_logging("portal")
    cfg = settings()
    # No access log: a holder's path carries a link token; the error middleware logs route patterns instead.
    runner = web.AppRunner(build_app(cfg, Clients.from_settings(cfg)), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, cfg.portal_host, cfg.portal_port).start()
    log.info("portal on http://%s:%d", cfg.portal_host, cfg.portal_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    await channels.close_all()


if __name__ == "__main__":
    asyncio.run(main())

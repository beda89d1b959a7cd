"""python -m services.portal: the web portal on PSP_PORTAL_HOST:PSP_PORTAL_PORT."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from pscommon import channels, metrics
from pscommon.config import settings
from pscommon.telemetry import setup_logging
from services.portal.clients import Clients
from services.portal.web import UPLOADS, build_app, pages

log = logging.getLogger("portal")


async def purge_uploads(app: web.Application) -> None:
    """Uploads past their retention period are deleted, hourly (as verification purges its evidence)."""
    while True:
        try:
            n = await asyncio.to_thread(app[UPLOADS].purge)
            if n:
                log.info("deleted %d uploads past retention", n)
        except OSError as err:
            log.warning("upload purge failed (%s); next hour", type(err).__name__)
        await asyncio.sleep(3600)


async def main() -> None:
    setup_logging("portal")
    cfg = settings()
    metrics.setup_from_settings("portal", cfg.metrics_port)
    # Only the holder's pages call as the portal's `app` principal (the console uses each reviewer's certificate).
    clients = Clients.from_settings(cfg) if "holder" in pages(cfg) else None
    # No access log: a holder's path carries a link token; the error middleware logs route patterns instead.
    app = build_app(cfg, clients)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, cfg.portal_host, cfg.portal_port).start()
    log.info("portal (%s) on http://%s:%d", ",".join(pages(cfg)), cfg.portal_host, cfg.portal_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    purge = asyncio.create_task(purge_uploads(app))
    await stop.wait()
    purge.cancel()
    await runner.cleanup()
    await channels.close_all()


if __name__ == "__main__":
    asyncio.run(main())

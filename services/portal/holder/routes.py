"""The holder's pages (filled in by the next commits)."""

from __future__ import annotations

from aiohttp import web

from services.portal.web import error_page


async def no_token(request: web.Request) -> web.Response:
    return error_page(request, 404, "link_bad_title", "link_bad_body")


def setup_holder(app: web.Application) -> None:
    app.router.add_get("/h/", no_token)

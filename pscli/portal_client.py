"""The holder's side of the portal over HTTP, as a phone's browser does it: open the link, send the online check's
form with the page's CSRF token (psctl demo restores its verifying holder this way)."""

from __future__ import annotations

import re

import aiohttp

from pscommon import links
from pscommon.config import Settings

# A few bytes that are an MP4 file as far as the portal's type check goes; the identity-check simulator passes
# any video reference that does not start with "spoof".
DEMO_VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(1024)


def holder_link(cfg: Settings, case_id: str, language: str) -> str:
    """A link as notify signs it into the case's messages (same keys, same case, same language): the demo's
    fallback when it cannot read the one the holder received (pscli/sms_inbox.py)."""
    signer = links.signer_from_settings(cfg.link_keys, cfg.link_active_key, cfg.link_ttl_s)
    if signer is None:
        raise RuntimeError("no PSP_LINK_KEYS: is this a stack started before the portal existed? `make up` adds them")
    return links.link_url(cfg.verify_url_base, signer.sign(case_id, language))


def _field(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]+)"', html)
    if m is None:
        raise RuntimeError(f"the holder's page has no {name} field: is the online check offered for this case?")
    return m[1]


async def verify_online(link: str, msisdn: str, holder_ref: str) -> str:
    """Opens the page, sends the online check's form; returns the URL of the status page it leads to."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(link) as page:
            html = await page.text()
            if page.status != 200:
                raise RuntimeError(f"the holder's page answered {page.status}")
        form = aiohttp.FormData()
        form.add_field("csrf_token", _field(html, "csrf_token"))
        form.add_field("request_id", _field(html, "request_id"))
        form.add_field("msisdn", msisdn)
        form.add_field("holder_ref", holder_ref)
        form.add_field("liveness", DEMO_VIDEO, filename="selfie.mp4", content_type="video/mp4")
        form.add_field("risk_notice", "yes")
        async with http.post(f"{link}/verify", data=form, allow_redirects=False) as sent:
            if sent.status != 303:
                raise RuntimeError(f"the online check answered {sent.status}, not a redirect to the status page")
            return str(sent.url.join(aiohttp.client.URL(sent.headers["Location"])))

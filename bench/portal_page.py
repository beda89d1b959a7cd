"""Holder page load time on a running local stack: the page behind a link, fetched as a phone's browser would
(HTML over HTTP, then its stylesheet), N times; p50 / p95 / max. The page's own work: GetCaseStatus and
GetRequirements over mutual TLS, and the template.

    PSP_ENV_FILE=.local/stack.env .venv/bin/python -m bench.portal_page URL [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import aiohttp


async def main(url: str, n: int) -> None:
    took = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        for _ in range(n):
            started = time.perf_counter()
            async with http.get(url) as page:
                assert page.status == 200, page.status
                await page.read()
            async with http.get(str(page.url.join(aiohttp.client.URL("/static/portal.css")))) as css:
                await css.read()
            took.append((time.perf_counter() - started) * 1000)
    took.sort()
    p95 = took[min(len(took) - 1, int(len(took) * 0.95))]
    print(f"holder page + stylesheet, {n} loads: min {took[0]:.0f} ms, p50 {statistics.median(took):.0f} ms,")
    print(f"  p95 {p95:.0f} ms, max {took[-1]:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 50))

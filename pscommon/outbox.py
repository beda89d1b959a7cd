"""Telling Temporal what a service has committed: the transactional outbox and its relay.

A service writes what Temporal must hear (a case to start, a signal to a case) as rows in the same transaction
as the change that causes it, so one never happens without the other. After the commit the relay delivers the
rows at once; what fails stays pending and is retried in the background, oldest first. Delivery is at least
once: a crash between delivering a row and marking it can deliver it again, so receivers must tolerate repeats.

Rows are claimed with a lease in a short transaction and delivered without holding a connection or a lock:
a slow Temporal call never holds the pool or row locks, and a replica that dies mid-delivery leaves its rows to
be claimed again once the lease ends. A failed delivery gives its unsent rows back at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from pscommon.db import Conn

log = logging.getLogger(__name__)

# claim(conn, ids or None for any, limit, lease_s) -> rows not sent and not leased, now leased for lease_s
Claim = Callable[[Conn, list[int] | None, int, float], Awaitable[list[asyncpg.Record]]]
# deliver(row): tells Temporal; may use the pool for short transactions of its own, never one held across a call
Deliver = Callable[[asyncpg.Record], Awaitable[None]]
MarkSent = Callable[[Conn, int], Awaitable[None]]
Release = Callable[[Conn, list[int]], Awaitable[None]]
LEASE_S = 10.0  # a delivery is a Temporal call of milliseconds; a repeat after a slow one is tolerated


class Relay:
    def __init__(
        self,
        name: str,
        pool: asyncpg.Pool,
        claim: Claim,
        deliver: Deliver,
        mark_sent: MarkSent,
        release: Release,
        retry_s: float = 2.0,
        idle_s: float = 30.0,
        batch: int = 100,
    ) -> None:
        self.name = name
        self.pool = pool
        self.claim = claim
        self.deliver = deliver
        self.mark_sent = mark_sent
        self.release = release
        self.retry_s = retry_s
        self.idle_s = idle_s
        self.batch = batch
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._soon: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        for task in [self._task, *self._soon]:
            if task is not None:
                task.cancel()

    async def deliver_now(self, ids: list[int]) -> None:
        """Delivers these committed rows now; a failure is left to the background retry (never raised). A row the
        store holds back behind another (its claim's ordering) is delivered once that one is."""
        if not ids:
            return
        try:
            while await self._deliver(ids):
                pass
            self.wake.set()  # rows held back behind these (or by another's lease) are the loop's now
        except Exception as err:  # the rows stay pending; the loop retries them
            log.warning("%s: delivery deferred (%s)", self.name, type(err).__name__)
            log.debug("%s: delivery deferred", self.name, exc_info=True)
            self.wake.set()

    def deliver_soon(self, ids: list[int]) -> None:
        """`deliver_now` without waiting for it."""
        task = asyncio.create_task(self.deliver_now(ids))
        self._soon.add(task)
        task.add_done_callback(self._soon.discard)

    async def _deliver(self, ids: list[int] | None) -> int:
        async with self.pool.acquire() as conn:
            rows = sorted(await self.claim(conn, ids, self.batch, LEASE_S), key=lambda r: r["id"])
        unsent = [r["id"] for r in rows]
        try:
            for row in rows:
                await self.deliver(row)
                async with self.pool.acquire() as conn:
                    await self.mark_sent(conn, row["id"])
                unsent.pop(0)
        finally:
            if unsent:
                await self._give_back(unsent)
        return len(rows)

    async def _give_back(self, ids: list[int]) -> None:
        try:
            async with self.pool.acquire() as conn:
                await self.release(conn, ids)
        except Exception as err:  # noqa: BLE001 - their lease runs out by itself
            log.warning("%s: rows stay leased until their lease ends (%s)", self.name, type(err).__name__)

    async def _run(self) -> None:
        while True:
            try:
                while await self._deliver(None):
                    pass
            except Exception as err:  # Temporal or the database is away: try again shortly
                log.warning("%s: will retry in %.1f s (%s)", self.name, self.retry_s, type(err).__name__)
                log.debug("%s: will retry", self.name, exc_info=True)
                await asyncio.sleep(self.retry_s)
                continue
            try:
                await asyncio.wait_for(self.wake.wait(), self.idle_s)
            except TimeoutError:
                pass
            self.wake.clear()

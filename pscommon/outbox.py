"""Telling Temporal what a service has committed: the transactional outbox and its relay.

A service writes what Temporal must hear (a case to start, a signal to a case) as rows in the same transaction
as the change that causes it, so one never happens without the other. After the commit the relay delivers the
rows at once; what fails stays pending and is retried in the background, oldest first. Delivery is at least
once: a crash between delivering a row and marking it can deliver it again, so receivers must tolerate repeats.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from pscommon.db import Conn

log = logging.getLogger(__name__)

# pending(conn, ids or None for any, limit) -> rows, oldest first, locked FOR UPDATE SKIP LOCKED so replicas share
Pending = Callable[[Conn, list[int] | None, int], Awaitable[list[asyncpg.Record]]]
# deliver(conn, row): in the transaction that holds the row's lock, which commits with the row marked sent
Deliver = Callable[[Conn, asyncpg.Record], Awaitable[None]]
MarkSent = Callable[[Conn, int], Awaitable[None]]


class Relay:
    def __init__(
        self,
        name: str,
        pool: asyncpg.Pool,
        pending: Pending,
        deliver: Deliver,
        mark_sent: MarkSent,
        retry_s: float = 2.0,
        idle_s: float = 30.0,
        batch: int = 100,
    ) -> None:
        self.name = name
        self.pool = pool
        self.pending = pending
        self.deliver = deliver
        self.mark_sent = mark_sent
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
        """Delivers these committed rows now; a failure is left to the background retry (never raised)."""
        if not ids:
            return
        try:
            await self._deliver(ids)
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
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await self.pending(conn, ids, self.batch)
            for row in rows:
                await self.deliver(conn, row)
                await self.mark_sent(conn, row["id"])
        return len(rows)

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

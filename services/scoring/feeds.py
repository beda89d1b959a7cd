"""Keeps every shard's copy of the national feeds (high-risk cells and numbers) current: an update committed on
any shard NOTIFYs `scoring_feeds`; each shard listens on its own connection and reloads. After a lost
connection (PostgreSQL restarting) it reconnects and reloads, since a notification may have been missed."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from services.scoring import store
from services.scoring.engine import Engine

log = logging.getLogger(__name__)
RETRY_S = (0.5, 1.0, 2.0, 5.0)


class FeedListener:
    def __init__(self, dsn: str, pool: asyncpg.Pool, engine: Engine) -> None:
        self.dsn = dsn
        self.pool = pool
        self.engine = engine
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._reloads: set[asyncio.Task[None]] = set()  # held until done (the loop keeps only weak references)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                conn = await asyncpg.connect(self.dsn)
            except (OSError, asyncpg.PostgresError) as err:
                await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1
                log.warning("feed listener cannot connect; retrying (%s)", type(err).__name__)
                continue
            failures = 0
            self._lost.clear()
            try:
                conn.add_termination_listener(lambda _c: self._lost.set())
                await conn.add_listener(store.FEEDS_CHANNEL, self._notified)
                await self.reload()
                await self._lost.wait()
            except (OSError, asyncpg.PostgresError) as err:
                log.warning("feed listener lost its connection; reconnecting (%s)", type(err).__name__)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)

    def _notified(self, *_args: object) -> None:
        task = asyncio.get_running_loop().create_task(self._reload_logged())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except (OSError, asyncpg.PostgresError) as err:
            log.warning("feed reload failed; the next notification or reconnect reloads (%s)", type(err).__name__)

    async def reload(self) -> None:
        self.engine.set_feeds(await store.cells(self.pool), await store.hot_numbers(self.pool))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

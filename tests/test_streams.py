"""read_ahead keeps one read outstanding without losing, reordering or leaking a message."""

from __future__ import annotations

import asyncio

from pscommon.streams import read_ahead


async def test_every_message_arrives_in_order_and_the_next_read_is_already_issued():
    asked: list[int] = []

    async def source():
        for i in range(5):
            asked.append(i)
            yield i

    seen = []
    async for msg in read_ahead(source()):
        seen.append(msg)
        if msg < 4:
            assert asked[-1] == msg + 1  # the next message was requested before this one was handled
    assert seen == [0, 1, 2, 3, 4]


async def test_leaving_early_cancels_the_pending_read():
    blocked = asyncio.Event()
    cancelled = asyncio.Event()

    async def source():
        yield 1
        blocked.set()
        try:
            await asyncio.Event().wait()  # a client that sends nothing more
        except asyncio.CancelledError:
            cancelled.set()
            raise

    stream = read_ahead(source())
    async for msg in stream:
        assert msg == 1
        await blocked.wait()
        break
    await stream.aclose()
    assert cancelled.is_set()

"""read_ahead keeps one read outstanding without losing, reordering or leaking a message."""

from __future__ import annotations

import asyncio
import gc

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


async def test_a_read_that_fails_after_the_stream_was_left_is_retrieved():
    """An aborted RPC fails the read already issued for the next message; nobody awaits it, yet asyncio must not
    log "Task exception was never retrieved" for it."""
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:

        async def source():
            yield 1
            raise RuntimeError("the call was aborted")  # what reading an aborted RPC's next message does

        stream = read_ahead(source())
        async for msg in stream:
            assert msg == 1
            await asyncio.sleep(0.01)  # the handler works on message 1 while the read of message 2 fails
            break
        await stream.aclose()
        del stream
        gc.collect()
        await asyncio.sleep(0.01)
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert [c.get("message") for c in reported] == []


async def test_a_read_failing_while_the_stream_is_closed_does_not_replace_the_callers_error():
    release = asyncio.Event()

    async def source():
        yield 1
        try:
            await release.wait()
        except asyncio.CancelledError:
            raise RuntimeError("the transport failed while cancelling") from None

    async def handler():
        stream = read_ahead(source())
        try:
            async for _msg in stream:
                raise ValueError("the handler's own failure")
        finally:
            await stream.aclose()

    try:
        await handler()
    except ValueError as err:
        assert str(err) == "the handler's own failure"
    else:
        raise AssertionError("the handler's error was lost")

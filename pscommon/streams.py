"""Helpers for client-streaming and bidirectional RPCs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, TypeVar

T = TypeVar("T")


async def read_ahead(messages: AsyncIterable[T]) -> AsyncIterator[T]:
    """Yields the stream's messages with the next read already issued.

    gRPC then receives message n+1 on its own threads while the handler spends CPU on message n, instead of
    starting the transfer only when the handler asks for it.
    """
    it = aiter(messages)
    pending = _read(it)
    try:
        while True:
            try:
                msg = await pending
            except StopAsyncIteration:
                return
            pending = _read(it)
            await asyncio.sleep(0)  # let the read start before the caller's work takes the loop
            yield msg
    finally:
        # Never let the read issued ahead replace the error (or the cancellation) that ends the stream.
        if not pending.done():
            pending.cancel()
            await asyncio.wait([pending])  # its clean-up has run; raises neither its error nor its cancellation


def _read(it: AsyncIterator[T]) -> asyncio.Future[T]:
    """The next read, issued now. It may end in an error nobody asks for (an aborted RPC fails it, and the
    generator may be collected in the same pass as it, before its `finally` runs): marked retrieved as soon as it
    ends, so asyncio never logs "Task exception was never retrieved"; whoever awaits it still gets the error."""
    read = asyncio.ensure_future(anext(it))
    read.add_done_callback(_retrieve)
    return read


def _retrieve(read: asyncio.Future[Any]) -> None:
    if not read.cancelled():
        read.exception()

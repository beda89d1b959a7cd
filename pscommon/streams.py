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
    pending = asyncio.ensure_future(anext(it))
    try:
        while True:
            try:
                msg = await pending
            except StopAsyncIteration:
                return
            pending = asyncio.ensure_future(anext(it))
            await asyncio.sleep(0)  # let the read start before the caller's work takes the loop
            yield msg
    finally:
        # The read issued ahead may end in an error nobody asks for (an aborted RPC fails it): retrieve it, so
        # asyncio does not log "Task exception was never retrieved", and never let it replace the error (or the
        # cancellation) that ends the stream.
        pending.add_done_callback(_retrieve)
        if not pending.done():
            pending.cancel()
            await asyncio.wait([pending])  # its clean-up has run; raises neither its error nor its cancellation


def _retrieve(read: asyncio.Future[Any]) -> None:
    if not read.cancelled():
        read.exception()

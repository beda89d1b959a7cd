"""Helpers for client-streaming and bidirectional RPCs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import TypeVar

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
        if not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending

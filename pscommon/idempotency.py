"""Mutations idempotent by request_id: the work and its recorded answer commit together."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from google.protobuf.message import Message

from pscommon.errors import invalid_argument

R = TypeVar("R", bound=Message)


def _fingerprint(request: Message) -> bytes:
    return hashlib.sha256(request.SerializeToString(deterministic=True)).digest()


async def once(
    pool: asyncpg.Pool,
    method: str,
    request_id: str,
    request: Message,
    response_type: type[R],
    work: Callable[[asyncpg.Connection], Awaitable[R]],
) -> R:
    """Runs `work` in a transaction unless request_id was seen; a reuse with another request is rejected."""
    fingerprint = _fingerprint(request)
    async with pool.acquire() as conn, conn.transaction():
        # Serialise concurrent repeats of one request_id; different ids never wait on each other.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", request_id)
        row = await conn.fetchrow(
            "SELECT method, request_hash, response FROM idempotency WHERE request_id = $1", request_id
        )
        if row is not None:
            if row["method"] != method or bytes(row["request_hash"]) != fingerprint:
                raise invalid_argument([("request_id", "already used for a different request")])
            return response_type.FromString(bytes(row["response"]))
        response = await work(conn)
        await conn.execute(
            "INSERT INTO idempotency (request_id, method, request_hash, response) VALUES ($1, $2, $3, $4)",
            request_id,
            method,
            fingerprint,
            response.SerializeToString(deterministic=True),
        )
        return response

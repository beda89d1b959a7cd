"""Mutations idempotent by request_id: the work and its recorded answer commit together.

`mutation` is the one skeleton of every mutating RPC: validate the request, then run the work once per
request_id in a transaction, then start what may only happen after the commit (telling Temporal, updating
memory, waking a dispatcher)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, cast

import asyncpg
import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from pscommon.db import Conn
from pscommon.errors import invalid_argument

log = logging.getLogger(__name__)

Req = TypeVar("Req", bound=Message)
R = TypeVar("R", bound=Message)
S = TypeVar("S", bound="HasPool")
AfterCommit = Callable[[], Awaitable[None] | None]


class HasPool(Protocol):
    pool: asyncpg.Pool


class HasRequestId(Protocol):
    request_id: str


@dataclass
class Tx:
    """The transaction a mutation's work runs in, what to do once it has committed (only on first run), and
    how to undo an outside effect the work made if the transaction then fails (compensation)."""

    conn: Conn
    after: list[AfterCommit] = field(default_factory=list)
    undo: list[AfterCommit] = field(default_factory=list)

    def after_commit(self, action: AfterCommit) -> None:
        self.after.append(action)

    def on_rollback(self, action: AfterCommit) -> None:
        """Runs (last registered first) if the work or the commit fails after this point."""
        self.undo.append(action)


def _fingerprint(request: Message, principal: str) -> bytes:
    """The request and who sent it: the same request_id from another caller is another request."""
    body = request.SerializeToString(deterministic=True)
    return hashlib.sha256(principal.encode() + b"\0" + body if principal else body).digest()


async def once(
    pool: asyncpg.Pool,
    method: str,
    request_id: str,
    request: Message,
    response_type: type[R],
    work: Callable[[Tx], Awaitable[R]],
    principal: str = "",
) -> R:
    """Runs `work` in a transaction unless request_id was seen; a reuse with another request (or by another
    caller) is rejected. The work's after-commit actions run once the transaction has committed; if the work or
    the commit fails, its compensations run."""
    # Rows written before callers were part of the fingerprint still answer their retries.
    fingerprint = (_fingerprint(request, principal), _fingerprint(request, ""))
    async with pool.acquire() as conn:
        tx = Tx(conn)
        try:
            response = await _run_once(conn, tx, method, request_id, fingerprint, response_type, work)
        except BaseException:
            for action in reversed(tx.undo):
                try:
                    await _call(action)
                except Exception:  # the original failure is what the caller must see; the undo is logged
                    log.exception("%s: compensation failed", method)
            raise
    for action in tx.after:
        await _call(action)
    return response


async def _call(action: AfterCommit) -> None:
    done = action()
    if inspect.isawaitable(done):
        await done


async def _run_once(
    conn: Conn,
    tx: Tx,
    method: str,
    request_id: str,
    fingerprint: tuple[bytes, bytes],
    response_type: type[R],
    work: Callable[[Tx], Awaitable[R]],
) -> R:
    async with conn.transaction():
        # Serialise concurrent repeats of one request_id; different ids never wait on each other.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", request_id)
        row = await conn.fetchrow(
            "SELECT method, request_hash, response FROM idempotency WHERE request_id = $1", request_id
        )
        if row is not None:
            if row["method"] != method or bytes(row["request_hash"]) not in fingerprint:
                raise invalid_argument([("request_id", "already used for a different request")])
            return response_type.FromString(bytes(row["response"]))
        response = await work(tx)
        await conn.execute(
            "INSERT INTO idempotency (request_id, method, request_hash, response) VALUES ($1, $2, $3, $4)",
            request_id,
            method,
            fingerprint[0],
            response.SerializeToString(deterministic=True),
        )
    return response


_RPCS: dict[str, tuple[str, type[Message]]] = {}


def _rpc_of(request_type: type[Message]) -> tuple[str, type[Message]]:
    """(method name, response class) of the RPC that takes this request type (each request serves one RPC)."""
    desc = request_type.DESCRIPTOR
    found = _RPCS.get(desc.full_name)
    if found is None:
        methods = [m for s in desc.file.services_by_name.values() for m in s.methods if m.input_type is desc]
        if not methods:
            raise LookupError(f"no RPC takes {desc.full_name}")
        output = cast(Descriptor, methods[0].output_type)
        found = _RPCS[desc.full_name] = (methods[0].name, message_factory.GetMessageClass(output))
    return found


def mutation(
    validate: Callable[[Req], None],
    serialized: Callable[[S], asyncio.Lock] | None = None,
) -> Callable[[Callable[[S, Req, Tx], Awaitable[R]]], Callable[[S, Req, grpc.aio.ServicerContext], Awaitable[R]]]:
    """Turns `work(self, request, tx)` into the servicer method: `validate(request)` raises INVALID_ARGUMENT
    before anything happens, then the work runs once per request_id (see `once`) on `self.pool`. `serialized`:
    a lock held from before the work until its after-commit actions are done (changes that must apply in the
    order they commit)."""

    def wrap(work: Callable[[S, Req, Tx], Awaitable[R]]) -> Callable[[S, Req, grpc.aio.ServicerContext], Awaitable[R]]:
        @functools.wraps(work)
        async def handler(self: S, request: Req, context: grpc.aio.ServicerContext) -> R:
            validate(request)
            method, response_type = _rpc_of(type(request))
            request_id = cast(HasRequestId, request).request_id
            lock = serialized(self) if serialized is not None else contextlib.nullcontext()
            async with lock:
                response = await once(
                    self.pool, method, request_id, request, response_type, lambda tx: work(self, request, tx)
                )
            return cast(R, response)

        return handler

    return wrap

"""One notification, one dispatcher at a time: the lease is renewed while a step runs, however long, and every
write of a step is fenced by the lease's generation, so a stale holder is refused and the new holder's state stands."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from carrier.notify.v1 import notify_pb2
from services.notify import ladder, store
from services.notify.channels import Message, Outcome
from services.notify.dispatcher import Dispatcher
from services.notify.ladder import DELIVERED, FAILED, IN_FLIGHT, Track
from services.notify.policy import parse
from services.notify.store import Lease, LeaseLost
from tests.notify.conftest import FakeChannels, eventually, new_notification

POLICY = parse(
    {
        "version": "lease-test",
        "ladder": ["voice", "email"],
        "retry": {"temporary": ["1s", "1s"]},
        "receipt_timeout": "1m",
        "give_up_after": "1h",
    }
)


async def notification(pool: asyncpg.Pool, nid) -> tuple[asyncpg.Record, list[tuple[str, str]]]:
    n, attempts = await store.get(pool, nid)
    assert n is not None
    return n, [(store.CHANNEL_NAMES[a["channel"]], a["outcome"]) for a in attempts]


async def delivered(pool: asyncpg.Pool, nid) -> bool:
    n, _ = await notification(pool, nid)
    return n["status"] == notify_pb2.DELIVERY_STATUS_DELIVERED


async def test_a_step_slower_than_the_lease_keeps_it_and_no_one_else_steps_in(notify_pool):
    """An IVR call ringing for 2.5 leases: the dispatcher renews, the other one never claims it, and the ladder
    goes on to email only after the call ended, from the same dispatcher."""
    pool, sent = notify_pool, []

    async def slow_call(m: Message) -> Outcome:
        await asyncio.sleep(2.5)
        return Outcome("failed", "call not answered", "temporary")

    async def email(m: Message) -> Outcome:
        return Outcome("delivered", "accepted by the mail server")

    senders = {"voice": slow_call, "email": email}
    dispatchers = [
        Dispatcher(pool, FakeChannels(tag, senders, sent), POLICY, lambda: None, lease_s=1.0) for tag in "AB"
    ]
    nid = await new_notification(pool)
    for d in dispatchers:
        d.start()
    try:
        await eventually(lambda: delivered(pool, nid))
    finally:
        for d in dispatchers:
            await d.stop()
    n, attempts = await notification(pool, nid)
    assert attempts == [("voice", "failed"), ("email", "delivered")]  # no 'interrupted', no second call
    assert [(c, r.split(":")[1]) for _, c, r in sent] == [("voice", "1"), ("email", "2")]
    assert len({tag for tag, _, _ in sent}) == 1  # one dispatcher did both
    assert n["lease_gen"] == 1  # claimed once: the other dispatcher never took it


@pytest.mark.parametrize("thief", ["B", "A"])  # another dispatcher, or the same one claiming it anew
async def test_a_stale_holders_writes_are_refused_and_the_new_holders_state_stands(notify_pool, thief):
    pool = notify_pool
    nid = await new_notification(pool)
    now = datetime.now(UTC)
    [claimed] = await store.claim_due(pool, "A", 30, 10)
    stale = Lease(nid, "A", claimed["lease_gen"], 30)
    call = Track("voice", 1, IN_FLIGHT, sent_at=now)
    seq = await store.begin_attempt(pool, stale, call, "home")
    assert seq == 1

    # A stalls past its lease; the next claim takes over and closes A's attempt as interrupted.
    await pool.execute("UPDATE notifications SET lease_until = now() - interval '1 second'")
    [taken] = await store.claim_due(pool, thief, 30, 10)
    lease = Lease(nid, thief, taken["lease_gen"], 30)
    assert lease.gen == stale.gen + 1
    theirs = Track("voice", 1, IN_FLIGHT, sent_at=now)
    ladder.failed(POLICY, theirs, "temporary", now)
    await store.interrupted(pool, lease, theirs)

    # A's call is answered at last: nothing A writes lands.
    answered = Track("voice", 1, DELIVERED)
    with pytest.raises(LeaseLost):
        await store.finish_attempt(pool, stale, seq, answered, Outcome("delivered", "call answered"))
    with pytest.raises(LeaseLost):
        await store.begin_attempt(pool, stale, Track("email", 1, IN_FLIGHT, sent_at=now), "home")
    with pytest.raises(LeaseLost):
        await store.save_track(pool, stale, answered)
    with pytest.raises(LeaseLost):
        await store.interrupted(pool, stale, answered)
    with pytest.raises(LeaseLost):
        await store.receipt_overdue(pool, stale, answered, 60)
    with pytest.raises(LeaseLost):
        await store.give_up(pool, stale)
    with pytest.raises(LeaseLost):
        await store.release(pool, stale, None, "home", "")
    assert await store.renew(pool, [stale]) == set()

    n, attempts = await notification(pool, nid)
    assert attempts == [("voice", "interrupted")]
    assert n["status"] == notify_pb2.DELIVERY_STATUS_PENDING and n["delivered_channel"] == 0
    assert (n["lease_owner"], n["lease_gen"]) == (thief, lease.gen)
    tracks, _ = await store.tracks(pool, nid)
    assert tracks["voice"].state == FAILED and tracks["voice"].retry_at == theirs.retry_at
    # The holder's own writes still go through.
    await store.release(pool, lease, theirs.retry_at, "home", "")


async def test_a_dispatcher_that_lost_its_lease_mid_call_records_nothing_and_sends_nothing_more(notify_pool):
    """The lease is taken over while the call rings (its holder stalled, say): the answer is not recorded over the
    new holder's state and the ladder is not continued by the stale holder."""
    pool, sent = notify_pool, []
    ringing, answer = asyncio.Event(), asyncio.Event()

    async def call(m: Message) -> Outcome:
        ringing.set()
        await answer.wait()
        return Outcome("failed", "call not answered", "temporary")

    async def email(m: Message) -> Outcome:
        return Outcome("delivered", "accepted by the mail server")

    # A lease far longer than the test: the renewer does not notice the takeover, so the write must refuse it.
    step_ended = asyncio.Event()
    a = Dispatcher(pool, FakeChannels("A", {"voice": call, "email": email}, sent), POLICY, step_ended.set, lease_s=60)
    nid = await new_notification(pool)
    a.start()
    try:
        await asyncio.wait_for(ringing.wait(), 10)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE notifications SET lease_until = now() - interval '1 second'")
            [taken] = await store.claim_due(conn, "B", 60, 10)
        answer.set()
        await asyncio.wait_for(step_ended.wait(), 10)  # a refused write ends the step; nothing else reports it
    finally:
        await a.stop()
    n, attempts = await notification(pool, nid)
    assert attempts == [("voice", "sending")]  # as B found it: B decides what became of it
    assert (n["lease_owner"], n["lease_gen"]) == ("B", taken["lease_gen"])
    assert [c for _, c, _ in sent] == ["voice"]


async def test_the_renewer_abandons_a_step_whose_lease_was_taken_over(notify_pool):
    pool, sent = notify_pool, []
    ringing, hung_up = asyncio.Event(), asyncio.Event()

    async def call(m: Message) -> Outcome:
        ringing.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            hung_up.set()
            raise
        return Outcome("delivered", "call answered")

    a = Dispatcher(pool, FakeChannels("A", {"voice": call}, sent), POLICY, lambda: None, lease_s=0.6)
    nid = await new_notification(pool)
    a.start()
    try:
        await asyncio.wait_for(ringing.wait(), 10)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE notifications SET lease_until = now() - interval '1 second'")
            await store.claim_due(conn, "B", 60, 10)
        await asyncio.wait_for(hung_up.wait(), 2)  # within a renewal period or two
    finally:
        await a.stop()
    n, attempts = await notification(pool, nid)
    assert attempts == [("voice", "sending")] and n["lease_owner"] == "B"

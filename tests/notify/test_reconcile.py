"""After a kill -9 the receipts the SMPP session had acknowledged but notify had not stored are gone, and smpp34
cannot ask the SMSC about them (no query_sm). An SMS the SMSC accepted is therefore never sent again on a guess:
without its receipt the ladder moves on; only a receipt saying it failed, however late, brings it back."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from carrier.notify.v1 import notify_pb2
from services.notify import store
from services.notify.channels import Message, Outcome
from services.notify.dispatcher import Dispatcher
from services.notify.ladder import UNCONFIRMED
from services.notify.policy import DeliveryPolicy, parse
from services.notify.receipts import Receipt
from tests.notify.conftest import FakeChannels, eventually, new_notification


def policy(email_retries: list[str]) -> DeliveryPolicy:
    return parse(
        {
            "version": "reconcile-test",
            "ladder": ["sms", "email"],
            "retry": {"temporary": email_retries, "absent": ["1s"]},
            "receipt_timeout": "1s",
            "give_up_after": "1h",
        }
    )


class Smsc:
    """Accepts every SMS; its receipts are whatever the test records (or loses)."""

    def __init__(self) -> None:
        self.accepted: list[str] = []

    async def submit(self, m: Message) -> Outcome:
        message_id = uuid.uuid4().hex[:16]
        self.accepted.append(message_id)
        return Outcome("submitted", f"smsc id {message_id}", smsc_message_id=message_id)


async def email_fails(m: Message) -> Outcome:
    return Outcome("failed", "mail server unavailable", "temporary")


async def attempts(pool: asyncpg.Pool, nid: uuid.UUID) -> list[tuple[str, str]]:
    _, rows = await store.get(pool, nid)
    return [(store.CHANNEL_NAMES[a["channel"]], a["outcome"]) for a in rows]


async def status(pool: asyncpg.Pool, nid: uuid.UUID) -> int:
    n, _ = await store.get(pool, nid)
    assert n is not None
    return int(n["status"])


async def kill(d: Dispatcher) -> None:
    """kill -9: its tasks stop where they are; nothing is released or flushed."""
    tasks = [*d._tasks, *d._stepping, *([d._renewer] if d._renewer else [])]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_an_sms_whose_receipt_died_with_the_process_is_not_sent_again(notify_pool):
    pool, sent, smsc = notify_pool, [], Smsc()
    p = policy(["1s"])
    senders = {"sms": smsc.submit, "email": email_fails}
    a = Dispatcher(pool, FakeChannels("A", senders, sent), p, lambda: None)
    nid = await new_notification(pool)
    a.start()
    await eventually(lambda: _has(pool, nid, ("sms", "submitted")))
    await kill(a)  # the SMS's receipt, acknowledged by the session, was in A's memory: it is never stored

    b = Dispatcher(pool, FakeChannels("B", senders, sent), p, lambda: None)
    b.start()
    try:
        await eventually(lambda: _is(pool, nid, notify_pb2.DELIVERY_STATUS_FAILED))
    finally:
        await b.stop()
    # Before: the SMS timed out as a temporary failure and was submitted again a second later.
    assert [c for _, c, _ in sent].count("sms") == 1 and len(smsc.accepted) == 1
    assert await attempts(pool, nid) == [("sms", "no_receipt"), ("email", "failed"), ("email", "failed")]
    tracks, _ = await store.tracks(pool, nid)
    assert tracks["sms"].state == UNCONFIRMED


async def test_a_late_receipt_still_settles_an_unconfirmed_sms(notify_pool):
    pool, sent, smsc = notify_pool, [], Smsc()
    d = Dispatcher(pool, FakeChannels("A", {"sms": smsc.submit, "email": email_fails}, sent), policy(["5s"]), _noop)
    nid = await new_notification(pool)
    d.start()
    try:
        await eventually(lambda: _has(pool, nid, ("sms", "no_receipt")))
        await store.record_receipts(pool, [Receipt(smsc.accepted[0], "DELIVRD", "000")])
        assert await status(pool, nid) == notify_pb2.DELIVERY_STATUS_DELIVERED
    finally:
        await d.stop()
    assert (await attempts(pool, nid))[0] == ("sms", "delivered")
    assert len(smsc.accepted) == 1


async def test_a_late_receipt_saying_it_failed_brings_the_sms_back(notify_pool):
    pool, sent, smsc = notify_pool, [], Smsc()
    d = Dispatcher(pool, FakeChannels("A", {"sms": smsc.submit, "email": email_fails}, sent), policy(["5s"]), _noop)
    nid = await new_notification(pool)
    d.start()
    try:
        await eventually(lambda: _has(pool, nid, ("sms", "no_receipt")))
        assert len(smsc.accepted) == 1
        await store.record_receipts(pool, [Receipt(smsc.accepted[0], "UNDELIV", "001")])  # absent: retry in 1 s
        await eventually(lambda: asyncio.sleep(0, len(smsc.accepted) == 2))
    finally:
        await d.stop()
    assert (await attempts(pool, nid))[:3] == [("sms", "undeliv"), ("email", "failed"), ("sms", "submitted")]


def _noop() -> None:
    pass


async def _has(pool: asyncpg.Pool, nid: uuid.UUID, attempt: tuple[str, str]) -> bool:
    return attempt in await attempts(pool, nid)


async def _is(pool: asyncpg.Pool, nid: uuid.UUID, wanted: int) -> bool:
    return await status(pool, nid) == wanted

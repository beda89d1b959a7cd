"""Warnings under SMSC errors, throttling, absent handsets, slow receipts and a notify restart in the middle:
each ends delivered by some channel or marked for manual outreach; none is lost; no attempt is sent twice."""

from __future__ import annotations

import collections
import dataclasses

import asyncpg

from carrier.hlr.v1 import hlr_pb2
from carrier.notify.v1 import notify_pb2
from carrier.simulator.v1 import simulator_pb2, simulator_pb2_grpc
from services.notify import server as notify_server
from tests.helpers import connect, register_line
from tests.notify.test_delivery import outcome, send_warning

HOME, ABROAD, ABSENT, UNREACHABLE = "home", "abroad", "absent", "unreachable"


def lines() -> list[tuple[str, str]]:
    kinds = [HOME] * 8 + [ABROAD] * 8 + [ABSENT] * 6 + [UNREACHABLE] * 3
    return [(f"1770000{i:04d}", kind) for i, kind in enumerate(kinds)]


async def fault(stack, target: str, error: str = "", fail_next: int = 0, latency_ms: int = 0) -> None:
    await simulator_pb2_grpc.FaultInjectionServiceStub(connect(stack.cfg, "simulators", "ops")).SetFault(
        simulator_pb2.SetFaultRequest(
            fault=simulator_pb2.Fault(target=target, error=error, fail_next=fail_next, latency_ms=latency_ms)
        )
    )


async def prepare(stack, msisdn: str, kind: str) -> None:
    net = stack.sims.network
    if kind == HOME:
        await register_line(stack.cfg, msisdn, "44", f"h-{msisdn}")
    elif kind == ABROAD:
        # Half have the app; the others only an email address.
        extra = {"push_token": f"app-{msisdn}"} if int(msisdn[-1]) % 2 else {"email": f"u{msisdn[-4:]}@example.cn"}
        await register_line(stack.cfg, msisdn, "65", f"h-{msisdn}", **extra)
        net.move(msisdn, hlr_pb2.LOCATION_STATUS_ROAMING_INTERNATIONAL, "NP")
    elif kind == ABSENT:
        await register_line(stack.cfg, msisdn, "44", f"h-{msisdn}")
        net.move(msisdn, hlr_pb2.LOCATION_STATUS_ABSENT)
    else:  # every channel refuses for good: a person has to reach this holder
        await register_line(stack.cfg, msisdn, "44", f"h-{msisdn}", email=f"x{msisdn[-4:]}@invalid.example")
        h = net.handset(msisdn)
        h.barring.incoming_sms = h.barring.incoming_voice = True


async def restart_notify(stack) -> None:
    old = stack.services["notify"]
    await old.stop(0.5)
    stack.services["notify"] = await notify_server.start(dataclasses.replace(stack.cfg, principal="notify"), old.port)


async def test_fault_mix_with_a_notify_restart(stack):
    population = lines()
    for msisdn, kind in population:
        await prepare(stack, msisdn, kind)
    try:  # faults are the simulators': the next test must not inherit them
        await fault(stack, "smsc.submit_sm", "ESME_RTHROTTLED", fail_next=4)
        await fault(stack, "smsc.receipt", latency_ms=400)  # slow receipts: some arrive while notify is down
        sent = {m: await send_warning(stack, m, "65" if kind == ABROAD else "44") for m, kind in population}
        await fault(stack, "smsc.submit_sm", "ESME_RSYSERR", fail_next=3)
        await restart_notify(stack)
        for msisdn, kind in population:
            if kind == ABSENT:
                stack.sims.network.move(msisdn, hlr_pb2.LOCATION_STATUS_HOME)  # re-attach: retried at once
        results = {msisdn: await outcome(stack, nid, wait_s=60) for msisdn, nid in sent.items()}
    finally:
        stack.sims.faults.clear()

    kinds = dict(population)
    for msisdn, n in results.items():
        expected = (
            notify_pb2.DELIVERY_STATUS_FAILED if kinds[msisdn] == UNREACHABLE else notify_pb2.DELIVERY_STATUS_DELIVERED
        )
        assert n.status == expected, (kinds[msisdn], n)
    abroad = [results[m] for m, k in population if k == ABROAD]
    assert all(n.delivered_channel in (notify_pb2.CHANNEL_PUSH, notify_pb2.CHANNEL_EMAIL) for n in abroad)

    # None lost: every accepted warning is in the store with its attempts.
    conn = await asyncpg.connect(stack.cfg.database_url)
    try:
        rows = await conn.fetch(
            "SELECT n.msisdn, a.channel, a.seq, a.outcome, a.smsc_message_id FROM notify.notifications n"
            " JOIN notify.attempts a USING (notification_id) WHERE n.msisdn = ANY($1::text[])",
            list(kinds),
        )
    finally:
        await conn.close()
    assert {r["msisdn"] for r in rows} == set(kinds)
    assert not [r for r in rows if r["outcome"] == "sending"]

    # No attempt sent twice: each gateway saw each attempt's id once, and the SMSC took no more messages for a
    # line than there were SMS attempts for it.
    sims = stack.sims
    assert max(sims.push.requests.values(), default=1) == 1
    assert max(sims.ivr.requests.values(), default=1) == 1
    ids = collections.Counter(m.message_id for m in sims.mail.handler.received)
    assert max(ids.values(), default=1) == 1
    submits = collections.Counter(dest for _, dest in sims.smsc.submitted)
    attempts = collections.Counter(
        r["msisdn"] for r in rows if r["channel"] == notify_pb2.CHANNEL_SMS and r["outcome"] != "skipped"
    )
    for msisdn in kinds:
        assert submits[msisdn] <= attempts[msisdn], msisdn
    smsc_ids = collections.Counter(r["smsc_message_id"] for r in rows if r["smsc_message_id"])
    assert max(smsc_ids.values(), default=1) == 1

"""Works notifications through the channel ladder: due ones are leased, stepped and released with their next
due time. Wakes at once for a new notification, a receipt or a handset that re-attaches.

Safe across replicas and restarts: a notification is stepped by one dispatcher at a time (a lease in
PostgreSQL), every attempt is written before it is sent, and an attempt a stopped dispatcher left 'sending'
is closed as interrupted rather than sent again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import grpc

from carrier.hlr.v1 import hlr_pb2
from services.notify import ladder, store
from services.notify.channels import Channels, Contacts, Message
from services.notify.ladder import DELIVERED, IN_FLIGHT, RECEIPT_FAILED, Track
from services.notify.policy import DeliveryPolicy
from services.notify.templates import subject

log = logging.getLogger(__name__)
LEASE_S = 30.0
BATCH = 64
MAX_STEPPING = 256  # notifications stepped at once; each mostly waits on the network
IDLE_POLL_S = 1.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, channels: Channels, policy: DeliveryPolicy, on_change: Callable[[], None]):
        self.pool = pool
        self.channels = channels
        self.policy = policy
        self.on_change = on_change  # someone may be long-polling for an outcome
        self.owner = uuid.uuid4().hex
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._stepping: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._watch_locations())]

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        for t in [*self._tasks, *self._stepping]:
            t.cancel()
        await asyncio.gather(*self._tasks, *self._stepping, return_exceptions=True)
        await store.release_all(self.pool, self.owner)

    async def _run(self) -> None:
        """Claims due notifications whenever there is room, without waiting for the slowest of a batch."""
        while True:
            try:
                if len(self._stepping) >= MAX_STEPPING:
                    self._slot_free.clear()
                    await self._slot_free.wait()
                    continue
                limit = min(BATCH, MAX_STEPPING - len(self._stepping))
                claimed = await store.claim_due(self.pool, self.owner, LEASE_S, limit)
                for n in claimed:
                    task = asyncio.create_task(self._step_safely(n))
                    self._stepping.add(task)
                    task.add_done_callback(self._stepped)
                if len(claimed) == limit:
                    continue  # there may be more due
                due = await store.next_due(self.pool)
            except (OSError, asyncpg.PostgresError) as err:
                log.warning("notify dispatcher: database unavailable (%s); retrying", type(err).__name__)
                due = None
            wait = IDLE_POLL_S if due is None else max(0.0, min(IDLE_POLL_S, (due - utcnow()).total_seconds()))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    def _stepped(self, task: asyncio.Task[None]) -> None:
        self._stepping.discard(task)
        self._slot_free.set()

    async def _step_safely(self, n: asyncpg.Record) -> None:
        try:
            await self.step(n)
        except asyncio.CancelledError:
            raise
        except Exception:  # the lease runs out and the notification is stepped again
            log.exception("notification step failed; it will be retried when its lease runs out")
        finally:
            self.on_change()

    async def step(self, n: asyncpg.Record) -> None:
        """Sends on every channel the ladder says is due now, until one lands or nothing is left to do now."""
        nid = n["notification_id"]
        tracks, last = await store.tracks(self.pool, nid) if n["has_tracks"] else ({}, {})
        now = utcnow()
        for name, t in tracks.items():
            if t.state == IN_FLIGHT and last.get(name) == "sending":  # a dispatcher stopped mid-send
                ladder.failed(self.policy, t, "temporary", now)
                await store.interrupted(self.pool, nid, t)
            elif t.state == RECEIPT_FAILED:  # the SMSC reported it undelivered
                ladder.failed(self.policy, t, t.error_class, now)
                await store.save_track(self.pool, nid, t)
        loc = await self.channels.location(n["msisdn"], n["home_province"])
        contacts: Contacts | None = None
        looked_up = False
        while True:
            now = utcnow()
            plan = ladder.plan(self.policy, tracks, loc.name, n["give_up_at"], now)
            for name in plan.timed_out:
                ladder.failed(self.policy, tracks[name], "temporary", now)
                await store.receipt_overdue(self.pool, nid, tracks[name], self.policy.receipt_timeout_s)
            if plan.timed_out:
                continue
            if plan.give_up:
                await store.give_up(self.pool, nid)
                log.info("notification %s: nothing delivered; marked for manual outreach", nid)
                await store.release(self.pool, nid, self.owner, None, loc.name, loc.country)
                return
            if not plan.send:
                await store.release(self.pool, nid, self.owner, plan.next_due, loc.name, loc.country)
                return
            if not looked_up and any(c != "sms" for c in plan.send):
                contacts, looked_up = await self.channels.contacts(n["msisdn"], n["home_province"]), True
            for name in plan.send:
                t = tracks.setdefault(name, Track(name))
                t.tries += 1
                t.state, t.sent_at = IN_FLIGHT, now
                seq = await store.begin_attempt(self.pool, nid, t, loc.name)
                message = Message(
                    request_id=f"{nid}:{seq}",
                    msisdn=n["msisdn"],
                    home_province=n["home_province"],
                    language=n["language"],
                    subject=subject(n["template"], n["language"]),
                    body=n["body"],
                )
                out = await self.channels.send(name, message, contacts)
                if out.outcome == "delivered":
                    t.state, t.sent_at = DELIVERED, None
                elif out.outcome != "submitted":
                    ladder.failed(self.policy, t, out.error_class, utcnow())
                await store.finish_attempt(self.pool, nid, seq, t, out)
                self.on_change()
                if t.state == DELIVERED:
                    await store.release(self.pool, nid, self.owner, None, loc.name, loc.country)
                    return

    async def _watch_locations(self) -> None:
        """Follows the HLR's reachability events: a handset that comes back gets its messages at once."""
        delay = 0.5
        while True:
            try:
                async for ev in self.channels.hlr.WatchLocations(hlr_pb2.WatchLocationsRequest()):
                    delay = 0.5
                    if ev.status != hlr_pb2.LOCATION_STATUS_ABSENT and await store.reattached(self.pool, ev.msisdn):
                        self.wake()
            except asyncio.CancelledError:
                raise
            except (grpc.aio.AioRpcError, OSError, asyncpg.PostgresError) as err:
                log.warning("HLR location watch interrupted (%s); resubscribing", type(err).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

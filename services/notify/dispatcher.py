"""Works notifications through the channel ladder: due ones are leased, stepped and released with their next
due time. Wakes at once for a new notification, a receipt or a handset that re-attaches.

Safe across replicas and restarts: a notification is stepped by one dispatcher at a time (a lease in
PostgreSQL, renewed while the step runs, however long a call rings), every attempt is written before it is sent,
and an attempt a stopped dispatcher left 'sending' is closed as interrupted rather than sent again. Every write
of a step is fenced by the lease's generation: a dispatcher that lost its lease (stalled past it, cut off from the
database) is refused, abandons the step, and cannot overwrite what the new holder wrote.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import grpc

from carrier.hlr.v1 import hlr_pb2
from pscommon import db
from services.notify import ladder, store
from services.notify import metrics as notify_metrics
from services.notify.channels import Channels, Contacts, Message
from services.notify.ladder import DELIVERED, IN_FLIGHT, RECEIPT_FAILED, Track
from services.notify.policy import DeliveryPolicy
from services.notify.store import Lease, LeaseLost
from services.notify.templates import subject

log = logging.getLogger(__name__)
LEASE_S = 30.0
RENEWALS_PER_LEASE = 3  # a lease is renewed this often within its length: two renewals may fail before it runs out
BATCH = 64
MAX_STEPPING = 256  # notifications stepped at once; each mostly waits on the network
IDLE_POLL_S = 1.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def _name(err: BaseException) -> str:
    return type(err).__name__


@dataclass
class _Held:
    lease: Lease
    task: asyncio.Task[None]
    renewed_at: float  # loop time the last successful renewal was sent: the lease lasts at least until + its length


class Dispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        channels: Channels,
        policy: DeliveryPolicy,
        on_change: Callable[[], None],
        *,
        lease_s: float = LEASE_S,
        stop_grace_s: float = 5.0,
    ):
        self.pool = pool
        self.channels = channels
        self.policy = policy
        self.on_change = on_change  # someone may be long-polling for an outcome
        self.owner = uuid.uuid4().hex
        self.lease_s = lease_s
        self.stop_grace_s = stop_grace_s
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._stepping: set[asyncio.Task[None]] = set()
        self._held: dict[uuid.UUID, _Held] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._renewer: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._watch_locations())]
        self._renewer = asyncio.create_task(self._renew())

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Claims nothing more and lets running steps finish the send in hand (a step starts no new one), for up to
        the grace; then what is still held is released for whoever runs next."""
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._stepping:
            _, late = await asyncio.wait(set(self._stepping), timeout=self.stop_grace_s)
            for t in late:
                t.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        await store.release_all(self.pool, self.owner)

    async def _run(self) -> None:
        """Claims due notifications whenever there is room, without waiting for the slowest of a batch."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                if len(self._stepping) >= MAX_STEPPING:
                    self._slot_free.clear()
                    await self._slot_free.wait()
                    continue
                limit = min(BATCH, MAX_STEPPING - len(self._stepping))
                claimed_at = loop.time()
                claimed = await store.claim_due(self.pool, self.owner, self.lease_s, limit, list(self._held))
                for n in claimed:
                    lease = Lease(n["notification_id"], self.owner, n["lease_gen"], self.lease_s)
                    task = asyncio.create_task(self._step_safely(n, lease))
                    self._stepping.add(task)
                    self._held[lease.notification_id] = _Held(lease, task, claimed_at)
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
        for nid, held in list(self._held.items()):
            if held.task is task:
                del self._held[nid]
        self._slot_free.set()

    async def _renew(self) -> None:
        """Keeps the leases of running steps well ahead of expiry. A step whose lease was taken over, or can no
        longer be shown to hold (renewals failing for a whole lease), is cancelled: it sends nothing more."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.lease_s / RENEWALS_PER_LEASE)
            held = list(self._held.values())
            if not held:
                continue
            sent_at = loop.time()
            try:
                kept: set[tuple[uuid.UUID, int]] | None = await store.renew(self.pool, [h.lease for h in held])
            except Exception as err:  # noqa: BLE001 - whatever it was, these leases are not known to be renewed
                log.warning("notify dispatcher: lease renewal failed (%s); retrying", type(err).__name__)
                kept = None
            for h in held:
                if self._held.get(h.lease.notification_id) is not h:
                    continue  # released meanwhile
                if kept is not None and (h.lease.notification_id, h.lease.gen) in kept:
                    h.renewed_at = sent_at
                    continue
                if kept is not None or loop.time() >= h.renewed_at + self.lease_s:
                    why = "taken over" if kept is not None else "not renewed for a whole lease"
                    log.warning("notification %s: lease %s; step abandoned", h.lease.notification_id, why)
                    del self._held[h.lease.notification_id]
                    h.task.cancel()

    async def _release(self, lease: Lease, due_at: datetime | None, location: str, country: str) -> None:
        # Out of the renewer's hands first: a lease released meanwhile must not read as lost.
        held = self._held.get(lease.notification_id)
        if held is not None and held.lease == lease:
            del self._held[lease.notification_id]
        await store.release(self.pool, lease, due_at, location, country)

    async def _step_safely(self, n: asyncpg.Record, lease: Lease) -> None:
        try:
            await self.step(n, lease)
        except asyncio.CancelledError:
            raise
        except LeaseLost as lost:
            log.warning("%s; step abandoned, nothing written", lost)
        except db.UNREACHABLE as err:  # PostgreSQL restarting: a passing condition, one line without a traceback
            log.warning("notification step: database unavailable (%s); retried when its lease runs out", _name(err))
        except Exception:  # the lease runs out and the notification is stepped again
            log.exception("notification step failed; it will be retried when its lease runs out")
        finally:
            self.on_change()

    async def step(self, n: asyncpg.Record, lease: Lease) -> None:
        """Sends on every channel the ladder says is due now, until one lands or nothing is left to do now.
        Every write goes under `lease`; once it is lost the write raises LeaseLost and the step ends there."""
        nid = n["notification_id"]
        tracks, last = await store.tracks(self.pool, nid) if n["has_tracks"] else ({}, {})
        now = utcnow()
        for name, t in tracks.items():
            if t.state == IN_FLIGHT and last.get(name) == "sending":  # a dispatcher stopped mid-send
                ladder.failed(self.policy, t, "temporary", now)
                await store.interrupted(self.pool, lease, t)
            elif t.state == RECEIPT_FAILED:  # the SMSC reported it undelivered
                ladder.failed(self.policy, t, t.error_class, now)
                await store.save_track(self.pool, lease, t)
        loc = await self.channels.location(n["msisdn"], n["home_province"])
        contacts: Contacts | None = None
        looked_up = False
        while True:
            now = utcnow()
            plan = ladder.plan(self.policy, tracks, loc.name, n["give_up_at"], now)
            for name in plan.timed_out:
                ladder.unconfirmed(tracks[name])
                if not await store.receipt_overdue(self.pool, lease, tracks[name], self.policy.receipt_timeout_s):
                    # A receipt changed the channel since this step read it: the next step starts from it.
                    await self._release(lease, now, loc.name, loc.country)
                    return
            if plan.timed_out:
                continue
            if plan.give_up:
                await store.give_up(self.pool, lease)
                notify_metrics.undelivered(n["template"], loc.name)
                log.info("notification %s: nothing delivered; marked for manual outreach", nid)
                await self._release(lease, None, loc.name, loc.country)
                return
            if not plan.send:
                await self._release(lease, plan.next_due, loc.name, loc.country)
                return
            if self._stopping:  # no new send while stopping: due at once for whoever runs next
                await self._release(lease, now, loc.name, loc.country)
                return
            if not looked_up and any(c != "sms" for c in plan.send):
                contacts, looked_up = await self.channels.contacts(n["msisdn"], n["home_province"]), True
            for name in plan.send:
                t = tracks.setdefault(name, Track(name))
                t.tries += 1
                t.state, t.sent_at = IN_FLIGHT, now
                seq = await store.begin_attempt(self.pool, lease, t, loc.name)
                if seq is None:  # a receipt delivered it since this step read it: nothing more to send
                    await self._release(lease, None, loc.name, loc.country)
                    return
                message = Message(
                    request_id=f"{nid}:{seq}",
                    msisdn=n["msisdn"],
                    home_province=n["home_province"],
                    language=n["language"],
                    subject=subject(n["template"], n["language"]),
                    body=n["body"],
                )
                out = await self.channels.send(name, message, contacts)
                notify_metrics.attempted(name, loc.name, out.outcome)
                if out.outcome == "delivered":
                    t.state, t.sent_at = DELIVERED, None
                elif out.outcome != "submitted":
                    ladder.failed(self.policy, t, out.error_class, utcnow())
                try:
                    await store.finish_attempt(self.pool, lease, seq, t, out)
                except LeaseLost:
                    log.warning(
                        "notification %s: attempt %d on %s ended %s (%s) after the lease was taken over; not recorded",
                        nid,
                        seq,
                        name,
                        out.outcome,
                        out.detail,
                    )
                    raise
                self.on_change()
                if t.state == DELIVERED:
                    await self._release(lease, None, loc.name, loc.country)
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

"""gRPC wiring of the notify service."""

from __future__ import annotations

import asyncio
import pathlib
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc

from carrier.notify.v1 import notify_pb2, notify_pb2_grpc
from contracts import ACCESS_TABLE
from pscommon import db, grpc_server, links
from pscommon.config import Settings
from pscommon.errors import not_found
from pscommon.idempotency import Tx, mutation
from pscommon.identity import line_hash, mask
from services.notify import policy, requests, store
from services.notify.channels import Channels
from services.notify.dispatcher import Dispatcher
from services.notify.policy import DeliveryPolicy
from services.notify.receipts import Receipt
from services.notify.smpp_link import SmppLink
from services.notify.templates import LINKED, Content, render

MIGRATIONS = pathlib.Path(__file__).with_name("migrations")
SERVICE = "carrier.notify.v1.NotifyService"


class Notify(notify_pb2_grpc.NotifyServiceServicer):
    def __init__(self, pool: asyncpg.Pool, cfg: Settings, delivery: DeliveryPolicy) -> None:
        self.pool = pool
        self.cfg = cfg
        self.delivery = delivery
        self.links = links.signer_from_settings(cfg.link_keys, cfg.link_active_key, cfg.link_ttl_s)
        self.dispatcher: Dispatcher | None = None
        self._outcomes = asyncio.Condition()
        self._changed: asyncio.Task[None] | None = None

    def _with_link(self, request: notify_pb2.SendNotificationRequest, next_step: str) -> tuple[str, str]:
        """The next step, with the bare verification address it names replaced by the holder's signed link; and
        the link still to append (empty when the next step carries it, or when no link keys are configured)."""
        if self.links is None or request.template not in LINKED:
            return next_step, ""
        try:
            token = self.links.sign(request.case_id, request.language)
        except ValueError:  # not a case id of ours (a test's, an operator's): a message without a link
            return next_step, ""
        url = links.link_url(self.cfg.verify_url_base, token)
        if self.cfg.verify_url_base in next_step:
            return next_step.replace(self.cfg.verify_url_base, url), ""
        return next_step, url

    def changed(self) -> None:
        """Something about some notification changed: long-polls look again."""

        async def tell() -> None:
            async with self._outcomes:
                self._outcomes.notify_all()

        if self._changed is None or self._changed.done():
            self._changed = asyncio.create_task(tell())

    @mutation(requests.check_send)
    async def SendNotification(
        self, request: notify_pb2.SendNotificationRequest, tx: Tx
    ) -> notify_pb2.SendNotificationResponse:
        zh = request.language == "zh"
        next_step, link = self._with_link(request, request.next_step_zh if zh else request.next_step_en)
        body = render(
            request.template,
            request.language,
            Content(
                masked_msisdn=mask(request.msisdn),
                reasons=[r.text_zh if zh else r.text_en for r in request.reasons],
                deadline=request.deadline.ToDatetime(tzinfo=UTC) if request.HasField("deadline") else None,
                next_step=next_step,
                pending_action=request.pending_action,
                line_state=request.line_state,
                link=link,
            ),
        )
        nid = await store.create_notification(
            tx.conn,
            case_id=request.case_id,
            line_hash=line_hash(request.msisdn, self.cfg.line_hash_key),
            msisdn=request.msisdn,
            home_province=request.home_province,
            template=request.template,
            language=request.language,
            body=body,
            policy_version=self.delivery.version,
            give_up_at=datetime.now(UTC) + timedelta(seconds=self.delivery.give_up_after_s),
        )
        tx.after_commit(self._wake_dispatcher)
        return notify_pb2.SendNotificationResponse(notification_id=str(nid), status=notify_pb2.DELIVERY_STATUS_PENDING)

    def _wake_dispatcher(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    async def on_receipts(self, receipts: list[Receipt]) -> None:
        if await store.record_receipts(self.pool, receipts) and self.dispatcher is not None:
            self.dispatcher.wake()
        self.changed()

    async def _wait_outcome(self, nid: uuid.UUID, wait_s: float) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
        async def final() -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
            # Read under the condition's lock, so a change recorded meanwhile cannot be missed.
            async with self._outcomes:
                while True:
                    n, attempts = await store.get(self.pool, nid)
                    if n is None or n["status"] != notify_pb2.DELIVERY_STATUS_PENDING:
                        return n, attempts
                    await self._outcomes.wait()

        try:
            return await asyncio.wait_for(final(), wait_s)
        except TimeoutError:
            return await store.get(self.pool, nid)

    async def GetNotification(
        self, request: notify_pb2.GetNotificationRequest, context: grpc.aio.ServicerContext
    ) -> notify_pb2.GetNotificationResponse:
        requests.check_get(request)
        nid = uuid.UUID(request.notification_id)
        n, attempts = await store.get(self.pool, nid)
        wait = grpc_server.remaining(request.wait_for_outcome.ToTimedelta().total_seconds())
        pending = n is not None and n["status"] == notify_pb2.DELIVERY_STATUS_PENDING
        if pending and request.HasField("wait_for_outcome") and wait > 0:
            n, attempts = await self._wait_outcome(nid, wait)
        if n is None:
            raise not_found("notification", "NOTIFICATION_NOT_FOUND")
        return notification_pb(n, attempts)


def notification_pb(n: asyncpg.Record, attempts: list[asyncpg.Record]) -> notify_pb2.GetNotificationResponse:
    resp = notify_pb2.GetNotificationResponse(
        notification_id=str(n["notification_id"]),
        status=n["status"],
        delivered_channel=n["delivered_channel"],
        case_id=n["case_id"],
        template=n["template"],
        location=n["location"],
        country=n["country"],
    )
    if n["delivered_at"] is not None:
        resp.delivered_at.FromDatetime(n["delivered_at"])
    if n["status"] == notify_pb2.DELIVERY_STATUS_PENDING and n["due_at"] is not None:
        resp.next_attempt_at.FromDatetime(n["due_at"])
    for a in attempts:
        pb = resp.attempts.add(
            seq=a["seq"],
            channel=a["channel"],
            outcome=a["outcome"],
            detail=a["detail"],
            error_class=a["error_class"],
            location=a["location"],
        )
        pb.at.FromDatetime(a["at"])
    return resp


async def start(cfg: Settings, port: int) -> grpc_server.GrpcService:
    pool = await db.connect(cfg.database_url, "notify", MIGRATIONS, max_size=40)
    delivery = policy.load(cfg.delivery_policy)
    servicer = Notify(pool, cfg, delivery)
    link = SmppLink(
        cfg.smsc_host,
        cfg.smsc_port,
        cfg.smsc_system_id,
        cfg.smsc_password,
        servicer.on_receipts,
        drain_s=cfg.shutdown_grace_s,
    )
    await link.start()
    dispatcher = Dispatcher(pool, Channels(cfg, link), delivery, servicer.changed, stop_grace_s=cfg.shutdown_grace_s)
    servicer.dispatcher = dispatcher
    dispatcher.start()
    return await grpc_server.start_servicer(
        "notify",
        port,
        notify_pb2_grpc.add_NotifyServiceServicer_to_server,
        servicer,
        SERVICE,
        grpc_server.Security.from_settings(cfg, ACCESS_TABLE),
        # Run last first: the dispatcher finishes its sends, the link stores every receipt it took, then the pool.
        [pool.close, link.stop, dispatcher.stop],
    )


if __name__ == "__main__":
    grpc_server.serve_forever("notify", start, lambda cfg: cfg.notify_addr)

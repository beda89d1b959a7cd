"""A bound SMPP session to the SMSC that reconnects, backs off on throttling and hands receipts on.

smpp34 acknowledges a deliver_sm in its core before Python sees it, so from then on the receipt exists only in
this process until it is stored: the SMSC will not send it again. Hence receipts are stored in batches as they
come, reading pauses while storing lags (the core's inbound buffer then fills and it refuses deliver_sm, which the
SMSC keeps and retries), and `stop` unbinds, drains what the core already took and stores it all before it returns
(bounded by `drain_s`). A kill -9 still loses the receipts taken but not yet stored: at most the core's inbound
capacity, the queue here and one batch; the dispatcher then never resends those SMS (see ladder.UNCONFIRMED).
smpp34 offers no query_sm (nor any way to send another PDU) to ask the SMSC about them.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta

import smpp34
from smpp34 import _smpp34 as codes  # ESME_/TLV_ constants: smpp34 re-exports them, untyped

from services.notify.receipts import Receipt, encode_sms, parse_receipt

log = logging.getLogger(__name__)

THROTTLED = {codes.ESME_RTHROTTLED, codes.ESME_RMSGQFUL}
RECEIPT_BATCH = 256
RECEIPT_QUEUE = 4 * RECEIPT_BATCH  # taken but not yet stored, beyond which reading pauses
_STATUS_RE = re.compile(r"0x([0-9a-fA-F]{8})")


class SubmitRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"submit_sm refused with status 0x{status:08x}")
        self.status = status


def nack_status(err: smpp34.SmppError) -> int:
    """smpp34 raises for a generic_nack; its message carries the command_status, e.g. 'ESME_RSYSERR (0x00000008)'."""
    m = _STATUS_RE.search(str(err))
    return int(m[1], 16) if m else codes.ESME_RUNKNOWNERR


def validity_period(after: timedelta) -> str:
    """Relative SMPP time: YYMMDDhhmmss000R."""
    total = int(after.total_seconds())
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{seconds:02d}000R"


class SmppLink:
    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        on_receipts: Callable[[list[Receipt]], Awaitable[None]],
        *,
        source_addr: str = "10086",
        window_size: int = 64,
        inbound_capacity: int = 4096,
        validity: timedelta = timedelta(hours=24),
        throttle_backoff_s: float = 0.2,
        max_throttle_retries: int = 5,
        drain_s: float = 5.0,
    ) -> None:
        self._client = smpp34.Client(
            host=host,
            port=port,
            system_id=system_id,
            password=password,
            bind_type="TRX",
            window_size=window_size,
            inbound_capacity=inbound_capacity,
        )
        self._on_receipts = on_receipts
        self._receipts: asyncio.Queue[Receipt] = asyncio.Queue(RECEIPT_QUEUE)
        self._storing: list[Receipt] = []  # the batch being stored
        self._drain_s = drain_s
        self._stopping = False
        self._source = source_addr
        self._validity = validity_period(validity)
        self._backoff = throttle_backoff_s
        self._max_retries = max_throttle_retries
        self._smsc: smpp34.Smsc | None = None
        self._bound = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._hand_on_receipts())]

    def backlog(self) -> int:
        """How many receipts were taken from the SMSC (so acknowledged) and are not stored yet."""
        return len(self._storing) + self._receipts.qsize()

    async def stop(self) -> None:
        """Unbinds, so the SMSC sends nothing more (it keeps what it has not delivered), reads what the session
        already acknowledged and stores every receipt taken, within `drain_s`; what is still unstored by then is
        logged by message id."""
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._drain_s
        smsc = self._smsc
        if smsc is not None:
            try:
                await asyncio.wait_for(smsc.unbind(), max(0.0, deadline - loop.time()))
            except Exception:  # noqa: BLE001 - the session may already be gone; the reader then sees Disconnected
                pass
        if self._tasks:
            reader, writer = self._tasks
            if smsc is None:
                reader.cancel()  # not bound: nothing was taken that is not queued already
            # The reader ends once the session reports Disconnected, after every event the core had taken.
            await asyncio.wait({reader}, timeout=max(0.0, deadline - loop.time()))
            if not reader.done():
                log.error("the SMSC session did not end within the shutdown grace; receipts it took may be lost")
                reader.cancel()
            try:
                await asyncio.wait_for(self._receipts.join(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                pass
            writer.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
        lost = list(self._storing)
        while not self._receipts.empty():
            lost.append(self._receipts.get_nowait())
        if lost:
            log.error(
                "stopping with %d SMSC receipts not stored (the SMSC will not send them again): %s",
                len(lost),
                " ".join(r.message_id for r in lost),
            )
        else:
            log.info("SMPP link stopped; every receipt taken is stored")
        await self._client.stop()

    async def _run(self) -> None:
        delay = 0.2
        while not self._stopping:
            try:
                smsc = await self._client.connect()
            except Exception as err:  # noqa: BLE001 - any bind failure: wait and reconnect
                log.warning("SMSC bind failed (%s); retrying in %.1fs", type(err).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._smsc = smsc
            delay = 0.2
            if self._stopping:
                await smsc.unbind()
            else:
                self._bound.set()
                log.info("bound to SMSC")
            while True:
                ev = await smsc.next()
                if isinstance(ev, smpp34.Disconnected):
                    break
                if ev.esm_class & 0x04:
                    receipt = parse_receipt(ev.short_message)
                    if receipt is not None:
                        await self._receipts.put(receipt)  # waits while storing lags: the core then refuses more
            self._bound.clear()
            self._smsc = None
            if not self._stopping:
                log.warning("SMSC session lost; reconnecting")

    async def _hand_on_receipts(self) -> None:
        """Receipts are recorded in batches, so a burst of them costs a few commits rather than one each, and the
        session keeps reading (and acknowledging) while the database works, up to RECEIPT_QUEUE waiting."""
        delay = 0.2
        while True:
            batch = [await self._receipts.get()]
            while len(batch) < RECEIPT_BATCH and not self._receipts.empty():
                batch.append(self._receipts.get_nowait())
            self._storing = batch
            while True:
                try:
                    await self._on_receipts(batch)
                    delay = 0.2
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # noqa: BLE001 - keep the receipts and try again
                    log.warning("recording %d receipts failed (%s); retrying", len(batch), type(err).__name__)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
            self._storing = []
            for _ in batch:
                self._receipts.task_done()

    async def submit(self, destination: str, body: str, timeout: float = 10.0) -> str:
        """Submits one SMS with a receipt requested; returns the SMSC's message id."""
        data_coding, payload = encode_sms(body)
        short, tlvs = (payload, []) if len(payload) <= 140 else (b"", [smpp34.Tlv(codes.TLV_MESSAGE_PAYLOAD, payload)])
        for attempt in range(self._max_retries + 1):
            await asyncio.wait_for(self._bound.wait(), timeout)
            assert self._smsc is not None
            try:
                resp = await self._smsc.submit_sm(
                    destination_addr=destination,
                    short_message=short,
                    source_addr=self._source,
                    registered_delivery=0x01,
                    validity_period=self._validity,
                    data_coding=data_coding,
                    tlvs=tlvs,
                )
                status = resp.command_status
                if resp.is_success and resp.message_id:
                    return resp.message_id
            except smpp34.SmppError as nack:
                status = nack_status(nack)
            if status in THROTTLED and attempt < self._max_retries:
                await asyncio.sleep(self._backoff * 2**attempt)
                continue
            raise SubmitRefused(status)
        raise AssertionError("unreachable")

"""A bound SMPP session to the SMSC that reconnects, backs off on throttling and hands receipts on."""

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
        self._receipts: asyncio.Queue[Receipt] = asyncio.Queue()
        self._source = source_addr
        self._validity = validity_period(validity)
        self._backoff = throttle_backoff_s
        self._max_retries = max_throttle_retries
        self._smsc: smpp34.Smsc | None = None
        self._bound = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._hand_on_receipts())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._smsc is not None:
            try:
                await self._smsc.unbind()
            except Exception:  # noqa: BLE001 - the session may already be gone
                pass
        await self._client.stop()

    async def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                self._smsc = await self._client.connect()
            except Exception as err:  # noqa: BLE001 - any bind failure: wait and reconnect
                log.warning("SMSC bind failed (%s); retrying in %.1fs", type(err).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.2
            self._bound.set()
            log.info("bound to SMSC")
            while True:
                ev = await self._smsc.next()
                if isinstance(ev, smpp34.Disconnected):
                    break
                if ev.esm_class & 0x04:
                    receipt = parse_receipt(ev.short_message)
                    if receipt is not None:
                        self._receipts.put_nowait(receipt)
            self._bound.clear()
            self._smsc = None
            log.warning("SMSC session lost; reconnecting")

    async def _hand_on_receipts(self) -> None:
        """Receipts are recorded in batches, so a burst of them costs a few commits rather than one each, and the
        session keeps reading (and acknowledging) while the database works."""
        delay = 0.2
        while True:
            batch = [await self._receipts.get()]
            while len(batch) < RECEIPT_BATCH and not self._receipts.empty():
                batch.append(self._receipts.get_nowait())
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

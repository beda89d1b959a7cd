"""The SMSC: a real SMPP 3.4 server (smpp34) that accepts submit_sm and sends delivery receipts.

Receipts follow the de-facto SMPP 3.4 Appendix B format. Whether a message lands depends on the
simulated network (absent handsets, visited networks without SMS interworking, barred incoming SMS).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from datetime import UTC, datetime

import smpp34

from simulators.faults import Faults
from simulators.network import Network

log = logging.getLogger(__name__)
DELIVER_RETRIES_S = (0.2, 0.5, 1.0, 2.0, 5.0)
# Fault targets: a submit can be slowed or refused with an ESME_* status; a receipt can only be slowed.
SUBMIT_TARGET = "smsc.submit_sm"
RECEIPT_TARGET = "smsc.receipt"


def receipt_text(message_id: str, stat: str, err: str, submitted: datetime) -> bytes:
    fmt = "%y%m%d%H%M"
    done = datetime.now(UTC)
    delivered = "001" if stat == "DELIVRD" else "000"
    return (
        f"id:{message_id} sub:001 dlvrd:{delivered} submit date:{submitted.strftime(fmt)} "
        f"done date:{done.strftime(fmt)} stat:{stat} err:{err} text:"
    ).encode()


class Smsc:
    def __init__(self, host: str, port: int, network: Network, faults: Faults, receipt_delay_s: float = 0.05) -> None:
        self.port = port
        self.server = smpp34.Server(host=host, port=port, system_id="SIM-SMSC", inbound_capacity=8192)
        self.network = network
        self.faults = faults
        self.receipt_delay_s = receipt_delay_s
        self.sessions: dict[str, smpp34.Esme] = {}
        # (message_id, destination) of recent submits, for tests; bounded so a long-running stack does not grow.
        self.submitted: deque[tuple[str, str]] = deque(maxlen=100_000)
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        # Receipts for an ESME that was not bound when they were due: sent when it binds again.
        self._held: deque[dict] = deque(maxlen=100_000)

    async def start(self) -> None:
        await self.server.start()
        self._task = asyncio.create_task(self._serve())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        for t in list(self._pending):
            t.cancel()
        await self.server.stop()

    async def _serve(self) -> None:
        while True:
            ev = await self.server.next()
            if isinstance(ev, smpp34.Esme):
                self.sessions[ev.session_id] = ev
                task = asyncio.create_task(self._redeliver(ev))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            elif isinstance(ev, smpp34.Unbound):
                self.sessions.pop(ev.session_id, None)
            elif isinstance(ev, smpp34.SubmitSmEvent):
                await self._on_submit(ev)

    async def _on_submit(self, ev: smpp34.SubmitSmEvent) -> None:
        error = await self.faults.apply(SUBMIT_TARGET)
        if error is not None:
            ev.reject(getattr(smpp34, error))  # an ESME_* name other than ESME_ROK: checked when the fault was set
            return
        message_id = uuid.uuid4().hex[:16]
        ev.accept(message_id=message_id)
        self.submitted.append((message_id, ev.destination_addr))
        if ev.registered_delivery & 0x01:
            task = asyncio.create_task(self._receipt(ev.session_id, ev, message_id, datetime.now(UTC)))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _receipt(self, session_id: str, ev: smpp34.SubmitSmEvent, message_id: str, submitted: datetime) -> None:
        await asyncio.sleep(self.receipt_delay_s)
        await self.faults.apply(RECEIPT_TARGET)
        ok, why = self.network.sms_reachable(ev.destination_addr)
        stat, err = ("DELIVRD", "000") if ok else ("UNDELIV", "001" if why == "absent subscriber" else "013")
        pdu = {
            "source_addr": ev.destination_addr,
            "destination_addr": ev.source_addr,
            "esm_class": 0x04,
            "short_message": receipt_text(message_id, stat, err, submitted),
        }
        # Like an SMSC's retry schedule: a bound ESME that refused the receipt (it is busy) gets it again shortly.
        for delay in DELIVER_RETRIES_S:
            session = self.sessions.get(session_id) or next(iter(self.sessions.values()), None)
            if session is None:
                break
            if await self._deliver(session, pdu):
                return
            await asyncio.sleep(delay)
        self._held.append(pdu)

    async def _deliver(self, session: smpp34.Esme, pdu: dict) -> bool:
        try:
            return (await session.deliver_sm(**pdu)).is_success
        except Exception:  # noqa: BLE001 - the session went away: hold the receipt for the next bind
            return False

    async def _redeliver(self, session: smpp34.Esme) -> None:
        while self._held:
            pdu = self._held.popleft()
            if not await self._deliver(session, pdu):
                self._held.appendleft(pdu)
                return

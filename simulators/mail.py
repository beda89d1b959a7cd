"""The holder's mail provider: a real SMTP server (aiosmtpd) that accepts or refuses mail and keeps what it took.

Refusals follow SMTP: 550 for a mailbox that does not exist (permanent), 451 for an injected outage (temporary).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections import deque
from dataclasses import dataclass

from aiosmtpd.smtp import SMTP, Envelope, Session

from simulators.faults import Faults

PERMANENT_FAULTS = {"NOT_FOUND", "INVALID_ARGUMENT", "PERMISSION_DENIED"}
UNKNOWN_DOMAIN = "invalid.example"
# Fault target: RCPT slowed, or refused with a gRPC status name mapped to 550 (PERMANENT_FAULTS) or 451.
RCPT_TARGET = "smtp.rcpt"


@dataclass(frozen=True)
class Mail:
    to: str
    message_id: str
    subject: str
    body: str


class MailHandler:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.received: deque[Mail] = deque(maxlen=100_000)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list) -> str:
        error = await self.faults.apply(RCPT_TARGET)
        if error is not None:
            return "550 5.1.1 mailbox unavailable" if error in PERMANENT_FAULTS else "451 4.3.0 try again later"
        if address.lower().endswith("@" + UNKNOWN_DOMAIN):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = msg.get_body(("plain",))
        text = body.get_content() if body is not None else ""
        for to in envelope.rcpt_tos:
            self.received.append(Mail(to, str(msg["Message-ID"] or ""), str(msg["Subject"] or ""), text))
        return "250 Message accepted for delivery"


class MailServer:
    def __init__(self, host: str, port: int, faults: Faults) -> None:
        self.host, self.port = host, port
        self.handler = MailHandler(faults)
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self.handler, hostname="mail.sim", ident="psp-mail-sim"), self.host, self.port
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

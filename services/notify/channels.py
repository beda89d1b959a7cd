"""The channels that reach a holder, each answering with an outcome the ladder understands.

SMS and the alternate contact go over the SMPP link and land later (receipt); app push, email and the voice
call answer at once. Contacts come from the home province's registry and appear masked in attempt details.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib
import grpc
from smpp34 import _smpp34 as codes  # ESME_/TLV_ constants: smpp34 re-exports them, untyped

from carrier.hlr.v1 import hlr_pb2, hlr_pb2_grpc
from carrier.ivr.v1 import ivr_pb2, ivr_pb2_grpc
from carrier.push.v1 import push_pb2, push_pb2_grpc
from carrier.registry.v1 import registry_pb2, registry_pb2_grpc
from pscommon.channels import channel
from pscommon.config import Settings
from pscommon.identity import mask
from pscommon.tls import TlsFiles
from services.notify.smpp_link import SmppLink, SubmitRefused

log = logging.getLogger(__name__)

LOCATION_NAMES = {
    hlr_pb2.LOCATION_STATUS_HOME: "home",
    hlr_pb2.LOCATION_STATUS_ROAMING_DOMESTIC: "roaming_domestic",
    hlr_pb2.LOCATION_STATUS_ROAMING_INTERNATIONAL: "roaming_international",
    hlr_pb2.LOCATION_STATUS_ABSENT: "absent",
}
# SMPP statuses that no retry can fix; anything else refused by the SMSC is worth another try.
PERMANENT_SMPP = {codes.ESME_RINVDSTADR, codes.ESME_RINVSRCADR, codes.ESME_RINVMSGLEN}
# gRPC codes from a gateway that mean "this contact cannot work", not "try later".
PERMANENT_GRPC = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED}
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Outcome:
    outcome: str  # delivered | submitted (an SMS awaiting its receipt) | failed | skipped
    detail: str = ""
    error_class: str = ""  # temporary | absent | permanent, when failed or skipped
    smsc_message_id: str | None = None


@dataclass(frozen=True)
class Location:
    name: str  # home | roaming_domestic | roaming_international | absent | "" (the HLR did not answer)
    country: str = ""


@dataclass(frozen=True)
class Contacts:
    email: str = ""
    alternate_contact: str = ""
    push_token: str = ""


@dataclass(frozen=True)
class Message:
    request_id: str  # notification id and attempt number: a gateway that sees it twice does not send twice
    msisdn: str
    home_province: str
    language: str
    subject: str
    body: str


def mask_email(address: str) -> str:
    user, _, domain = address.partition("@")
    return f"{user[:1]}***@{domain}"


def failed(detail: str, error_class: str) -> Outcome:
    return Outcome("failed", detail, error_class)


class Channels:
    def __init__(self, cfg: Settings, link: SmppLink) -> None:
        self.cfg = cfg
        self.link = link
        sims = channel(cfg.simulators_addr, TlsFiles.from_settings(cfg))
        self.hlr = hlr_pb2_grpc.HlrServiceStub(sims)
        self.registry = registry_pb2_grpc.RegistryServiceStub(sims)
        self.push_gateway = push_pb2_grpc.PushGatewayServiceStub(sims)
        self.ivr = ivr_pb2_grpc.IvrServiceStub(sims)

    async def location(self, msisdn: str, home_province: str) -> Location:
        try:
            r = await self.hlr.GetLocation(hlr_pb2.GetLocationRequest(province=home_province, msisdn=msisdn), timeout=5)
        except grpc.aio.AioRpcError as err:
            log.warning("HLR location lookup failed (%s); delivering without it", err.code().name)
            return Location("")
        return Location(LOCATION_NAMES.get(r.status, ""), r.country)

    async def contacts(self, msisdn: str, home_province: str) -> Contacts | None:
        """The holder's other contacts from the home registry; None when the registry cannot answer now."""
        try:
            r = await self.registry.GetSubscriber(
                registry_pb2.GetSubscriberRequest(province=home_province, msisdn=msisdn), timeout=5
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return Contacts()
            return None
        s = r.subscriber
        return Contacts(s.email, s.alternate_contact, s.push_token)

    async def send(self, name: str, m: Message, contacts: Contacts | None) -> Outcome:
        if name == "sms":
            return await self._sms(m.msisdn, m.body, "")
        if contacts is None:
            return failed("holder's contacts unavailable: registry did not answer", "temporary")
        if name == "push":
            return await self._push(m, contacts.push_token)
        if name == "email":
            return await self._email(m, contacts.email)
        if name == "voice":
            return await self._voice(m)
        if name == "alternate_contact":
            if not contacts.alternate_contact:
                return Outcome("skipped", "no alternate contact on file", "permanent")
            return await self._sms(contacts.alternate_contact, m.body, f"to {mask(contacts.alternate_contact)}; ")
        raise ValueError(f"unknown channel {name}")

    async def _sms(self, destination: str, body: str, prefix: str) -> Outcome:
        try:
            message_id = await self.link.submit(destination, body, TIMEOUT_S)
        except SubmitRefused as refused:
            cls = "permanent" if refused.status in PERMANENT_SMPP else "temporary"
            return failed(f"{prefix}{refused}", cls)
        except (TimeoutError, OSError) as err:
            return failed(f"{prefix}SMSC unavailable ({type(err).__name__})", "temporary")
        return Outcome("submitted", f"{prefix}smsc id {message_id}", smsc_message_id=message_id)

    async def _push(self, m: Message, token: str) -> Outcome:
        if not token:
            return Outcome("skipped", "the holder has no app (no push token on file)", "permanent")
        try:
            r = await self.push_gateway.SendPush(
                push_pb2.SendPushRequest(request_id=m.request_id, push_token=token, title=m.subject, body=m.body),
                timeout=TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as err:
            return failed(
                f"push gateway: {err.code().name}", "permanent" if err.code() in PERMANENT_GRPC else "temporary"
            )
        if not r.delivered:
            return failed("push not acknowledged: the device is offline", "absent")
        return Outcome("delivered", f"push {r.message_id} acknowledged by the device")

    async def _email(self, m: Message, address: str) -> Outcome:
        if not address:
            return Outcome("skipped", "no email address on file", "permanent")
        msg = EmailMessage()
        msg["From"] = self.cfg.mail_from
        msg["To"] = address
        msg["Subject"] = m.subject
        msg["Message-ID"] = f"<{m.request_id}@notify.example-carrier.cn>"
        msg.set_content(m.body)
        to = mask_email(address)
        try:
            await aiosmtplib.send(msg, hostname=self.cfg.smtp_host, port=self.cfg.smtp_port, timeout=TIMEOUT_S)
        except aiosmtplib.SMTPRecipientsRefused as err:
            code = err.recipients[0].code if err.recipients else 0
            return failed(f"to {to}: refused {code}", "permanent" if 500 <= code < 600 else "temporary")
        except aiosmtplib.SMTPResponseException as err:
            return failed(f"to {to}: {err.code}", "permanent" if 500 <= err.code < 600 else "temporary")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as err:
            return failed(f"to {to}: mail server unavailable ({type(err).__name__})", "temporary")
        return Outcome("delivered", f"accepted by the mail server for {to}")

    async def _voice(self, m: Message) -> Outcome:
        try:
            r = await self.ivr.PlaceCall(
                ivr_pb2.PlaceCallRequest(request_id=m.request_id, msisdn=m.msisdn, language=m.language, script=m.body),
                timeout=TIMEOUT_S * 6,
            )
        except grpc.aio.AioRpcError as err:
            return failed(f"IVR: {err.code().name}", "permanent" if err.code() in PERMANENT_GRPC else "temporary")
        if r.outcome == ivr_pb2.CALL_OUTCOME_ANSWERED:
            return Outcome("delivered", f"call {r.call_id} answered; message played")
        if r.outcome == ivr_pb2.CALL_OUTCOME_UNREACHABLE:
            return failed("call could not reach the handset", "absent")
        if r.outcome == ivr_pb2.CALL_OUTCOME_REJECTED:
            return failed("the network refused the call (incoming calls barred)", "permanent")
        return failed(f"call {ivr_pb2.CallOutcome.Name(r.outcome).removeprefix('CALL_OUTCOME_').lower()}", "temporary")

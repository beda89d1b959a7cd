"""What the simulators accept: every field checked before a handler acts, the way the services check theirs.

The generic bounds (lengths, control characters, enum values, list sizes) are the guard's
(pscommon/grpc_server.py); these checks add what only a simulator knows: numbers, provinces, request ids, the
fields a handler needs, and which faults can be applied to which target.
"""

from __future__ import annotations

import re

import grpc
import smpp34
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from carrier.hlr.v1 import hlr_pb2
from carrier.idcheck.v1 import idcheck_pb2
from carrier.ivr.v1 import ivr_pb2
from carrier.push.v1 import push_pb2
from carrier.registry.v1 import registry_pb2
from carrier.simulator.v1 import simulator_pb2
from pscommon.validation import Violations
from simulators.mail import RCPT_TARGET
from simulators.smsc import RECEIPT_TARGET, SUBMIT_TARGET

# The simulated outside systems served over gRPC (not the fault service: it is the simulators' own control).
SIMULATED_SERVICES: tuple[ServiceDescriptor, ...] = (
    registry_pb2.DESCRIPTOR.services_by_name["RegistryService"],
    hlr_pb2.DESCRIPTOR.services_by_name["HlrService"],
    push_pb2.DESCRIPTOR.services_by_name["PushGatewayService"],
    ivr_pb2.DESCRIPTOR.services_by_name["IvrService"],
    idcheck_pb2.DESCRIPTOR.services_by_name["IdentityCheckService"],
)

MAX_LATENCY_MS = 60_000
MAX_FAIL_NEXT = 100_000
LANGUAGES = ("zh", "en")
LOCATION_STATUSES = set(hlr_pb2.LocationStatus.values()) - {hlr_pb2.LOCATION_STATUS_UNSPECIFIED}
COUNTRY_RE = re.compile(r"[A-Z]{2}")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

# Aborting a call with OK never completes it, so OK is no fault.
GRPC_FAILURES = frozenset(code.name for code in grpc.StatusCode if code is not grpc.StatusCode.OK)
# ESME_ROK would "reject" a submit with success and no message id.
SMPP_FAILURES = frozenset(name for name in dir(smpp34) if name.startswith("ESME_") and name != "ESME_ROK")


def _unary_methods(service: ServiceDescriptor) -> list[str]:
    # The fault interceptor wraps unary calls only; a fault on a stream would be stored and never applied.
    return [f"/{service.full_name}/{m.name}" for m in service.methods if not (m.client_streaming or m.server_streaming)]


# Every fault target and the errors it can answer with. The mail server maps gRPC names to SMTP replies
# (simulators/mail.py: 550 for the permanent ones, 451 otherwise); an SMSC receipt can only be slowed.
FAULT_TARGETS: dict[str, frozenset[str]] = {
    **{target: GRPC_FAILURES for service in SIMULATED_SERVICES for target in _unary_methods(service)},
    SUBMIT_TARGET: SMPP_FAILURES,
    RECEIPT_TARGET: frozenset(),
    RCPT_TARGET: GRPC_FAILURES,
}


def _errors_described(allowed: frozenset[str]) -> str:
    if allowed == GRPC_FAILURES:
        return "a gRPC status name other than OK (e.g. UNAVAILABLE)"
    return "one of " + ", ".join(sorted(allowed))


def check_set_fault(r: simulator_pb2.SetFaultRequest) -> None:
    v = Violations()
    f = r.fault
    if not r.HasField("fault"):
        v.add("fault", "required")
    allowed = FAULT_TARGETS.get(f.target)
    if allowed is None:
        v.add(
            "fault.target",
            "must be a unary method of a simulated service (e.g. /carrier.hlr.v1.HlrService/SetBarring) or one of "
            f"{SUBMIT_TARGET}, {RECEIPT_TARGET}, {RCPT_TARGET}",
        )
        known = GRPC_FAILURES | SMPP_FAILURES
        v.check(not f.error or f.error in known, "fault.error", "a gRPC status name other than OK or an SMPP ESME_*")
    elif not allowed:
        v.check(not f.error, "fault.error", f"{f.target} can only be slowed: leave it empty")
        v.check(f.fail_next == 0, "fault.fail_next", f"{f.target} can only be slowed: must be 0")
    elif f.error:
        v.check(f.error in allowed, "fault.error", f"for {f.target}: {_errors_described(allowed)}")
    else:
        v.check(f.fail_next == 0, "fault.error", f"required when fail_next > 0: {_errors_described(allowed)}")
    v.check(f.latency_ms <= MAX_LATENCY_MS, "fault.latency_ms", f"at most {MAX_LATENCY_MS} (a minute)")
    v.check(f.fail_next <= MAX_FAIL_NEXT, "fault.fail_next", f"at most {MAX_FAIL_NEXT}")
    v.raise_if_any()


def check_get_subscriber(r: registry_pb2.GetSubscriberRequest) -> None:
    v = Violations()
    v.province(r.province, "province")
    v.msisdn(r.msisdn)
    v.raise_if_any()


def check_find_home_province(r: registry_pb2.FindHomeProvinceRequest) -> None:
    v = Violations()
    v.msisdn(r.msisdn)
    v.raise_if_any()


def check_register_subscriber(r: registry_pb2.RegisterSubscriberRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    if not r.HasField("subscriber"):
        v.add("subscriber", "required")
    s = r.subscriber
    v.msisdn(s.msisdn, "subscriber.msisdn")
    v.province(s.province, "subscriber.province")
    v.required(s.holder_ref, "subscriber.holder_ref")
    v.iso_date(s.opened_at, "subscriber.opened_at")
    if s.language:
        v.check(s.language in LANGUAGES, "subscriber.language", "'zh', 'en' or empty")
    # notify mails this address and texts this number over SMPP; either malformed fails there, not here.
    if s.email:
        v.check(EMAIL_RE.fullmatch(s.email) is not None, "subscriber.email", "an address like name@example.cn")
    if s.alternate_contact:
        v.msisdn(s.alternate_contact, "subscriber.alternate_contact")
    v.raise_if_any()


def check_province_code(r: registry_pb2.CheckProvinceCodeRequest) -> None:
    # An empty code_token is a holder who showed none: answered "not valid", not refused.
    v = Violations()
    v.province(r.province, "province")
    v.required(r.holder_ref, "holder_ref")
    v.raise_if_any()


def check_knowledge(r: registry_pb2.CheckKnowledgeRequest) -> None:
    # Offered contacts are what a holder typed: a malformed one simply matches nothing.
    v = Violations()
    v.province(r.province, "province")
    v.msisdn(r.msisdn)
    v.raise_if_any()


def check_set_barring(r: hlr_pb2.SetBarringRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    v.msisdn(r.msisdn)
    v.province(r.province, "province")
    # An absent profile would read as "nothing barred" and lift every barring of the line.
    v.check(r.HasField("barring"), "barring", "required: the whole profile (all false lifts every barring)")
    v.raise_if_any()


def check_get_barring(r: hlr_pb2.GetBarringRequest) -> None:
    v = Violations()
    v.province(r.province, "province")
    v.msisdn(r.msisdn)
    v.raise_if_any()


def check_get_location(r: hlr_pb2.GetLocationRequest) -> None:
    v = Violations()
    v.province(r.province, "province")
    v.msisdn(r.msisdn)
    v.raise_if_any()


def check_set_location(r: hlr_pb2.SetLocationRequest) -> None:
    v = Violations()
    v.province(r.province, "province")
    v.msisdn(r.msisdn)
    v.enum(r.status, "status", LOCATION_STATUSES)
    if r.status == hlr_pb2.LOCATION_STATUS_ROAMING_INTERNATIONAL:
        v.check(COUNTRY_RE.fullmatch(r.country) is not None, "country", "required abroad: ISO 3166 alpha-2, e.g. NP")
    else:
        v.check(not r.country, "country", "only when roaming internationally")
    if r.status == hlr_pb2.LOCATION_STATUS_ROAMING_DOMESTIC:
        v.province(r.visited_province, "visited_province")
    else:
        v.check(not r.visited_province, "visited_province", "only when roaming domestically")
    v.raise_if_any()


def check_watch_locations(r: hlr_pb2.WatchLocationsRequest) -> None:
    v = Violations()
    if r.province:
        v.province(r.province, "province")
    v.raise_if_any()


def check_send_push(r: push_pb2.SendPushRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    v.required(r.push_token, "push_token")
    v.required(r.body, "body")
    v.raise_if_any()


def check_place_call(r: ivr_pb2.PlaceCallRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    v.msisdn(r.msisdn)
    v.check(r.language in LANGUAGES, "language", "must be 'zh' or 'en': the voice the script is read in")
    v.required(r.script, "script")
    v.raise_if_any()


def check_identity(r: idcheck_pb2.CheckIdentityRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    v.required(r.holder_ref, "holder_ref")
    v.required(r.liveness_token, "liveness_token")
    v.raise_if_any()


def check_repeat(first: Message, again: Message) -> None:
    """A request id seen before must come with the same request (a retry), not with another one."""
    v = Violations()
    v.check(first == again, "request_id", "already used for a different request: a new request needs a new id")
    v.raise_if_any()

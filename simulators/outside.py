"""Servicers of the simulated provincial registries, HLRs, push gateway and identity-check provider."""

from __future__ import annotations

import uuid

import grpc

from carrier.hlr.v1 import hlr_pb2, hlr_pb2_grpc
from carrier.idcheck.v1 import idcheck_pb2, idcheck_pb2_grpc
from carrier.ivr.v1 import ivr_pb2, ivr_pb2_grpc
from carrier.push.v1 import push_pb2, push_pb2_grpc
from carrier.registry.v1 import registry_pb2, registry_pb2_grpc
from carrier.simulator.v1 import simulator_pb2, simulator_pb2_grpc
from pscommon.errors import invalid_argument, not_found
from pscommon.validation import Violations
from simulators.faults import Fault, Faults
from simulators.network import Network


class Registry(registry_pb2_grpc.RegistryServiceServicer):
    """Every province's BOSS registry; a line is known only to the registry of its home province."""

    def __init__(self, push: PushGateway | None = None) -> None:
        self.by_province: dict[str, dict[str, registry_pb2.Subscriber]] = {}
        self.push = push  # a holder who installed the app has a device behind the push token

    async def GetSubscriber(self, request, context):
        v = Violations()
        v.province(request.province, "province")
        v.msisdn(request.msisdn)
        v.raise_if_any()
        sub = self.by_province.get(request.province, {}).get(request.msisdn)
        if sub is None:
            raise not_found("subscriber in this province's registry", "SUBSCRIBER_NOT_FOUND")
        shown = registry_pb2.Subscriber()
        shown.CopyFrom(sub)
        shown.ClearField("service_password")  # a registry compares it; it never hands it out
        return registry_pb2.GetSubscriberResponse(subscriber=shown)

    async def FindHomeProvince(self, request, context):
        v = Violations()
        v.msisdn(request.msisdn)
        v.raise_if_any()
        for province, subs in self.by_province.items():
            if request.msisdn in subs:
                return registry_pb2.FindHomeProvinceResponse(province=province)
        raise not_found("number in the national directory", "NUMBER_NOT_FOUND")

    async def RegisterSubscriber(self, request, context):
        sub = request.subscriber
        v = Violations()
        v.request_id(request.request_id)
        v.msisdn(sub.msisdn, "subscriber.msisdn")
        v.province(sub.province, "subscriber.province")
        v.required(sub.holder_ref, "subscriber.holder_ref")
        v.raise_if_any()
        self.by_province.setdefault(sub.province, {})[sub.msisdn] = sub
        if sub.push_token and self.push is not None:
            self.push.register(sub.push_token, sub.msisdn)
        return registry_pb2.RegisterSubscriberResponse(subscriber=sub)

    async def CheckKnowledge(self, request, context):
        v = Violations()
        v.province(request.province, "province")
        v.msisdn(request.msisdn)
        v.raise_if_any()
        sub = self.by_province.get(request.province, {}).get(request.msisdn)
        if sub is None:
            raise not_found("subscriber in this province's registry", "SUBSCRIBER_NOT_FOUND")
        offered = set(request.recent_contacts)
        return registry_pb2.CheckKnowledgeResponse(
            service_password_ok=bool(sub.service_password) and request.service_password == sub.service_password,
            recent_contacts_matched=len(offered & set(sub.recent_contacts)),
        )

    async def CheckProvinceCode(self, request, context):
        # The provincial public-security code encodes province and holder; the simulator checks that binding.
        return registry_pb2.CheckProvinceCodeResponse(
            valid=request.code_token == f"{request.province}-{request.holder_ref}"
        )


class Hlr(hlr_pb2_grpc.HlrServiceServicer):
    def __init__(self, network: Network) -> None:
        self.network = network
        self.applied: dict[str, hlr_pb2.SetBarringResponse] = {}

    async def SetBarring(self, request, context):
        v = Violations()
        v.request_id(request.request_id)
        v.msisdn(request.msisdn)
        v.province(request.province, "province")
        v.raise_if_any()
        if request.request_id in self.applied:
            return self.applied[request.request_id]
        handset = self.network.handset(request.msisdn)
        handset.barring.CopyFrom(request.barring)
        resp = hlr_pb2.SetBarringResponse(barring=handset.barring)
        self.applied[request.request_id] = resp
        return resp

    async def GetBarring(self, request, context):
        return hlr_pb2.GetBarringResponse(barring=self.network.handset(request.msisdn).barring)

    async def GetLocation(self, request, context):
        h = self.network.handset(request.msisdn)
        return hlr_pb2.GetLocationResponse(status=h.location, country=h.country, visited_province=h.visited_province)

    async def SetLocation(self, request, context):
        v = Violations()
        v.msisdn(request.msisdn)
        v.enum(request.status, "status", set(hlr_pb2.LocationStatus.values()) - {0})
        v.raise_if_any()
        self.network.move(request.msisdn, request.status, request.country, request.visited_province)
        return hlr_pb2.SetLocationResponse()

    async def WatchLocations(self, request, context):
        q = self.network.watch()
        try:
            while True:
                msisdn, h = await q.get()
                yield hlr_pb2.WatchLocationsResponse(
                    msisdn=msisdn, status=h.location, country=h.country, visited_province=h.visited_province
                )
        finally:
            self.network.unwatch(q)


class PushGateway(push_pb2_grpc.PushGatewayServiceServicer):
    """The app's push gateway: a device acknowledges a push when it has a data connection."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.devices: dict[str, str] = {}  # push token -> line of the device holding the app
        self.sent: dict[str, push_pb2.SendPushResponse] = {}  # by request_id: a repeat is not pushed again
        self.requests: dict[str, int] = {}  # request_id -> times asked, for tests

    def register(self, token: str, msisdn: str) -> None:
        self.devices[token] = msisdn

    async def SendPush(self, request, context):
        v = Violations()
        v.request_id(request.request_id)
        v.required(request.push_token, "push_token")
        v.raise_if_any()
        self.requests[request.request_id] = self.requests.get(request.request_id, 0) + 1
        if request.request_id in self.sent:
            return self.sent[request.request_id]
        msisdn = self.devices.get(request.push_token)
        if msisdn is None:
            raise not_found("device for this push token", "UNKNOWN_PUSH_TOKEN")
        h = self.network.handset(msisdn)
        resp = push_pb2.SendPushResponse(
            message_id=uuid.uuid4().hex, delivered=self.network.reachable(msisdn) and not h.barring.data
        )
        self.sent[request.request_id] = resp
        return resp


class Ivr(ivr_pb2_grpc.IvrServiceServicer):
    """Outbound voice calls: a reachable handset answers unless told otherwise (`no_answer`)."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.no_answer: set[str] = set()  # lines whose holder does not pick up
        self.calls: dict[str, ivr_pb2.PlaceCallResponse] = {}
        self.requests: dict[str, int] = {}  # request_id -> times asked, for tests

    async def PlaceCall(self, request, context):
        v = Violations()
        v.request_id(request.request_id)
        v.msisdn(request.msisdn)
        v.required(request.script, "script")
        v.raise_if_any()
        if request.request_id in self.calls:
            self.requests[request.request_id] += 1
            return self.calls[request.request_id]
        self.requests[request.request_id] = self.requests.get(request.request_id, 0) + 1
        h = self.network.handset(request.msisdn)
        if h.barring.incoming_voice:
            outcome = ivr_pb2.CALL_OUTCOME_REJECTED
        elif not self.network.reachable(request.msisdn):
            outcome = ivr_pb2.CALL_OUTCOME_UNREACHABLE
        elif request.msisdn in self.no_answer:
            outcome = ivr_pb2.CALL_OUTCOME_NO_ANSWER
        else:
            outcome = ivr_pb2.CALL_OUTCOME_ANSWERED
        resp = ivr_pb2.PlaceCallResponse(call_id=uuid.uuid4().hex, outcome=outcome)
        self.calls[request.request_id] = resp
        return resp


class IdentityCheck(idcheck_pb2_grpc.IdentityCheckServiceServicer):
    """Rules of the simulated provider: IDs starting 'forged-' are invalid, videos starting 'spoof' fail liveness."""

    async def CheckIdentity(self, request, context):
        valid = bool(request.holder_ref) and not request.holder_ref.startswith("forged-")
        alive = bool(request.liveness_token) and not request.liveness_token.startswith("spoof")
        return idcheck_pb2.CheckIdentityResponse(
            identity_valid=valid, liveness_passed=alive, match_score=0.97 if valid and alive else 0.12
        )


class FaultInjection(simulator_pb2_grpc.FaultInjectionServiceServicer):
    def __init__(self, faults: Faults) -> None:
        self.faults = faults

    async def SetFault(self, request, context):
        f = request.fault
        if f.error and f.error not in grpc.StatusCode.__members__ and not f.error.startswith("ESME_"):
            raise invalid_argument([("fault.error", "a gRPC status code name or an SMPP ESME_* status")])
        self.faults.set(f.target, Fault(f.latency_ms, f.fail_next, f.error or "UNAVAILABLE"))
        return simulator_pb2.SetFaultResponse()

    async def ClearFaults(self, request, context):
        self.faults.clear()
        return simulator_pb2.ClearFaultsResponse()

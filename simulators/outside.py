"""Servicers of the simulated provincial registries, HLRs, push gateway and identity-check provider."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc

from carrier.hlr.v1 import hlr_pb2, hlr_pb2_grpc
from carrier.idcheck.v1 import idcheck_pb2, idcheck_pb2_grpc
from carrier.ivr.v1 import ivr_pb2, ivr_pb2_grpc
from carrier.push.v1 import push_pb2, push_pb2_grpc
from carrier.registry.v1 import registry_pb2, registry_pb2_grpc
from carrier.simulator.v1 import simulator_pb2, simulator_pb2_grpc
from pscommon.errors import not_found
from simulators import requests
from simulators.faults import Fault, Faults
from simulators.network import Network

Context = grpc.aio.ServicerContext


class Registry(registry_pb2_grpc.RegistryServiceServicer):
    """Every province's BOSS registry; a line is known only to the registry of its home province."""

    def __init__(self, push: PushGateway | None = None) -> None:
        self.by_province: dict[str, dict[str, registry_pb2.Subscriber]] = {}
        self.push = push  # a holder who installed the app has a device behind the push token

    async def GetSubscriber(
        self, request: registry_pb2.GetSubscriberRequest, context: Context
    ) -> registry_pb2.GetSubscriberResponse:
        requests.check_get_subscriber(request)
        sub = self.by_province.get(request.province, {}).get(request.msisdn)
        if sub is None:
            raise not_found("subscriber in this province's registry", "SUBSCRIBER_NOT_FOUND")
        shown = registry_pb2.Subscriber()
        shown.CopyFrom(sub)
        shown.ClearField("service_password")  # a registry compares it; it never hands it out
        return registry_pb2.GetSubscriberResponse(subscriber=shown)

    async def FindHomeProvince(
        self, request: registry_pb2.FindHomeProvinceRequest, context: Context
    ) -> registry_pb2.FindHomeProvinceResponse:
        requests.check_find_home_province(request)
        for province, subs in self.by_province.items():
            if request.msisdn in subs:
                return registry_pb2.FindHomeProvinceResponse(province=province)
        raise not_found("number in the national directory", "NUMBER_NOT_FOUND")

    async def RegisterSubscriber(
        self, request: registry_pb2.RegisterSubscriberRequest, context: Context
    ) -> registry_pb2.RegisterSubscriberResponse:
        requests.check_register_subscriber(request)
        sub = request.subscriber
        self.by_province.setdefault(sub.province, {})[sub.msisdn] = sub
        if sub.push_token and self.push is not None:
            self.push.register(sub.push_token, sub.msisdn)
        return registry_pb2.RegisterSubscriberResponse(subscriber=sub)

    async def CheckKnowledge(
        self, request: registry_pb2.CheckKnowledgeRequest, context: Context
    ) -> registry_pb2.CheckKnowledgeResponse:
        requests.check_knowledge(request)
        sub = self.by_province.get(request.province, {}).get(request.msisdn)
        if sub is None:
            raise not_found("subscriber in this province's registry", "SUBSCRIBER_NOT_FOUND")
        offered = set(request.recent_contacts)
        return registry_pb2.CheckKnowledgeResponse(
            service_password_ok=bool(sub.service_password) and request.service_password == sub.service_password,
            recent_contacts_matched=len(offered & set(sub.recent_contacts)),
        )

    async def CheckProvinceCode(
        self, request: registry_pb2.CheckProvinceCodeRequest, context: Context
    ) -> registry_pb2.CheckProvinceCodeResponse:
        requests.check_province_code(request)
        # The provincial public-security code encodes province and holder; the simulator checks that binding.
        return registry_pb2.CheckProvinceCodeResponse(
            valid=request.code_token == f"{request.province}-{request.holder_ref}"
        )


class Hlr(hlr_pb2_grpc.HlrServiceServicer):
    def __init__(self, network: Network) -> None:
        self.network = network
        # By request_id: the request and its answer, so a retry is answered again and a reuse is refused.
        self.applied: dict[str, tuple[hlr_pb2.SetBarringRequest, hlr_pb2.SetBarringResponse]] = {}

    async def SetBarring(self, request: hlr_pb2.SetBarringRequest, context: Context) -> hlr_pb2.SetBarringResponse:
        requests.check_set_barring(request)
        if request.request_id in self.applied:
            first, answer = self.applied[request.request_id]
            requests.check_repeat(first, request)
            return answer
        handset = self.network.handset(request.msisdn)
        handset.barring.CopyFrom(request.barring)
        resp = hlr_pb2.SetBarringResponse(barring=handset.barring)
        self.applied[request.request_id] = (request, resp)
        return resp

    async def GetBarring(self, request: hlr_pb2.GetBarringRequest, context: Context) -> hlr_pb2.GetBarringResponse:
        requests.check_get_barring(request)
        return hlr_pb2.GetBarringResponse(barring=self.network.handset(request.msisdn).barring)

    async def GetLocation(self, request: hlr_pb2.GetLocationRequest, context: Context) -> hlr_pb2.GetLocationResponse:
        requests.check_get_location(request)
        h = self.network.handset(request.msisdn)
        return hlr_pb2.GetLocationResponse(status=h.location, country=h.country, visited_province=h.visited_province)

    async def SetLocation(self, request: hlr_pb2.SetLocationRequest, context: Context) -> hlr_pb2.SetLocationResponse:
        requests.check_set_location(request)
        self.network.move(request.msisdn, request.status, request.country, request.visited_province)
        return hlr_pb2.SetLocationResponse()

    async def WatchLocations(
        self, request: hlr_pb2.WatchLocationsRequest, context: Context
    ) -> AsyncIterator[hlr_pb2.WatchLocationsResponse]:
        requests.check_watch_locations(request)
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
        # By request_id: the request and its answer, so a repeat is not pushed again.
        self.sent: dict[str, tuple[push_pb2.SendPushRequest, push_pb2.SendPushResponse]] = {}
        self.requests: dict[str, int] = {}  # request_id -> times asked, for tests

    def register(self, token: str, msisdn: str) -> None:
        self.devices[token] = msisdn

    async def SendPush(self, request: push_pb2.SendPushRequest, context: Context) -> push_pb2.SendPushResponse:
        requests.check_send_push(request)
        if request.request_id in self.sent:
            first, answer = self.sent[request.request_id]
            requests.check_repeat(first, request)
            self.requests[request.request_id] += 1
            return answer
        self.requests[request.request_id] = self.requests.get(request.request_id, 0) + 1
        msisdn = self.devices.get(request.push_token)
        if msisdn is None:
            raise not_found("device for this push token", "UNKNOWN_PUSH_TOKEN")
        h = self.network.handset(msisdn)
        resp = push_pb2.SendPushResponse(
            message_id=uuid.uuid4().hex, delivered=self.network.reachable(msisdn) and not h.barring.data
        )
        self.sent[request.request_id] = (request, resp)
        return resp


class Ivr(ivr_pb2_grpc.IvrServiceServicer):
    """Outbound voice calls: a reachable handset answers unless told otherwise (`no_answer`)."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.no_answer: set[str] = set()  # lines whose holder does not pick up
        self.calls: dict[str, tuple[ivr_pb2.PlaceCallRequest, ivr_pb2.PlaceCallResponse]] = {}
        self.requests: dict[str, int] = {}  # request_id -> times asked, for tests

    async def PlaceCall(self, request: ivr_pb2.PlaceCallRequest, context: Context) -> ivr_pb2.PlaceCallResponse:
        requests.check_place_call(request)
        if request.request_id in self.calls:
            first, answer = self.calls[request.request_id]
            requests.check_repeat(first, request)
            self.requests[request.request_id] += 1
            return answer
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
        self.calls[request.request_id] = (request, resp)
        return resp


class IdentityCheck(idcheck_pb2_grpc.IdentityCheckServiceServicer):
    """Rules of the simulated provider: IDs starting 'forged-' are invalid, videos starting 'spoof' fail liveness."""

    async def CheckIdentity(
        self, request: idcheck_pb2.CheckIdentityRequest, context: Context
    ) -> idcheck_pb2.CheckIdentityResponse:
        requests.check_identity(request)
        valid = not request.holder_ref.startswith("forged-")
        alive = not request.liveness_token.startswith("spoof")
        return idcheck_pb2.CheckIdentityResponse(
            identity_valid=valid, liveness_passed=alive, match_score=0.97 if valid and alive else 0.12
        )


class FaultInjection(simulator_pb2_grpc.FaultInjectionServiceServicer):
    def __init__(self, faults: Faults) -> None:
        self.faults = faults

    async def SetFault(
        self, request: simulator_pb2.SetFaultRequest, context: Context
    ) -> simulator_pb2.SetFaultResponse:
        requests.check_set_fault(request)  # a fault its target cannot apply is refused, never stored
        f = request.fault
        self.faults.set(f.target, Fault(f.latency_ms, f.fail_next, f.error))
        return simulator_pb2.SetFaultResponse()

    async def ClearFaults(
        self, request: simulator_pb2.ClearFaultsRequest, context: Context
    ) -> simulator_pb2.ClearFaultsResponse:
        self.faults.clear()
        return simulator_pb2.ClearFaultsResponse()

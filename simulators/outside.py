"""Servicers of the simulated provincial registries, HLRs, push gateway and identity-check provider."""

from __future__ import annotations

import uuid

import grpc

from carrier.hlr.v1 import hlr_pb2, hlr_pb2_grpc
from carrier.idcheck.v1 import idcheck_pb2, idcheck_pb2_grpc
from carrier.push.v1 import push_pb2, push_pb2_grpc
from carrier.registry.v1 import registry_pb2, registry_pb2_grpc
from carrier.simulator.v1 import simulator_pb2, simulator_pb2_grpc
from pscommon.errors import invalid_argument, not_found
from pscommon.validation import Violations
from simulators.faults import Fault, Faults
from simulators.network import Network


class Registry(registry_pb2_grpc.RegistryServiceServicer):
    """Every province's BOSS registry; a line is known only to the registry of its home province."""

    def __init__(self) -> None:
        self.by_province: dict[str, dict[str, registry_pb2.Subscriber]] = {}

    async def GetSubscriber(self, request, context):  # noqa: N802
        v = Violations()
        v.province(request.province, "province")
        v.msisdn(request.msisdn)
        v.raise_if_any()
        sub = self.by_province.get(request.province, {}).get(request.msisdn)
        if sub is None:
            raise not_found("subscriber in this province's registry", "SUBSCRIBER_NOT_FOUND")
        return registry_pb2.GetSubscriberResponse(subscriber=sub)

    async def FindHomeProvince(self, request, context):  # noqa: N802
        v = Violations()
        v.msisdn(request.msisdn)
        v.raise_if_any()
        for province, subs in self.by_province.items():
            if request.msisdn in subs:
                return registry_pb2.FindHomeProvinceResponse(province=province)
        raise not_found("number in the national directory", "NUMBER_NOT_FOUND")

    async def RegisterSubscriber(self, request, context):  # noqa: N802
        sub = request.subscriber
        v = Violations()
        v.request_id(request.request_id)
        v.msisdn(sub.msisdn, "subscriber.msisdn")
        v.province(sub.province, "subscriber.province")
        v.required(sub.holder_ref, "subscriber.holder_ref")
        v.raise_if_any()
        self.by_province.setdefault(sub.province, {})[sub.msisdn] = sub
        return registry_pb2.RegisterSubscriberResponse(subscriber=sub)

    async def CheckProvinceCode(self, request, context):  # noqa: N802
        # The provincial public-security code encodes province and holder; the simulator checks that binding.
        return registry_pb2.CheckProvinceCodeResponse(
            valid=request.code_token == f"{request.province}-{request.holder_ref}"
        )


class Hlr(hlr_pb2_grpc.HlrServiceServicer):
    def __init__(self, network: Network) -> None:
        self.network = network
        self.applied: dict[str, hlr_pb2.SetBarringResponse] = {}

    async def SetBarring(self, request, context):  # noqa: N802
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

    async def GetBarring(self, request, context):  # noqa: N802
        return hlr_pb2.GetBarringResponse(barring=self.network.handset(request.msisdn).barring)

    async def GetLocation(self, request, context):  # noqa: N802
        h = self.network.handset(request.msisdn)
        return hlr_pb2.GetLocationResponse(status=h.location, country=h.country, visited_province=h.visited_province)

    async def SetLocation(self, request, context):  # noqa: N802
        h = self.network.handset(request.msisdn)
        h.location, h.country, h.visited_province = request.status, request.country, request.visited_province
        return hlr_pb2.SetLocationResponse()


class PushGateway(push_pb2_grpc.PushGatewayServiceServicer):
    async def SendPush(self, request, context):  # noqa: N802
        if not request.push_token:
            raise not_found("device for this push token", "UNKNOWN_PUSH_TOKEN")
        return push_pb2.SendPushResponse(message_id=uuid.uuid4().hex, delivered=True)


class IdentityCheck(idcheck_pb2_grpc.IdentityCheckServiceServicer):
    """Rules of the simulated provider: IDs starting 'forged-' are invalid, videos starting 'spoof' fail liveness."""

    async def CheckIdentity(self, request, context):  # noqa: N802
        valid = bool(request.holder_ref) and not request.holder_ref.startswith("forged-")
        alive = bool(request.liveness_token) and not request.liveness_token.startswith("spoof")
        return idcheck_pb2.CheckIdentityResponse(
            identity_valid=valid, liveness_passed=alive, match_score=0.97 if valid and alive else 0.12
        )


class FaultInjection(simulator_pb2_grpc.FaultInjectionServiceServicer):
    def __init__(self, faults: Faults) -> None:
        self.faults = faults

    async def SetFault(self, request, context):  # noqa: N802
        f = request.fault
        if f.error and f.error not in grpc.StatusCode.__members__ and not f.error.startswith("ESME_"):
            raise invalid_argument([("fault.error", "a gRPC status code name or an SMPP ESME_* status")])
        self.faults.set(f.target, Fault(f.latency_ms, f.fail_next, f.error or "UNAVAILABLE"))
        return simulator_pb2.SetFaultResponse()

    async def ClearFaults(self, request, context):  # noqa: N802
        self.faults.clear()
        return simulator_pb2.ClearFaultsResponse()

"""Calling the simulators as the carrier systems the access table lets call each method."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from carrier.hlr.v1 import hlr_pb2_grpc
from carrier.idcheck.v1 import idcheck_pb2_grpc
from carrier.ivr.v1 import ivr_pb2_grpc
from carrier.push.v1 import push_pb2_grpc
from carrier.registry.v1 import registry_pb2_grpc
from carrier.simulator.v1 import simulator_pb2_grpc
from pscommon.config import Settings
from pscommon.errors import parse_details
from tests.helpers import AsAllowed

STUBS: dict[str, type] = {
    "carrier.registry.v1.RegistryService": registry_pb2_grpc.RegistryServiceStub,
    "carrier.hlr.v1.HlrService": hlr_pb2_grpc.HlrServiceStub,
    "carrier.push.v1.PushGatewayService": push_pb2_grpc.PushGatewayServiceStub,
    "carrier.ivr.v1.IvrService": ivr_pb2_grpc.IvrServiceStub,
    "carrier.idcheck.v1.IdentityCheckService": idcheck_pb2_grpc.IdentityCheckServiceStub,
    "carrier.simulator.v1.FaultInjectionService": simulator_pb2_grpc.FaultInjectionServiceStub,
}


def sim(cfg: Settings, service: str) -> Any:
    """A stub of the simulated `service` ("carrier.hlr.v1.HlrService") calling each method as an allowed role."""
    return AsAllowed(cfg, "simulators", STUBS[service], service)


def hlr(cfg: Settings) -> Any:
    return sim(cfg, "carrier.hlr.v1.HlrService")


def faults(cfg: Settings) -> Any:
    return sim(cfg, "carrier.simulator.v1.FaultInjectionService")


async def refused(call: Any) -> set[str]:
    """Awaits a call that must be INVALID_ARGUMENT; returns the fields its BadRequest names."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    err = caught.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    info, violations = parse_details(err)
    assert info is not None and info.reason == "INVALID_FIELD"
    return {field for field, _ in violations}

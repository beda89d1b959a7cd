"""SetFault takes only faults its target can apply, refuses the rest without storing anything, and is served
only when the simulators bind to a loopback address."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from carrier.hlr.v1 import hlr_pb2, hlr_pb2_grpc
from carrier.simulator.v1 import simulator_pb2, simulator_pb2_grpc
from simulators import server as sim_server
from simulators.requests import FAULT_TARGETS, MAX_FAIL_NEXT, MAX_LATENCY_MS, SIMULATED_SERVICES
from simulators.server import Simulators
from tests.helpers import tls_as
from tests.simulators.calls import faults, hlr, refused

GET_BARRING = "/carrier.hlr.v1.HlrService/GetBarring"
WATCH = "/carrier.hlr.v1.HlrService/WatchLocations"
MSISDN = "19990000001"


@pytest.fixture
async def clean(stack) -> AsyncIterator[None]:
    """No fault before the test, and none left for the next one."""
    await faults(stack.cfg).ClearFaults(simulator_pb2.ClearFaultsRequest())
    try:
        yield
    finally:
        await faults(stack.cfg).ClearFaults(simulator_pb2.ClearFaultsRequest())


def set_fault(stack, **fault: object):
    return faults(stack.cfg).SetFault(simulator_pb2.SetFaultRequest(fault=simulator_pb2.Fault(**fault)))


async def get_barring_quickly(stack) -> None:
    """The target answers as if no fault had been asked for: at once and without an error."""
    started = time.monotonic()
    await hlr(stack.cfg).GetBarring(hlr_pb2.GetBarringRequest(province="44", msisdn=MSISDN), timeout=5)
    assert time.monotonic() - started < 1.0


BAD = [
    # The fuzz's finding: aborting with OK never ends the call, so the next call to the target hung.
    ({"target": GET_BARRING, "error": "OK", "fail_next": 1}, {"fault.error"}),
    # An SMPP status on a gRPC target was INTERNAL when the call came.
    ({"target": GET_BARRING, "error": "ESME_RTHROTTLED", "fail_next": 1}, {"fault.error"}),
    ({"target": GET_BARRING, "error": "unavailable", "fail_next": 1}, {"fault.error"}),
    ({"target": GET_BARRING, "error": "NO_SUCH_CODE", "latency_ms": 5000}, {"fault.error"}),
    ({"target": GET_BARRING, "fail_next": 3}, {"fault.error"}),  # fail with what?
    ({"target": GET_BARRING, "latency_ms": MAX_LATENCY_MS + 1}, {"fault.latency_ms"}),
    ({"target": GET_BARRING, "latency_ms": 2**32 - 1}, {"fault.latency_ms"}),
    ({"target": GET_BARRING, "error": "UNAVAILABLE", "fail_next": MAX_FAIL_NEXT + 1}, {"fault.fail_next"}),
    (
        {"target": GET_BARRING, "error": "OK", "fail_next": 2**32 - 1, "latency_ms": 2**32 - 1},
        {"fault.error", "fault.fail_next", "fault.latency_ms"},
    ),
    ({"target": "", "error": "UNAVAILABLE", "fail_next": 1}, {"fault.target"}),
    ({"target": "carrier.hlr.v1.HlrService/GetBarring", "error": "UNAVAILABLE", "fail_next": 1}, {"fault.target"}),
    ({"target": "/carrier.hlr.v1.HlrService/Nope", "error": "UNAVAILABLE", "fail_next": 1}, {"fault.target"}),
    ({"target": "/carrier.hlr.v1.HlrService/getbarring", "error": "UNAVAILABLE", "fail_next": 1}, {"fault.target"}),
    # A stream is not wrapped by the fault interceptor: the fault would be stored and never applied.
    ({"target": WATCH, "error": "UNAVAILABLE", "fail_next": 1}, {"fault.target"}),
    ({"target": "/carrier.simulator.v1.FaultInjectionService/SetFault", "latency_ms": 100}, {"fault.target"}),
    ({"target": "/grpc.health.v1.Health/Check", "error": "UNAVAILABLE", "fail_next": 1}, {"fault.target"}),
    ({"target": "/carrier.suspension.v1.SuspensionService/GetLine", "latency_ms": 100}, {"fault.target"}),
    ({"target": "smsc.deliver_sm", "error": "ESME_RSYSERR", "fail_next": 1}, {"fault.target"}),
    ({"target": "nowhere", "error": "OK", "fail_next": 1}, {"fault.target", "fault.error"}),
    ({"target": "smsc.submit_sm", "error": "UNAVAILABLE", "fail_next": 1}, {"fault.error"}),
    ({"target": "smsc.submit_sm", "error": "ESME_ROK", "fail_next": 1}, {"fault.error"}),
    ({"target": "smsc.submit_sm", "error": "ESME_RNOSUCHTHING", "fail_next": 1}, {"fault.error"}),
    ({"target": "smsc.submit_sm", "fail_next": 1}, {"fault.error"}),
    ({"target": "smsc.receipt", "error": "ESME_RSYSERR", "fail_next": 1}, {"fault.error", "fault.fail_next"}),
    ({"target": "smsc.receipt", "latency_ms": MAX_LATENCY_MS + 1}, {"fault.latency_ms"}),
    ({"target": "smtp.rcpt", "error": "ESME_RSYSERR", "fail_next": 1}, {"fault.error"}),
    ({"target": "smtp.rcpt", "error": "OK", "fail_next": 1}, {"fault.error"}),
    ({"target": "smtp.rcpt", "error": "550", "fail_next": 1}, {"fault.error"}),
]


@pytest.mark.parametrize(("fault", "fields"), BAD, ids=[f"{f['target'] or 'empty'}-{sorted(x)}" for f, x in BAD])
async def test_a_fault_its_target_cannot_apply_is_refused_and_not_stored(stack, clean, fault, fields):
    assert await refused(set_fault(stack, **fault)) == fields
    assert stack.sims.faults.get(str(fault["target"])) is None
    await get_barring_quickly(stack)


async def test_a_request_without_a_fault_is_refused(stack, clean):
    fields = await refused(faults(stack.cfg).SetFault(simulator_pb2.SetFaultRequest()))
    assert {"fault", "fault.target"} <= fields


async def test_a_refused_fault_leaves_the_fault_already_set(stack, clean):
    await set_fault(stack, target=GET_BARRING, error="UNAVAILABLE", fail_next=1)
    await refused(set_fault(stack, target=GET_BARRING, error="OK", fail_next=5))
    stored = stack.sims.faults.get(GET_BARRING)
    assert stored is not None and (stored.error, stored.fail_next) == ("UNAVAILABLE", 1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get_barring_quickly(stack)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    await get_barring_quickly(stack)


@pytest.mark.parametrize("error", ["RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "UNKNOWN", "NOT_FOUND"])
async def test_a_grpc_failure_is_answered_for_the_next_calls_then_the_target_recovers(stack, clean, error):
    await set_fault(stack, target=GET_BARRING, error=error, fail_next=2)
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await get_barring_quickly(stack)
        assert caught.value.code() == grpc.StatusCode[error]
        assert "injected fault" in (caught.value.details() or "")
    await get_barring_quickly(stack)


async def test_latency_alone_needs_no_error(stack, clean):
    await set_fault(stack, target=GET_BARRING, latency_ms=300)
    started = time.monotonic()
    await hlr(stack.cfg).GetBarring(hlr_pb2.GetBarringRequest(province="44", msisdn=MSISDN), timeout=5)
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize(
    "fault",
    [
        {"target": "smsc.submit_sm", "error": "ESME_RTHROTTLED", "fail_next": 4},
        {"target": "smsc.submit_sm", "error": "ESME_RSYSERR", "fail_next": 1, "latency_ms": 10},
        {"target": "smsc.receipt", "latency_ms": 400},
        {"target": "smtp.rcpt", "error": "NOT_FOUND", "fail_next": 1},
        {"target": "smtp.rcpt", "error": "UNAVAILABLE", "fail_next": MAX_FAIL_NEXT},
        # As tests/verification sets it: an error with no failing call is only latency.
        {"target": "/carrier.registry.v1.RegistryService/GetSubscriber", "error": "UNAVAILABLE", "latency_ms": 50},
    ],
    ids=lambda f: f"{f['target']}-{f.get('error', '')}",
)
async def test_a_fault_its_target_can_apply_is_stored(stack, clean, fault):
    await set_fault(stack, **fault)
    stored = stack.sims.faults.get(fault["target"])
    assert stored is not None
    assert (stored.error, stored.fail_next, stored.latency_ms) == (
        fault.get("error", ""),
        fault.get("fail_next", 0),
        fault.get("latency_ms", 0),
    )


async def test_every_unary_method_of_every_simulated_service_is_a_target(stack, clean):
    served = {f"/{s.full_name}/{m.name}" for s in SIMULATED_SERVICES for m in s.methods if not m.server_streaming}
    assert served <= set(FAULT_TARGETS)
    assert WATCH not in FAULT_TARGETS
    for target in sorted(served):
        await set_fault(stack, target=target, latency_ms=1)  # as slow as nothing: harmless to the services
        assert stack.sims.faults.get(target) is not None


# Fault injection only for a local stack.


async def test_the_local_stack_serves_fault_injection(stack):
    ch = grpc.aio.secure_channel(stack.cfg.simulators_addr, tls_as(stack.cfg, "ops").channel_credentials())
    try:
        assert sim_server.FAULT_SERVICE in await listed_services(ch)
    finally:
        await ch.close()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("[::]", False),
        ("", False),
        ("10.1.2.3", False),
        ("192.168.0.7", False),
        ("simulators.psp.svc", False),
        ("localhost.example.com", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_which_bind_hosts_are_loopback(host, loopback):
    assert sim_server.is_loopback(host) is loopback


def test_an_unset_bind_host_is_loopback(monkeypatch):
    monkeypatch.delenv("PSP_BIND_HOST", raising=False)
    assert sim_server.bind_host() == "127.0.0.1" and sim_server.is_loopback(sim_server.bind_host())


async def listed_services(ch: grpc.aio.Channel) -> list[str]:
    call = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    return [s.name async for r in call for s in r.list_services_response.service]


async def test_fault_injection_is_not_served_on_a_non_loopback_bind(stack, monkeypatch, caplog):
    monkeypatch.setenv("PSP_BIND_HOST", "0.0.0.0")
    sims = Simulators()
    with caplog.at_level(logging.WARNING, logger="simulators.server"):
        await sims.start(dataclasses.replace(stack.cfg, principal="simulators"), 0, 0, 0)
    assert sims.grpc is not None
    assert any(
        "fault injection is not served" in r.getMessage() and "0.0.0.0" in r.getMessage() for r in caplog.records
    )
    cfg = stack.cfg
    ops = grpc.aio.secure_channel(f"127.0.0.1:{sims.grpc.port}", tls_as(cfg, "ops").channel_credentials())
    suspension = grpc.aio.secure_channel(f"127.0.0.1:{sims.grpc.port}", tls_as(cfg, "suspension").channel_credentials())
    try:
        listed = await listed_services(ops)
        assert sim_server.FAULT_SERVICE not in listed
        assert {s.full_name for s in SIMULATED_SERVICES} <= set(listed)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await simulator_pb2_grpc.FaultInjectionServiceStub(ops).SetFault(
                simulator_pb2.SetFaultRequest(
                    fault=simulator_pb2.Fault(target=GET_BARRING, error="UNAVAILABLE", fail_next=1)
                ),
                timeout=5,
            )
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_pb2_grpc.HealthStub(ops).Check(
                health_pb2.HealthCheckRequest(service=sim_server.FAULT_SERVICE), timeout=5
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        # The simulated systems themselves are served as before.
        await hlr_pb2_grpc.HlrServiceStub(suspension).GetBarring(
            hlr_pb2.GetBarringRequest(province="44", msisdn=MSISDN), timeout=5
        )
    finally:
        await ops.close()
        await suspension.close()
        await sims.grpc.stop(0.5)

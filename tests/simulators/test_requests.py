"""Every simulator RPC checks its input like the services do: INVALID_ARGUMENT naming each bad field, never
INTERNAL or UNKNOWN, and nothing changed by a refused request."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from carrier.hlr.v1 import hlr_pb2
from carrier.idcheck.v1 import idcheck_pb2
from carrier.ivr.v1 import ivr_pb2
from carrier.push.v1 import push_pb2
from carrier.registry.v1 import registry_pb2
from carrier.simulator.v1 import simulator_pb2
from simulators.requests import SIMULATED_SERVICES
from tests.helpers import rid
from tests.simulators.calls import STUBS, faults, hlr, refused, sim

REGISTRY = "carrier.registry.v1.RegistryService"
HLR = "carrier.hlr.v1.HlrService"
PUSH = "carrier.push.v1.PushGatewayService"
IVR = "carrier.ivr.v1.IvrService"
IDCHECK = "carrier.idcheck.v1.IdentityCheckService"
OK_MSISDN = "19990000101"


def subscriber(**changed: Any) -> registry_pb2.Subscriber:
    fields = {"msisdn": "19990000102", "province": "44", "holder_ref": "holder-sim-1", "opened_at": "2026-10-01"}
    return registry_pb2.Subscriber(**{**fields, **changed})


def barring_request(**changed: Any) -> hlr_pb2.SetBarringRequest:
    fields = {
        "request_id": rid(),
        "province": "44",
        "msisdn": OK_MSISDN,
        "barring": hlr_pb2.BarringProfile(outgoing_voice=True),
    }
    return hlr_pb2.SetBarringRequest(**{**fields, **changed})


ROAMING_ABROAD = hlr_pb2.LOCATION_STATUS_ROAMING_INTERNATIONAL
ROAMING_HOME = hlr_pb2.LOCATION_STATUS_ROAMING_DOMESTIC

BAD: list[tuple[str, str, Message, set[str] | None]] = [
    (REGISTRY, "GetSubscriber", registry_pb2.GetSubscriberRequest(province="4", msisdn=OK_MSISDN), {"province"}),
    (REGISTRY, "GetSubscriber", registry_pb2.GetSubscriberRequest(province="４４", msisdn=OK_MSISDN), {"province"}),
    (REGISTRY, "GetSubscriber", registry_pb2.GetSubscriberRequest(province="44", msisdn="1999000010"), {"msisdn"}),
    (REGISTRY, "GetSubscriber", registry_pb2.GetSubscriberRequest(province="44", msisdn="29990000101"), {"msisdn"}),
    (
        REGISTRY,
        "GetSubscriber",
        registry_pb2.GetSubscriberRequest(province="44", msisdn="１９９９００００１０１"),
        {"msisdn"},
    ),
    (REGISTRY, "GetSubscriber", registry_pb2.GetSubscriberRequest(), {"province", "msisdn"}),
    (REGISTRY, "FindHomeProvince", registry_pb2.FindHomeProvinceRequest(msisdn="+8619990000101"), {"msisdn"}),
    (
        REGISTRY,
        "RegisterSubscriber",
        registry_pb2.RegisterSubscriberRequest(request_id="short", subscriber=subscriber()),
        {"request_id"},
    ),
    (REGISTRY, "RegisterSubscriber", registry_pb2.RegisterSubscriberRequest(request_id=rid()), None),
    (
        REGISTRY,
        "RegisterSubscriber",
        registry_pb2.RegisterSubscriberRequest(
            request_id=rid(),
            subscriber=subscriber(
                msisdn="1999",
                province="440",
                holder_ref=" ",
                opened_at="2026-13-01",
                language="fr",
                email="not-an-address",
                alternate_contact="110",
            ),
        ),
        {
            "subscriber.msisdn",
            "subscriber.province",
            "subscriber.holder_ref",
            "subscriber.opened_at",
            "subscriber.language",
            "subscriber.email",
            "subscriber.alternate_contact",
        },
    ),
    (
        REGISTRY,
        "RegisterSubscriber",
        registry_pb2.RegisterSubscriberRequest(request_id=rid(), subscriber=subscriber(opened_at="")),
        {"subscriber.opened_at"},
    ),
    (
        REGISTRY,
        "RegisterSubscriber",
        registry_pb2.RegisterSubscriberRequest(request_id=rid(), subscriber=subscriber(email="a@b@example.cn")),
        {"subscriber.email"},
    ),
    (
        REGISTRY,
        "CheckProvinceCode",
        registry_pb2.CheckProvinceCodeRequest(code_token="44-x"),
        {"province", "holder_ref"},
    ),
    (
        REGISTRY,
        "CheckKnowledge",
        registry_pb2.CheckKnowledgeRequest(province="4a", msisdn="1", service_password="x"),
        {"province", "msisdn"},
    ),
    (HLR, "SetBarring", barring_request(request_id=""), {"request_id"}),
    (HLR, "SetBarring", barring_request(request_id="has space in it"), {"request_id"}),
    (HLR, "SetBarring", barring_request(msisdn="19990000101 "), {"msisdn"}),
    (HLR, "SetBarring", barring_request(province=""), {"province"}),
    (HLR, "SetBarring", hlr_pb2.SetBarringRequest(request_id=rid(), province="44", msisdn=OK_MSISDN), {"barring"}),
    (HLR, "GetBarring", hlr_pb2.GetBarringRequest(province="44", msisdn="abc"), {"msisdn"}),
    (HLR, "GetBarring", hlr_pb2.GetBarringRequest(msisdn=OK_MSISDN), {"province"}),
    (HLR, "GetLocation", hlr_pb2.GetLocationRequest(province="99x", msisdn="199900001011"), {"province", "msisdn"}),
    (HLR, "SetLocation", hlr_pb2.SetLocationRequest(province="44", msisdn=OK_MSISDN), {"status"}),
    (HLR, "SetLocation", hlr_pb2.SetLocationRequest(province="44", msisdn=OK_MSISDN, status=99), {"status"}),
    (
        HLR,
        "SetLocation",
        hlr_pb2.SetLocationRequest(msisdn=OK_MSISDN, status=hlr_pb2.LOCATION_STATUS_HOME),
        {"province"},
    ),
    (
        HLR,
        "SetLocation",
        hlr_pb2.SetLocationRequest(province="44", msisdn=OK_MSISDN, status=ROAMING_ABROAD),
        {"country"},
    ),
    (
        HLR,
        "SetLocation",
        hlr_pb2.SetLocationRequest(province="44", msisdn=OK_MSISDN, status=ROAMING_ABROAD, country="np"),
        {"country"},
    ),
    (
        HLR,
        "SetLocation",
        hlr_pb2.SetLocationRequest(
            province="44", msisdn=OK_MSISDN, status=hlr_pb2.LOCATION_STATUS_HOME, country="NP", visited_province="51"
        ),
        {"country", "visited_province"},
    ),
    (
        HLR,
        "SetLocation",
        hlr_pb2.SetLocationRequest(province="44", msisdn=OK_MSISDN, status=ROAMING_HOME, visited_province="5"),
        {"visited_province"},
    ),
    (PUSH, "SendPush", push_pb2.SendPushRequest(push_token="t", body="b"), {"request_id"}),
    (PUSH, "SendPush", push_pb2.SendPushRequest(request_id=rid(), title="t"), {"push_token", "body"}),
    (
        IVR,
        "PlaceCall",
        ivr_pb2.PlaceCallRequest(request_id="x", msisdn="1", language="fr", script=" "),
        {"request_id", "msisdn", "language", "script"},
    ),
    (IVR, "PlaceCall", ivr_pb2.PlaceCallRequest(request_id=rid(), msisdn=OK_MSISDN, script="hi"), {"language"}),
    (
        IDCHECK,
        "CheckIdentity",
        idcheck_pb2.CheckIdentityRequest(request_id="", holder_ref="", liveness_token=""),
        {"request_id", "holder_ref", "liveness_token"},
    ),
]


def _id(case: tuple[str, str, Message, set[str] | None]) -> str:
    service, method, _, fields = case
    return f"{method}-{'+'.join(sorted(fields or {'subscriber'}))}"


@pytest.mark.parametrize(("service", "method", "request_msg", "fields"), BAD, ids=[_id(c) for c in BAD])
async def test_a_bad_field_is_invalid_argument_naming_it(stack, service, method, request_msg, fields):
    got = await refused(getattr(sim(stack.cfg, service), method)(request_msg, timeout=5))
    if fields is None:  # no subscriber at all: it and the fields it should have held
        assert {"subscriber", "subscriber.msisdn", "subscriber.province", "subscriber.holder_ref"} <= got
    else:
        assert got == fields


async def test_a_bad_watch_is_refused_before_it_streams(stack):
    call = hlr(stack.cfg).WatchLocations(hlr_pb2.WatchLocationsRequest(province="4"), timeout=5)
    assert await refused(call.read()) == {"province"}


async def test_a_refused_registration_registers_nothing(stack):
    msisdn = "19990000103"
    ask = registry_pb2.GetSubscriberRequest(province="44", msisdn=msisdn)
    bad = subscriber(msisdn=msisdn, push_token="sim-token-103", email="nope")
    assert await refused(
        sim(stack.cfg, REGISTRY).RegisterSubscriber(
            registry_pb2.RegisterSubscriberRequest(request_id=rid(), subscriber=bad)
        )
    ) == {"subscriber.email"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await sim(stack.cfg, REGISTRY).GetSubscriber(ask)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "sim-token-103" not in stack.sims.push.devices


async def test_a_refused_barring_changes_nothing_and_a_reused_request_id_is_refused(stack):
    msisdn = "19990000104"
    first = barring_request(msisdn=msisdn)
    answer = await hlr(stack.cfg).SetBarring(first)
    assert answer.barring.outgoing_voice
    assert await hlr(stack.cfg).SetBarring(first) == answer  # a retry: the same answer
    other = barring_request(request_id=first.request_id, msisdn=msisdn, barring=hlr_pb2.BarringProfile())
    assert await refused(hlr(stack.cfg).SetBarring(other)) == {"request_id"}
    assert await refused(hlr(stack.cfg).SetBarring(barring_request(msisdn=msisdn, province="4"))) == {"province"}
    got = await hlr(stack.cfg).GetBarring(hlr_pb2.GetBarringRequest(province="44", msisdn=msisdn))
    assert got.barring == hlr_pb2.BarringProfile(outgoing_voice=True)


async def test_a_reused_push_or_call_request_id_is_refused(stack):
    push = stack.sims.push
    token, msisdn = "sim-token-105", "19990000105"
    push.register(token, msisdn)
    first = push_pb2.SendPushRequest(request_id=rid(), push_token=token, title="t", body="b")
    call = ivr_pb2.PlaceCallRequest(request_id=rid(), msisdn=msisdn, language="zh", script="s")
    try:
        sent = await sim(stack.cfg, PUSH).SendPush(first)
        assert await sim(stack.cfg, PUSH).SendPush(first) == sent
        changed = push_pb2.SendPushRequest(request_id=first.request_id, push_token=token, title="t", body="other")
        assert await refused(sim(stack.cfg, PUSH).SendPush(changed)) == {"request_id"}
        assert push.requests[first.request_id] == 2  # the refused one was not counted as asked

        placed = await sim(stack.cfg, IVR).PlaceCall(call)
        assert await sim(stack.cfg, IVR).PlaceCall(call) == placed
        elsewhere = ivr_pb2.PlaceCallRequest(request_id=call.request_id, msisdn=OK_MSISDN, language="zh", script="s")
        assert await refused(sim(stack.cfg, IVR).PlaceCall(elsewhere)) == {"request_id"}
    finally:
        # Other tests count how often each gateway was asked for one id: leave no repeats behind.
        push.requests.pop(first.request_id, None)
        stack.sims.ivr.requests.pop(call.request_id, None)
        push.devices.pop(token, None)


async def test_good_requests_still_answer(stack):
    registry = sim(stack.cfg, REGISTRY)
    sub = subscriber(msisdn="19990000106", email="x@example.cn", alternate_contact="13800000000", language="en")
    await registry.RegisterSubscriber(registry_pb2.RegisterSubscriberRequest(request_id=rid(), subscriber=sub))
    ask = registry_pb2.CheckProvinceCodeRequest(province="44", holder_ref=sub.holder_ref)
    assert not (await registry.CheckProvinceCode(ask)).valid  # no code shown: not valid, not refused
    ask.code_token = f"44-{sub.holder_ref}"
    assert (await registry.CheckProvinceCode(ask)).valid
    knowledge = registry_pb2.CheckKnowledgeRequest(province="44", msisdn=sub.msisdn, recent_contacts=["not-a-number"])
    assert (await registry.CheckKnowledge(knowledge)).recent_contacts_matched == 0

    await hlr(stack.cfg).SetLocation(
        hlr_pb2.SetLocationRequest(province="44", msisdn=sub.msisdn, status=ROAMING_ABROAD, country="NP")
    )
    await hlr(stack.cfg).SetLocation(
        hlr_pb2.SetLocationRequest(province="44", msisdn=sub.msisdn, status=ROAMING_HOME, visited_province="51")
    )
    got = await hlr(stack.cfg).GetLocation(hlr_pb2.GetLocationRequest(province="44", msisdn=sub.msisdn))
    assert (got.status, got.country, got.visited_province) == (ROAMING_HOME, "", "51")
    await hlr(stack.cfg).SetLocation(
        hlr_pb2.SetLocationRequest(province="44", msisdn=sub.msisdn, status=hlr_pb2.LOCATION_STATUS_HOME)
    )

    ident = await sim(stack.cfg, IDCHECK).CheckIdentity(
        idcheck_pb2.CheckIdentityRequest(request_id=rid(), holder_ref="forged-1", liveness_token="video-1")
    )
    assert not ident.identity_valid and ident.liveness_passed


# A small fuzz over every unary method: hostile strings in every string field, never INTERNAL or UNKNOWN.
NASTY = ["", " ", "0", "１９９９００００１０７", "1999000010\u0667", "x" * 128, "\u200b19990000107", "OK", "../../etc"]
UNARY = [
    (s.full_name, m.name, m.input_type)
    for s in (*SIMULATED_SERVICES, simulator_pb2.DESCRIPTOR.services_by_name["FaultInjectionService"])
    for m in s.methods
    if not m.server_streaming and m.name != "ClearFaults"  # ClearFaults has no field to fuzz
]


def _fill(msg: Message, value: str) -> None:
    for fd in msg.DESCRIPTOR.fields:
        if fd.type == fd.TYPE_STRING:
            if fd.is_repeated:
                getattr(msg, fd.name).append(value)
            else:
                setattr(msg, fd.name, value)
        elif fd.message_type is not None and not fd.is_repeated:
            _fill(getattr(msg, fd.name), value)


@pytest.mark.parametrize(("service", "method", "input_type"), UNARY, ids=[f"{s}/{m}" for s, m, _ in UNARY])
async def test_hostile_strings_are_never_internal(stack, service, method, input_type):
    stub = sim(stack.cfg, service)
    codes = set()
    try:
        for value in NASTY:
            req = GetMessageClass(input_type)()
            _fill(req, value)
            try:
                await getattr(stub, method)(req, timeout=5)
                codes.add(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as err:
                codes.add(err.code())
    finally:
        await faults(stack.cfg).ClearFaults(simulator_pb2.ClearFaultsRequest())
        for value in NASTY:  # a request id other tests could count
            stack.sims.push.requests.pop(value, None)
            stack.sims.ivr.requests.pop(value, None)
    assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}, codes
    assert grpc.StatusCode.INVALID_ARGUMENT in codes


def test_every_simulator_method_has_its_stub():
    assert {s.full_name for s in SIMULATED_SERVICES} <= set(STUBS)

"""Every method, called as every principal and without a certificate: the access table holds exactly.

Empty requests reach no handler's work (they are invalid for every mutating method), so a call the table allows
answers anything but PERMISSION_DENIED or UNAUTHENTICATED, and a call it refuses answers PERMISSION_DENIED with
ErrorInfo naming the method and the role (the guard refuses it before any handler runs).
"""

from __future__ import annotations

import dataclasses
import pathlib

import grpc
import pytest
from google.protobuf import descriptor_pool

from carrier.hlr.v1 import hlr_pb2  # noqa: F401 - registers the simulators' services in the descriptor pool
from carrier.idcheck.v1 import idcheck_pb2  # noqa: F401
from carrier.ivr.v1 import ivr_pb2  # noqa: F401
from carrier.push.v1 import push_pb2  # noqa: F401
from carrier.registry.v1 import registry_pb2  # noqa: F401
from carrier.simulator.v1 import simulator_pb2  # noqa: F401
from pscommon.errors import parse_details
from pscommon.identity import Principal
from pscommon.pki import CALLERS, SERVERS, LocalPki, issue, new_ca
from pscommon.tls import TlsFiles
from tests.helpers import TABLE, tls_as

SERVERS_OF = {
    "scoring": ["carrier.scoring.v1.ScoringService"],
    "suspension": ["carrier.suspension.v1.SuspensionService"],
    "notify": ["carrier.notify.v1.NotifyService"],
    "verification": ["carrier.verification.v1.VerificationService"],
    "simulators": [
        "carrier.registry.v1.RegistryService",
        "carrier.hlr.v1.HlrService",
        "carrier.push.v1.PushGatewayService",
        "carrier.ivr.v1.IvrService",
        "carrier.idcheck.v1.IdentityCheckService",
        "carrier.simulator.v1.FaultInjectionService",
    ],
}
SHARED = ["grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"]
PRINCIPALS = {**SERVERS, **CALLERS}  # name -> role


def _methods() -> list[tuple[str, str, bool, bool]]:
    """(server, "package.Service/Method", client streaming, server streaming) for every method we serve."""
    pool = descriptor_pool.Default()
    found = []
    for server, services in SERVERS_OF.items():
        for service in [*services, *SHARED]:
            try:
                desc = pool.FindServiceByName(service)
            except KeyError:
                continue
            for m in desc.methods:
                found.append((server, f"{service}/{m.name}", m.client_streaming, m.server_streaming))
    return found


async def _call(
    channel: grpc.aio.Channel, method: str, client_streaming: bool, server_streaming: bool, empty: bool = True
) -> grpc.StatusCode:
    # Client streams send no message (`empty`), so a refusal cannot race the client's writes (grpc/grpc#36066);
    # where no connection is made, one message (an empty stream then ends as CancelledError in grpcio).
    path, raw = f"/{method}", (lambda b: b)
    stream = iter(()) if empty else iter([b""])
    try:
        if client_streaming and server_streaming:
            call = channel.stream_stream(path, request_serializer=raw, response_deserializer=raw)(stream, timeout=2)
            async for _ in call:
                break
        elif client_streaming:
            await channel.stream_unary(path, request_serializer=raw, response_deserializer=raw)(stream, timeout=2)
        elif server_streaming:
            call = channel.unary_stream(path, request_serializer=raw, response_deserializer=raw)(b"", timeout=1)
            async for _ in call:
                break
        else:
            await channel.unary_unary(path, request_serializer=raw, response_deserializer=raw)(b"", timeout=2)
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.PERMISSION_DENIED:
            info, _ = parse_details(err)
            assert info is not None and info.reason == "METHOD_NOT_ALLOWED", err.details()
            assert info.metadata["method"] == method, info.metadata
        return err.code()
    return grpc.StatusCode.OK


async def test_every_method_as_every_principal_follows_the_access_table(stack) -> None:
    methods = _methods()
    assert len(methods) >= 40
    wrong: list[str] = []
    calls = 0
    for server, method, cs, ss in methods:
        address = getattr(stack.cfg, f"{server}_addr")
        for name, role in PRINCIPALS.items():
            async with grpc.aio.secure_channel(address, tls_as(stack.cfg, name).channel_credentials()) as ch:
                code = await _call(ch, method, cs, ss)
            calls += 1
            allowed = TABLE.allows(method, role)
            refused = code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
            if allowed == refused:
                wrong.append(f"{name} ({role}) -> {method}: {code.name}, table says {'allow' if allowed else 'deny'}")
    assert not wrong, "\n".join(wrong)
    print(
        f"access matrix: {len(methods)} methods x {len(PRINCIPALS)} principals = {calls} calls, all as the table says"
    )


async def test_without_a_certificate_nothing_is_reached(stack) -> None:
    """No client certificate, or one from another CA: the TLS handshake fails, no handler runs."""
    ca = (pathlib.Path(stack.cfg.pki_dir) / "ca.pem").read_bytes()
    stranger_ca = new_ca("psp.test")
    stranger = issue(stranger_ca, Principal("psp.test", "ops", "ops"))
    for creds in (
        grpc.ssl_channel_credentials(ca),
        grpc.ssl_channel_credentials(ca, stranger.key_pem, stranger.cert_pem),
    ):
        for server, method, cs, ss in _methods():
            async with grpc.aio.secure_channel(getattr(stack.cfg, f"{server}_addr"), creds) as ch:
                assert await _call(ch, method, cs, ss, empty=False) == grpc.StatusCode.UNAVAILABLE, method
    async with grpc.aio.insecure_channel(stack.cfg.suspension_addr) as ch:  # and no plaintext at all
        assert await _call(ch, "grpc.health.v1.Health/Check", False, False) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("trust_domain", "role"), [("another.domain", "worker"), ("psp.test", "superuser"), ("psp.test", "worker")]
)
async def test_a_certificate_of_our_ca_must_name_a_principal_of_ours(stack, tmp_path, trust_domain, role) -> None:
    pki = LocalPki(pathlib.Path(stack.cfg.pki_dir), "psp.test")
    issued = issue(pki.ca(), Principal(trust_domain, role, "someone"))
    (tmp_path / "x.pem").write_bytes(issued.cert_pem)
    (tmp_path / "x.key").write_bytes(issued.key_pem)
    tls = dataclasses.replace(TlsFiles.in_folder(tmp_path, "x"), ca=pki.folder / "ca.pem")
    async with grpc.aio.secure_channel(stack.cfg.suspension_addr, tls.channel_credentials()) as ch:
        code = await _call(ch, "carrier.suspension.v1.SuspensionService/GetLine", False, False)
    expected = grpc.StatusCode.INVALID_ARGUMENT if trust_domain == "psp.test" and role == "worker" else None
    assert code == (expected or grpc.StatusCode.UNAUTHENTICATED)

"""Runs every simulated outside system in one process: gRPC simulators and the SMPP SMSC."""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Sequence

import grpc
import smpp34

from carrier.hlr.v1 import hlr_pb2_grpc
from carrier.idcheck.v1 import idcheck_pb2_grpc
from carrier.ivr.v1 import ivr_pb2_grpc
from carrier.push.v1 import push_pb2_grpc
from carrier.registry.v1 import registry_pb2_grpc
from carrier.simulator.v1 import simulator_pb2, simulator_pb2_grpc
from contracts import ACCESS_TABLE
from pscommon import grpc_server
from pscommon.config import Settings
from pscommon.probes import free_port
from simulators.faults import FaultInterceptor, Faults
from simulators.mail import MailServer
from simulators.network import Network
from simulators.outside import FaultInjection, Hlr, IdentityCheck, Ivr, PushGateway, Registry
from simulators.requests import SIMULATED_SERVICES
from simulators.smsc import Smsc

log = logging.getLogger(__name__)
FAULT_SERVICE = simulator_pb2.DESCRIPTOR.services_by_name["FaultInjectionService"].full_name


def bind_host() -> str:
    """Where the gRPC port binds: PSP_BIND_HOST, or loopback when unset (as pscommon.grpc_server)."""
    return os.environ.get("PSP_BIND_HOST", "127.0.0.1")


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach a port bound to `host`. A name other than localhost could resolve
    anywhere, and an empty host or a wildcard (0.0.0.0, ::) is every interface: none of those is loopback."""
    host = host.strip().removeprefix("[").removesuffix("]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Simulators:
    def __init__(self) -> None:
        self.network = Network()
        self.faults = Faults()
        self.push = PushGateway(self.network)
        self.registry = Registry(self.push)
        self.hlr = Hlr(self.network)
        self.ivr = Ivr(self.network)
        self.smsc: Smsc | None = None
        self.mail: MailServer | None = None
        self.grpc: grpc_server.GrpcService | None = None

    async def start(self, cfg: Settings, grpc_port: int, smsc_port: int, smtp_port: int | None = None) -> None:
        host = bind_host()
        # Fault injection can take any simulated system down: only for a stack reachable from this machine alone.
        local = is_loopback(host)
        if not local:
            log.warning("fault injection is not served: the simulators bind to %s, not a loopback address", host)

        def register(server: grpc.aio.Server) -> Sequence[str]:
            registry_pb2_grpc.add_RegistryServiceServicer_to_server(self.registry, server)
            hlr_pb2_grpc.add_HlrServiceServicer_to_server(self.hlr, server)
            push_pb2_grpc.add_PushGatewayServiceServicer_to_server(self.push, server)
            ivr_pb2_grpc.add_IvrServiceServicer_to_server(self.ivr, server)
            idcheck_pb2_grpc.add_IdentityCheckServiceServicer_to_server(IdentityCheck(), server)
            names = [service.full_name for service in SIMULATED_SERVICES]
            if local:
                simulator_pb2_grpc.add_FaultInjectionServiceServicer_to_server(FaultInjection(self.faults), server)
                names.append(FAULT_SERVICE)
            return names

        security = grpc_server.Security.from_settings(cfg, ACCESS_TABLE)
        self.grpc = await grpc_server.start(
            "simulators",
            grpc_port,
            register,
            security,
            host=host,
            extra_interceptors=[FaultInterceptor(self.faults)] if local else [],
        )
        self.smsc = await self._start_smsc(cfg.smsc_host, smsc_port)
        self.grpc.on_stop.append(self.smsc.stop)
        self.mail = MailServer(cfg.smtp_host, cfg.smtp_port if smtp_port is None else smtp_port, self.faults)
        await self.mail.start()
        self.grpc.on_stop.append(self.mail.stop)

    async def _start_smsc(self, host: str, port: int) -> Smsc:
        """Port 0: any free port (tests). A port picked free can be taken by the time it is bound, so retry."""
        for _ in range(10 if port == 0 else 1):
            smsc = Smsc(host, port or free_port(host), self.network, self.faults)
            try:
                await smsc.start()
                return smsc
            except smpp34.SmppError:
                if port:
                    raise
        raise RuntimeError("no free port for the SMSC")


async def start(cfg: Settings, port: int) -> grpc_server.GrpcService:
    sims = Simulators()
    await sims.start(cfg, port, cfg.smsc_port)
    assert sims.grpc is not None
    return sims.grpc


if __name__ == "__main__":
    grpc_server.serve_forever("simulators", start, lambda cfg: cfg.simulators_addr)

"""The portal's gRPC clients: it calls the platform like any carrier system, over mutual TLS."""

from __future__ import annotations

from dataclasses import dataclass

from carrier.verification.v1 import verification_pb2_grpc
from pscommon.channels import channel
from pscommon.config import Settings
from pscommon.tls import TlsFiles


@dataclass(frozen=True)
class Clients:
    # Verification as the portal's own principal: the `app` role, acting for a holder who opened a signed link.
    verification: verification_pb2_grpc.VerificationServiceAsyncStub

    @classmethod
    def from_settings(cls, cfg: Settings) -> Clients:
        tls = TlsFiles.from_settings(cfg)
        return cls(verification_pb2_grpc.VerificationServiceStub(channel(cfg.verification_addr, tls)))

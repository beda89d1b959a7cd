"""Mutual TLS for every gRPC server and channel: credentials from PEM files, the caller's principal from its
certificate."""

from __future__ import annotations

import functools
import pathlib
from dataclasses import dataclass

import grpc
from cryptography import x509

from pscommon.config import Settings
from pscommon.identity import Principal


@dataclass(frozen=True)
class TlsFiles:
    """The CA that signs every platform certificate, and this process's own certificate and key."""

    ca: pathlib.Path
    cert: pathlib.Path
    key: pathlib.Path

    @classmethod
    def from_settings(cls, cfg: Settings) -> TlsFiles:
        """Explicit PSP_TLS_* paths, or PSP_PRINCIPAL's files in PSP_PKI_DIR."""
        if cfg.pki_dir and cfg.principal and not cfg.tls_cert:
            return cls.in_folder(pathlib.Path(cfg.pki_dir), cfg.principal)
        return cls.of(cfg.tls_ca, cfg.tls_cert, cfg.tls_key)

    @classmethod
    def of_principal(cls, cfg: Settings, name: str) -> TlsFiles:
        """Another principal's files from PSP_PKI_DIR (psctl acting as mediation, app ... on the local stack)."""
        if not cfg.pki_dir:
            raise RuntimeError(f"acting as {name} needs PSP_PKI_DIR, the folder of the local stack's certificates")
        return cls.in_folder(pathlib.Path(cfg.pki_dir), name)

    @classmethod
    def in_folder(cls, folder: pathlib.Path, name: str) -> TlsFiles:
        return cls(folder / "ca.pem", folder / f"{name}.pem", folder / f"{name}.key")

    @classmethod
    def of(cls, ca: str, cert: str, key: str) -> TlsFiles:
        missing = [name for name, value in (("CA", ca), ("certificate", cert), ("key", key)) if not value]
        if missing:
            raise RuntimeError(
                f"mutual TLS needs a {', '.join(missing)}: set PSP_TLS_CA, PSP_TLS_CERT and PSP_TLS_KEY, or"
                " PSP_PKI_DIR and PSP_PRINCIPAL (the local stack issues them into .local/pki)"
            )
        return cls(pathlib.Path(ca), pathlib.Path(cert), pathlib.Path(key))

    def server_credentials(self) -> grpc.ServerCredentials:
        """Only clients with a certificate from our CA get through the handshake."""
        return grpc.ssl_server_credentials(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=self.ca.read_bytes(),
            require_client_auth=True,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return _channel_credentials(self.ca, self.cert, self.key)

    def own_principal(self) -> Principal | None:
        """The principal this process's own certificate names."""
        return _principal_of(self.cert.read_bytes())


@functools.cache
def _channel_credentials(ca: pathlib.Path, cert: pathlib.Path, key: pathlib.Path) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(ca.read_bytes(), key.read_bytes(), cert.read_bytes())


def peer_principal(context: grpc.aio.ServicerContext) -> Principal | None:
    """The principal named by the client's verified certificate, or None when it names none we can read."""
    pems = list(context.auth_context().get("x509_pem_cert") or [])
    return _principal_of(pems[0]) if pems else None


@functools.lru_cache(maxsize=1024)
def _principal_of(pem: bytes) -> Principal | None:
    try:
        cert = x509.load_pem_x509_certificate(pem)
        uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.UniformResourceIdentifier
        )
    except (ValueError, x509.ExtensionNotFound):
        return None
    found = [p for p in map(Principal.parse, uris) if p is not None]
    return found[0] if len(found) == 1 else None

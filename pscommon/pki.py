"""The platform's own certificate authority, for the local stack and the tests (production uses cert-manager).

Every process and every caller holds one certificate from this CA naming its principal in a URI SAN,
`spiffe://<trust domain>/<role>/<id>` (an SVID), usable as a server and as a client certificate; services also
carry `localhost` and `127.0.0.1` so clients can check who they reached. Keys are ECDSA P-256.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pathlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pscommon.identity import Principal

# The local stack's processes (a certificate that also serves) and the callers it issues for; name -> role.
SERVERS = {
    "scoring": "scoring",
    "suspension": "suspension",
    "notify": "notify",
    "verification": "verification",
    "simulators": "simulator",
    "span-receiver": "span-receiver",  # the local stack's OTLP trace endpoint (pscommon/span_receiver.py)
}
CALLERS = {
    "worker": "worker",
    "mediation": "mediation",
    "antifraud-platform": "antifraud-platform",
    "customer-service": "customer-service",
    "hall": "hall",
    "app": "app",
    "reviewer-1": "reviewer",
    "reviewer-2": "reviewer",
    "police": "police",
    "regulator": "regulator",
    "ops": "ops",
}
CA_DAYS = 3650
LEAF_DAYS = 397
SERVER_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "protective-suspension platform"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_ca(trust_domain: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{trust_domain} CA"))
        .issuer_name(_name(f"{trust_domain} CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # key_cert_sign, crl_sign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def issue(ca: Issued, principal: Principal, server_names: tuple[str, ...] = (), days: int = LEAF_DAYS) -> Issued:
    """A certificate for `principal`, signed by `ca`; with `server_names` it can also serve under those names."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(principal.uri)]
    for n in server_names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server_names else [])
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(principal.name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


class LocalPki:
    """A folder holding the CA (`ca.pem`, `ca.key`) and one `<name>.pem` / `<name>.key` per principal."""

    def __init__(self, folder: pathlib.Path, trust_domain: str) -> None:
        self.folder = folder
        self.trust_domain = trust_domain

    def ca(self) -> Issued:
        cert, key = self.folder / "ca.pem", self.folder / "ca.key"
        if not cert.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            os.chmod(self.folder, 0o700)
            issued = new_ca(self.trust_domain)
            _write(key, issued.key_pem)
            _write(cert, issued.cert_pem)
        return Issued(cert.read_bytes(), key.read_bytes())

    def paths(self, name: str) -> tuple[pathlib.Path, pathlib.Path]:
        return self.folder / f"{name}.pem", self.folder / f"{name}.key"

    def ensure_local(self) -> None:
        """Every certificate the local stack and its tests use."""
        for name, role in SERVERS.items():
            self.ensure(Principal(self.trust_domain, role, name), server=True)
        for name, role in CALLERS.items():
            self.ensure(Principal(self.trust_domain, role, name))

    def ensure(self, principal: Principal, server: bool = False) -> tuple[pathlib.Path, pathlib.Path]:
        """The principal's certificate and key, issued on first use."""
        cert, key = self.paths(principal.id)
        if not cert.exists():
            issued = issue(self.ca(), principal, SERVER_NAMES if server else ())
            _write(key, issued.key_pem)
            _write(cert, issued.cert_pem)
        return cert, key


def _write(path: pathlib.Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o600 if path.suffix == ".key" else 0o644)
    tmp.replace(path)

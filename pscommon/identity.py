"""How lines and callers are named where personal data may not go: a keyed hash, a masked form, a principal."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

MSISDN_RE = re.compile(r"1[0-9]{10}", re.ASCII)


def is_msisdn(value: str) -> bool:
    return MSISDN_RE.fullmatch(value) is not None


def line_hash(msisdn: str, key: str) -> str:
    return hmac.new(key.encode(), msisdn.encode(), hashlib.sha256).hexdigest()[:20]


def mask(msisdn: str) -> str:
    """193****5678: enough for the holder to recognise the line, not enough to call it."""
    if len(msisdn) < 8:
        return "*" * len(msisdn)
    return f"{msisdn[:3]}****{msisdn[-4:]}"


_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}", re.ASCII)
SPIFFE = "spiffe://"
# gRPC metadata: a replica of the called service forwarding its caller's request names that caller (role/id).
ON_BEHALF_OF = "psp-on-behalf-of"


@dataclass(frozen=True)
class Principal:
    """Who is calling, as their certificate names them: spiffe://<trust domain>/<role>/<id>."""

    trust_domain: str
    role: str
    id: str

    @property
    def uri(self) -> str:
        return f"{SPIFFE}{self.trust_domain}/{self.role}/{self.id}"

    @property
    def name(self) -> str:
        """How logs and records name it: role/id (never a person's personal data)."""
        return f"{self.role}/{self.id}"

    @classmethod
    def parse(cls, uri: str) -> Principal | None:
        if not uri.startswith(SPIFFE):
            return None
        parts = uri[len(SPIFFE) :].split("/")
        if len(parts) != 3 or not all(_ID_RE.fullmatch(p) for p in parts):
            return None
        return cls(*parts)

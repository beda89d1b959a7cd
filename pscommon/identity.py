"""How lines are named where personal data may not go: a keyed hash and a masked form."""

import hashlib
import hmac
import re

MSISDN_RE = re.compile(r"^1\d{10}$")


def is_msisdn(value: str) -> bool:
    return bool(MSISDN_RE.match(value))


def line_hash(msisdn: str, key: str) -> str:
    return hmac.new(key.encode(), msisdn.encode(), hashlib.sha256).hexdigest()[:20]


def mask(msisdn: str) -> str:
    """193****5678: enough for the holder to recognise the line, not enough to call it."""
    if len(msisdn) < 8:
        return "*" * len(msisdn)
    return f"{msisdn[:3]}****{msisdn[-4:]}"

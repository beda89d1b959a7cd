"""The reviewer's session: a signed cookie naming the signed-in reviewer (CSRF is the portal's, services/portal/web.py).

The cookie holds no personal data (a reviewer id, a random nonce, an expiry) and is HttpOnly, SameSite=Strict,
limited to /reviewer and Secure behind TLS; it is signed (HMAC-SHA256), so a client can neither forge a reviewer
nor keep a session past its expiry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

COOKIE = "psp_reviewer"
LIFETIME_S = 8 * 3600
PATH = "/reviewer"


@dataclass(frozen=True)
class Session:
    reviewer: str
    nonce: str
    expires: int


class Sessions:
    def __init__(self, key: bytes) -> None:
        self.key = key

    def new(self, reviewer: str, now: float | None = None) -> Session:
        return Session(reviewer, secrets.token_urlsafe(12), int(now if now is not None else time.time()) + LIFETIME_S)

    def dump(self, s: Session) -> str:
        body = base64.urlsafe_b64encode(json.dumps([s.reviewer, s.nonce, s.expires]).encode()).decode()
        return f"{body}.{self._sign(body)}"

    def load(self, value: str | None, now: float | None = None) -> Session | None:
        """The session a cookie carries, or None if it is missing, tampered with or expired."""
        if not value or "." not in value:
            return None
        body, sig = value.rsplit(".", 1)
        if not hmac.compare_digest(sig, self._sign(body)):
            return None
        try:
            reviewer, nonce, expires = json.loads(base64.urlsafe_b64decode(body))
        except (ValueError, binascii.Error):
            return None
        if not (isinstance(reviewer, str) and reviewer and isinstance(nonce, str) and isinstance(expires, int)):
            return None
        if expires <= (now if now is not None else time.time()):
            return None
        return Session(reviewer, nonce, expires)

    def _sign(self, body: str) -> str:
        return hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()

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
        # Signed-out sessions (nonce -> expiry) until they would have expired anyway: a copied cookie dies at
        # sign-out. Kept in this process; several portal processes would share it (see docs/reviewer-console.md).
        self._revoked: dict[str, int] = {}

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
        # compare_digest raises TypeError on non-ASCII str: a cookie with such bytes is no session, not an error.
        if not sig.isascii() or not hmac.compare_digest(sig, self._sign(body)):
            return None
        try:
            reviewer, nonce, expires = json.loads(base64.urlsafe_b64decode(body))
        except (ValueError, binascii.Error):
            return None
        if not (isinstance(reviewer, str) and reviewer and isinstance(nonce, str) and isinstance(expires, int)):
            return None
        if expires <= (now if now is not None else time.time()) or nonce in self._revoked:
            return None
        return Session(reviewer, nonce, expires)

    def revoke(self, s: Session, now: float | None = None) -> None:
        """Signs the session out for good, whoever still holds a copy of its cookie."""
        t = now if now is not None else time.time()
        self._revoked = {n: e for n, e in self._revoked.items() if e > t}
        self._revoked[s.nonce] = s.expires

    def _sign(self, body: str) -> str:
        return hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()

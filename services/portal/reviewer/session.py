"""The reviewer's session: a signed cookie naming the reviewer, with the CSRF token every form must echo.

The cookie holds no personal data (a reviewer id, a random token, an expiry) and is Secure, HttpOnly and
SameSite=Strict; it is signed (HMAC-SHA256), so a client can neither forge a reviewer nor keep a session past
its expiry.
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
    reviewer: str  # empty before sign-in: the session then only carries the sign-in form's CSRF token
    csrf: str
    expires: int

    @property
    def signed_in(self) -> bool:
        return bool(self.reviewer)

    def csrf_ok(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, key: bytes) -> None:
        self.key = key

    def new(self, reviewer: str = "", now: float | None = None) -> Session:
        """A fresh session (and CSRF token): on first visit, and again at sign-in so no earlier token survives."""
        return Session(reviewer, secrets.token_urlsafe(24), int(now if now is not None else time.time()) + LIFETIME_S)

    def dump(self, s: Session) -> str:
        body = base64.urlsafe_b64encode(json.dumps([s.reviewer, s.csrf, s.expires]).encode()).decode()
        return f"{body}.{self._sign(body)}"

    def load(self, value: str | None, now: float | None = None) -> Session | None:
        """The session a cookie carries, or None if it is missing, tampered with or expired."""
        if not value or "." not in value:
            return None
        body, sig = value.rsplit(".", 1)
        if not hmac.compare_digest(sig, self._sign(body)):
            return None
        try:
            reviewer, csrf, expires = json.loads(base64.urlsafe_b64decode(body))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(reviewer, str) or not isinstance(csrf, str) or not isinstance(expires, int):
            return None
        if expires <= (now if now is not None else time.time()):
            return None
        return Session(reviewer, csrf, expires)

    def _sign(self, body: str) -> str:
        return hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()

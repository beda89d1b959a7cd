"""Who may sign in as a reviewer, and with which certificate the portal then calls verification for them.

Locally a reviewer signs in with the id of a certificate the local CA issued (reviewer-1, reviewer-2, or one
from `psctl pki issue reviewer <id>`) and the local stack's console password. In production the carrier's SSO
proxy signs them in instead (`sso_header`): it authenticates the reviewer, strips any such header the browser
sent, and forwards the verified reviewer id in that header; the password form is then off. The certificate, not
the sign-in, is what verification trusts: the reviewer recorded with a claim or a decision is the one it names.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import pathlib
import re
import time
from collections.abc import Callable, Mapping

from pscommon.tls import TlsFiles

REVIEWER_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ROLE = "reviewer"
# Password guessing: a reviewer id with this many failed sign-ins in the window is locked until it has room again;
# all ids together get a larger budget (the local password is shared, so guesses spread over made-up ids count).
MAX_FAILURES = 5
MAX_FAILURES_ALL = 30
WINDOW_S = 15 * 60


class Throttle:
    """Failed attempts per key within a sliding window; `locked` once a key has `limit` of them."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._failed: dict[str, collections.deque[float]] = {}

    def _recent(self, key: str) -> collections.deque[float]:
        q = self._failed.get(key, collections.deque())
        horizon = self.clock() - self.window_s
        while q and q[0] <= horizon:
            q.popleft()
        return q

    def locked(self, key: str) -> bool:
        return len(self._recent(key)) >= self.limit

    def failed(self, key: str) -> None:
        if len(self._failed) > 10_000:  # made-up ids must not grow this for ever
            recent = {k: self._recent(k) for k in list(self._failed)}
            self._failed = {k: q for k, q in recent.items() if q}
        q = self._recent(key)
        q.append(self.clock())
        self._failed[key] = q


class Directory:
    def __init__(
        self, pki_dir: str, local_password: str, sso_header: str = "", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.folder = pathlib.Path(pki_dir) if pki_dir else None
        self.local_password = local_password
        self.sso_header = sso_header
        self.per_reviewer = Throttle(MAX_FAILURES, WINDOW_S, clock)
        self.everyone = Throttle(MAX_FAILURES_ALL, WINDOW_S, clock)

    @property
    def enabled(self) -> bool:
        """The password form is offered: local sign-in is configured and no SSO proxy signs reviewers in."""
        return self.folder is not None and bool(self.local_password) and not self.sso_header

    def sso_reviewer(self, headers: Mapping[str, str]) -> str | None:
        """The reviewer the SSO proxy vouches for, when it is one of ours (None: no SSO, no header, or not a
        reviewer)."""
        if not self.sso_header:
            return None
        subject = headers.get(self.sso_header, "").strip()
        return subject if self.is_reviewer(subject) else None

    def tls(self, reviewer: str) -> TlsFiles:
        assert self.folder is not None
        return TlsFiles.in_folder(self.folder, reviewer)

    def sign_in(self, reviewer: str, password: str) -> bool:
        """True when the password is right and `reviewer` names a reviewer certificate of our CA (never with SSO)."""
        if not self.enabled or not REVIEWER_ID.fullmatch(reviewer):
            return False
        # While locked even the right password is refused: a guesser learns nothing from the answer.
        if self.per_reviewer.locked(reviewer) or self.everyone.locked(""):
            return False
        expected = reviewer_password(self.local_password, reviewer)
        if not hmac.compare_digest(password.encode(), expected.encode()) or not self.is_reviewer(reviewer):
            self.per_reviewer.failed(reviewer)
            self.everyone.failed("")
            return False
        return True

    def is_reviewer(self, reviewer: str) -> bool:
        if self.folder is None or not REVIEWER_ID.fullmatch(reviewer):
            return False
        tls = self.tls(reviewer)
        if not (tls.cert.exists() and tls.key.exists()):
            return False
        principal = tls.own_principal()
        return principal is not None and principal.role == ROLE and principal.id == reviewer


def reviewer_password(desk_secret: str, reviewer: str) -> str:
    """The local sign-in password of one reviewer: derived from the desk's secret (PSP_PORTAL_REVIEWER_PASSWORD)
    and the reviewer id, so knowing one reviewer's password is not knowing another's (four eyes stay two people)."""
    digest = hmac.new(desk_secret.encode(), b"reviewer-password:" + reviewer.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode().lower()

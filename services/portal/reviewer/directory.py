"""Who may sign in as a reviewer, and with which certificate the portal then calls verification for them.

Locally a reviewer signs in with the id of a certificate the local CA issued (reviewer-1, reviewer-2, or one
from `psctl pki issue reviewer <id>`) and the local stack's console password. In production the carrier's SSO
proxy signs them in instead (`sso_header`): it authenticates the reviewer, strips any such header the browser
sent, and forwards the verified reviewer id in that header; the password form is then off. The certificate, not
the sign-in, is what verification trusts: the reviewer recorded with a claim or a decision is the one it names.
"""

from __future__ import annotations

import hmac
import pathlib
import re
from collections.abc import Mapping

from pscommon.tls import TlsFiles

REVIEWER_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ROLE = "reviewer"


class Directory:
    def __init__(self, pki_dir: str, local_password: str, sso_header: str = "") -> None:
        self.folder = pathlib.Path(pki_dir) if pki_dir else None
        self.local_password = local_password
        self.sso_header = sso_header

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
        if not hmac.compare_digest(password.encode(), self.local_password.encode()):
            return False
        return self.is_reviewer(reviewer)

    def is_reviewer(self, reviewer: str) -> bool:
        if self.folder is None or not REVIEWER_ID.fullmatch(reviewer):
            return False
        tls = self.tls(reviewer)
        if not (tls.cert.exists() and tls.key.exists()):
            return False
        principal = tls.own_principal()
        return principal is not None and principal.role == ROLE and principal.id == reviewer

"""`psctl pki issue ROLE ID --out DIR`: a certificate for another principal from the local stack's CA."""

from __future__ import annotations

import os
import pathlib
import shutil
import sys

from pscommon.config import settings
from pscommon.identity import Principal
from pscommon.pki import LocalPki, issue
from services.portal.reviewer.directory import reviewer_password


def issue_command(role: str, ident: str, out: str, server_names: list[str]) -> int:
    cfg = settings()
    if not cfg.pki_dir:
        print(
            "psctl pki: no PSP_PKI_DIR: start the local stack (make up) or point PSP_PKI_DIR at its CA", file=sys.stderr
        )
        return 2
    principal = Principal(cfg.trust_domain, role, ident)
    if Principal.parse(principal.uri) is None:
        print(
            f"psctl pki: {principal.uri!r} is not a valid principal (lower-case letters, digits, . _ -)",
            file=sys.stderr,
        )
        return 2
    pki = LocalPki(pathlib.Path(cfg.pki_dir), cfg.trust_domain)
    issued = issue(pki.ca(), principal, tuple(server_names))
    folder = pathlib.Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{ident}.key").write_bytes(issued.key_pem)
    (folder / f"{ident}.key").chmod(0o600)
    (folder / f"{ident}.pem").write_bytes(issued.cert_pem)
    shutil.copyfile(pki.folder / "ca.pem", folder / "ca.pem")
    print(f"{principal.uri}: {folder / (ident + '.pem')} and .key, with the CA in {folder / 'ca.pem'}")
    desk = os.environ.get("PSP_PORTAL_REVIEWER_PASSWORD", "")
    if role == "reviewer" and desk:
        print(f"reviewer console password of {ident}: {reviewer_password(desk, ident)} (give it to them alone)")
    return 0

"""Signed, expiring links to a case's holder page (issue 18): short, unguessable, nothing personal in them.

A token is `<key id>.<base64url of 31 bytes>`: the case's line hash (10 bytes) and number (4), the holder's
language (1), the expiry in Unix seconds (4) and the first 12 bytes of an HMAC-SHA256 over the key id and those
19 bytes. The case id carries only the keyed hash of the line, never the number. Keys rotate by id: new links
are signed with the active key, links signed with any listed key stay valid until they expire.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import time
from dataclasses import dataclass

_CASE_RE = re.compile(r"case-([0-9a-f]{20})-([0-9]{1,9})", re.ASCII)
_KID_RE = re.compile(r"[A-Za-z0-9_-]{1,16}", re.ASCII)
_BODY = struct.Struct(">10sIBI")
_MAC_LEN = 12
# Exactly the unpadded url-safe base64 of body and MAC: the decoder alone skips stray characters and ignores the
# last character's spare bits, so one link would have many spellings.
_B64_LEN = -(-(_BODY.size + _MAC_LEN) * 4 // 3)  # 31 bytes: 42 characters
_B64_RE = re.compile(rf"[A-Za-z0-9_-]{{{_B64_LEN}}}", re.ASCII)
_LANGS = ("zh", "en")
DEFAULT_TTL_S = 14 * 86400  # a case waits for its holder for days or weeks; reminders carry fresh links


class LinkError(Exception):
    """Why a link is refused: malformed, unknown_key, tampered or expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Link:
    case_id: str
    language: str
    expires_at: int  # Unix seconds


def parse_keys(spec: str) -> dict[str, bytes]:
    """'kid=base64key,kid2=base64key' -> {kid: key}; keys of at least 16 bytes."""
    keys: dict[str, bytes] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        kid, _, b64 = item.partition("=")
        if not _KID_RE.fullmatch(kid):
            raise ValueError(f"link key id {kid!r}: 1-16 letters, digits, '-' or '_'")
        key = base64.b64decode(b64)
        if len(key) < 16:
            raise ValueError(f"link key {kid!r} must be at least 16 bytes")
        keys[kid] = key
    return keys


class LinkSigner:
    def __init__(self, keys: dict[str, bytes], active_key_id: str, ttl_s: int = DEFAULT_TTL_S) -> None:
        if active_key_id not in keys:
            raise ValueError("the active link key id has no key")
        self._keys = dict(keys)
        self._active = active_key_id
        self.ttl_s = ttl_s

    def sign(self, case_id: str, language: str, now: float | None = None) -> str:
        m = _CASE_RE.fullmatch(case_id)
        if m is None:
            raise ValueError("not a case id")
        expires = int((time.time() if now is None else now) + self.ttl_s)
        body = _BODY.pack(bytes.fromhex(m[1]), int(m[2]), _LANGS.index(_lang(language)), expires)
        raw = body + self._mac(self._active, body)
        return f"{self._active}.{_encode(raw)}"

    def verify(self, token: str, now: float | None = None) -> Link:
        kid, dot, b64 = token.partition(".")
        if not dot or not _KID_RE.fullmatch(kid) or not _B64_RE.fullmatch(b64):
            raise LinkError("malformed")
        try:
            raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
        except (binascii.Error, ValueError) as err:
            raise LinkError("malformed") from err
        if len(raw) != _BODY.size + _MAC_LEN or _encode(raw) != b64:
            raise LinkError("malformed")
        if kid not in self._keys:
            raise LinkError("unknown_key")
        body, mac = raw[: _BODY.size], raw[_BODY.size :]
        if not hmac.compare_digest(mac, self._mac(kid, body)):
            raise LinkError("tampered")
        line, seq, lang, expires = _BODY.unpack(body)
        if lang >= len(_LANGS):
            raise LinkError("tampered")
        if expires < (time.time() if now is None else now):
            raise LinkError("expired")
        return Link(f"case-{line.hex()}-{seq}", _LANGS[lang], expires)

    def _mac(self, kid: str, body: bytes) -> bytes:
        return hmac.new(self._keys[kid], kid.encode() + b"." + body, hashlib.sha256).digest()[:_MAC_LEN]


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _lang(language: str) -> str:
    return "zh" if language == "zh" else "en"


def signer_from_settings(keys_spec: str, active: str, ttl_s: int = DEFAULT_TTL_S) -> LinkSigner | None:
    """None when no link keys are configured (messages then go out without a link)."""
    if not keys_spec:
        return None
    keys = parse_keys(keys_spec)
    return LinkSigner(keys, active or next(iter(keys)), ttl_s)


def link_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/{token}"

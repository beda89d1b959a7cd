"""Files a holder uploads (liveness video, appeal evidence), sealed at rest like the platform's other evidence.

Each file is AES-256-GCM sealed with the codec keys (pscommon/codec.py Sealer: key id kept beside it, the
upload's id as associated data) and stored under a random id; the platform sees only the reference
`upload:<id>` (the verification service seals that with the appeal). Reviewers open it here, in the portal.
Files past the retention period are deleted.
"""

from __future__ import annotations

import json
import pathlib
import re
import time
import uuid
from dataclasses import dataclass

from pscommon.codec import Sealer

PREFIX = "upload:"
_REF_RE = re.compile(r"upload:([0-9a-f]{32})", re.ASCII)
# What a holder may upload, by the file's first bytes (the browser's content type is not trusted).
_MAGIC = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "application/pdf": (b"%PDF-",),
}
_VIDEO_MAGIC = {"video/mp4": 4, "video/quicktime": 4, "video/webm": 0}  # ftyp box at 4; EBML at 0
# What phones record: an ISO/QuickTime file opens with an `ftyp` box naming one of these major brands. Anything
# else with `ftyp` at byte 4 (an HTML page, a script) is not a video.
_BRANDS = {
    b"isom",
    b"iso2",
    b"iso4",
    b"iso5",
    b"iso6",
    b"mp41",
    b"mp42",
    b"avc1",
    b"M4V ",
    b"qt  ",
    b"3gp4",
    b"3gp5",
    b"3gp6",
    b"3g2a",
    b"mmp4",
    b"MSNV",
    b"dash",
}
EVIDENCE_TYPES = tuple(_MAGIC)
VIDEO_TYPES = tuple(_VIDEO_MAGIC)


def sniff(data: bytes) -> str | None:
    """The content type the bytes really are, among the accepted ones; None for anything else."""
    for kind, magics in _MAGIC.items():
        if any(data.startswith(m) for m in magics):
            return kind
    if data[4:8] == b"ftyp" and data[8:12] in _BRANDS and 16 <= int.from_bytes(data[:4], "big") <= 4096:
        return "video/quicktime" if data[8:12] == b"qt  " else "video/mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return None


@dataclass(frozen=True)
class Opened:
    content_type: str
    name: str
    data: bytes


class SealedUploads:
    def __init__(self, folder: pathlib.Path, sealer: Sealer, retention_s: int) -> None:
        self.folder = folder
        self.sealer = sealer
        self.retention_s = retention_s

    def put(self, data: bytes, content_type: str, name: str) -> str:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        uid = uuid.uuid4()
        meta = json.dumps({"type": content_type, "name": name[:100]}).encode()
        kid, sealed = self.sealer.seal(len(meta).to_bytes(4, "big") + meta + data, uid.bytes)
        tmp = self.folder / f".{uid.hex}"
        tmp.write_bytes(kid.encode() + b"\n" + sealed)
        tmp.replace(self.folder / uid.hex)
        return PREFIX + uid.hex

    def open(self, ref: str) -> Opened | None:
        m = _REF_RE.fullmatch(ref)
        if m is None:
            return None
        path = self.folder / m[1]
        if not path.exists():
            return None
        kid, _, sealed = path.read_bytes().partition(b"\n")
        raw = self.sealer.open(kid.decode(), sealed, uuid.UUID(m[1]).bytes)
        n = int.from_bytes(raw[:4], "big")
        meta = json.loads(raw[4 : 4 + n])
        return Opened(meta["type"], meta["name"], raw[4 + n :])

    def delete(self, ref: str) -> None:
        """Forgets an upload the platform refused (no case refers to it, so nobody could ever open it)."""
        m = _REF_RE.fullmatch(ref)
        if m is not None:
            (self.folder / m[1]).unlink(missing_ok=True)

    def purge(self, now: float | None = None) -> int:
        """Deletes files older than the retention period; how many."""
        if not self.folder.exists():
            return 0
        limit = (time.time() if now is None else now) - self.retention_s
        gone = 0
        for path in self.folder.iterdir():
            if path.stat().st_mtime < limit:
                path.unlink(missing_ok=True)
                gone += 1
        return gone

"""Delivery receipts (SMPP 3.4 Appendix B text) and what they mean for a notification."""

from __future__ import annotations

import re
from dataclasses import dataclass

_RECEIPT_RE = re.compile(r"id:(?P<id>\S+).*?stat:(?P<stat>[A-Z]+)(?:.*?err:(?P<err>\w+))?", re.S)

# Final states; ENROUTE/ACCEPTD are intermediate.
DELIVERED_STATS = {"DELIVRD"}
FAILED_STATS = {"UNDELIV", "EXPIRED", "REJECTD", "DELETED", "UNKNOWN"}
# Network error codes in receipts that mean "absent subscriber" (MAP error 27 as the SMSC reports it here).
ABSENT_ERRS = {"001", "027"}


@dataclass(frozen=True)
class Receipt:
    message_id: str
    stat: str
    err: str

    @property
    def delivered(self) -> bool:
        return self.stat in DELIVERED_STATS

    @property
    def final(self) -> bool:
        return self.stat in DELIVERED_STATS | FAILED_STATS

    @property
    def outcome(self) -> str:
        return "delivered" if self.delivered else self.stat.lower()

    @property
    def error_class(self) -> str:
        """Why it did not land, as the retry schedule knows it (SMPP 3.4 Appendix B stats, GSM 03.40 errors)."""
        if self.stat == "EXPIRED" or (self.stat == "UNDELIV" and self.err in ABSENT_ERRS):
            return "absent"  # the handset never came back within the validity period, or is detached
        if self.stat in ("UNDELIV", "REJECTD"):
            return "permanent"  # barred, unknown subscriber, refused by the network
        return "temporary"


def parse_receipt(text: bytes) -> Receipt | None:
    m = _RECEIPT_RE.search(text.decode("latin-1"))
    if m is None:
        return None
    return Receipt(m["id"], m["stat"], m["err"] or "")


def encode_sms(body: str) -> tuple[int, bytes]:
    """(data_coding, bytes): GSM default alphabet is not enough for Chinese, so UCS-2 when needed."""
    try:
        return 0x00, body.encode("ascii")
    except UnicodeEncodeError:
        return 0x08, body.encode("utf-16-be")

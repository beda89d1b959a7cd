"""Collects every bad field of a request before answering INVALID_ARGUMENT once."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Collection
from datetime import date

from pscommon.errors import invalid_argument
from pscommon.identity import is_msisdn

PROVINCE_RE = re.compile(r"[0-9]{2}")
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:\-]{8,128}")
EARLIEST_EVENT_S = 946_684_800  # 2000-01-01T00:00:00Z
CLOCK_SKEW_S = 300  # how far ahead of our clock an event time may be


class Violations:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        self.items.append((field, description))

    def check(self, ok: bool, field: str, description: str) -> None:
        if not ok:
            self.add(field, description)

    def request_id(self, value: str, field: str = "request_id") -> None:
        self.check(
            REQUEST_ID_RE.fullmatch(value) is not None,
            field,
            "required: 8-128 characters of letters, digits, '.', '_', ':' or '-' (a UUID is fine)",
        )

    def msisdn(self, value: str, field: str = "msisdn") -> None:
        self.check(is_msisdn(value), field, "must be an 11-digit mobile number starting with 1")

    def province(self, value: str, field: str) -> None:
        self.check(
            PROVINCE_RE.fullmatch(value) is not None, field, "must be a 2-digit GB/T 2260 province code, e.g. '44'"
        )

    def event_time(self, seconds: int, field: str) -> None:
        """A time something happened: not before 2000, not after now (beyond a small clock skew)."""
        self.check(
            EARLIEST_EVENT_S <= seconds <= time.time() + CLOCK_SKEW_S,
            field,
            f"required: when it happened, from 2000-01-01 up to now (at most {CLOCK_SKEW_S} s ahead)",
        )

    def required(self, value: str, field: str) -> None:
        self.check(bool(value.strip()), field, "required")

    def uuid(self, value: str, field: str) -> None:
        try:
            uuid.UUID(value)
        except ValueError:
            self.add(field, "must be a UUID as returned by this service")

    def enum(self, value: int, field: str, allowed: Collection[int]) -> None:
        self.check(value in allowed, field, "required: one of the enum's defined values")

    def iso_date(self, value: str, field: str) -> None:
        try:
            date.fromisoformat(value)
        except ValueError:
            self.add(field, "must be a date YYYY-MM-DD")

    def raise_if_any(self) -> None:
        if self.items:
            raise invalid_argument(self.items)

"""Collects every bad field of a request before answering INVALID_ARGUMENT once."""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from datetime import date

from pscommon.errors import invalid_argument
from pscommon.identity import is_msisdn

PROVINCE_RE = re.compile(r"^\d{2}$")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")


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
            bool(REQUEST_ID_RE.match(value)),
            field,
            "required: 8-128 characters of letters, digits, '.', '_', ':' or '-' (a UUID is fine)",
        )

    def msisdn(self, value: str, field: str = "msisdn") -> None:
        self.check(is_msisdn(value), field, "must be an 11-digit mobile number starting with 1")

    def province(self, value: str, field: str) -> None:
        self.check(bool(PROVINCE_RE.match(value)), field, "must be a 2-digit GB/T 2260 province code, e.g. '44'")

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

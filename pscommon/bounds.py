"""Input bounds every server enforces before a handler runs, from the contract (carrier/common/v1/bounds.proto).

Strings: no control characters (free text may break lines), at most 128 characters unless the field says more.
Repeated fields: at most 100 elements unless the field says more. Bytes: at most 4 KiB unless said. Timestamps:
in [2000-01-01, 2100-01-01) with valid nanos; durations within a year. Enums: a defined value. Each service
adds what only it knows (an 11-digit number, a province, an event time not in the future).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from carrier.common.v1 import bounds_pb2

MAX_STRING = 128
MAX_BYTES = 4096
MAX_ITEMS = 100
EARLIEST_S = 946_684_800  # 2000-01-01T00:00:00Z
LATEST_S = 4_102_444_800  # 2100-01-01T00:00:00Z
MAX_DURATION_S = 366 * 86_400
NANOS = 1_000_000_000
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators; free text may keep "\n".
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_FREE_TEXT = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class _Field:
    name: str
    kind: str  # string | bytes | enum | message | by_service | timestamp | duration | map | other
    repeated: bool
    max_len: int
    max_items: int
    control: re.Pattern[str]
    enum_values: frozenset[int]


_plans: dict[str, dict[int, _Field]] = {}


_WELL_KNOWN = {"google.protobuf.Timestamp": "timestamp", "google.protobuf.Duration": "duration"}


def _kind(fd: FieldDescriptor) -> str:
    if fd.type == FieldDescriptor.TYPE_STRING:
        return "string"
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return "bytes"
    if fd.enum_type is not None:
        return "enum"
    if fd.message_type is not None:
        if fd.message_type.GetOptions().map_entry:
            return "map"
        if fd.message_type.GetOptions().Extensions[bounds_pb2.checked_by_service]:
            return "by_service"  # not walked (each element would only be found to be skipped, on the hot path)
        return _WELL_KNOWN.get(fd.message_type.full_name, "message")
    return "other"


def _plan(desc: Any) -> dict[int, _Field]:
    plan = _plans.get(desc.full_name)
    if plan is None:
        plan = {}
        for fd in desc.fields:
            opts = fd.GetOptions()
            kind = _kind(fd)
            plan[fd.number] = _Field(
                name=fd.name,
                kind=kind,
                repeated=fd.is_repeated,
                max_len=opts.Extensions[bounds_pb2.max_len] or (MAX_BYTES if kind == "bytes" else MAX_STRING),
                max_items=opts.Extensions[bounds_pb2.max_items] or MAX_ITEMS,
                control=_CONTROL_FREE_TEXT if opts.Extensions[bounds_pb2.multiline] else _CONTROL,
                enum_values=frozenset(v.number for v in fd.enum_type.values) if fd.enum_type else frozenset(),
            )
        _plans[desc.full_name] = plan
    return plan


def violations(msg: Message, prefix: str = "") -> list[tuple[str, str]]:
    """Every field of `msg` (and of the messages inside it) outside its bounds, as (field path, description)."""
    found: list[tuple[str, str]] = []
    _check(msg, prefix, found)
    return found


def _check(msg: Message, prefix: str, found: list[tuple[str, str]]) -> None:
    desc = msg.DESCRIPTOR
    if desc.GetOptions().Extensions[bounds_pb2.checked_by_service]:
        return
    plan = _plan(desc)
    for fd, value in msg.ListFields():
        f = plan[fd.number]
        path = f"{prefix}{f.name}"
        if f.kind == "map":
            if len(value) > f.max_items:
                found.append((path, f"at most {f.max_items} entries"))
            continue
        if f.repeated:
            if len(value) > f.max_items:
                found.append((path, f"at most {f.max_items} elements, got {len(value)}"))
                continue
            if f.kind == "by_service":
                continue
            for i, item in enumerate(value):
                _value(f, item, f"{path}[{i}]", found)
        else:
            _value(f, value, path, found)


def _value(f: _Field, value: Any, path: str, found: list[tuple[str, str]]) -> None:
    kind = f.kind
    if kind == "string":
        if len(value) > f.max_len:
            found.append((path, f"at most {f.max_len} characters"))
        elif f.control.search(value):
            found.append((path, "must not contain control characters"))
    elif kind == "bytes":
        if len(value) > f.max_len:
            found.append((path, f"at most {f.max_len} bytes"))
    elif kind == "enum":
        if value not in f.enum_values:
            found.append((path, "not a defined value of its enum"))
    elif kind == "timestamp":
        if not (EARLIEST_S <= value.seconds < LATEST_S and 0 <= value.nanos < NANOS):
            found.append((path, "must be a time from 2000-01-01 to 2099-12-31 (UTC)"))
    elif kind == "duration":
        if not (abs(value.seconds) <= MAX_DURATION_S and abs(value.nanos) < NANOS):
            found.append((path, "must be a duration of at most a year"))
    elif kind == "message":
        _check(value, f"{path}.", found)

"""A property-based fuzz (hypothesis) of every RPC of the running stack.

Every method of every server (the four services, the simulated outside systems, and the health and reflection
services each server carries) gets requests generated from its message descriptor, valid-looking and hostile
values mixed, and corrupted bytes (random, truncated, wrong wire types, bad UTF-8, oversized). They go out as
generic gRPC calls (raw bytes) as a principal the access table lets call the method, so they reach the handlers
rather than the authorisation check. For every call:

- only documented codes: OK, INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS, RESOURCE_EXHAUSTED,
  PERMISSION_DENIED for a request naming another's authority (never the access check), UNAVAILABLE only from a
  method that calls another system, DEADLINE_EXCEEDED only where this test sets a short deadline (a stream or a
  long poll); never UNKNOWN or INTERNAL, and never a hang;
- INVALID_ARGUMENT carries a BadRequest of at most 20 violations and fits the client's metadata limit;
- no traceback is logged (by the server's guard, or by gRPC for a handler outside it);
- a refused call changes no row of the services' schemas and nothing of the simulated network (HLR barring and
  location per handset, registry, push devices, faults). A client stream answered once is one request, unless
  its error names the refused batch (batch_index: IngestCdrs applies each batch as its own request); a
  bidirectional stream acknowledges each message, so only a one-message one is held to this. A change seen while
  earlier accepted calls may still be at work counts when the same call, sent again as a new request once all is
  quiet, changes something again.

Afterwards every server still reports SERVING, and a fault the simulators accept is one the faulty method can
answer with. Numbers the fuzz may get accepted lie in 1999xxxxxxx (no other test uses them), cells in 460-99-*,
faults only name targets nobody calls and are cleared at the end, so what the fuzz changes does not reach other
tests. The run ends with the requests sent and the codes seen; `-s` prints them per method.

PSP_FUZZ_EXAMPLES sets the examples per method (default 60), e.g. a longer run:
    PSP_FUZZ_EXAMPLES=1000 .venv/bin/python -m pytest tests/security/test_fuzz.py -s
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import date
from types import ModuleType
from typing import Any, TypeVar

import asyncpg
import grpc
import pytest
import pytest_asyncio
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from carrier.common.v1 import bounds_pb2, common_pb2
from carrier.hlr.v1 import hlr_pb2
from carrier.idcheck.v1 import idcheck_pb2
from carrier.ivr.v1 import ivr_pb2
from carrier.notify.v1 import notify_pb2
from carrier.push.v1 import push_pb2
from carrier.registry.v1 import registry_pb2
from carrier.scoring.v1 import scoring_pb2
from carrier.simulator.v1 import simulator_pb2
from carrier.suspension.v1 import suspension_pb2
from carrier.verification.v1 import verification_pb2
from contracts.case import UPDATE_WAIT_STAGE, CaseStatus
from pscommon.errors import MAX_VIOLATIONS, parse_details
from pscommon.identity import line_hash
from pscommon.validation import REQUEST_ID_RE
from tests.helpers import TABLE, allowed_principal, connect, open_case, register_line

log = logging.getLogger(__name__)
T = TypeVar("T")

EXAMPLES = int(os.environ.get("PSP_FUZZ_EXAMPLES", "60"))
CALL_TIMEOUT_S = 10.0  # a unary or client-streaming call still unanswered by then hangs
STREAM_DEADLINE_S = 0.15  # a server stream: read at most one response within this
LONG_POLL_DEADLINE_S = 1.0  # GetNotification may wait for an outcome until the caller's deadline
WRITE_PAUSE_S = 0.005  # between the messages of a request stream
METADATA_LIMIT = 8 * 1024  # gRPC's default limit on the metadata a client accepts
SCHEMAS = ("scoring", "suspension", "notify", "verification")
# Where an unhandled error of a handler is logged with its traceback: the guard, or gRPC itself outside it.
TRACEBACKS = {"pscommon.grpc_server", "grpc._cython.cygrpc"}

# Which server carries which protos ("simulators": the outside systems); health and reflection are on every one.
SERVERS: dict[str, tuple[ModuleType, ...]] = {
    "scoring": (scoring_pb2,),
    "suspension": (suspension_pb2,),
    "notify": (notify_pb2,),
    "verification": (verification_pb2,),
    "simulators": (registry_pb2, hlr_pb2, push_pb2, ivr_pb2, idcheck_pb2, simulator_pb2),
}
ON_EVERY_SERVER = (health_pb2, reflection_pb2)

# LookupHolder counts lookups per caller; the fuzz asks as the hall so customer service keeps its budget for others.
PRINCIPAL_FOR = {"carrier.verification.v1.VerificationService/LookupHolder": "hall"}
# Methods that call another system (HLR, registry, identity check, suspension, Temporal): UNAVAILABLE is theirs.
CALLS_OUT = {
    "carrier.suspension.v1.SuspensionService/ChangeLineState",
    "carrier.suspension.v1.SuspensionService/GetLine",
    *(
        f"carrier.verification.v1.VerificationService/{m.name}"
        for m in verification_pb2.DESCRIPTOR.services_by_name["VerificationService"].methods
        if m.name not in ("ListReviews", "GetReview")
    ),
}
LONG_POLLS = {"carrier.notify.v1.NotifyService/GetNotification"}
# A refused call may count itself where counting attempts is the point (by design, not a change of state):
# holder lookups are limited per line and caller so that nobody can guess a holder by trying.
COUNTED_WHEN_REFUSED: dict[str, set[str]] = {
    "carrier.verification.v1.VerificationService/LookupHolder": {"verification.holder_lookups"},
}

DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}


@dataclass(frozen=True)
class Target:
    """One method, the servers that carry it, and who calls it."""

    method: MethodDescriptor
    servers: tuple[str, ...]
    principal: str

    @property
    def name(self) -> str:
        return f"{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def path(self) -> str:
        return f"/{self.name}"

    @property
    def examples(self) -> int:
        # Health and reflection are the library's; a stream that waits for events costs its deadline.
        if self.servers == tuple(SERVERS) or self.method.server_streaming and not self.method.client_streaming:
            return max(1, EXAMPLES // 2)
        return EXAMPLES


LISTED = {name.replace("/", ".") for name in TABLE.methods}


def _targets() -> list[Target]:
    found = []
    for server, modules in SERVERS.items():
        for module in modules:
            for service in module.DESCRIPTOR.services_by_name.values():
                for m in service.methods:
                    name = f"{service.full_name}/{m.name}"
                    found.append(Target(m, (server,), PRINCIPAL_FOR.get(name) or allowed_principal(name)))
    for module in ON_EVERY_SERVER:
        for service in module.DESCRIPTOR.services_by_name.values():
            # Health/List is in the library's proto but not in the access table: refused to everyone.
            found += [Target(m, tuple(SERVERS), "ops") for m in service.methods if m.full_name in LISTED]
    return found


TARGETS = _targets()


# -- what the fuzz sends ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """Lines of the fuzz's own range, registered before it starts, one with an open case: values that reach past
    the checks into the handlers."""

    msisdns: tuple[str, ...]
    holders: tuple[str, ...]
    case_ids: tuple[str, ...]
    line_hashes: tuple[str, ...]


class Payload:
    """One request message on the wire: a generated message serialized, or corrupted bytes. (A plain class: its
    repr is what hypothesis prints for a failing example.)"""

    __slots__ = ("corruption", "data", "message")

    def __init__(self, data: bytes, message: Message | None = None, corruption: str = "") -> None:
        self.data, self.message, self.corruption = data, message, corruption

    def __repr__(self) -> str:
        if self.message is not None:
            return f"{self.message.DESCRIPTOR.name}({_short(self.message)})"
        more = "..." if len(self.data) > 48 else ""
        return f"<{self.corruption}, {len(self.data)} bytes: {self.data[:48]!r}{more}>"


class Call:
    """What one example sends: to which server, and the request messages (one, or a client stream's)."""

    __slots__ = ("payloads", "server")

    def __init__(self, server: str, payloads: tuple[Payload, ...]) -> None:
        self.server, self.payloads = server, payloads

    def __repr__(self) -> str:
        return f"{self.server}: {list(self.payloads)!r}"


def _short(msg: Message, limit: int = 900) -> str:
    """The message on one line, strings as Python literals (every control character visible), long strings and
    lists abridged and said so."""
    parts = []
    for fd, value in msg.ListFields():
        if fd.is_repeated:
            items = [_field_value(fd, v) for v in list(value)[:3]]
            more = f", … {len(value)} in all" if len(value) > 3 else ""
            parts.append(f"{fd.name}: [{', '.join(items)}{more}]")
        else:
            parts.append(f"{fd.name}: {_field_value(fd, value)}")
    text = ", ".join(parts)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _field_value(fd: FieldDescriptor, value: Any) -> str:
    if fd.message_type is not None:
        return f"{{{_short(value, 400)}}}"
    if fd.enum_type is not None:
        known = fd.enum_type.values_by_number.get(value)
        return known.name if known is not None else f"{value} (undefined)"
    if isinstance(value, str) and len(value) > 60:
        return f"{value[:24]!r}… ({len(value)} characters)"
    if isinstance(value, bytes) and len(value) > 24:
        return f"{value[:24]!r}… ({len(value)} bytes)"
    return repr(value)


NOW = int(time.time())
EARLIEST_S, LATEST_S = 946_684_800, 4_102_444_800  # the contract's timestamp bounds (2000-01-01, 2100-01-01)
EDGE_SECONDS = (
    -62_135_596_800,  # 0001-01-01
    253_402_300_799,  # 9999-12-31T23:59:59
    2**62,
    -(2**62),
    2**63 - 1,
    -(2**63),
    0,
    -1,
    EARLIEST_S - 1,
    EARLIEST_S,
    LATEST_S - 1,
    LATEST_S,
    NOW + 299,
    NOW + 301,
    NOW + 366 * 86_400,
)
EDGE_NANOS = (-1, 1_000_000_000, -999_999_999, 2**31 - 1, -(2**31))
EDGE_DURATION_S = (2**62, -(2**62), 2**63 - 1, -(2**63), 366 * 86_400, 366 * 86_400 + 1, 301, -1, 315_576_000_001)
INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
EDGE_INTS = (0, 1, -1, 2**31 - 1, -(2**31), 2**31, 2**32 - 1, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1)

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")
# Ways to spoil a valid-looking value just enough.
TAINTS: tuple[Callable[[str], str], ...] = (
    lambda s: s + "\n",
    lambda s: s + "\x00",
    lambda s: "\x00" + s,
    lambda s: s[: len(s) // 2] + "\x1b" + s[len(s) // 2 :],
    lambda s: s + " ",
    lambda s: " " + s,
    lambda s: s[:-1],
    lambda s: s + "0",
    lambda s: s.translate(ARABIC_INDIC),
    lambda s: s.translate(FULLWIDTH),
    lambda s: "\u202e" + s,
    lambda s: s + "\u2028",
    lambda s: s + "\u200b",
    lambda s: s.upper(),
    lambda s: s * 40,
    lambda s: s + "\x85",
)
HOSTILE = (
    "",
    " ",
    "\t",
    "\x00",
    "\x7f",
    "\r\n",
    "\n",
    "\u2029",
    "\ufeff",
    "1",
    "-1",
    "NaN",
    "null",
    "0" * 11,
    "+8619990000001",
    "019990000001",
    "1999000000１",
    "١٩٩٩٠٠٠٠٠٠١",
    "case-",
    "case--1",
    "case-" + "0" * 20,
    "case-" + "0" * 20 + "-",
    "case-" + "0" * 20 + "-0",
    "case-" + "0" * 20 + "--1",
    "case-" + "0" * 20 + "-" + "9" * 30,
    "case-" + "G" * 20 + "-1",
    "case-" + "0" * 20 + "-1-1",
    "00000000-0000-0000-0000-000000000000",
    "{00000000-0000-0000-0000-000000000000}",
    "urn:uuid:00000000-0000-0000-0000-000000000000",
    "0000000000000000000000000000000",
    "2026-02-30",
    "0001-01-01",
    "9999-12-31",
    "20261001",
    "2026-W40-1",
    "'; DROP TABLE lines; --",
    "%s%s%n",
    "{0}{1}",
    "${jndi:ldap://x}",
    "../../../etc/passwd",
    "é" * 129,
    "😀" * 65,
    "x" * 129,
    "x" * 513,
    "x" * 4001,
    "9" * 65_536,
)


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _tag(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


WIRE_OF = {
    FieldDescriptor.TYPE_DOUBLE: 1,
    FieldDescriptor.TYPE_FIXED64: 1,
    FieldDescriptor.TYPE_SFIXED64: 1,
    FieldDescriptor.TYPE_FLOAT: 5,
    FieldDescriptor.TYPE_FIXED32: 5,
    FieldDescriptor.TYPE_SFIXED32: 5,
    FieldDescriptor.TYPE_STRING: 2,
    FieldDescriptor.TYPE_BYTES: 2,
    FieldDescriptor.TYPE_MESSAGE: 2,
}
NASTY = {
    "varint longer than 10 bytes": b"\x08" + b"\xff" * 10 + b"\x01",
    "length past the end": b"\x0a\xff\xff\xff\xff\x07x",
    "negative length": b"\x0a" + b"\xff" * 9 + b"\x01",
    "groups nested 300 deep": b"\x0b" * 300 + b"\x0c" * 300,
    "end group without start": b"\x0c",
    "group never closed": b"\x0b\x08\x01",
    "field number 0": b"\x00\x01",
    "largest field number": _tag(2**29 - 1, 0) + b"\x01",
    "field number past the largest": _varint(2**29 << 3) + b"\x01",
    "wire type 6": b"\x0e\x01",
    "wire type 7": b"\x0f\x01",
    "truncated varint": b"\x08\x80",
    "truncated fixed64": b"\x09\x01\x02",
    "zeros": b"\x00" * 64,
    "ones": b"\xff" * 64,
}
BAD_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"ok\x80", b"\xf4\x90\x80\x80")
OVERSIZED = b"\x00" * (4 * 1024 * 1024 + 64)  # past gRPC's default 4 MiB message limit

# Requests that take one of two fields, not both: a valid-looking one gives one.
EXCLUSIVE = {
    "carrier.verification.v1.GetCaseStatusRequest": ("case_id", "msisdn"),
    "carrier.suspension.v1.ListLineHistoryRequest": ("msisdn", "line_hash"),
}
# Fields a valid-looking request leaves out half the time (giving one asks for something else).
OPTIONAL = {
    "carrier.verification.v1.SubmitAppealRequest": ("review_id",),  # none: a new appeal
    "carrier.verification.v1.GetRequirementsRequest": ("msisdn",),
}
ZERO: dict[int, Any] = {
    FieldDescriptor.TYPE_STRING: "",
    FieldDescriptor.TYPE_BYTES: b"",
    FieldDescriptor.TYPE_BOOL: False,
    FieldDescriptor.TYPE_DOUBLE: 0.0,
    FieldDescriptor.TYPE_FLOAT: 0.0,
}
# Fields whose every value must keep other tests safe (a replaced cell list would unlist everyone's cells).
FIXED: dict[tuple[str, str], Any] = {("carrier.scoring.v1.UpdateCellsRequest", "replace"): False}


class Requests:
    """Draws requests from message descriptors: mostly valid-looking (to reach the handlers' logic), hostile
    values, and corrupted bytes. Every choice shrinks towards a valid-looking value, so a failing example
    shrinks to the field that matters."""

    def __init__(self, seed: Seed) -> None:
        ours = st.integers(0, 9_999_999).map(lambda n: f"1999{n:07d}")
        msisdn = st.sampled_from(seed.msisdns) | ours
        hex20 = st.binary(min_size=10, max_size=10).map(bytes.hex)
        province = st.sampled_from(["44", "11", "65", "51", "31", "00", "99"])
        uuid_ = st.uuids().map(str)
        holder = st.sampled_from([*seed.holders, "forged-holder", "holder-44-9999"])
        words = st.sampled_from(["fuzz", "请核实身份", "please verify", "line one\nline two", "ok"])
        services = [t.method.containing_service.full_name for t in TARGETS]
        self.valid: dict[str, SearchStrategy[str]] = {
            "msisdn": msisdn,
            "peer": ours,
            "alternate_contact": ours,
            "recent_contacts": ours,
            "add": ours | ours.map(lambda s: "+" + s),
            "remove": ours | ours.map(lambda s: "+" + s),
            "province": province,
            "home_province": province,
            "peer_province": province,
            "caller_province": province,
            "visited_province": province,
            "request_id": st.uuids().map(lambda u: u.hex)
            | uuid_
            | st.integers(0, 10**8).map(lambda n: f"fuzz:{n:08d}"),
            "case_id": st.sampled_from(seed.case_ids)
            | st.tuples(st.sampled_from(seed.line_hashes) | hex20, st.integers(1, 99)).map(
                lambda t: f"case-{t[0]}-{t[1]}"
            ),
            "line_hash": st.sampled_from(seed.line_hashes) | hex20,
            "review_id": uuid_,
            "notification_id": uuid_,
            "opened_at": st.dates(date(1990, 1, 1), date(2030, 12, 31)).map(date.isoformat),
            "language": st.sampled_from(["zh", "en"]),
            "holder_ref": holder,
            "claimed_holder_ref": holder,
            "liveness_token": st.sampled_from(["video-fuzz-0001", "spoof-fuzz"]),
            "province_code_token": st.sampled_from([f"44-{h}" for h in seed.holders] + ["44-nobody"]),
            "code_token": st.sampled_from([f"44-{h}" for h in seed.holders] + ["44-nobody"]),
            "service_password": st.sampled_from(["730519", "000000"]),
            "country": st.sampled_from(["CN", "NP", "US", "cn", "C1"]),
            "cell_id": st.tuples(st.integers(0, 99_999), st.integers(0, 99_999)).map(
                lambda t: f"460-99-{t[0]:05d}-{t[1]:05d}"
            ),
            "imei": st.sampled_from(["356938035643809", "000000000000000"]),
            "enterprise": st.sampled_from(["fuzz-courier", ""]),
            "hall_id": st.sampled_from(["44-TIANHE-01", "GZ-TIANHE-01"]),
            "agent_id": st.integers(0, 999).map(lambda n: f"fuzz-agent-{n}"),
            "caller_id": st.integers(0, 10**6).map(lambda n: f"fuzz-app-{n}"),
            "reviewer_id": st.sampled_from(["", "reviewer-1", "reviewer-2"]),
            "push_token": st.sampled_from(["fuzz-push-0001", "fuzz-push-unknown"]),
            "email": st.sampled_from(["fuzz@example.com", "nobody@invalid.example"]),
            "kind": st.sampled_from(["workflow", "agent", "reviewer", "police"]),
            "id": st.sampled_from(["fuzz-worker", "agent-1"]),
            "order_ref": st.sampled_from(["PSB-2026-0001"]),
            "code": st.sampled_from(["CALL_BURST_NEW_PEERS", "X"]),
            "evidence_refs": st.sampled_from(["employment-letter", "payslip"]),
            "extra_evidence": st.sampled_from(["employment-letter", "payslip"]),
            # Faults only for targets nobody calls: a real one would fail or stall every service using it.
            "target": st.integers(0, 99).map(lambda n: f"fuzz.nobody.calls.{n}"),
            "error": st.sampled_from(["UNAVAILABLE", "NOT_FOUND", "OK", "INTERNAL", "ESME_RTHROTTLED", "nope"]),
            "service": st.sampled_from(["", *services, "grpc.health.v1.Health", "nope"]),
            "list_services": st.just(""),
            "file_containing_symbol": st.sampled_from([*services, "carrier.common.v1.Reason", "nope.Nope"]),
            "file_by_filename": st.sampled_from(["carrier/scoring/v1/scoring.proto", "nope.proto", "../etc"]),
            "containing_type": st.sampled_from(["google.protobuf.FieldOptions", "carrier.common.v1.Reason"]),
            "all_extension_numbers_of_type": st.sampled_from(["google.protobuf.FieldOptions", "nope"]),
        }
        self.any_valid = st.one_of(*self.valid.values(), words)
        self.pins: dict[str, str | int] = {
            "msisdn": seed.msisdns[0],
            "case_id": seed.case_ids[0],
            "line_hash": seed.line_hashes[0],
            "holder_ref": seed.holders[0],
            "claimed_holder_ref": seed.holders[0],
            "province_code_token": f"44-{seed.holders[0]}",
            "code_token": f"44-{seed.holders[0]}",
            **dict.fromkeys(("province", "home_province", "caller_province"), "44"),
            "risk_level": common_pb2.RISK_LEVEL_MEDIUM,  # the seeded case's
        }
        self.words = words
        self.long = st.sampled_from([129, 257, 513, 1001, 4001, 65_536]).flatmap(
            lambda n: st.sampled_from(["9" * n, "é" * n, "1999" + "0" * n, "a\n" * n])
        )
        self.random_text = st.text(max_size=40)
        self.taint = st.integers(0, len(TAINTS) - 1)
        self.hostile = st.sampled_from(HOSTILE)
        # Whether a field is set: nearly always in a valid-looking request, half the time otherwise.
        self.present = {True: st.integers(0, 19).map(lambda n: n < 19), False: st.integers(0, 9).map(lambda n: n < 5)}

    # A choice among alternatives, weighted: index 0 is where shrinking goes.
    @staticmethod
    def _pick(draw: DrawFn, weights: Sequence[int]) -> int:
        n = draw(st.integers(0, sum(weights) - 1))
        for i, w in enumerate(weights):
            if n < w:
                return i
            n -= w
        raise AssertionError("unreachable")

    def text(self, draw: DrawFn, fd: FieldDescriptor, valid: bool) -> str:
        own = self.valid.get(fd.name, self.words)
        kind = self._pick(draw, (40, 1, 1, 1, 1, 0) if valid else (4, 2, 3, 4, 2, 2))
        if kind == 0:
            return draw(own)
        if kind == 1:
            return draw(self.any_valid)
        if kind == 2:
            return TAINTS[draw(self.taint)](draw(own))
        if kind == 3:
            return draw(self.hostile)
        if kind == 4:
            return draw(self.long)
        return draw(self.random_text)

    def integer(self, draw: DrawFn, fd: FieldDescriptor, valid: bool) -> int:
        lo, hi = INT_RANGES[fd.type]
        kind = self._pick(draw, (1, 0, 0) if valid else (2, 1, 1))
        if kind == 0:
            return draw(st.integers(max(lo, 0), min(hi, 600)))
        if kind == 1:
            return draw(st.sampled_from([i for i in EDGE_INTS if lo <= i <= hi]))
        return draw(st.integers(lo, hi))

    def enum(self, draw: DrawFn, fd: FieldDescriptor, valid: bool) -> int:
        assert fd.enum_type is not None
        defined = [v.number for v in fd.enum_type.values]
        kind = self._pick(draw, (1, 0, 0) if valid else (3, 1, 1))
        if kind == 0:
            return draw(st.sampled_from([n for n in defined if n] or defined))
        if kind == 1:
            return draw(st.sampled_from(defined))
        return draw(st.sampled_from([-1, max(defined) + 1, 99, 2**31 - 1, -(2**31)]))

    def seconds(self, draw: DrawFn, valid: bool, recent: SearchStrategy[int], edges: Sequence[int]) -> int:
        kind = self._pick(draw, (1, 0, 0) if valid else (2, 2, 1))
        if kind == 0:
            return draw(recent)
        if kind == 1:
            return draw(st.sampled_from(edges))
        return draw(st.integers(-(2**63), 2**63 - 1))

    def nanos(self, draw: DrawFn, valid: bool) -> int:
        kind = self._pick(draw, (1, 0) if valid else (3, 1))
        return draw(st.integers(0, 999_999_999)) if kind == 0 else draw(st.sampled_from(EDGE_NANOS))

    def scalar(self, draw: DrawFn, fd: FieldDescriptor, valid: bool, depth: int) -> Any:
        if fd.type == FieldDescriptor.TYPE_STRING:
            return self.text(draw, fd, valid)
        if fd.type == FieldDescriptor.TYPE_BYTES:
            return draw(st.binary(max_size=64) | st.sampled_from([b"\x00" * 4097, b"\xff" * 100]))
        if fd.type == FieldDescriptor.TYPE_BOOL:
            return draw(st.booleans())
        if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return draw(st.floats(width=64 if fd.type == FieldDescriptor.TYPE_DOUBLE else 32))
        if fd.type == FieldDescriptor.TYPE_ENUM:
            return self.enum(draw, fd, valid)
        if fd.type in INT_RANGES:
            return self.integer(draw, fd, valid)
        assert fd.message_type is not None
        return self.message(draw, fd.message_type, valid, depth + 1)

    def message(self, draw: DrawFn, desc: Descriptor, valid: bool, depth: int = 0) -> Message:
        msg: Any = message_factory.GetMessageClass(desc)()
        if desc.full_name == "google.protobuf.Timestamp":
            recent = st.integers(NOW - 90 * 86_400, NOW)
            msg.seconds = self.seconds(draw, valid, recent, EDGE_SECONDS)
            msg.nanos = self.nanos(draw, valid)
            return msg
        if desc.full_name == "google.protobuf.Duration":
            msg.seconds = self.seconds(draw, valid, st.integers(0, 300), EDGE_DURATION_S)
            msg.nanos = self.nanos(draw, valid)
            return msg
        if depth > 3:
            return msg
        chosen = {o.full_name: draw(st.integers(-1, len(o.fields) - 1)) for o in desc.oneofs}
        for fd in desc.fields:
            fixed = FIXED.get((desc.full_name, fd.name), None)
            if fixed is not None:
                setattr(msg, fd.name, fixed)
                continue
            if fd.containing_oneof is not None:
                i = chosen[fd.containing_oneof.full_name]
                if i < 0 or fd.containing_oneof.fields[i] is not fd:
                    continue
            elif not draw(self.present[valid]):
                continue  # left unset (shrinks to set: a valid-looking request has every field)
            self.set(draw, msg, fd, valid, depth)
        return msg

    def set(self, draw: DrawFn, msg: Message, fd: FieldDescriptor, valid: bool, depth: int) -> None:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            return  # no request carries a map
        if not fd.is_repeated:
            value = self.scalar(draw, fd, valid, depth)
            if fd.message_type is not None:
                getattr(msg, fd.name).CopyFrom(value)
            else:
                setattr(msg, fd.name, value)
            return
        items = getattr(msg, fd.name)
        if not valid and draw(st.integers(0, 9)) == 9:  # one element past the bound, the elements left empty
            limit = fd.GetOptions().Extensions[bounds_pb2.max_items] or 100
            if fd.message_type is not None:
                for _ in range(limit + 1):
                    items.add()
            else:
                items.extend([ZERO.get(fd.type, 0)] * (limit + 1))
            return
        for _ in range(draw(st.integers(1 if valid else 0, 3))):
            value = self.scalar(draw, fd, valid, depth)
            if fd.message_type is not None:
                items.add().CopyFrom(value)
            else:
                items.append(value)

    def corrupt(self, draw: DrawFn, desc: Descriptor) -> Payload:
        kind = self._pick(draw, (3, 3, 3, 2, 2, 2, 2, 1))
        if kind == 0:
            return Payload(draw(st.binary(max_size=200)), corruption="random bytes")
        if kind == 7:
            return Payload(OVERSIZED, corruption="past the 4 MiB message limit")
        valid = self.message(draw, desc, True).SerializeToString()
        if kind == 1:
            cut = draw(st.integers(0, max(0, len(valid) - 1)))
            return Payload(valid[:cut] if valid else b"\x0a", corruption=f"valid message cut at {cut}/{len(valid)}")
        if kind == 2:
            fields = list(desc.fields)
            number, right = 1, set()
            if fields:
                fd = draw(st.sampled_from(fields))
                number, right = fd.number, {WIRE_OF.get(fd.type, 0)} | ({2} if fd.is_repeated else set())
            wire = draw(st.sampled_from([w for w in (0, 1, 2, 3, 5) if w not in right]))
            body = {0: _varint(150), 1: b"\x01" * 8, 2: b"\x03abc", 3: _tag(number, 4), 5: b"\x01" * 4}[wire]
            wrong = _tag(number, wire) + body
            front = draw(st.booleans())
            return Payload(
                wrong + valid if front else valid + wrong, corruption=f"field {number} with wire type {wire}"
            )
        if kind == 3:
            strings = [f.number for f in desc.fields if f.type == FieldDescriptor.TYPE_STRING]
            number = draw(st.sampled_from(strings)) if strings else 1
            bad = draw(st.sampled_from(BAD_UTF8))
            return Payload(valid + _tag(number, 2) + _varint(len(bad)) + bad, corruption=f"bad UTF-8 in field {number}")
        if kind == 4:
            what = draw(st.sampled_from(sorted(NASTY)))
            return Payload(valid + NASTY[what], corruption=what)
        if kind == 5:
            tail = draw(st.binary(min_size=1, max_size=64))
            return Payload(valid + tail, corruption="valid message and random bytes")
        other = self.message(draw, desc, False).SerializeToString()
        return Payload(valid + other, corruption="two messages merged")

    def payload(self, draw: DrawFn, desc: Descriptor) -> Payload:
        kind = self._pick(draw, (5, 3, 2))
        if kind == 2:
            return self.corrupt(draw, desc)
        msg = self.message(draw, desc, valid=kind == 0)
        if kind == 0:
            pair = EXCLUSIVE.get(desc.full_name)
            if pair:
                msg.ClearField(pair[draw(st.integers(0, 1))])
            for name in OPTIONAL.get(desc.full_name, ()):
                if draw(st.booleans()):
                    msg.ClearField(name)
            if draw(st.booleans()):
                self.pin(msg)
        return Payload(msg.SerializeToString(), msg)

    def pin(self, msg: Message) -> None:
        """The seeded line's number, case, holder and province wherever the request names one, so that they
        belong together (a case of this line, the holder of this number) and the request reaches deeper."""
        for fd, value in msg.ListFields():
            if fd.message_type is not None:
                for item in value if fd.is_repeated else [value]:
                    self.pin(item)
            elif fd.name in self.pins and not fd.is_repeated:
                value = self.pins[fd.name]
                if isinstance(value, str) == (fd.type == FieldDescriptor.TYPE_STRING):
                    setattr(msg, fd.name, value)

    def calls(self, target: Target) -> SearchStrategy[Call]:
        desc = target.method.input_type

        @st.composite
        def call(draw: DrawFn) -> Call:
            server = draw(st.sampled_from(target.servers))
            n = draw(st.integers(0, 3)) if target.method.client_streaming else 1
            return Call(server, tuple(self.payload(draw, desc) for _ in range(n)))

        return call()


# -- what the stack answers ----------------------------------------------------------------------------------------


class Finding(AssertionError):
    """The stack broke a promise; subclasses keep different kinds apart when hypothesis reports several."""


class UndocumentedCode(Finding):
    pass


class Hang(Finding):
    pass


class BadErrorDetails(Finding):
    pass


class RefusedButChanged(Finding):
    pass


class LoggedError(Finding):
    pass


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    details: str = ""
    trailers: tuple[tuple[str, str | bytes], ...] = ()
    error: grpc.aio.AioRpcError | None = None


def _client_race(target: Target, out: Outcome) -> bool:
    """grpcio's aio client reports an INTERNAL of its own when the server has answered while the client was still
    writing the request stream (grpc/grpc#36066); that is not the server's answer, so the call is made again."""
    return (
        target.method.client_streaming
        and out.code == grpc.StatusCode.INTERNAL
        and out.details == "Internal error from Core"
        and all(k != "grpc-status-details-bin" for k, _ in out.trailers)
    )


def _renewed(call: Call) -> Call:
    """The call with every valid request_id replaced by a new one (a malformed one stays, to be refused again)."""
    payloads = []
    for p in call.payloads:
        msg: Any = p.message  # any request message that has a request_id
        if (
            msg is not None
            and "request_id" in msg.DESCRIPTOR.fields_by_name
            and REQUEST_ID_RE.fullmatch(msg.request_id)
        ):
            msg = type(msg).FromString(p.data)
            msg.request_id = f"fuzz-again-{uuid.uuid4().hex}"
            p = Payload(msg.SerializeToString(), msg)
        payloads.append(p)
    return Call(call.server, tuple(payloads))


@dataclass(frozen=True)
class State:
    """What a refused call must leave as it was: per table its rows and the newest row version, and the
    simulated network."""

    tables: dict[str, tuple[int, int]]
    outside: dict[str, object]

    def changes(self, after: State) -> list[str]:
        found = [
            f"{t}: {b[0]} rows → {a[0]}" if a[0] != b[0] else f"{t}: a row written"
            for t in sorted(set(self.tables) | set(after.tables))
            if (b := self.tables.get(t, (0, 0))) != (a := after.tables.get(t, (0, 0)))
        ]
        found += [
            f"{k}: {self.outside.get(k)!r} → {after.outside.get(k)!r}"
            for k in sorted(set(self.outside) | set(after.outside))
            if self.outside.get(k) != after.outside.get(k)
        ]
        return found


@dataclass
class Fuzzer:
    stack: Any
    seed: Seed
    db: asyncpg.Connection
    snapshot_sql: str
    loop: asyncio.AbstractEventLoop
    requests: Requests
    caplog: pytest.LogCaptureFixture | None = None
    calls: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    messages: collections.Counter[str] = field(default_factory=collections.Counter)
    unconfirmed: list[str] = field(default_factory=list)
    by_design: collections.Counter[str] = field(default_factory=collections.Counter)
    races: collections.Counter[str] = field(default_factory=collections.Counter)
    reasons: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    log_seen: int = 0
    largest_bad_request: tuple[int, int] = (0, 0)  # violations, bytes of trailers
    confirmed: dict[tuple[str | bytes, ...], Finding] = field(default_factory=dict)

    # State --------------------------------------------------------------------------------------------------------

    async def state(self) -> State:
        rows = await self.db.fetch(self.snapshot_sql)
        sims = self.stack.sims
        outside: dict[str, object] = {}
        for msisdn, h in sims.network.handsets.items():
            barring = h.barring.SerializeToString(deterministic=True)
            outside[f"hlr {msisdn!r}"] = (barring, h.location, h.country, h.visited_province)
        for province, subs in sims.registry.by_province.items():
            for msisdn, sub in subs.items():
                outside[f"registry {province!r} {msisdn!r}"] = sub.SerializeToString(deterministic=True)
        for token, msisdn in sims.push.devices.items():
            outside[f"push device {token!r}"] = msisdn
        for target, fault in sims.faults._by_target.items():
            outside[f"fault {target!r}"] = (fault.latency_ms, fault.fail_next, fault.error)
        return State({r["t"]: (r["n"], r["v"]) for r in rows}, outside)

    async def quiesce(self, quiet_s: float = 0.4, limit_s: float = 8.0) -> None:
        """Waits until nothing changes for `quiet_s` (work that earlier accepted calls left running settles)."""
        last, since, until = await self.state(), time.monotonic(), time.monotonic() + limit_s
        while time.monotonic() < until:
            await asyncio.sleep(0.1)
            now = await self.state()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return

    # Calls --------------------------------------------------------------------------------------------------------

    async def invoke(self, target: Target, call: Call) -> Outcome:
        ch: Any = connect(self.stack.cfg, call.server, target.principal)  # generic calls: bytes in, bytes out
        stream: Any
        m, data = target.method, [p.data for p in call.payloads]
        try:
            if m.client_streaming:
                opened = ch.stream_stream if m.server_streaming else ch.stream_unary
                calls: list[Any] = []

                async def messages() -> AsyncIterator[bytes]:
                    for i, message in enumerate(data):
                        if i:  # a moment for the server to refuse what came so far: no write after its answer
                            await asyncio.sleep(WRITE_PAUSE_S)
                        if calls[0].done():
                            return
                        yield message

                stream = opened(target.path)(messages(), timeout=CALL_TIMEOUT_S)
                calls.append(stream)
                if m.server_streaming:
                    while await stream.read() is not grpc.aio.EOF:
                        pass
                    return Outcome(await stream.code(), await stream.details())
                await stream
            elif m.server_streaming:
                stream = ch.unary_stream(target.path)(data[0], timeout=STREAM_DEADLINE_S)
                if await stream.read() is not grpc.aio.EOF:
                    stream.cancel()  # one response is all this test reads
                    return Outcome(grpc.StatusCode.OK)
                return Outcome(await stream.code(), await stream.details())
            else:
                timeout = LONG_POLL_DEADLINE_S if target.name in LONG_POLLS else CALL_TIMEOUT_S
                await ch.unary_unary(target.path)(data[0], timeout=timeout)
        except grpc.aio.AioRpcError as err:
            return Outcome(err.code(), err.details() or "", tuple(err.trailing_metadata() or ()), err)
        return Outcome(grpc.StatusCode.OK)

    def check_answer(self, target: Target, call: Call, out: Outcome) -> None:
        code = out.code
        said = f"{target.name} answered {code.name} ({out.details!r}) to {call!r}"
        if code not in DOCUMENTED:
            raise UndocumentedCode(said)
        info = parse_details(out.error)[0] if out.error is not None else None
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and not (
            target.method.server_streaming or target.name in LONG_POLLS
        ):
            raise Hang(f"{said}: no answer within {CALL_TIMEOUT_S} s")
        if code == grpc.StatusCode.UNAVAILABLE and target.name not in CALLS_OUT:
            raise UndocumentedCode(f"{said}: it calls no other system, and its database is up")
        if code == grpc.StatusCode.PERMISSION_DENIED and (info is None or info.reason == "METHOD_NOT_ALLOWED"):
            raise UndocumentedCode(f"{said}: the access table lets {target.principal} call it")
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            assert out.error is not None
            _, violations = parse_details(out.error)
            if not violations:
                raise BadErrorDetails(f"{said}: no BadRequest naming the fields")
            if len(violations) > MAX_VIOLATIONS:
                raise BadErrorDetails(f"{said}: {len(violations)} violations (at most {MAX_VIOLATIONS})")
            size = sum(len(k) + len(v) for k, v in out.trailers) + len(out.details.encode())
            self.largest_bad_request = max(self.largest_bad_request, (len(violations), size))
            if size > METADATA_LIMIT:
                raise BadErrorDetails(f"{said}: {size} bytes of trailers (limit {METADATA_LIMIT})")
        for key, value in out.trailers:
            if key == "grpc-status-details-bin":
                status = status_pb2.Status.FromString(value if isinstance(value, bytes) else value.encode())
                if status.code != code.value[0]:
                    raise BadErrorDetails(f"{said}: its status details say code {status.code}")

    def check_log(self, target: Target, call: Call) -> None:
        if self.caplog is None:
            return
        records = self.caplog.records
        new, self.log_seen = records[self.log_seen :], len(records)
        errors = [r for r in new if r.name in TRACEBACKS and r.levelno >= logging.ERROR]
        if errors:
            raise LoggedError(f"{target.name} logged {errors[0].getMessage()!r} for {call!r}")

    async def check_call(self, target: Target, call: Call) -> None:
        key: tuple[str | bytes, ...] = (target.name, call.server, *(p.data for p in call.payloads))
        if key in self.confirmed:  # hypothesis replays a failing example: the state it changed stays changed
            raise self.confirmed[key]
        before = await self.state()
        out = await self.invoke(target, call)
        for _ in range(5):
            if not _client_race(target, out):
                break
            self.races[target.name] += 1
            out = await self.invoke(target, call)
        self.calls[target.name][out.code.name] += 1
        reason = parse_details(out.error)[0] if out.error is not None else None
        if reason is not None and out.code != grpc.StatusCode.INVALID_ARGUMENT:
            self.reasons[target.name][f"{out.code.name}/{reason.reason}"] += 1
        self.messages[target.name] += len(call.payloads)
        self.check_log(target, call)
        self.check_answer(target, call, out)
        if out.code in (grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED):
            return  # not refused: answered, or still waiting when this test's short deadline ended
        if target.method.server_streaming and len(call.payloads) > 1:
            return  # a bidirectional stream acknowledges each message: those before the refused one were taken
        if reason is not None and reason.metadata.get("batch_index", "0") != "0":
            return  # a stream of batches, each its own request: those before the refused one were taken
        after = await self.state()
        if after == before:
            return
        allowed = COUNTED_WHEN_REFUSED.get(target.name, set())
        changed = before.changes(after)
        if all(c.split(":")[0] in allowed for c in changed):
            self.by_design[target.name] += 1
            return
        # Work that earlier accepted calls started may still be running: once all is quiet, the same call again
        # (as a new request: valid request ids replaced, so nothing answers it from a record of the first).
        await self.quiesce()
        again_before = await self.state()
        again = await self.invoke(target, _renewed(call))
        again_changed = [c for c in again_before.changes(await self.state()) if c.split(":")[0] not in allowed]
        if again.code != grpc.StatusCode.OK and again_changed:
            self.confirmed[key] = RefusedButChanged(
                f"{target.name} refused {call!r} with {again.code.name} ({again.details!r}) but changed: "
                + "; ".join(again_changed[:10])
            )
            raise self.confirmed[key]
        self.unconfirmed.append(f"{target.name} {out.code.name}: " + "; ".join(changed[:5]))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs `coro` on the stack's event loop from hypothesis's thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=CALL_TIMEOUT_S * 6)

    def explore(self, target: Target) -> None:
        """Hypothesis drives the calls from this thread while the stack serves them on its loop."""

        def fuzz(call: Call) -> None:
            self.run(self.check_call(target, call))

        fuzz.__name__ = fuzz.__qualname__ = f"fuzz_{target.method.containing_service.name}_{target.method.name}"
        settings(
            max_examples=target.examples,
            deadline=None,
            derandomize=True,
            database=None,
            phases=(Phase.explicit, Phase.generate, Phase.shrink),
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )(given(self.requests.calls(target))(fuzz))()

    async def assert_serving(self) -> None:
        for server, modules in SERVERS.items():
            names = ["", *(s.full_name for m in modules for s in m.DESCRIPTOR.services_by_name.values())]
            stub = connect(self.stack.cfg, server, "ops").unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            for name in names:
                got = await stub(health_pb2.HealthCheckRequest(service=name), timeout=5)
                assert got.status == health_pb2.HealthCheckResponse.SERVING, f"{server} {name!r}: {got.status}"

    async def clear_faults(self) -> None:
        clear = connect(self.stack.cfg, "simulators", "ops").unary_unary(
            "/carrier.simulator.v1.FaultInjectionService/ClearFaults",
            request_serializer=simulator_pb2.ClearFaultsRequest.SerializeToString,
            response_deserializer=simulator_pb2.ClearFaultsResponse.FromString,
        )
        await clear(simulator_pb2.ClearFaultsRequest(), timeout=5)

    def summary(self) -> str:
        lines = [f"{'method':<66} {'calls':>6} {'msgs':>6}  codes"]
        by_server: collections.Counter[str] = collections.Counter()
        codes: collections.Counter[str] = collections.Counter()
        for t in TARGETS:
            seen = self.calls.get(t.name, collections.Counter())
            n = sum(seen.values())
            by_server[t.servers[0] if len(t.servers) == 1 else "health and reflection on every server"] += n
            codes.update(seen)
            shown = ", ".join(f"{c} {k}" for c, k in sorted(seen.items(), key=lambda i: -i[1]))
            lines.append(f"{t.name:<66} {n:>6} {self.messages[t.name]:>6}  {shown}")
            if self.reasons.get(t.name):
                lines.append(f"{'':<80}  ({', '.join(f'{r} {k}' for r, k in self.reasons[t.name].most_common())})")
        per_server = ", ".join(f"{server} {n}" for server, n in by_server.items())
        lines.append(f"requests in all: {sum(by_server.values())} ({per_server})")
        lines.append(f"codes in all: {', '.join(f'{c} {n}' for c, n in codes.most_common())}")
        most, size = self.largest_bad_request
        lines.append(f"largest BadRequest: {most} violations; largest INVALID_ARGUMENT trailers: {size} bytes")
        if self.races:
            lines.append(f"client-side write races made again (grpc/grpc#36066): {dict(self.races)}")
        if self.by_design:
            lines.append(f"refused calls that counted themselves by design: {dict(self.by_design)}")
        if self.unconfirmed:
            lines.append(f"changes during a refused call that its repetition did not make ({len(self.unconfirmed)}):")
            lines += [f"  {u}" for u in self.unconfirmed[:20]]
        return "\n".join(lines)


# -- the tests ------------------------------------------------------------------------------------------------------

SEED_MSISDNS = ("19990000001", "19990000002")
SEED_HOLDERS = ("holder-44-fuzz-01", "holder-44-fuzz-02")


@pytest_asyncio.fixture(scope="module")
async def fuzz(stack: Any) -> AsyncIterator[Fuzzer]:
    cfg = stack.cfg
    for msisdn, holder in zip(SEED_MSISDNS, SEED_HOLDERS, strict=True):
        await register_line(cfg, msisdn, "44", holder, push_token=f"fuzz-push-{msisdn[-4:]}")
    case_id = await open_case(stack, SEED_MSISDNS[0], "medium", "restrict")
    await stack.client.get_workflow_handle(case_id).execute_update(UPDATE_WAIT_STAGE, "warned", result_type=CaseStatus)
    seed = Seed(SEED_MSISDNS, SEED_HOLDERS, (case_id,), tuple(line_hash(m, cfg.line_hash_key) for m in SEED_MSISDNS))
    db = await asyncpg.connect(cfg.database_url)
    tables = await db.fetch(
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE' ORDER BY 1, 2",
        list(SCHEMAS),
    )
    sql = " UNION ALL ".join(
        f"SELECT '{r['table_schema']}.{r['table_name']}' AS t, count(*) AS n,"
        f' coalesce(max(xmin::text::bigint), 0) AS v FROM "{r["table_schema"]}"."{r["table_name"]}"'
        for r in tables
    )
    fuzzer = Fuzzer(stack, seed, db, sql, asyncio.get_running_loop(), Requests(seed))
    await fuzzer.quiesce()
    try:
        yield fuzzer
    finally:
        await db.close()


def test_every_method_of_the_access_table_is_fuzzed() -> None:
    assert {t.name for t in TARGETS} == set(TABLE.methods)


# Hypothesis seeds the global `random` for each example and warns when it changes meanwhile: here the stack's own
# thread draws from it (trace ids), not the strategies.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
async def test_generated_and_corrupted_requests(fuzz: Fuzzer, target: Target, caplog: pytest.LogCaptureFixture) -> None:
    fuzz.caplog, fuzz.log_seen = caplog, 0
    try:
        await asyncio.to_thread(fuzz.explore, target)
    finally:
        fuzz.caplog = None
    await fuzz.assert_serving()


PROBED = "/carrier.idcheck.v1.IdentityCheckService/CheckIdentity"  # only verification calls it, on a submission
SMPP_ONLY = ["ESME_RTHROTTLED", "ESME_RSYSERR", "ESME_NO_SUCH_STATUS"]


@pytest.mark.parametrize("error", [*grpc.StatusCode.__members__, *SMPP_ONLY, "", "unavailable"])
async def test_a_fault_the_simulators_accept_is_one_they_can_answer_with(
    fuzz: Fuzzer, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    """SetFault either refuses an error or the faulty method then answers with it (no traceback, no hang)."""
    cfg = fuzz.stack.cfg
    set_fault = connect(cfg, "simulators", "ops").unary_unary(
        "/carrier.simulator.v1.FaultInjectionService/SetFault",
        request_serializer=simulator_pb2.SetFaultRequest.SerializeToString,
        response_deserializer=simulator_pb2.SetFaultResponse.FromString,
    )
    probe = connect(cfg, "simulators", "verification").unary_unary(
        PROBED,
        request_serializer=idcheck_pb2.CheckIdentityRequest.SerializeToString,
        response_deserializer=idcheck_pb2.CheckIdentityResponse.FromString,
    )
    fault = simulator_pb2.Fault(target=PROBED, error=error, fail_next=1)
    try:
        try:
            await set_fault(simulator_pb2.SetFaultRequest(fault=fault), timeout=5)
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
            return
        try:
            await probe(idcheck_pb2.CheckIdentityRequest(request_id="fuzz-fault-probe", holder_ref="h"), timeout=2)
            code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as err:
            code = err.code()
    finally:
        await fuzz.clear_faults()
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name in TRACEBACKS]
    injected = grpc.StatusCode.__members__.get(error or "UNAVAILABLE")
    # An SMPP status on a gRPC method: any documented failure will do.
    answered = code == injected if injected is not None else code in DOCUMENTED - {grpc.StatusCode.OK}
    assert answered and not logged, (
        f"SetFault took error {error!r} for {PROBED}; the next call answered {code.name}"
        + (f" and the simulators logged {logged[0]!r}" if logged else "")
    )


class _Totals:
    """Says at the end of the run how many requests the fuzz sent and what came back (the full table: `-s`)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.write_sep("-", f"fuzz of the running stack ({EXAMPLES} examples per method)")
        for line in self.lines:
            terminalreporter.write_line(line)


async def test_every_server_still_serves_and_no_fault_is_left(fuzz: Fuzzer, request: pytest.FixtureRequest) -> None:
    await fuzz.clear_faults()
    await fuzz.assert_serving()
    summary = fuzz.summary()
    print(f"\nfuzz of the running stack, {EXAMPLES} examples per method\n{summary}")
    log.info("fuzz summary\n%s", summary)
    totals = [line for line in summary.splitlines() if line.startswith(("requests in all", "codes in all"))]
    request.config.pluginmanager.register(_Totals(totals), "psp-fuzz-totals")
    assert not fuzz.stack.sims.faults._by_target, summary
    total = sum(sum(c.values()) for c in fuzz.calls.values())
    assert total >= len(TARGETS), summary

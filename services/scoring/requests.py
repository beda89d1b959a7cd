"""Checks of incoming scoring messages: every bad field named, nothing applied from a bad batch."""

from __future__ import annotations

import time
from collections.abc import Sequence

from carrier.scoring.v1 import scoring_pb2
from pscommon.errors import permission_denied
from pscommon.validation import CLOCK_SKEW_S, EARLIEST_EVENT_S, Violations

DIRECTIONS = {scoring_pb2.DIRECTION_OUT, scoring_pb2.DIRECTION_IN}
SERVICES = {scoring_pb2.SERVICE_KIND_VOICE, scoring_pb2.SERVICE_KIND_SMS}
ROAMING = {scoring_pb2.ROAMING_NONE, scoring_pb2.ROAMING_DOMESTIC, scoring_pb2.ROAMING_INTERNATIONAL}
CELL_RISKS = {scoring_pb2.CELL_RISK_NORMAL, scoring_pb2.CELL_RISK_ELEVATED, scoring_pb2.CELL_RISK_HIGH}
REPORT_SOURCES = {
    scoring_pb2.REPORT_SOURCE_USER_REPORT,
    scoring_pb2.REPORT_SOURCE_NATIONAL_PLATFORM,
    scoring_pb2.REPORT_SOURCE_POLICE,
}


# A CDR as the engine reads it: every field read from the message once (reading a protobuf field costs more
# than checking it), in the order of CdrRow below.
CdrRow = tuple[str, str, str, int, int, int, str, int, str, int]


def cdr_row(c: scoring_pb2.Cdr) -> CdrRow:
    return (
        c.msisdn,
        c.peer,
        c.peer_province,
        c.direction,
        c.start.seconds,
        c.duration_s,
        c.cell_id,
        c.roaming,
        c.imei,
        c.service,
    )


# Bounds of a CDR's fields (Cdr is checked here, on the hot path, rather than by the generic walker).
MAX_PEER = 32
MAX_CELL = 64
MAX_IMEI = 20
MAX_CALL_S = 172_800
NANOS = 1_000_000_000
REPLAY_LATEST_S = 4_102_444_800  # a replayed scenario may lie in the future of the live clock (2100-01-01)


def _row_ok(row: CdrRow, latest: float) -> bool:
    m, peer, pp, direction, start, duration, cell, roaming, imei, service = row
    return (
        len(m) == 11
        and m[0] == "1"
        and m.isascii()
        and m.isdigit()
        and 0 < len(peer) <= MAX_PEER
        and peer.isprintable()
        and len(pp) == 2
        and pp.isascii()
        and pp.isdigit()
        and direction in DIRECTIONS
        and service in SERVICES
        and EARLIEST_EVENT_S <= start <= latest
        and duration <= MAX_CALL_S
        and roaming in ROAMING
        and len(cell) <= MAX_CELL
        and cell.isprintable()
        and len(imei) <= MAX_IMEI
        and imei.isprintable()
    )


def _country_ok(c: scoring_pb2.Cdr) -> bool:
    country = c.country
    return not country or (len(country) == 2 and country.isascii() and country.isalpha())


def _rest_ok(c: scoring_pb2.Cdr) -> bool:
    """What the row leaves out: the country, and the start's nanos (unused, but the contract bounds them)."""
    return _country_ok(c) and 0 <= c.start.nanos < NANOS


def _text(v: Violations, value: str, field: str, limit: int, required: bool = False) -> None:
    if required and not value:
        v.add(field, "required")
    elif len(value) > limit or not value.isprintable():
        v.add(field, f"at most {limit} printable characters")


def cdr_violations(v: Violations, prefix: str, c: scoring_pb2.Cdr, latest: float) -> None:
    v.msisdn(c.msisdn, f"{prefix}.msisdn")
    _text(v, c.peer, f"{prefix}.peer", MAX_PEER, required=True)
    v.province(c.peer_province, f"{prefix}.peer_province")
    v.enum(c.direction, f"{prefix}.direction", DIRECTIONS)
    v.enum(c.service, f"{prefix}.service", SERVICES)
    v.enum(c.roaming, f"{prefix}.roaming", ROAMING)
    v.check(
        EARLIEST_EVENT_S <= c.start.seconds <= latest,
        f"{prefix}.start",
        "required: when the call started, from 2000-01-01 up to now (a few minutes of clock skew allowed)",
    )
    v.check(0 <= c.start.nanos < NANOS, f"{prefix}.start.nanos", "from 0 to 999,999,999")
    v.check(c.duration_s <= MAX_CALL_S, f"{prefix}.duration_s", f"at most {MAX_CALL_S} seconds")
    _text(v, c.cell_id, f"{prefix}.cell_id", MAX_CELL)
    _text(v, c.imei, f"{prefix}.imei", MAX_IMEI)
    v.check(_country_ok(c), f"{prefix}.country", "an ISO 3166 alpha-2 code, or empty")


def cdr_rows(
    v: Violations, cdrs: Sequence[scoring_pb2.Cdr], field: str = "cdrs", latest: float | None = None
) -> list[CdrRow]:
    """The batch as rows for the engine; a bad one is walked again to name every bad field. `latest`: the
    latest start accepted (default: now plus the clock skew)."""
    latest = time.time() + CLOCK_SKEW_S if latest is None else latest
    rows = list(map(cdr_row, cdrs))
    if not all(_row_ok(r, latest) for r in rows) or not all(map(_rest_ok, cdrs)):
        for i, (c, row) in enumerate(zip(cdrs, rows, strict=True)):
            if not _row_ok(row, latest) or not _rest_ok(c):
                cdr_violations(v, f"{field}[{i}]", c, latest)
    return rows


def check_profile(
    v: Violations, msg: scoring_pb2.UpsertSubscriberRequest | scoring_pb2.ReplaySubscriber, prefix: str = ""
) -> None:
    v.msisdn(msg.msisdn, f"{prefix}msisdn")
    v.province(msg.home_province, f"{prefix}home_province")
    v.iso_date(msg.opened_at, f"{prefix}opened_at")
    v.check(msg.language in ("zh", "en"), f"{prefix}language", "must be 'zh' or 'en'")


def check_cell(v: Violations, c: scoring_pb2.Cell, prefix: str) -> None:
    v.required(c.cell_id, f"{prefix}.cell_id")
    v.province(c.province, f"{prefix}.province")
    v.enum(c.risk, f"{prefix}.risk", CELL_RISKS)


def check_report(
    v: Violations, msg: scoring_pb2.ReportLineRequest | scoring_pb2.ReplayReport, prefix: str = "", live: bool = True
) -> None:
    """`live`: a report made now (not in the future); a replayed one may lie anywhere the scenario does."""
    v.msisdn(msg.msisdn, f"{prefix}msisdn")
    v.enum(msg.source, f"{prefix}source", REPORT_SOURCES)
    if live:
        v.event_time(msg.at.seconds, f"{prefix}at")
    else:
        v.check(msg.at.seconds >= EARLIEST_EVENT_S, f"{prefix}at", "required: when the report was made")


# Who may report what: a source is an authority's own word, so only that authority may give it.
REPORTERS: dict[int, frozenset[str]] = {
    scoring_pb2.REPORT_SOURCE_USER_REPORT: frozenset({"customer-service", "app"}),
    scoring_pb2.REPORT_SOURCE_NATIONAL_PLATFORM: frozenset({"antifraud-platform"}),
    scoring_pb2.REPORT_SOURCE_POLICE: frozenset({"police"}),
}


def check_reporter(source: scoring_pb2.ReportSource.ValueType, role: str) -> None:
    if role not in REPORTERS.get(source, frozenset()):
        raise permission_denied(
            f"a {scoring_pb2.ReportSource.Name(source)} report cannot come from role {role!r}",
            "REPORT_SOURCE_NOT_YOURS",
            {"source": scoring_pb2.ReportSource.Name(source), "role": role},
        )


def report_source(source: int) -> int:
    """Engine's report source index: 0 user report, 1 national platform, 2 police."""
    return source - scoring_pb2.REPORT_SOURCE_USER_REPORT


def check_upsert(r: scoring_pb2.UpsertSubscriberRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    check_profile(v, r)
    v.raise_if_any()


def check_enterprise(r: scoring_pb2.SetEnterpriseBindingRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    v.msisdn(r.msisdn)
    v.check(len(r.enterprise) <= 128, "enterprise", "at most 128 characters")
    v.raise_if_any()


def check_cells(r: scoring_pb2.UpdateCellsRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    for i, c in enumerate(r.cells):
        check_cell(v, c, f"cells[{i}]")
    v.raise_if_any()


def check_number_feed(r: scoring_pb2.UpdateNumberFeedRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    v.check(bool(r.add or r.remove), "add", "give numbers to add or to remove")
    for name, numbers in (("add", r.add), ("remove", r.remove)):
        for i, n in enumerate(numbers):
            digits = n.removeprefix("+")
            ok = 3 <= len(digits) <= 20 and digits.isascii() and digits.isdigit()
            v.check(ok, f"{name}[{i}]", "must be 3-20 digits (a leading + allowed)")
    v.raise_if_any()


def check_report_line(r: scoring_pb2.ReportLineRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    check_report(v, r)
    v.raise_if_any()


def check_outcome(r: scoring_pb2.RecordOutcomeRequest) -> None:
    v = Violations()
    v.request_id(r.request_id)
    v.msisdn(r.msisdn)
    v.required(r.case_id, "case_id")
    v.enum(r.outcome, "outcome", set(scoring_pb2.Outcome.values()) - {scoring_pb2.OUTCOME_UNSPECIFIED})
    v.raise_if_any()


def check_get_assessment(r: scoring_pb2.GetAssessmentRequest) -> None:
    v = Violations()
    v.msisdn(r.msisdn)
    v.raise_if_any()

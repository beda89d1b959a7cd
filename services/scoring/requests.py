"""Checks of incoming scoring messages: every bad field named, nothing applied from a bad batch."""

from __future__ import annotations

from collections.abc import Sequence

from carrier.scoring.v1 import scoring_pb2
from pscommon.validation import Violations

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


def _row_ok(row: CdrRow) -> bool:
    m, peer, pp, direction, start, _, _, roaming, _, service = row
    return (
        len(m) == 11
        and m[0] == "1"
        and m.isdigit()
        and bool(peer)
        and len(pp) == 2
        and pp.isdigit()
        and direction in DIRECTIONS
        and service in SERVICES
        and start > 0
        and roaming in ROAMING
    )


def cdr_violations(v: Violations, prefix: str, c: scoring_pb2.Cdr) -> None:
    v.msisdn(c.msisdn, f"{prefix}.msisdn")
    v.required(c.peer, f"{prefix}.peer")
    v.check(
        len(c.peer_province) == 2 and c.peer_province.isdigit(),
        f"{prefix}.peer_province",
        "must be a 2-digit province code or '00' for international",
    )
    v.enum(c.direction, f"{prefix}.direction", DIRECTIONS)
    v.enum(c.service, f"{prefix}.service", SERVICES)
    v.enum(c.roaming, f"{prefix}.roaming", ROAMING)
    v.check(c.start.seconds > 0, f"{prefix}.start", "required: the call's start time")


def cdr_rows(v: Violations, cdrs: Sequence[scoring_pb2.Cdr], field: str = "cdrs") -> list[CdrRow]:
    """The batch as rows for the engine; a bad one is walked again to name every bad field."""
    rows = list(map(cdr_row, cdrs))
    if not all(map(_row_ok, rows)):
        for i, (c, row) in enumerate(zip(cdrs, rows, strict=True)):
            if not _row_ok(row):
                cdr_violations(v, f"{field}[{i}]", c)
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
    v: Violations, msg: scoring_pb2.ReportLineRequest | scoring_pb2.ReplayReport, prefix: str = ""
) -> None:
    v.msisdn(msg.msisdn, f"{prefix}msisdn")
    v.enum(msg.source, f"{prefix}source", REPORT_SOURCES)
    v.check(msg.at.seconds > 0, f"{prefix}at", "required: when the report was made")


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
            v.check(3 <= len(n) <= 20 and n.lstrip("+").isdigit(), f"{name}[{i}]", "must be 3-20 digits")
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
    v.enum(r.outcome, "outcome", {scoring_pb2.OUTCOME_FALSE_POSITIVE, scoring_pb2.OUTCOME_CONFIRMED_FRAUD})
    v.raise_if_any()


def check_get_assessment(r: scoring_pb2.GetAssessmentRequest) -> None:
    v = Violations()
    v.msisdn(r.msisdn)
    v.raise_if_any()

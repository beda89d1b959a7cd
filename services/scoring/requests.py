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


def _cdr_ok(c: scoring_pb2.Cdr) -> bool:
    m, pp = c.msisdn, c.peer_province
    return (
        len(m) == 11
        and m[0] == "1"
        and m.isdigit()
        and bool(c.peer)
        and len(pp) == 2
        and pp.isdigit()
        and c.direction in DIRECTIONS
        and c.service in SERVICES
        and c.start.seconds > 0
        and c.roaming in ROAMING
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


def check_cdrs(v: Violations, cdrs: Sequence[scoring_pb2.Cdr], field: str = "cdrs") -> None:
    """Fast path for good batches; a bad one is walked again to name every bad field."""
    if all(map(_cdr_ok, cdrs)):
        return
    for i, c in enumerate(cdrs):
        if not _cdr_ok(c):
            cdr_violations(v, f"{field}[{i}]", c)


def check_profile(v: Violations, msg, prefix: str = "") -> None:
    v.msisdn(msg.msisdn, f"{prefix}msisdn")
    v.province(msg.home_province, f"{prefix}home_province")
    v.iso_date(msg.opened_at, f"{prefix}opened_at")
    v.check(msg.language in ("zh", "en"), f"{prefix}language", "must be 'zh' or 'en'")


def check_cell(v: Violations, c: scoring_pb2.Cell, prefix: str) -> None:
    v.required(c.cell_id, f"{prefix}.cell_id")
    v.province(c.province, f"{prefix}.province")
    v.enum(c.risk, f"{prefix}.risk", CELL_RISKS)


def check_report(v: Violations, msg, prefix: str = "") -> None:
    v.msisdn(msg.msisdn, f"{prefix}msisdn")
    v.enum(msg.source, f"{prefix}source", REPORT_SOURCES)
    v.check(msg.at.seconds > 0, f"{prefix}at", "required: when the report was made")


def report_source(source: int) -> int:
    """Engine's report source index: 0 user report, 1 national platform, 2 police."""
    return source - scoring_pb2.REPORT_SOURCE_USER_REPORT

"""Reads a scenario file (docs/scenario-jsonl.md) into replay messages, refusing the whole file on
the first bad line with the line number and the key."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TypeVar

from carrier.scoring.v1 import scoring_pb2

BATCH = 2000
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
PROVINCE_RE = re.compile(r"^\d{2}$")
MSISDN_RE = re.compile(r"^1\d{10}$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
V = TypeVar("V", bound=int)
DIRECTIONS = {"out": scoring_pb2.DIRECTION_OUT, "in": scoring_pb2.DIRECTION_IN}
SERVICES = {"voice": scoring_pb2.SERVICE_KIND_VOICE, "sms": scoring_pb2.SERVICE_KIND_SMS}
ROAMING = {
    "none": scoring_pb2.ROAMING_NONE,
    "domestic": scoring_pb2.ROAMING_DOMESTIC,
    "international": scoring_pb2.ROAMING_INTERNATIONAL,
}
CELL_RISK = {
    "normal": scoring_pb2.CELL_RISK_NORMAL,
    "elevated": scoring_pb2.CELL_RISK_ELEVATED,
    "high": scoring_pb2.CELL_RISK_HIGH,
}
SOURCES = {
    "user_report": scoring_pb2.REPORT_SOURCE_USER_REPORT,
    "national_platform": scoring_pb2.REPORT_SOURCE_NATIONAL_PLATFORM,
    "police": scoring_pb2.REPORT_SOURCE_POLICE,
}


class ScenarioError(ValueError):
    def __init__(self, line: int, key: str, problem: str) -> None:
        super().__init__(f"line {line}: {key}: {problem}")
        self.line, self.key = line, key


@dataclass
class Scenario:
    subscribers: list[scoring_pb2.ReplaySubscriber] = field(default_factory=list)
    cells: list[scoring_pb2.Cell] = field(default_factory=list)
    # cdr batches and reports in file (time) order
    events: list[scoring_pb2.ReplayScenarioRequest] = field(default_factory=list)
    cdrs: int = 0

    def requests(self):
        """Everything the engine needs before the first call comes first: subscribers, then the cell list."""
        for s in self.subscribers:
            yield scoring_pb2.ReplayScenarioRequest(subscriber=s)
        for c in self.cells:
            yield scoring_pb2.ReplayScenarioRequest(cell=c)
        yield from self.events


class _Line:
    """Typed access to one JSON object; every problem names the line and the key."""

    def __init__(self, n: int, obj: dict) -> None:
        self.n, self.obj = n, obj

    def fail(self, key: str, problem: str) -> ScenarioError:
        return ScenarioError(self.n, key, problem)

    def text(self, key: str, pattern: re.Pattern | None = None, what: str = "", nullable: bool = False) -> str:
        if key not in self.obj:
            if nullable:
                return ""
            raise self.fail(key, "missing")
        v = self.obj[key]
        if v is None and nullable:
            return ""
        if not isinstance(v, str) or (pattern is not None and not pattern.match(v)) or not v:
            raise self.fail(key, f"must be {what or 'a non-empty string'}{' or null' if nullable else ''}, got {v!r}")
        return v

    def choice(self, key: str, options: Mapping[str, V]) -> V:
        if key not in self.obj:
            raise self.fail(key, "missing")
        v = self.obj[key]
        if not isinstance(v, str) or v not in options:
            raise self.fail(key, f"must be one of {', '.join(options)}, got {v!r}")
        return options[v]

    def time(self, key: str) -> datetime:
        v = self.text(key, TIME_RE, "an RFC 3339 time with an offset, e.g. 2026-02-06T19:02:11+08:00")
        try:
            return datetime.fromisoformat(v)
        except ValueError:
            raise self.fail(key, f"not a valid time: {v!r}") from None


def _subscriber(ln: _Line) -> scoring_pb2.ReplaySubscriber:
    opened = ln.text("opened_at", re.compile(r"^\d{4}-\d{2}-\d{2}$"), "a date YYYY-MM-DD")
    try:
        date.fromisoformat(opened)
    except ValueError:
        raise ln.fail("opened_at", f"not a valid date: {opened!r}") from None
    language = ln.text("language")
    if language not in ("zh", "en"):
        raise ln.fail("language", f'must be "zh" or "en", got {language!r}')
    ln.text("holder_ref")
    if "enterprise" not in ln.obj:
        raise ln.fail("enterprise", "missing (null when the line is not bound to an enterprise)")
    return scoring_pb2.ReplaySubscriber(
        msisdn=ln.text("msisdn", MSISDN_RE, "11 digits starting with 1"),
        home_province=ln.text("home_province", PROVINCE_RE, "2 digits"),
        opened_at=opened,
        enterprise=ln.text("enterprise", nullable=True),
        language=language,
    )


def _cell(ln: _Line) -> scoring_pb2.Cell:
    return scoring_pb2.Cell(
        cell_id=ln.text("cell_id"),
        province=ln.text("province", PROVINCE_RE, "2 digits"),
        risk=ln.choice("risk", CELL_RISK),
    )


def _cdr(ln: _Line) -> tuple[scoring_pb2.Cdr, datetime]:
    start = ln.time("start")
    service = ln.choice("service", SERVICES)
    duration = ln.obj.get("duration_s")
    if "duration_s" not in ln.obj:
        raise ln.fail("duration_s", "missing")
    if not isinstance(duration, int) or isinstance(duration, bool) or duration < 0:
        raise ln.fail("duration_s", f"must be an integer >= 0, got {duration!r}")
    if service == scoring_pb2.SERVICE_KIND_SMS and duration != 0:
        raise ln.fail("duration_s", f"must be 0 for an sms, got {duration}")
    roaming = ln.choice("roaming", ROAMING)
    country = ln.text("country", COUNTRY_RE, "an ISO 3166 alpha-2 code", nullable=True)
    if roaming == scoring_pb2.ROAMING_INTERNATIONAL and not country:
        raise ln.fail("country", "required when roaming is international")
    cdr = scoring_pb2.Cdr(
        msisdn=ln.text("msisdn", MSISDN_RE, "11 digits starting with 1"),
        peer=ln.text("peer"),
        peer_province=ln.text("peer_province", PROVINCE_RE, '2 digits, "00" for international'),
        direction=ln.choice("direction", DIRECTIONS),
        service=service,
        duration_s=duration,
        cell_id=ln.text("cell_id", nullable=True),
        roaming=roaming,
        country=country,
        imei=ln.text("imei"),
    )
    cdr.start.FromDatetime(start)
    return cdr, start


def _report(ln: _Line) -> tuple[scoring_pb2.ReplayReport, datetime]:
    at = ln.time("at")
    r = scoring_pb2.ReplayReport(
        msisdn=ln.text("msisdn", MSISDN_RE, "11 digits starting with 1"), source=ln.choice("source", SOURCES)
    )
    r.at.FromDatetime(at)
    return r, at


def read(path: str) -> Scenario:
    """Parses and checks the whole file; raises ScenarioError before anything is sent anywhere."""
    sc = Scenario()
    batch = scoring_pb2.ReplayCdrs()
    last: datetime | None = None
    subscribers: set[str] = set()
    used: dict[str, int] = {}  # msisdn of cdr/report lines -> first line naming it

    def flush() -> None:
        nonlocal batch
        if batch.cdrs:
            sc.events.append(scoring_pb2.ReplayScenarioRequest(cdrs=batch))
            batch = scoring_pb2.ReplayCdrs()

    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as err:
                raise ScenarioError(n, "(json)", f"not valid JSON: {err.msg}") from None
            if not isinstance(obj, dict):
                raise ScenarioError(n, "(json)", "each line must be a JSON object")
            ln = _Line(n, obj)
            kind = obj.get("kind")
            if kind == "subscriber":
                s = _subscriber(ln)
                if s.msisdn in subscribers:
                    raise ln.fail("msisdn", "a second subscriber line for the same number")
                subscribers.add(s.msisdn)
                sc.subscribers.append(s)
            elif kind == "cell":
                sc.cells.append(_cell(ln))
            elif kind in ("cdr", "report"):
                cdr: scoring_pb2.Cdr | None = None
                report: scoring_pb2.ReplayReport | None = None
                if kind == "cdr":
                    cdr, at = _cdr(ln)
                else:
                    report, at = _report(ln)
                if last is not None and at < last:
                    raise ln.fail(
                        "start" if kind == "cdr" else "at",
                        "earlier than the line before: cdr and report lines must be in time order",
                    )
                last = at
                if cdr is not None:
                    used.setdefault(cdr.msisdn, n)
                    batch.cdrs.append(cdr)
                    sc.cdrs += 1
                    if len(batch.cdrs) >= BATCH:
                        flush()
                elif report is not None:
                    used.setdefault(report.msisdn, n)
                    flush()
                    sc.events.append(scoring_pb2.ReplayScenarioRequest(report=report))
            else:
                raise ln.fail("kind", f"must be subscriber, cell, cdr or report, got {kind!r}")
    flush()
    for msisdn, n in used.items():
        if msisdn not in subscribers:
            raise ScenarioError(n, "msisdn", "no subscriber line for this number")
    return sc

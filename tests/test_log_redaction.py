"""The log redaction: personal data is masked in the line the handler writes (message, exception, traceback,
stack, extra fields), the line stays JSON, and what is not personal data (times, ids, ports) survives."""

from __future__ import annotations

import io
import json
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace

from pscommon import telemetry

MOBILE = "13912345678"
MASKED_MOBILE = "139****5678"
ID_NUMBER = "11010519491231002X"
MASKED_ID = "110**************X"
ID_DIGITS = "110101199003071234"
MASKED_ID_DIGITS = "110**************4"


@dataclass
class Lines:
    handler: logging.Handler
    stream: io.StringIO

    def __call__(self) -> list[str]:
        return self.stream.getvalue().splitlines()


@pytest.fixture
def lines() -> Iterator[Lines]:
    """setup_logging as a process calls it, with the root handler's stream captured."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    telemetry.setup_logging("redaction-test", "DEBUG")
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    yield Lines(handler, stream)
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def only_line(lines: Lines) -> tuple[str, dict[str, Any]]:
    [line] = lines()
    return line, json.loads(line)


log = logging.getLogger("tests.redaction")


def test_setup_logging_puts_the_redaction_on_the_root_handler() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        telemetry.setup_logging("redaction-test")
        [handler] = root.handlers
        assert isinstance(handler.formatter, telemetry.RedactingFormatter)
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_a_number_in_the_message_is_masked(lines: Lines) -> None:
    log.info("sms sent to %s", MOBILE)
    line, data = only_line(lines)
    assert MOBILE not in line
    assert data["message"] == f"sms sent to {MASKED_MOBILE}"
    assert data["level"] == "INFO" and data["service"] == "redaction-test"


def test_an_exception_and_its_traceback_are_masked(lines: Lines) -> None:
    def lookup(msisdn: str, id_number: str) -> None:
        raise ValueError(f"line {msisdn} is registered to {id_number}")

    try:
        lookup(MOBILE, ID_NUMBER)
    except ValueError:
        log.exception("lookup failed for %s", "+86 139 1234 5678")
    line, data = only_line(lines)
    for raw in (MOBILE, ID_NUMBER, "139 1234 5678"):
        assert raw not in line
    assert data["message"] == f"lookup failed for +86 {MASKED_MOBILE}"
    assert data["exc_info"].startswith("Traceback (most recent call last):")
    assert f"ValueError: line {MASKED_MOBILE} is registered to {MASKED_ID}" in data["exc_info"]


def test_exception_text_already_on_the_record_is_masked(lines: Lines) -> None:
    """A record that arrives formatted (exc_text set, no exc_info), e.g. relayed from another process."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 1, "relayed failure", (), None)
    record.exc_text = f"Traceback (most recent call last):\nKeyError: '{MOBILE}'"
    lines.handler.handle(record)
    line, data = only_line(lines)
    assert MOBILE not in line
    assert data["exc_info"].endswith(f"KeyError: '{MASKED_MOBILE}'")


def test_the_stack_is_masked(lines: Lines) -> None:
    log.warning("retrying %s", MOBILE, stack_info=True)
    line, data = only_line(lines)
    assert MOBILE not in line
    assert data["stack_info"].startswith("Stack (most recent call last):")
    assert data["message"] == f"retrying {MASKED_MOBILE}"


@pytest.mark.parametrize(
    ("written", "masked"),
    [
        ("+86 139 1234 5678", "+86 139****5678"),
        ("+8613912345678", "+86139****5678"),
        ("0086 139 1234 5678", "0086 139****5678"),
        ("008613912345678", "0086139****5678"),
        ("86-139-1234-5678", "86-139****5678"),
        ("8613912345678", "86139****5678"),
        ("139-1234-5678", "139****5678"),
        ("139 1234 5678", "139****5678"),
        ("(13912345678)", "(139****5678)"),
        ("msisdn=13912345678.", "msisdn=139****5678."),
    ],
)
def test_every_form_of_a_mobile_number_is_masked(lines: Lines, written: str, masked: str) -> None:
    log.info("holder %s", written)
    line, data = only_line(lines)
    assert written not in line
    assert data["message"] == f"holder {masked}"


@pytest.mark.parametrize(
    ("written", "masked"),
    [(ID_NUMBER, MASKED_ID), (ID_DIGITS, MASKED_ID_DIGITS), ("11010519491231002x", "110**************x")],
)
def test_id_numbers_keep_at_most_three_and_one(lines: Lines, written: str, masked: str) -> None:
    log.info("identity check for %s failed", written)
    line, data = only_line(lines)
    assert written not in line
    assert data["message"] == f"identity check for {masked} failed"


def test_a_number_inside_a_chinese_sentence_is_masked(lines: Lines) -> None:
    """The JSON escapes Chinese as \\uXXXX, so the number follows a hex digit in the written line."""
    log.info("请拨打%s联系，身份证号码%s。", MOBILE, ID_NUMBER)
    line, data = only_line(lines)
    assert "\\u" in line
    assert MOBILE not in line and ID_NUMBER not in line
    assert data["message"] == f"请拨打{MASKED_MOBILE}联系，身份证号码{MASKED_ID}。"


@dataclass
class Holder:
    msisdn: int
    name: str


def test_extra_fields_are_masked_and_the_line_stays_json(lines: Lines) -> None:
    """Numbers given as ints would be bare JSON numbers: they are written as masked strings."""
    log.info(
        "holder record",
        extra={
            "msisdn": MOBILE,
            "line_number": int(MOBILE),
            "ids": [int(ID_DIGITS), 42],
            "holder": Holder(int(MOBILE), "张三"),
            "epoch_ms": 1712345678901,
            "count": 3,
        },
    )
    line, data = only_line(lines)
    assert MOBILE not in line and ID_DIGITS not in line
    assert data["msisdn"] == MASKED_MOBILE and data["line_number"] == MASKED_MOBILE
    assert data["ids"] == [MASKED_ID_DIGITS, 42]
    assert data["holder"] == {"msisdn": MASKED_MOBILE, "name": "张三"}
    assert data["epoch_ms"] == 1712345678901 and data["count"] == 3


NOT_PERSONAL = [
    "2026-03-14T09:26:53.589793+08:00",
    "2026-03-14 09:26:53,589",
    "20260314T092653Z",
    "trace 4bf92f3577b34da6a3ce929d0e0e4736",
    # ids that hold eleven or eighteen decimal digits in a row
    "trace 13912345678abcdef0123456789abcdef",
    "trace ab110101199003071234cdef01234567",
    "span 00f067aa0ba902b7",
    "line a1b2c3d4e5f6a7b8c9d0",
    "line f13912345678a1b2c3d4",
    "case 123e4567-e89b-12d3-a456-426614174000",
    "case abcde139-1234-5678-9abc-def012345678",
    "listening on 127.0.0.1:50051, [::1]:8081 and 0.0.0.0:7233",
    "took 1.234s, 250 ms, PT72H, 0.13912345678 s, 13912.345678 ms",
    "created 1712345678901",
    "version 2026-11-default",
    "request 7f3c2a10-0000-4000-8000-000000000001",
]


@pytest.mark.parametrize("text", NOT_PERSONAL)
def test_what_is_not_personal_data_survives(lines: Lines, text: str) -> None:
    log.info("%s", text)
    _, data = only_line(lines)
    assert data["message"] == text


def test_the_trace_ids_and_time_of_the_line_survive(lines: Lines) -> None:
    with trace.get_tracer("tests.redaction").start_as_current_span("case") as span:
        log.info("scored %s", MOBILE)
    _, data = only_line(lines)
    ctx = span.get_span_context()
    assert data["trace_id"] == f"{ctx.trace_id:032x}" and data["span_id"] == f"{ctx.span_id:016x}"
    assert data["message"] == f"scored {MASKED_MOBILE}"
    assert len(data["time"]) == len("2026-03-14 09:26:53,589")


def test_a_failed_log_call_reports_without_personal_data(lines: Lines, capsys: pytest.CaptureFixture[str]) -> None:
    """logging's own report of a bad call prints the message and its arguments."""
    record = log.makeRecord(log.name, logging.INFO, __file__, 1, "line %d", (MOBILE,), None)
    lines.handler.handle(record)  # only ours: pytest's own handler raises instead
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err
    assert MOBILE not in err and MASKED_MOBILE in err


def test_redacting_between_quotes_is_the_same_as_redacting_the_whole_line() -> None:
    """redact runs the full pattern only between the quotes around each candidate number; on any text that must
    give what the full pattern gives over the whole text."""
    rng = random.Random(20261201)
    pieces = ['"', '\\"', "\\u62e8", "\\u0031", " ", "-", ".", "+86", "0086", "86", "x", "ab", "f", "X", ":", MOBILE]
    pieces += [ID_NUMBER, ID_DIGITS, "139", "1234", "5678", "4bf92f3577b34da6a3ce929d0e0e4736", "0", "7"]
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 24)))
        assert telemetry.redact(text) == telemetry._PERSONAL.sub(telemetry._mask, text), text

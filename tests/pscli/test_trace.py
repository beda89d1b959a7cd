"""`psctl case trace`: the span tree of a case, its own trace first, with service, name, duration and status."""

from __future__ import annotations

import pathlib

from pscli.main import main
from pscli.trace import render_case, render_trace, trace_in_details
from pscommon.spans import SpanRecord

MS = 1_000_000
OWN = "0af7651916cd43dd8448eb211c80319c"
LATER = "4bf92f3577b34da6a3ce929d0e0e4736"


def span(span_id: str, parent: str, service: str, name: str, start_ms: int, end_ms: int, **kw) -> SpanRecord:
    return SpanRecord(
        kw.get("trace", OWN), span_id, parent, service, name, start_ms * MS, end_ms * MS, kw.get("status", "ok")
    )


CASE = [
    # Out of order, as spans arrive: each process exports when its spans end.
    span("c2", "c1", "worker", "RunActivity:change_line_state", 20, 60),
    span("c3", "c2", "suspension", "/carrier.suspension.v1.SuspensionService/ChangeLineState", 25, 55),
    span("a1", "", "scoring", "open_case", 0, 10),
    span("b1", "a1", "scoring", "StartWorkflow:ProtectiveSuspension", 2, 9),
    span("c1", "b1", "worker", "RunWorkflow:ProtectiveSuspension", 12, 15, status="unset"),
    span("d1", "c1", "worker", "RunActivity:send_warning", 70, 90, status="error"),
]


def test_the_tree_nests_children_under_parents_in_time_order():
    lines = render_trace(OWN, CASE, "the case's own")
    assert lines[0].startswith(f"trace {OWN}  the case's own: 6 spans, 90.0 ms, services: scoring, suspension, worker")
    body = [(len(line) - len(line.lstrip()), line.split()[0], line.split()[1:]) for line in lines[1:]]
    assert [(indent, name) for indent, name, _ in body] == [
        (2, "open_case"),
        (4, "StartWorkflow:ProtectiveSuspension"),
        (6, "RunWorkflow:ProtectiveSuspension"),
        (8, "RunActivity:change_line_state"),
        (10, "/carrier.suspension.v1.SuspensionService/ChangeLineState"),
        (8, "RunActivity:send_warning"),
    ]
    assert body[0][2] == ["scoring", "10.0", "ms", "ok"]
    assert body[2][2] == ["worker", "3.0", "ms", "-"]  # no status set
    assert body[4][2] == ["suspension", "30.0", "ms", "ok"]
    assert body[5][2] == ["worker", "20.0", "ms", "ERROR"]


def test_a_span_whose_caller_is_not_kept_is_a_root_and_says_so():
    later = [
        span("e1", "ffffffffffffffff", "verification", "/carrier.verification.v1.VerificationService/Submit", 0, 8),
        span("e2", "e1", "verification", "SignalWorkflow:verified", 1, 3),
    ]
    lines = render_trace(LATER, later, "a later call")
    assert "/Submit (called from outside the stack)" in lines[1]
    assert lines[2].startswith("    SignalWorkflow:verified ")


def test_the_cases_own_trace_comes_first_and_a_missing_one_is_said():
    later = [span("e1", "", "verification", "ActOnCase", -500, -400, trace=LATER)]
    lines = render_case("case-3f2a-1", OWN, {LATER: later, OWN: CASE})
    assert lines[0] == "case-3f2a-1: 2 traces"
    headers = [line for line in lines if line.startswith("trace ")]
    assert headers[0].startswith(f"trace {OWN}  the case's own") and headers[1].startswith(f"trace {LATER}  a later")
    missing = render_case("case-3f2a-1", OWN, {LATER: later})
    assert f"trace {OWN}  (the case's own, from its details): no span of it is kept" in missing


def test_the_trace_id_is_read_from_the_workflow_details():
    details = "**Line** 193****5678\n\n**Trace** `0af7651916cd43dd8448eb211c80319c`"
    assert trace_in_details(details) == OWN
    assert trace_in_details("**Trace** ``") == ""


def test_without_a_span_file_it_says_where_it_looked(tmp_path: pathlib.Path, monkeypatch, capsys):
    monkeypatch.setenv("PSP_PRINCIPAL", "ops")  # main() sets it; restored after the test
    monkeypatch.setenv("PSP_SPAN_FILE", str(tmp_path / "nothing.jsonl"))
    monkeypatch.setenv("PSP_ENV_FILE", str(tmp_path / "stack.env"))
    assert main(["case", "trace", "case-3f2a-1"]) == 1
    assert f"no span file at {tmp_path / 'nothing.jsonl'}" in capsys.readouterr().out
